//! Token Status Lists (draft-ietf-oauth-status-list-20): every token names
//! its key's entry; `GET /statuslists/{id}` serves the signed list; a
//! revocation, deletion or tenant switch is in the very next list, on any
//! replica.

use std::collections::BTreeSet;

use futures_util::future::join_all;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use keymint::domain::status_list::StatusList;
use serde_json::{Value, json};

use crate::backend_tests;
use crate::client::claims_unverified;
use crate::helpers::{Backend, ServerProcess, TestApp, postgres_admin_url, spawn_app};

backend_tests!(
    a_tokens_status_names_a_signed_list_that_verifies,
    revocation_deletion_and_a_tenant_switch_reach_the_next_list,
    indices_are_distinct_contiguous_and_never_reused,
    unknown_lists_and_other_media_types_are_refused,
    the_migration_numbers_existing_keys_in_creation_order,
);

const JWT: &str = "application/statuslist+jwt";
const VALID: u8 = 0;
const INVALID: u8 = 1;
const SUSPENDED: u8 = 2;

/// A key's entry as its view shows it: (uri, idx).
fn entry(view: &Value) -> (String, u64) {
    let entry = &view["status_list"];
    (
        entry["uri"].as_str().expect("a status list uri").to_owned(),
        entry["idx"].as_u64().expect("a status list idx"),
    )
}

