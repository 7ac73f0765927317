//! Regression tests for the escalations the powers review found, each
//! replayed as the attacker did it, against a real server on both backends.
//! Races run many trials and assert the invariant every time.

use std::sync::Arc;

use diesel::prelude::*;
use serde_json::{Value, json};

use crate::backend_tests;
use crate::client::Form;
use crate::helpers::{Backend, TestApp, spawn_app};

backend_tests!(
    read_and_self_cannot_change_another_owners_key,
    self_cannot_change_a_stronger_key_of_its_own_owner,
    a_writer_cannot_change_a_key_holding_scopes_it_lacks,
    children_stay_inside_their_parent,
    children_made_while_the_parent_is_revoked_do_not_survive,
    a_parent_without_owner_owns_counts_and_revokes_its_children,
    an_audience_removed_during_key_creation_is_never_kept,
    concurrent_rotations_act_in_some_serial_order,
    a_token_narrower_than_its_key_acts_only_with_what_it_holds,
    a_bulk_revoke_with_one_key_above_the_caller_revokes_nothing,
    reserved_audiences_are_never_a_keys,
);

fn id(v: &Value) -> String {
    v["id"].as_str().unwrap().to_owned()
}

fn secret(v: &Value) -> String {
    v["key"].as_str().unwrap().to_owned()
}

/// Whether `secret` still exchanges for a token.
async fn works(app: &TestApp, secret: &str) -> bool {
    app.exchange(Form::XApiKey, secret, &[]).await.status() == 200
}

/// Every change route, for one target key.
fn changes(target: &str) -> Vec<(&'static str, String, Option<Value>)> {
    vec![
        ("POST", format!("/api/v1/keys/{target}/rotate"), None),
        (
            "PATCH",
            format!("/api/v1/keys/{target}"),
            Some(json!({"name": "taken over"})),
        ),
        ("POST", format!("/api/v1/keys/{target}/revoke"), None),
        (
            "POST",
            "/api/v1/keys/revoke".to_owned(),
            Some(json!({"ids": [target]})),
        ),
        ("DELETE", format!("/api/v1/keys/{target}"), None),
    ]
}

/// Tries every change on `target` with `token`; each must answer 403, and
/// the target must still work afterwards.
async fn every_change_is_refused(app: &TestApp, token: &str, target: &Value, who: &str) {
    for (method, path, body) in changes(&id(target)) {
        let response = app.call(method, &path, token, body).await;
        let status = response.status();
        let text = response.text().await.unwrap();
        assert_eq!(status, 403, "{who}: {method} {path} → {text}");
        assert!(!text.contains("\"key\""), "{who}: no secret in {text}");
    }
    assert!(works(app, &secret(target)).await, "{who}: target unharmed");
}

async fn read_and_self_cannot_change_another_owners_key(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.admin_token(&app.bootstrap_key).await;
    let victim = app
        .create_key(
            &admin,
            json!({"name": "erin's writer", "owner": "erin", "scopes": ["admin:keys:write"]}),
        )
        .await;
    let attacker = app.create_key(&admin,
        json!({"name": "mallory", "owner": "mallory", "scopes": ["admin:keys:read", "keys:self"]}),
    )
    .await;
    let token = app.admin_token(&secret(&attacker)).await;
    // It may read the victim (admin:keys:read) ...
    let response = app
        .call(
            "GET",
            &format!("/api/v1/keys/{}", id(&victim)),
            &token,
            None,
        )
        .await;
    assert_eq!(response.status(), 200);
    // ... and change nothing of it.
    every_change_is_refused(&app, &token, &victim, "read+self").await;
    // Its own keys, it revokes; it never rotates, patches or deletes them.
    let own = app.create_key(&token, json!({"name": "own"})).await;
    for (method, path, body) in changes(&id(&own)) {
        let response = app.call(method, &path, &token, body).await;
        let expected = if method == "POST" && path.ends_with("revoke") {
            200
        } else {
            403
        };
        assert_eq!(response.status(), expected, "{method} {path}");
    }
}

