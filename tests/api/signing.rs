//! Signing-key lifecycles that must never stop issuance: a revoked or
//! retired key never signs, something always can (or `/readyz` says 503),
//! and an emergency revocation reaches every replica within `reload_s`.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use serde_json::Value;

use crate::backend_tests;
use crate::client::{Form, access_token_at, admin_token_at};
use crate::helpers::{
    Backend, ServerProcess, TestApp, TestDatabase, postgres_admin_url, spawn_app_with,
};

backend_tests!(
    revoking_the_promoted_key_never_stops_issuance,
    when_nothing_can_sign_readiness_fails_until_a_key_is_made,
    a_settled_schedule_is_left_alone,
    a_rotation_reaches_the_jwks_at_once,
);

const TENANT_AUDIENCE: &str = "urn:keymint:tenant:default";

/// Short lifecycles: a rotation switches `reload_s` after it is asked for.
const RELOAD_S: i64 = 3; // as in FAST
const FAST: &str = "[signing]\njwks_max_age_s = 1\nprepublish_s = 2\nreload_s = 3\n";

/// The `kid` of a fresh token for `secret`, after checking it verifies
/// against the JWKS the server publishes now.
async fn signing_kid(app: &TestApp, secret: &str) -> String {
    let response = app.exchange(Form::XApiKey, secret, &[]).await;
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    assert_eq!(status, 200, "the exchange works: {body}");
    let token = body["access_token"].as_str().unwrap();
    app.verify(token, TENANT_AUDIENCE).await;
    jsonwebtoken::decode_header(token).unwrap().kid.unwrap()
}

async fn signing_keys(app: &TestApp, admin: &str) -> Vec<Value> {
    let response = app.call("GET", "/api/v1/signing-keys", admin, None).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    body["items"].as_array().unwrap().clone()
}

fn count_in(keys: &[Value], state: &str) -> usize {
    keys.iter().filter(|k| k["state"] == state).count()
}

fn state_of<'a>(keys: &'a [Value], kid: &str) -> &'a str {
    keys.iter()
        .find(|k| k["kid"] == kid)
        .and_then(|k| k["state"].as_str())
        .unwrap_or("absent")
}

async fn ready(app: &TestApp) -> (u16, Value) {
    let response = app.get("/readyz").await;
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

async fn rotate(app: &TestApp, admin: &str) -> Value {
    let response = app
        .call("POST", "/api/v1/signing-keys/rotate", admin, None)
        .await;
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    assert_eq!(status, 200, "{body}");
    body
}

async fn revoke(app: &TestApp, admin: &str, kid: &str) -> Value {
    let path = format!("/api/v1/signing-keys/{kid}/revoke");
    let response = app.call("POST", &path, admin, None).await;
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    assert_eq!(status, 200, "{body}");
    body
}

fn time(value: &Value) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(value.as_str().unwrap())
        .unwrap()
        .with_timezone(&Utc)
}

async fn sleep_until(at: DateTime<Utc>) {
    let left = (at - Utc::now()).to_std().unwrap_or_default();
    tokio::time::sleep(left).await;
}