/// A list fetched from `base` (a server's address) and verified as a
/// verifier would: signature by the JWKS of `base`, `typ`, `iss`, `sub`.
/// Returns the claims.
async fn fetch_list(http: &reqwest::Client, base: &str, issuer: &str, uri: &str) -> Value {
    keymint::tokens::ring_provider::install();
    let path = uri.strip_prefix(issuer).expect("the list is the issuer's");
    let response = http
        .get(format!("{base}{path}"))
        .header("Accept", JWT)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "GET {path}");
    assert_eq!(response.headers()["content-type"], JWT);
    let jwt = response.text().await.unwrap();
    let jwks: JwkSet = http
        .get(format!("{base}/.well-known/jwks.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let header = jsonwebtoken::decode_header(&jwt).unwrap();
    assert_eq!(header.typ.as_deref(), Some("statuslist+jwt"));
    let kid = header.kid.expect("kid");
    let key = DecodingKey::from_jwk(jwks.find(&kid).expect("the list's kid is published")).unwrap();
    let mut validation = Validation::new(Algorithm::ES256);
    validation.leeway = 5;
    validation.set_issuer(&[issuer]);
    validation.set_required_spec_claims(&["exp", "iat", "sub", "iss"]);
    validation.validate_aud = false;
    let claims = jsonwebtoken::decode::<Value>(&jwt, &key, &validation)
        .expect("the list verifies")
        .claims;
    assert_eq!(claims["sub"], uri, "sub is the uri tokens name");
    claims
}

/// The status of each `(uri, idx)`, read from freshly fetched lists.
async fn statuses(app: &TestApp, entries: &[(String, u64)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (uri, idx) in entries {
        let claims = fetch_list(&app.client, &app.address, &app.issuer, uri).await;
        out.push(status_in(&claims, *idx));
    }
    out
}

fn status_in(claims: &Value, idx: u64) -> u8 {
    assert_eq!(claims["status_list"]["bits"], 2);
    let lst = claims["status_list"]["lst"].as_str().unwrap();
    let list = StatusList::decode(2, lst, 1 << 20).expect("lst decodes");
    list.get(idx).expect("idx is inside the list")
}

async fn a_tokens_status_names_a_signed_list_that_verifies(backend: Backend) {
    let app = spawn_app(backend).await;
    let root = app.admin_token(&app.bootstrap_key).await;
    let created = app
        .create_key(&root, json!({"name": "svc", "scopes": ["orders:read"]}))
        .await;
    let token = app
        .access_token(created["key"].as_str().unwrap(), &[])
        .await;

    // The token's claim and the key's view name the same entry.
    let claim = &claims_unverified(&token)["status"]["status_list"];
    let (uri, idx) = entry(&created);
    assert_eq!(claim["uri"], uri);
    assert_eq!(claim["idx"], idx);
    assert_eq!(uri, format!("{}/statuslists/0", app.issuer));

    // The list verifies against the JWKS and holds the entry, VALID.
    let claims = fetch_list(&app.client, &app.address, &app.issuer, &uri).await;
    assert_eq!(claims["ttl"], 30);
    assert_eq!(claims["iss"], app.issuer);
    let (iat, exp) = (
        claims["iat"].as_i64().unwrap(),
        claims["exp"].as_i64().unwrap(),
    );
    assert_eq!(exp - iat, 24 * 3600);
    assert_eq!(status_in(&claims, idx), VALID);

    // Headers: cache for ttl, an ETag, CORS; 304 when the tag matches.
    let response = app.get("/statuslists/0").await;
    assert_eq!(response.status(), 200);
    let headers = response.headers().clone();
    assert_eq!(headers["cache-control"], "public, max-age=30");
    assert_eq!(headers["access-control-allow-origin"], "*");
    let etag = headers["etag"].to_str().unwrap().to_owned();
    assert!(etag.starts_with('"') && etag.ends_with('"'), "{etag}");
    let again = app
        .client
        .get(app.url("/statuslists/0"))
        .header("If-None-Match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 304);
    assert_eq!(again.headers()["etag"], etag.as_str());
    assert_eq!(again.headers()["cache-control"], "public, max-age=30");
    assert!(again.bytes().await.unwrap().is_empty());
    let other = app
        .client
        .get(app.url("/statuslists/0"))
        .header("If-None-Match", "\"something-else\"")
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 200);

    // The aggregation and both metadata documents.
    let aggregation = app.get("/statuslists").await;
    assert_eq!(aggregation.status(), 200);
    assert_eq!(aggregation.headers()["content-type"], "application/json");
    let body: Value = aggregation.json().await.unwrap();
    assert_eq!(body, json!({"status_lists": [uri]}));
    for path in [
        "/.well-known/oauth-authorization-server",
        "/.well-known/openid-configuration",
    ] {
        let metadata: Value = app.get(path).await.json().await.unwrap();
        assert_eq!(
            metadata["status_list_aggregation_endpoint"],
            format!("{}/statuslists", app.issuer),
            "{path}"
        );
    }
}

/// The `status_list` detail of the newest `action` event for key `id`.
async fn audited_entry(app: &TestApp, root: &str, action: &str, id: &str) -> Value {
    let events: Value = app
        .call(
            "GET",
            &format!("/api/v1/audit-events?action={action}&key_id={id}"),
            root,
            None,
        )
        .await
        .json()
        .await
        .unwrap();
    events["items"][0]["details"]["status_list"].clone()
}

async fn revocation_deletion_and_a_tenant_switch_reach_the_next_list(backend: Backend) {
    let app = spawn_app(backend).await;
    let root = app.admin_token(&app.bootstrap_key).await;
    app.new_tenant(&root, "other").await;
    let mut views = Vec::new();
    for (name, tenant) in [
        ("revoked", None),
        ("deleted", None),
        ("bystander", None),
        ("other-revoked", Some("other")),
        ("other-live", Some("other")),
    ] {
        views.push(
            app.create_key_in(&root, tenant, json!({"name": name}))
                .await,
        );
    }
    let ids: Vec<&str> = views.iter().map(|v| v["id"].as_str().unwrap()).collect();
    let entries: Vec<(String, u64)> = views.iter().map(entry).collect();
    assert_eq!(statuses(&app, &entries).await, [VALID; 5]);

    // Revoked: INVALID in the very next list; the others untouched.
    let answer = app
        .api(
            "POST",
            &format!("/api/v1/keys/{}/revoke", ids[0]),
            &root,
            None,
            Some(json!({})),
        )
        .await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.body["status_list"], views[0]["status_list"]);
    assert_eq!(
        statuses(&app, &entries).await,
        [INVALID, VALID, VALID, VALID, VALID]
    );
    let (uri, idx) = &entries[0];
    assert_eq!(
        audited_entry(&app, &root, "key.revoked", ids[0]).await,
        json!({"uri": uri, "idx": idx, "visible_within_s": 30})
    );

    // Deleted: INVALID too.
    let answer = app
        .api(
            "DELETE",
            &format!("/api/v1/keys/{}", ids[1]),
            &root,
            None,
            None,
        )
        .await;
    assert_eq!(answer.status, 204);
    assert_eq!(
        statuses(&app, &entries).await,
        [INVALID, INVALID, VALID, VALID, VALID]
    );
    let (uri, idx) = &entries[1];
    assert_eq!(
        audited_entry(&app, &root, "key.deleted", ids[1]).await,
        json!({"uri": uri, "idx": idx, "visible_within_s": 30})
    );

    // A key of the other tenant revoked, then the tenant switched off: its
    // live key is SUSPENDED, the revoked one stays INVALID, nothing else moves.
    let answer = app
        .api(
            "POST",
            "/api/v1/keys/revoke",
            &root,
            Some("other"),
            Some(json!({"ids": [ids[3]]})),
        )
        .await;
    assert_eq!(answer.status, 200, "{:?}", answer.body);
    app.set_settings(&root, Some("other"), json!({"api_keys_enabled": false}))
        .await;
    assert_eq!(
        statuses(&app, &entries).await,
        [INVALID, INVALID, VALID, INVALID, SUSPENDED]
    );

    // Switched back on: VALID again, but a revocation is for good.
    app.set_settings(&root, Some("other"), json!({"api_keys_enabled": true}))
        .await;
    assert_eq!(
        statuses(&app, &entries).await,
        [INVALID, INVALID, VALID, INVALID, VALID]
    );
}

async fn indices_are_distinct_contiguous_and_never_reused(backend: Backend) {
    let app = spawn_app(backend).await;
    let root = app.admin_token(&app.bootstrap_key).await;
    let tenants = [None, Some("t-one"), Some("t-two")];
    for slug in tenants.iter().flatten() {
        app.new_tenant(&root, slug).await;
    }
    let root = &root;
    let app = &app;
    let created = join_all((0..60).map(|i| async move {
        let tenant = tenants[i % tenants.len()];
        app.create_key_in(root, tenant, json!({"name": format!("k{i}")}))
            .await
    }))
    .await;
    let indices: Vec<u64> = created.iter().map(|v| entry(v).1).collect();
    let distinct: BTreeSet<u64> = indices.iter().copied().collect();
    // The bootstrap key holds 0; the 60 new keys exactly 1..=60.
    assert_eq!(distinct, (1..=60).collect::<BTreeSet<u64>>(), "{indices:?}");

    // Deleting keys frees no index: new keys get new ones.
    for view in created.iter().take(10) {
        let id = view["id"].as_str().unwrap();
        let tenant = view["tenant"].as_str().filter(|t| *t != "default");
        let answer = app
            .api("DELETE", &format!("/api/v1/keys/{id}"), root, tenant, None)
            .await;
        assert_eq!(answer.status, 204);
    }
    let mut later = BTreeSet::new();
    for i in 0..5 {
        let view = app
            .create_key(root, json!({"name": format!("later{i}")}))
            .await;
        later.insert(entry(&view).1);
    }
    assert_eq!(later, (61..=65).collect::<BTreeSet<u64>>());
}

async fn unknown_lists_and_other_media_types_are_refused(backend: Backend) {
    let app = spawn_app(backend).await;
    // Only the bootstrap key exists: list 0 and nothing past it.
    assert_eq!(app.get("/statuslists/0").await.status(), 200);
    for path in [
        "/statuslists/1",
        "/statuslists/abc",
        "/statuslists/00",
        "/statuslists/-1",
    ] {
        let response = app.get(path).await;
        assert_eq!(response.status(), 404, "{path}");
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json",
            "{path}"
        );
    }
    let cwt = app
        .client
        .get(app.url("/statuslists/0"))
        .header("Accept", "application/statuslist+cwt")
        .send()
        .await
        .unwrap();
    assert_eq!(cwt.status(), 406);
    assert_eq!(cwt.headers()["content-type"], "application/problem+json");
    let either = app
        .client
        .get(app.url("/statuslists/0"))
        .header(
            "Accept",
            "application/statuslist+cwt, application/statuslist+jwt;q=0.5",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(either.status(), 200);
    let post = app
        .client
        .post(app.url("/statuslists/0"))
        .send()
        .await
        .unwrap();
    assert_eq!(post.status(), 405);
}

/// Two replicas on one PostgreSQL: a key revoked through A is INVALID in
/// the list B serves next, at once (B reads the version on every request).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_through_one_replica_is_in_the_next_list_of_another() {
    if postgres_admin_url().is_none() {
        return;
    }
    let a = spawn_app(Backend::Postgres).await;
    let b = ServerProcess::start(&a.db, &[("KEYMINT__TOKENS__ISSUER", a.issuer.as_str())]).await;
    let root = a.admin_token(&a.bootstrap_key).await;
    let view = a.create_key(&root, json!({"name": "shared"})).await;
    let (uri, idx) = entry(&view);
    let http = reqwest::Client::new();
    let before = fetch_list(&http, &b.base_url(), &a.issuer, &uri).await;
    assert_eq!(status_in(&before, idx), VALID);

    let answer = a
        .api(
            "POST",
            &format!("/api/v1/keys/{}/revoke", view["id"].as_str().unwrap()),
            &root,
            None,
            Some(json!({})),
        )
        .await;
    assert_eq!(answer.status, 200);
    let after = fetch_list(&http, &b.base_url(), &a.issuer, &uri).await;
    assert_eq!(status_in(&after, idx), INVALID);
    b.stop().await;
}