async fn self_cannot_change_a_stronger_key_of_its_own_owner(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.admin_token(&app.bootstrap_key).await;
    let stronger = app
        .create_key(
            &admin,
            json!({"name": "dana's admin key", "owner": "dana", "scopes": ["admin:keys:write"]}),
        )
        .await;
    let developer = app
        .create_key(
            &admin,
            json!({"name": "dana's dev key", "owner": "dana", "scopes": ["keys:self", "app:read"]}),
        )
        .await;
    let weaker = app
        .create_key(
            &admin,
            json!({"name": "dana's app key", "owner": "dana", "scopes": ["app:read"]}),
        )
        .await;
    let token = app.admin_token(&secret(&developer)).await;
    every_change_is_refused(&app, &token, &stronger, "self vs stronger").await;
    // A weaker key of its owner: revoke yes, rotate no.
    let response = app
        .call(
            "POST",
            &format!("/api/v1/keys/{}/rotate", id(&weaker)),
            &token,
            None,
        )
        .await;
    assert_eq!(response.status(), 403);
    assert!(works(&app, &secret(&weaker)).await);
    let response = app
        .call(
            "POST",
            &format!("/api/v1/keys/{}/revoke", id(&weaker)),
            &token,
            None,
        )
        .await;
    assert_eq!(response.status(), 200);
    assert!(!works(&app, &secret(&weaker)).await);
}

async fn a_writer_cannot_change_a_key_holding_scopes_it_lacks(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.admin_token(&app.bootstrap_key).await;
    let writer = app
        .create_key(
            &admin,
            json!({"name": "writer", "scopes": ["admin:keys:write", "admin:keys:read"]}),
        )
        .await;
    let settings_key = app
        .create_key(
            &admin,
            json!({"name": "settings", "scopes": ["admin:settings", "admin:keys:write"]}),
        )
        .await;
    let token = app.admin_token(&secret(&writer)).await;
    every_change_is_refused(&app, &token, &settings_key, "writer vs settings").await;
    // The bootstrap key holds every reserved scope: it is above everyone.
    let bootstrap_id = {
        let page: Value = app
            .call("GET", "/api/v1/keys?limit=200", &token, None)
            .await
            .json()
            .await
            .unwrap();
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|k| {
                k["scopes"]
                    .as_array()
                    .unwrap()
                    .contains(&json!("admin:tenants"))
            })
            .map(|k| k["id"].as_str().unwrap().to_owned())
            .expect("the bootstrap key is listed")
    };
    let response = app
        .call(
            "POST",
            &format!("/api/v1/keys/{bootstrap_id}/rotate"),
            &token,
            None,
        )
        .await;
    assert_eq!(response.status(), 403);
    assert!(works(&app, &app.bootstrap_key).await);
    // An equal key it may change.
    let peer = app
        .create_key(
            &admin,
            json!({"name": "peer", "scopes": ["admin:keys:write"]}),
        )
        .await;
    let response = app
        .call(
            "POST",
            &format!("/api/v1/keys/{}/rotate", id(&peer)),
            &token,
            Some(json!({"grace_period_s": 0})),
        )
        .await;
    assert_eq!(response.status(), 200);
}

async fn children_stay_inside_their_parent(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.admin_token(&app.bootstrap_key).await;
    let parent = app
        .create_key(
            &admin,
            json!({
                "name": "parent", "owner": "pat", "scopes": ["keys:self", "app:read"],
                "ip_allowlist": ["127.0.0.0/8"], "max_token_ttl_s": 300,
                "rate_limit_per_s": 5, "expires_in_s": 86_400,
            }),
        )
        .await;
    let token = app.admin_token(&secret(&parent)).await;

    // What it does not say, it inherits.
    let child = app
        .create_key(&token, json!({"name": "child", "scopes": ["app:read"]}))
        .await;
    assert_eq!(child["ip_allowlist"], json!(["127.0.0.0/8"]));
    assert_eq!(child["max_token_ttl_s"], 300);
    assert_eq!(child["rate_limit_per_s"], 5.0);
    assert_eq!(child["expires_at"], parent["expires_at"]);
    assert_eq!(child["owner"], "pat");
    // It can narrow, never widen.
    for (body, status) in [
        (json!({"name": "c", "ip_allowlist": ["10.0.0.0/8"]}), 403),
        (json!({"name": "c", "ip_allowlist": ["0.0.0.0/0"]}), 403),
        (json!({"name": "c", "ip_allowlist": []}), 403),
        (json!({"name": "c", "max_token_ttl_s": 301}), 403),
        (json!({"name": "c", "rate_limit_per_s": 6}), 403),
        (json!({"name": "c", "expires_in_s": 2 * 86_400}), 403),
        (json!({"name": "c", "never_expires": true}), 403),
        (json!({"name": "c", "scopes": ["app:write"]}), 403),
        (json!({"name": "c", "ip_allowlist": ["127.0.0.1/32"]}), 201),
        (json!({"name": "c", "max_token_ttl_s": 60}), 201),
        (json!({"name": "c", "rate_limit_per_s": 1}), 201),
        (json!({"name": "c", "expires_in_s": 3600}), 201),
    ] {
        let response = app
            .call("POST", "/api/v1/keys", &token, Some(body.clone()))
            .await;
        assert_eq!(response.status(), status, "{body}");
    }

    // Without its own maximum, a parent passes on the tenant default TTL
    // (900 s), not the tenant maximum.
    let loose = app
        .create_key(
            &admin,
            json!({"name": "loose", "owner": "lou", "scopes": ["keys:self", "app:read"]}),
        )
        .await;
    let token = app.admin_token(&secret(&loose)).await;
    let child = app.create_key(&token, json!({"name": "child"})).await;
    assert_eq!(child["max_token_ttl_s"], 900);
    assert_eq!(child["rate_limit_per_s"], 100.0);
    let response = app
        .exchange(Form::XApiKey, &secret(&child), &[("expires_in", "3600")])
        .await;
    assert_eq!(
        response.status(),
        400,
        "a child's token never outlives 900 s"
    );
}