/// Finding 4: rotate, then emergency-revoke the key that was about to take
/// over. The retiring key keeps signing past the switch time; revoking a
/// key that already signs promotes the next one. Issuance, the JWKS and
/// readiness stay right throughout, with exactly one active key.
async fn revoking_the_promoted_key_never_stops_issuance(backend: Backend) {
    let app = spawn_app_with(backend, FAST).await;
    let admin = app.admin_token(&app.bootstrap_key).await;
    let (_, secret) = app.cli_key(&["--name", "svc", "--scopes", "read"]).await;
    let first = signing_kid(&app, &secret).await;

    // Before activation.
    tokio::time::sleep(Duration::from_millis(2100)).await; // prepublish_s
    let rotation = rotate(&app, &admin).await;
    let promoted = rotation["activated_kid"].as_str().unwrap().to_owned();
    let switch_at = time(&rotation["activates_at"]);
    let revoked = revoke(&app, &admin, &promoted).await;
    assert_eq!(revoked["state"], "revoked");
    assert!(
        time(&revoked["revoked_at"]) < switch_at,
        "revoked before it activated"
    );
    // Past the switch and past a reload of the key ring.
    sleep_until(switch_at + chrono::Duration::milliseconds(RELOAD_S * 1000 + 500)).await;
    for _ in 0..3 {
        assert_eq!(
            signing_kid(&app, &secret).await,
            first,
            "the key the rotation would have retired signs on"
        );
    }
    assert_eq!(ready(&app).await.0, 200);
    let keys = signing_keys(&app, &admin).await;
    assert_eq!(state_of(&keys, &first), "active", "{keys:#?}");
    assert_eq!(state_of(&keys, &promoted), "revoked");
    assert_eq!(count_in(&keys, "active"), 1, "{keys:#?}");
    assert_eq!(count_in(&keys, "next"), 1, "{keys:#?}");
    let jwks = app
        .get("/.well-known/jwks.json")
        .await
        .text()
        .await
        .unwrap();
    assert!(!jwks.contains(&promoted));

    // After activation: the promoted key signs, then is revoked.
    let rotation = rotate(&app, &admin).await;
    let promoted = rotation["activated_kid"].as_str().unwrap().to_owned();
    sleep_until(time(&rotation["activates_at"]) + chrono::Duration::milliseconds(200)).await;
    assert_eq!(signing_kid(&app, &secret).await, promoted);
    revoke(&app, &admin, &promoted).await;
    let after = signing_kid(&app, &secret).await;
    assert!(after != promoted && after != first, "a fresh key signs");
    assert_eq!(ready(&app).await.0, 200);
    let keys = signing_keys(&app, &admin).await;
    assert_eq!(state_of(&keys, &after), "active", "{keys:#?}");
    assert_eq!(state_of(&keys, &first), "retired", "{keys:#?}");
    assert_eq!(count_in(&keys, "active"), 1, "{keys:#?}");
    assert_eq!(count_in(&keys, "next"), 1, "{keys:#?}");
    // And it lasts past another reload.
    tokio::time::sleep(Duration::from_millis(RELOAD_S as u64 * 1000 + 200)).await;
    assert_eq!(signing_kid(&app, &secret).await, after);
}

/// Makes every signing key unusable in one transaction, as the finding
/// left them (the signing key retired, its successor revoked), and
/// freezes the table so no replica can repair it.
fn break_and_freeze(app: &TestApp) {
    use keymint::db::schema::signing_keys::dsl;
    let mut conn = app.db.connect();
    let freeze = if conn.is_sqlite() {
        "CREATE TRIGGER frozen_insert BEFORE INSERT ON signing_keys \
             BEGIN SELECT RAISE(ABORT, 'frozen'); END;\
         CREATE TRIGGER frozen_update BEFORE UPDATE ON signing_keys \
             BEGIN SELECT RAISE(ABORT, 'frozen'); END;"
    } else {
        "ALTER TABLE signing_keys ADD CONSTRAINT frozen CHECK (false) NOT VALID"
    };
    let now = Utc::now().naive_utc();
    conn.transaction::<_, diesel::result::Error, _>(|conn| {
        diesel::update(
            dsl::signing_keys.filter(dsl::revoked_at.is_null().and(dsl::activates_at.le(now))),
        )
        .set(dsl::retired_at.eq(now - chrono::Duration::seconds(1)))
        .execute(conn)?;
        diesel::update(dsl::signing_keys.filter(dsl::activates_at.gt(now)))
            .set((dsl::revoked_at.eq(now), dsl::retired_at.eq(now)))
            .execute(conn)?;
        conn.batch_execute(freeze)
    })
    .unwrap();
}

fn thaw(app: &TestApp) {
    let mut conn = app.db.connect();
    let sql = if conn.is_sqlite() {
        "DROP TRIGGER frozen_insert; DROP TRIGGER frozen_update;"
    } else {
        "ALTER TABLE signing_keys DROP CONSTRAINT frozen"
    };
    conn.batch_execute(sql).unwrap();
}