/// Upgrading a database that already holds keys: the migration gives them
/// indices in the order they were made, and the counter continues after
/// them. (The migration is undone with its own down.sql, then run again.)
async fn the_migration_numbers_existing_keys_in_creation_order(backend: Backend) {
    use diesel::connection::SimpleConnection;
    use diesel::prelude::*;
    use keymint::db::schema::{api_keys, status_list_state};

    let app = spawn_app(backend).await;
    let root = app.admin_token(&app.bootstrap_key).await;
    for i in 0..3 {
        app.create_key(&root, json!({"name": format!("old{i}")}))
            .await;
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let dir = if backend == Backend::Sqlite {
        "sqlite"
    } else {
        "postgres"
    };
    let down = std::fs::read_to_string(format!(
        "{}/migrations/{dir}/2026-11-30-000004_status_list/down.sql",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let mut conn = app.db.connect();
    conn.batch_execute(&down).unwrap();
    conn.batch_execute(
        "DELETE FROM __diesel_schema_migrations WHERE version LIKE '20261130000004%'",
    )
    .unwrap();
    assert_eq!(keymint::db::migrate(&mut conn).unwrap(), 1);

    let numbered: Vec<(String, Option<i64>)> = api_keys::table
        .order((api_keys::created_at, api_keys::id))
        .select((api_keys::name, api_keys::status_idx))
        .load(&mut conn)
        .unwrap();
    let names: Vec<&str> = numbered.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["bootstrap", "old0", "old1", "old2"]);
    let indices: Vec<Option<i64>> = numbered.iter().map(|(_, i)| *i).collect();
    assert_eq!(indices, [Some(0), Some(1), Some(2), Some(3)]);
    let next: i64 = status_list_state::table
        .select(status_list_state::next_idx)
        .first(&mut conn)
        .unwrap();
    assert_eq!(next, 4);
}