/// The ids of the live children of `parent`, read from the database.
fn live_children(app: &TestApp, parent: &str) -> Vec<String> {
    use keymint::db::schema::api_keys;
    let mut conn = app.db.connect();
    api_keys::table
        .filter(api_keys::parent_key_id.eq(parent))
        .filter(api_keys::revoked_at.is_null())
        .select(api_keys::id)
        .load(&mut conn)
        .unwrap()
}

async fn children_made_while_the_parent_is_revoked_do_not_survive(backend: Backend) {
    let app = Arc::new(spawn_app(backend).await);
    let admin = app.admin_token(&app.bootstrap_key).await;
    let trials = if backend == Backend::Postgres { 12 } else { 20 };
    for trial in 0..trials {
        let parent = app
            .create_key(
                &admin,
                json!({"name": format!("parent {trial}"), "owner": format!("p{trial}"),
                   "scopes": ["keys:self", "app:read"]}),
            )
            .await;
        let token = app.admin_token(&secret(&parent)).await;
        let mut tasks = Vec::new();
        for n in 0..16 {
            let shared = app.clone();
            let token = token.clone();
            tasks.push(tokio::spawn(async move {
                shared
                    .call(
                        "POST",
                        "/api/v1/keys",
                        &token,
                        Some(json!({"name": format!("child {n}")})),
                    )
                    .await
                    .json::<Value>()
                    .await
                    .ok()
                    .and_then(|v| v["key"].as_str().map(str::to_owned))
            }));
            if n == 8 {
                let app = app.clone();
                let admin = admin.clone();
                let parent_id = id(&parent);
                tasks.push(tokio::spawn(async move {
                    let response = app
                        .call(
                            "POST",
                            &format!("/api/v1/keys/{parent_id}/revoke"),
                            &admin,
                            None,
                        )
                        .await;
                    assert_eq!(response.status(), 200);
                    None
                }));
            }
        }
        let mut secrets = Vec::new();
        for task in tasks {
            secrets.extend(task.await.unwrap());
        }
        let survivors = live_children(&app, &id(&parent));
        assert!(
            survivors.is_empty(),
            "trial {trial}: {} children outlived their revoked parent",
            survivors.len()
        );
        for s in secrets {
            assert!(!works(&app, &s).await, "trial {trial}: a child still works");
        }
    }
}