/// A retired key is never counted as active: while no key can sign (and
/// none can be made), `/readyz` is 503 with the reason; once the database
/// takes writes again, a key is made within one reload and issuance resumes.
async fn when_nothing_can_sign_readiness_fails_until_a_key_is_made(backend: Backend) {
    let app = spawn_app_with(backend, "[signing]\nreload_s = 1\n").await;
    let (_, secret) = app.cli_key(&["--name", "svc", "--scopes", "read"]).await;
    let before = signing_kid(&app, &secret).await;
    assert_eq!(ready(&app).await.0, 200);

    break_and_freeze(&app);
    let started = Instant::now();
    let (status, body) = loop {
        let (status, body) = ready(&app).await;
        if status == 503 || started.elapsed() > Duration::from_secs(4) {
            break (status, body);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(status, 503, "not ready while no key can sign: {body}");
    assert_eq!(body["reason"], "no signing key can sign", "{body}");
    let response = app.exchange(Form::XApiKey, &secret, &[]).await;
    assert_eq!(response.status(), 503);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "temporarily_unavailable", "{body}");

    thaw(&app);
    let started = Instant::now();
    while ready(&app).await.0 != 200 {
        assert!(
            started.elapsed() < Duration::from_secs(4),
            "a key is made within one reload"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let after = signing_kid(&app, &secret).await;
    assert_ne!(after, before);
}

/// Every replica checks the schedule on every reload: once settled (after
/// start, a rotation, a revocation), the check must find nothing to do, or
/// each reload would take the signing lock and write. The times read back
/// from either backend compare equal to what was written.
async fn a_settled_schedule_is_left_alone(backend: Backend) {
    let app = spawn_app_with(backend, FAST).await;
    let admin = app.admin_token(&app.bootstrap_key).await;
    let settings = app.db.settings(FAST);
    let master = app.db.master_key();
    let mut conn = app.db.connect();
    let mut settled = || {
        let now = Utc::now().naive_utc();
        keymint::tokens::signing::ensure_keys(&mut conn, &master, &settings.signing, now).unwrap()
    };
    assert!(!settled(), "after start");
    tokio::time::sleep(Duration::from_millis(2100)).await; // prepublish_s
    let rotation = rotate(&app, &admin).await;
    assert!(!settled(), "after a rotation");
    revoke(&app, &admin, rotation["activated_kid"].as_str().unwrap()).await;
    assert!(!settled(), "after revoking the key about to take over");
    let keys = signing_keys(&app, &admin).await;
    let active = keys.iter().find(|k| k["state"] == "active").unwrap();
    revoke(&app, &admin, active["kid"].as_str().unwrap()).await;
    assert!(!settled(), "after revoking the active key");
}

async fn served_jwks(app: &TestApp) -> String {
    let response = app.get("/.well-known/jwks.json").await;
    assert_eq!(response.status(), 200);
    response.text().await.unwrap()
}

/// The JWKS is served from bytes built when the key ring is; a rotation
/// through the admin API must swap them with the keys, not at the next
/// periodic reload (`reload_s` is far off here).
async fn a_rotation_reaches_the_jwks_at_once(backend: Backend) {
    let slow_reload = "[signing]\njwks_max_age_s = 1\nprepublish_s = 2\nreload_s = 600\n";
    let app = spawn_app_with(backend, slow_reload).await;
    let admin = app.admin_token(&app.bootstrap_key).await;
    let before = served_jwks(&app).await;
    tokio::time::sleep(Duration::from_millis(2100)).await; // prepublish_s
    let rotation = rotate(&app, &admin).await;
    let next = rotation["next_kid"].as_str().unwrap();
    assert!(!before.contains(next));
    let after = served_jwks(&app).await;
    assert!(
        after.contains(next),
        "the new next key is published at once"
    );
    assert!(after.contains(rotation["activated_kid"].as_str().unwrap()));
    assert_ne!(before, after);
}

// ---- replicas -------------------------------------------------------------

/// The `kid` a replica signs with now, for `secret`.
async fn kid_at(http: &reqwest::Client, node: &str, secret: &str) -> String {
    let token = access_token_at(http, node, secret).await;
    jsonwebtoken::decode_header(&token).unwrap().kid.unwrap()
}

async fn jwks_at(http: &reqwest::Client, node: &str) -> String {
    http.get(format!("{node}/.well-known/jwks.json"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// Emergency revocation on replica A reaches replica B's signer and JWKS
/// within one `reload_s`, however the revocation falls in B's reload cycle.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_emergency_revocation_reaches_every_replica_within_reload_s() {
    if postgres_admin_url().is_none() {
        return;
    }
    const REPLICA_RELOAD_S: u64 = 2;
    let db = TestDatabase::new(Backend::Postgres);
    let bootstrap_file = db.dir.path().join("bootstrap.key");
    let bootstrap_path = bootstrap_file.to_string_lossy().into_owned();
    let issuer = "http://127.0.0.1:1";
    let reload = REPLICA_RELOAD_S.to_string();
    let shared = [
        ("KEYMINT__TOKENS__ISSUER", issuer),
        ("KEYMINT__SIGNING__RELOAD_S", reload.as_str()),
        ("KEYMINT__DATABASE__MAX_CONNECTIONS", "4"),
    ];
    let mut first_env = shared.to_vec();
    first_env.push(("KEYMINT_BOOTSTRAP_KEY_FILE", &bootstrap_path));
    let a = ServerProcess::start(&db, &first_env).await;
    let b = ServerProcess::start(&db, &shared).await;
    let (node_a, node_b) = (a.base_url(), b.base_url());
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let bootstrap = std::fs::read_to_string(&bootstrap_file)
        .unwrap()
        .trim()
        .to_owned();
    let mut revoked = Vec::new();
    // Three revocations, each landing at another point of B's reload cycle.
    for offset_ms in [0u64, 700, 1400] {
        tokio::time::sleep(Duration::from_millis(offset_ms)).await;
        // Signed by the key about to go: the revocation is authorised
        // before it takes effect.
        let admin_jwt = admin_token_at(&http, &node_a, &bootstrap, issuer).await;
        let kid = kid_at(&http, &node_b, &bootstrap).await;
        assert_eq!(kid, kid_at(&http, &node_a, &bootstrap).await);
        let response = http
            .post(format!("{node_a}/api/v1/signing-keys/{kid}/revoke"))
            .bearer_auth(&admin_jwt)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let revoked_at = Instant::now();
        // A withdraws it at once.
        assert!(!jwks_at(&http, &node_a).await.contains(&kid));
        assert_ne!(kid_at(&http, &node_a, &bootstrap).await, kid);
        // B follows within one reload interval.
        loop {
            let signs_with = kid_at(&http, &node_b, &bootstrap).await;
            let published = jwks_at(&http, &node_b).await.contains(&kid);
            if signs_with != kid && !published {
                break;
            }
            assert!(
                // One reload interval, plus the reload's own work on a
                // busy machine.
                revoked_at.elapsed() < Duration::from_millis(REPLICA_RELOAD_S * 1000 + 1000),
                "B still signs with or publishes {kid} {:?} after the revocation",
                revoked_at.elapsed()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        revoked.push(kid);
    }
    let keys = signing_keys_at(&db);
    for kid in &revoked {
        assert!(keys.iter().any(|(k, r)| k == kid && *r), "{kid} is revoked");
    }
    a.stop().await;
    b.stop().await;
}

/// `(kid, revoked)` of every signing key, read from the database.
fn signing_keys_at(db: &TestDatabase) -> Vec<(String, bool)> {
    use keymint::db::schema::signing_keys::dsl;
    let rows: Vec<(String, Option<chrono::NaiveDateTime>)> = dsl::signing_keys
        .select((dsl::kid, dsl::revoked_at))
        .load(&mut db.connect())
        .unwrap();
    rows.into_iter().map(|(k, r)| (k, r.is_some())).collect()
}