async fn a_parent_without_owner_owns_counts_and_revokes_its_children(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.admin_token(&app.bootstrap_key).await;
    let response = app
        .call(
            "PATCH",
            "/api/v1/settings",
            &admin,
            Some(json!({"max_keys_per_owner": 1})),
        )
        .await;
    assert_eq!(response.status(), 200);
    // Made by the CLI: no owner, so its tokens' `sub` is `key:<id>`.
    let (code, out, err) = crate::helpers::run_cli_on(
        &app.db,
        &[
            "keys",
            "create",
            "--name",
            "ownerless",
            "--scopes",
            "keys:self,app:read",
        ],
    )
    .await;
    assert_eq!(code, 0, "{err}");
    let parent_secret = out.trim().to_owned();
    let token = app.admin_token(&parent_secret).await;
    let first = app.create_key(&token, json!({"name": "first"})).await;
    let owner = first["owner"].as_str().expect("the child has an owner");
    assert!(owner.starts_with("key:"), "{owner}");
    // The quota counts it: a second child is over the tenant's limit.
    let response = app
        .call(
            "POST",
            "/api/v1/keys",
            &token,
            Some(json!({"name": "second"})),
        )
        .await;
    assert_eq!(response.status(), 422);
    // It sees and revokes what it made.
    let page: Value = app
        .call("GET", "/api/v1/keys", &token, None)
        .await
        .json()
        .await
        .unwrap();
    let ids: Vec<&str> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [id(&first)]);
    let response = app
        .call(
            "POST",
            &format!("/api/v1/keys/{}/revoke", id(&first)),
            &token,
            None,
        )
        .await;
    assert_eq!(response.status(), 200);
    // An admin finds them by that owner.
    let response = app
        .call("GET", &format!("/api/v1/keys?owner={owner}"), &admin, None)
        .await;
    assert_eq!(response.status(), 200);
    let page: Value = response.json().await.unwrap();
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
}

async fn an_audience_removed_during_key_creation_is_never_kept(backend: Backend) {
    let app = Arc::new(spawn_app(backend).await);
    let admin = app.admin_token(&app.bootstrap_key).await;
    let trials = if backend == Backend::Postgres { 12 } else { 20 };
    for trial in 0..trials {
        let audience = format!("https://race-{trial}.example.com");
        let response = app
            .call(
                "PATCH",
                "/api/v1/settings",
                &admin,
                Some(json!({"audiences": [audience]})),
            )
            .await;
        assert_eq!(response.status(), 200);
        let mut creations = Vec::new();
        for n in 0..8 {
            let app = app.clone();
            let admin = admin.clone();
            let audience = audience.clone();
            creations.push(tokio::spawn(async move {
                app.call(
                    "POST",
                    "/api/v1/keys",
                    &admin,
                    Some(json!({"name": format!("k{n}"), "audiences": [audience]})),
                )
                .await
                .status()
                .as_u16()
            }));
        }
        let removal = {
            let app = app.clone();
            let admin = admin.clone();
            tokio::spawn(async move {
                app.call(
                    "PATCH",
                    "/api/v1/settings",
                    &admin,
                    Some(json!({"audiences": []})),
                )
                .await
                .status()
                .as_u16()
            })
        };
        let mut created = 0;
        for c in creations {
            let status = c.await.unwrap();
            assert!(matches!(status, 201 | 400), "trial {trial}: {status}");
            created += usize::from(status == 201);
        }
        let removed = removal.await.unwrap();
        assert!(matches!(removed, 200 | 422), "trial {trial}: {removed}");
        // Never both: an audience is removed only while no live key holds it.
        assert!(
            !(removed == 200 && created > 0),
            "trial {trial}: the audience was removed yet {created} key(s) hold it"
        );
        // Clean up for the next trial: revoke what holds it.
        let page: Value = app
            .call("GET", "/api/v1/keys?limit=200", &admin, None)
            .await
            .json()
            .await
            .unwrap();
        let holders: Vec<String> = page["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|k| k["audiences"] == json!([audience]) && k["status"] == "active")
            .map(|k| k["id"].as_str().unwrap().to_owned())
            .collect();
        if !holders.is_empty() {
            let response = app
                .call(
                    "POST",
                    "/api/v1/keys/revoke",
                    &admin,
                    Some(json!({"ids": holders})),
                )
                .await;
            assert_eq!(response.status(), 200);
        }
    }
}

async fn concurrent_rotations_act_in_some_serial_order(backend: Backend) {
    let app = Arc::new(spawn_app(backend).await);
    let admin = app.admin_token(&app.bootstrap_key).await;
    for trial in 0..20 {
        let key = app
            .create_key(&admin, json!({"name": format!("rotating {trial}")}))
            .await;
        let rotate = |grace: i64| {
            let app = app.clone();
            let admin = admin.clone();
            let path = format!("/api/v1/keys/{}/rotate", id(&key));
            tokio::spawn(async move {
                let response = app
                    .call(
                        "POST",
                        &path,
                        &admin,
                        Some(json!({"grace_period_s": grace})),
                    )
                    .await;
                assert_eq!(response.status(), 200);
                secret(&response.json::<Value>().await.unwrap())
            })
        };
        let (a, b) = (rotate(0), rotate(3600));
        let (a, b) = (a.await.unwrap(), b.await.unwrap());
        let original = works(&app, &secret(&key)).await;
        let (a_works, b_works) = (works(&app, &a).await, works(&app, &b).await);
        // A then B: A's and B's secrets work. B then A: only A's. The
        // original secret is dead either way.
        assert!(!original, "trial {trial}: the original secret came back");
        assert!(
            a_works,
            "trial {trial}: the grace-0 rotation's secret is dead"
        );
        let _ = b_works;
    }
}

/// The token's scopes are the request's powers, not its key's: a writer
/// key asking for a token with less cannot act with the rest.
async fn a_token_narrower_than_its_key_acts_only_with_what_it_holds(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.admin_token(&app.bootstrap_key).await;
    let strong = app
        .create_key(
            &admin,
            json!({"name": "strong", "scopes": ["admin:keys:write", "admin:settings"]}),
        )
        .await;
    let response = app
        .exchange(
            Form::XApiKey,
            &secret(&strong),
            &[
                ("audience", &app.admin_audience),
                ("scope", "admin:keys:write"),
            ],
        )
        .await;
    assert_eq!(response.status(), 200);
    let narrow: Value = response.json().await.unwrap();
    let narrow = narrow["access_token"].as_str().unwrap().to_owned();
    // Its own key holds admin:settings, which this token does not.
    every_change_is_refused(&app, &narrow, &strong, "narrow token vs own key").await;
    let response = app
        .call(
            "POST",
            "/api/v1/keys",
            &narrow,
            Some(json!({"name": "x", "scopes": ["admin:settings"]})),
        )
        .await;
    assert_eq!(response.status(), 403);
}

/// One transaction: an id above the caller refuses the whole request.
async fn a_bulk_revoke_with_one_key_above_the_caller_revokes_nothing(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.admin_token(&app.bootstrap_key).await;
    let writer = app
        .create_key(
            &admin,
            json!({"name": "writer", "scopes": ["admin:keys:write"]}),
        )
        .await;
    let token = app.admin_token(&secret(&writer)).await;
    let weak = app.create_key(&admin, json!({"name": "weak"})).await;
    let strong = app
        .create_key(&admin, json!({"name": "strong", "scopes": ["admin:audit"]}))
        .await;
    let response = app
        .call(
            "POST",
            "/api/v1/keys/revoke",
            &token,
            Some(json!({"ids": [id(&weak), id(&strong), "01a00000-0000-7000-8000-000000000000"]})),
        )
        .await;
    assert_eq!(response.status(), 403);
    assert!(works(&app, &secret(&weak)).await, "nothing was revoked");
    assert!(works(&app, &secret(&strong)).await);
    // Without it, the weak key goes and the unknown id is not found.
    let response = app
        .call(
            "POST",
            "/api/v1/keys/revoke",
            &token,
            Some(json!({"ids": [id(&weak), "01a00000-0000-7000-8000-000000000000"]})),
        )
        .await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["revoked"], json!([id(&weak)]));
    assert_eq!(
        body["not_found"],
        json!(["01a00000-0000-7000-8000-000000000000"])
    );
}

/// `urn:keymint:` and the admin audience are keymint's (422 naming the
/// field); the tenant's own `urn:keymint:tenant:<slug>` is its own.
async fn reserved_audiences_are_never_a_keys(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.admin_token(&app.bootstrap_key).await;
    for audience in [
        app.admin_audience.clone(),
        "urn:keymint:tenant:other".to_owned(),
        "urn:keymint:anything".to_owned(),
        "URN:KEYMINT:tenant:other".to_owned(),
    ] {
        let response = app
            .call(
                "POST",
                "/api/v1/keys",
                &admin,
                Some(json!({"name": "x", "audiences": [audience]})),
            )
            .await;
        assert_eq!(response.status(), 422, "{audience}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["errors"][0]["field"], "audiences", "{body}");
    }
    let own = app
        .create_key(
            &admin,
            json!({"name": "own", "audiences": ["urn:keymint:tenant:default"]}),
        )
        .await;
    let response = app.exchange(Form::XApiKey, &secret(&own), &[]).await;
    assert_eq!(response.status(), 200);
}
