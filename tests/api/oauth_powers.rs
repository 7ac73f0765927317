//! What a client may do with a key at the OAuth endpoints, and what the
//! audit sees when it may not (issue 13): admission at introspection and
//! revocation, known-key denials, the powers of a rotated-out secret,
//! audiences decided exactly, the denylist's leeway, secrets gone after
//! revoke and delete.

use std::collections::BTreeMap;

use chrono::{Duration, Timelike, Utc};
use diesel::prelude::*;
use keymint::db::schema::{api_keys, audit_events, revoked_tokens, tenant_audiences};
use keymint::grants::signed::sign_request;
use reqwest::Response;
use serde_json::{Value, json};

use crate::backend_tests;
use crate::client::{Form, basic, nonce};
use crate::helpers::{Backend, TestApp, spawn_app};

backend_tests!(
    introspection_and_revocation_admit_clients_like_the_exchange,
    refused_known_keys_are_denials_in_their_tenant_audit,
    a_rotated_out_secret_cannot_revoke_its_key,
    clients_revoke_their_own_tokens_with_signatures_and_grace_secrets,
    reserved_audiences_cannot_be_registered_in_settings,
    audiences_in_use_are_decided_exactly,
    issuing_rechecks_that_the_audience_is_registered,
    revoked_token_ids_outlive_exp_by_the_verification_leeway,
    revoke_and_delete_clear_previous_secrets,
);

fn str_of<'a>(value: &'a Value, field: &str) -> &'a str {
    value[field]
        .as_str()
        .unwrap_or_else(|| panic!("{field} in {value}"))
}

/// POST a form to an OAuth endpoint with an optional Authorization header.
async fn post_form(
    app: &TestApp,
    path: &str,
    authorization: Option<&str>,
    form: &[(&str, &str)],
) -> Response {
    let mut request = app.client.post(app.url(path)).form(form);
    if let Some(value) = authorization {
        request = request.header("Authorization", value);
    }
    request.send().await.unwrap()
}

/// A signed request of an advanced key, form body.
async fn post_signed(
    app: &TestApp,
    path: &str,
    key_id: &str,
    secret: &str,
    body: &str,
) -> Response {
    let headers = sign_request(
        secret,
        key_id,
        Utc::now().timestamp_millis(),
        &nonce(),
        "POST",
        path,
        body.as_bytes(),
    );
    let mut request = app
        .client
        .post(app.url(path))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(body.to_owned());
    for (name, value) in headers {
        request = request.header(name, value);
    }
    request.send().await.unwrap()
}

/// An introspection by a key holding `tokens:introspect` that nothing
/// restricts: whether `token` is active.
async fn is_active(app: &TestApp, inspector: &str, token: &str) -> bool {
    let response = post_form(
        app,
        "/oauth/introspect",
        Some(inspector),
        &[("token", token)],
    )
    .await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    body["active"].as_bool().unwrap()
}

async fn inspector(app: &TestApp, admin: &str) -> String {
    let key = app
        .create_key(
            admin,
            json!({"name": "inspector", "scopes": ["tokens:introspect"]}),
        )
        .await;
    basic(str_of(&key, "id"), str_of(&key, "key"))
}

async fn key_status(app: &TestApp, admin: &str, id: &str) -> String {
    let view: Value = app
        .call("GET", &format!("/api/v1/keys/{id}"), admin, None)
        .await
        .json()
        .await
        .unwrap();
    str_of(&view, "status").to_owned()
}

async fn rotate(app: &TestApp, admin: &str, id: &str, grace_period_s: i64) -> String {
    let response = app
        .call(
            "POST",
            &format!("/api/v1/keys/{id}/rotate"),
            admin,
            Some(json!({ "grace_period_s": grace_period_s })),
        )
        .await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    str_of(&body, "key").to_owned()
}

/// The count of each reason among denial events (a minute boundary may
/// split one reason over two events).
fn counts_by_reason(events: &[Value]) -> BTreeMap<String, i64> {
    let mut counts = BTreeMap::new();
    for event in events {
        assert_eq!(event["action"], "token.denied");
        assert_eq!(event["outcome"], "failure");
        let reason = event["details"]["reason"].as_str().unwrap().to_owned();
        *counts.entry(reason).or_default() += event["count"].as_i64().unwrap();
    }
    counts
}

async fn denials_of(app: &TestApp, admin: &str, key_id: &str) -> Vec<Value> {
    let response = app
        .call(
            "GET",
            &format!("/api/v1/audit-events?action=token.denied&key_id={key_id}"),
            admin,
            None,
        )
        .await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    body["items"].as_array().unwrap().clone()
}

async fn introspection_and_revocation_admit_clients_like_the_exchange(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.admin_token(&app.bootstrap_key).await;
    let svc = app
        .create_key(&admin, json!({"name": "svc", "scopes": ["read"]}))
        .await;
    let token = app.access_token(str_of(&svc, "key"), &[]).await;
    // Allowed only from 203.0.113.0/24; the tests come from 127.0.0.1.
    let listed = app.create_key(&admin,
        json!({"name": "listed", "scopes": ["tokens:introspect"], "ip_allowlist": ["203.0.113.0/24"]}),
    )
    .await;
    let listed_id = str_of(&listed, "id");
    let listed_secret = str_of(&listed, "key");
    let listed_auth = basic(listed_id, listed_secret);

    // Introspection: refused, as the exchange would refuse the key.
    let response = post_form(
        &app,
        "/oauth/introspect",
        Some(&listed_auth),
        &[("token", &token)],
    )
    .await;
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "unauthorized_client", "{body}");
    assert!(body.get("active").is_none());
    assert_eq!(
        app.exchange(Form::XApiKey, listed_secret, &[])
            .await
            .status(),
        400,
        "the exchange refuses it alike"
    );

    // Revocation with client authentication: refused, nothing revoked.
    let response = post_form(
        &app,
        "/oauth/revoke",
        Some(&listed_auth),
        &[("token", listed_secret)],
    )
    .await;
    assert_eq!(response.status(), 400);
    assert_eq!(key_status(&app, &admin, listed_id).await, "active");
    // Its bare secret as `token`: 200 (RFC 7009), and no effect.
    let response = post_form(&app, "/oauth/revoke", None, &[("token", listed_secret)]).await;
    assert_eq!(response.status(), 200);
    assert_eq!(key_status(&app, &admin, listed_id).await, "active");

    // The refusals are the key's denials, with the reason.
    let denials = denials_of(&app, &admin, listed_id).await;
    assert_eq!(
        counts_by_reason(&denials),
        BTreeMap::from([("address_not_allowed".to_owned(), 4)]),
        "{denials:?}"
    );

    // The same checks pass for a key without a list.
    let inspector = inspector(&app, &admin).await;
    assert!(is_active(&app, &inspector, &token).await);
}

async fn refused_known_keys_are_denials_in_their_tenant_audit(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.admin_token(&app.bootstrap_key).await;
    // A deleted key's secret matches no key any more: it is unknown.
    let deleted = app.create_key(&admin, json!({"name": "deleted"})).await;
    let response = app
        .call(
            "DELETE",
            &format!("/api/v1/keys/{}", str_of(&deleted, "id")),
            &admin,
            None,
        )
        .await;
    assert_eq!(response.status(), 204);
    let unknown = {
        let response = app
            .exchange(Form::XApiKey, str_of(&deleted, "key"), &[])
            .await;
        assert_eq!(response.status(), 401);
        response.json::<Value>().await.unwrap()
    };

    // Revoked.
    let revoked = app.create_key(&admin, json!({"name": "revoked"})).await;
    let revoked_id = str_of(&revoked, "id");
    let response = app
        .call(
            "POST",
            &format!("/api/v1/keys/{revoked_id}/revoke"),
            &admin,
            None,
        )
        .await;
    assert_eq!(response.status(), 200);
    // Expired (made so in the database: the API only shortens to the future).
    let expired = app.create_key(&admin, json!({"name": "expired"})).await;
    let expired_id = str_of(&expired, "id");
    diesel::update(api_keys::table.find(expired_id))
        .set(api_keys::expires_at.eq(Some(Utc::now().naive_utc() - Duration::seconds(1))))
        .execute(&mut app.db.connect())
        .unwrap();
    // A rotated-out secret after its grace.
    let rotated = app.create_key(&admin, json!({"name": "rotated"})).await;
    let rotated_id = str_of(&rotated, "id");
    let old_secret = str_of(&rotated, "key");
    let new_secret = rotate(&app, &admin, rotated_id, 1).await;
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;

    for (id, secret, reason) in [
        (revoked_id, str_of(&revoked, "key"), "revoked"),
        (expired_id, str_of(&expired, "key"), "expired"),
        (rotated_id, old_secret, "grace_period_over"),
    ] {
        // Twice by one form, once by another: one answer, one event counted thrice.
        for (form, times) in [(Form::XApiKey, 2), (Form::Basic, 1)] {
            for _ in 0..times {
                let response = app.exchange_as(form, Some(id), secret, &[]).await;
                assert_eq!(response.status(), 401, "{reason}");
                let body: Value = response.json().await.unwrap();
                assert_eq!(body, unknown, "{reason}: the answer is an unknown key's");
            }
        }
        let response = app.exchange(Form::Exchange, secret, &[]).await;
        assert_eq!(response.status(), 400);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error_description"], "subject_token is invalid");

        let denials = denials_of(&app, &admin, id).await;
        assert_eq!(
            counts_by_reason(&denials),
            BTreeMap::from([(reason.to_owned(), 4)]),
            "{denials:?}"
        );
        for event in &denials {
            assert_eq!(event["target_type"], "key");
            assert_eq!(event["target_id"], id);
            assert_eq!(event["actor"]["key_id"], id);
            assert_eq!(event["tenant"], "default");
        }
    }
    // The new secret still works, and left no denial.
    assert_eq!(
        app.exchange(Form::XApiKey, &new_secret, &[]).await.status(),
        200
    );

    // A signed request naming a known advanced key whose HMAC fails.
    let advanced = app
        .create_key(
            &admin,
            json!({"name": "adv", "security_level": "advanced", "scopes": ["read"]}),
        )
        .await;
    let advanced_id = str_of(&advanced, "id");
    let body = "grant_type=client_credentials";
    let response = post_signed(&app, "/oauth/token", advanced_id, &app.bootstrap_key, body).await;
    assert_eq!(response.status(), 401);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["error_description"], "invalid signature");
    let denials = denials_of(&app, &admin, advanced_id).await;
    assert_eq!(
        counts_by_reason(&denials),
        BTreeMap::from([("bad_signature".to_owned(), 1)]),
        "{denials:?}"
    );
    // A signed request naming a revoked key: its denial, the same answer.
    let response = post_signed(
        &app,
        "/oauth/token",
        revoked_id,
        str_of(&revoked, "key"),
        body,
    )
    .await;
    assert_eq!(response.status(), 401);
    let same: Value = response.json().await.unwrap();
    assert_eq!(same, answer);
    let denials = denials_of(&app, &admin, revoked_id).await;
    assert_eq!(
        counts_by_reason(&denials),
        BTreeMap::from([("revoked".to_owned(), 5)]),
        "{denials:?}"
    );

    // Only the secret that matches no key was summarised per address.
    let per_address: Vec<(Option<String>, String, i64)> = audit_events::table
        .filter(audit_events::action.eq("token.denied"))
        .filter(audit_events::target_type.eq("address"))
        .select((
            audit_events::tenant_id,
            audit_events::details,
            audit_events::count,
        ))
        .load(&mut app.db.connect())
        .unwrap();
    assert_eq!(per_address.len(), 1, "{per_address:?}");
    let (tenant, details, count) = &per_address[0];
    assert_eq!(*tenant, None);
    assert!(details.contains("unknown_key"), "{details}");
    assert_eq!(*count, 1, "{per_address:?}");
}

async fn a_rotated_out_secret_cannot_revoke_its_key(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.admin_token(&app.bootstrap_key).await;
    let key = app
        .create_key(&admin, json!({"name": "rotating", "scopes": ["read"]}))
        .await;
    let id = str_of(&key, "id");
    let old = str_of(&key, "key");
    let new = rotate(&app, &admin, id, 600).await;

    // As a bare `token`, and with client authentication by itself: 200,
    // no effect.
    let response = post_form(&app, "/oauth/revoke", None, &[("token", old)]).await;
    assert_eq!(response.status(), 200);
    assert_eq!(key_status(&app, &admin, id).await, "active");
    let response = post_form(
        &app,
        "/oauth/revoke",
        Some(&basic(id, old)),
        &[("token", old)],
    )
    .await;
    assert_eq!(response.status(), 200);
    assert_eq!(key_status(&app, &admin, id).await, "active");
    assert_eq!(app.exchange(Form::XApiKey, &new, &[]).await.status(), 200);
    assert_eq!(app.exchange(Form::XApiKey, old, &[]).await.status(), 200);

    // The current secret does revoke it, and with it the previous one.
    let response = post_form(
        &app,
        "/oauth/revoke",
        Some(&basic(id, old)),
        &[("token", &new)],
    )
    .await;
    assert_eq!(response.status(), 200);
    assert_eq!(key_status(&app, &admin, id).await, "revoked");
    for secret in [old, new.as_str()] {
        assert_eq!(app.exchange(Form::XApiKey, secret, &[]).await.status(), 401);
    }

    // The bare current secret revokes its key too.
    let other = app.create_key(&admin, json!({"name": "other"})).await;
    let other_id = str_of(&other, "id");
    let other_new = rotate(&app, &admin, other_id, 600).await;
    let response = post_form(&app, "/oauth/revoke", None, &[("token", &other_new)]).await;
    assert_eq!(response.status(), 200);
    assert_eq!(key_status(&app, &admin, other_id).await, "revoked");
}

async fn clients_revoke_their_own_tokens_with_signatures_and_grace_secrets(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.admin_token(&app.bootstrap_key).await;
    let inspector = inspector(&app, &admin).await;

    // An advanced key: its token, then its signed revocation.
    let advanced = app
        .create_key(
            &admin,
            json!({"name": "adv", "security_level": "advanced", "scopes": ["read"]}),
        )
        .await;
    let id = str_of(&advanced, "id");
    let secret = str_of(&advanced, "key");
    let response = post_signed(
        &app,
        "/oauth/token",
        id,
        secret,
        "grant_type=client_credentials",
    )
    .await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    let token = str_of(&body, "access_token").to_owned();
    assert!(is_active(&app, &inspector, &token).await);
    let response = post_signed(&app, "/oauth/revoke", id, secret, &format!("token={token}")).await;
    assert_eq!(response.status(), 200);
    assert!(
        !is_active(&app, &inspector, &token).await,
        "its jti is denied"
    );
    assert_eq!(key_status(&app, &admin, id).await, "active");

    // A standard key in its rotation grace: the old secret revokes the
    // key's tokens by jti (not the key).
    let key = app
        .create_key(&admin, json!({"name": "std", "scopes": ["read"]}))
        .await;
    let id = str_of(&key, "id");
    let old = str_of(&key, "key");
    let before = app.access_token(old, &[]).await;
    let new = rotate(&app, &admin, id, 600).await;
    let during = app.access_token(old, &[]).await;
    let fresh = app.access_token(&new, &[]).await;
    for token in [&before, &during, &fresh] {
        let response = post_form(
            &app,
            "/oauth/revoke",
            Some(&basic(id, old)),
            &[("token", token)],
        )
        .await;
        assert_eq!(response.status(), 200);
        assert!(!is_active(&app, &inspector, token).await);
    }
    assert_eq!(key_status(&app, &admin, id).await, "active");
    let events: Value = app
        .call(
            "GET",
            &format!("/api/v1/audit-events?action=token.revoked&key_id={id}"),
            &admin,
            None,
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(events["items"].as_array().unwrap().len(), 3, "{events}");
}

async fn reserved_audiences_cannot_be_registered_in_settings(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.admin_token(&app.bootstrap_key).await;
    let before: Value = app
        .call("GET", "/api/v1/settings", &admin, None)
        .await
        .json()
        .await
        .unwrap();
    for (body, field) in [
        (json!({"audiences": [app.admin_audience]}), "audiences"),
        (
            json!({"audiences": ["https://ok.example", "urn:keymint:tenant:acme"]}),
            "audiences",
        ),
        (json!({"audiences": ["urn:keymint:anything"]}), "audiences"),
        (json!({"audiences": ["URN:KEYMINT:tenant:x"]}), "audiences"),
        (
            json!({"default_audience": app.admin_audience}),
            "default_audience",
        ),
        (
            json!({"default_audience": "urn:keymint:tenant:other"}),
            "default_audience",
        ),
    ] {
        let response = app.patch_settings(&admin, body.clone()).await;
        assert_eq!(response.status(), 422, "{body}");
        let problem: Value = response.json().await.unwrap();
        let fields: Vec<&str> = problem["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["field"].as_str().unwrap())
            .collect();
        assert_eq!(fields, [field], "{body}: {problem}");
    }
    let after: Value = app
        .call("GET", "/api/v1/settings", &admin, None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(before, after, "nothing changed");

    // The tenant's own urn:keymint: name is its to hold.
    let response = app
        .patch_settings(
            &admin,
            json!({"audiences": ["urn:keymint:tenant:default", "https://ok.example"]}),
        )
        .await;
    assert_eq!(response.status(), 200);
}

async fn audiences_in_use_are_decided_exactly(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.admin_token(&app.bootstrap_key).await;
    let quote = r#"urn:example:say"hi"#;
    let backslash = r"urn:example:back\slash";
    let wildcard = "urn:example:a_c";
    let lower = "urn:example:case";
    let all = [
        quote,
        backslash,
        wildcard,
        "urn:example:abc",
        lower,
        "urn:example:CASE",
    ];
    let response = app
        .patch_settings(&admin, json!({ "audiences": all }))
        .await;
    assert_eq!(response.status(), 200);
    app.create_key(&admin,
        json!({"name": "holder", "audiences": [quote, backslash, "urn:example:abc", "urn:example:CASE"]}),
    )
    .await;
    let without = |gone: &str| -> Value {
        json!({ "audiences": all.iter().filter(|a| **a != gone).collect::<Vec<_>>() })
    };

    // Held (their JSON text is escaped): cannot be removed.
    for held in [quote, backslash] {
        let response = app.patch_settings(&admin, without(held)).await;
        assert_eq!(response.status(), 422, "{held}");
    }
    // Not held, though a pattern or a case-blind match would say so.
    for free in [wildcard, lower] {
        let response = app.patch_settings(&admin, without(free)).await;
        assert_eq!(response.status(), 200, "{free}");
        let view: Value = response.json().await.unwrap();
        assert!(
            !view["audiences"].as_array().unwrap().contains(&json!(free)),
            "{view}"
        );
    }
}

async fn issuing_rechecks_that_the_audience_is_registered(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.admin_token(&app.bootstrap_key).await;
    let audience = "https://billing.example";
    let response = app
        .patch_settings(&admin, json!({ "audiences": [audience] }))
        .await;
    assert_eq!(response.status(), 200);
    let key = app
        .create_key(
            &admin,
            json!({"name": "billing", "scopes": ["read"], "audiences": [audience]}),
        )
        .await;
    let secret = str_of(&key, "key");
    assert_eq!(app.exchange(Form::XApiKey, secret, &[]).await.status(), 200);

    // The API refuses to unregister an audience in use; the row goes anyway
    // (an operator, a restore, another replica's race).
    let deleted = diesel::delete(tenant_audiences::table.find(audience))
        .execute(&mut app.db.connect())
        .unwrap();
    assert_eq!(deleted, 1);

    for params in [vec![], vec![("audience", audience)]] {
        let response = app.exchange(Form::XApiKey, secret, &params).await;
        assert_eq!(response.status(), 400, "{params:?}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"], "invalid_target", "{params:?}");
    }
    // Admin-audience tokens need no registration.
    app.admin_token(&app.bootstrap_key).await;
}

async fn revoked_token_ids_outlive_exp_by_the_verification_leeway(backend: Backend) {
    use keymint::tokens::signing::LEEWAY_S;
    let app = spawn_app(backend).await;
    let settings = app.db.settings("");
    let mut conn = app.db.connect();
    // A `now` of our own, far from the server's janitor's.
    let now = (Utc::now() + Duration::days(1))
        .naive_utc()
        .with_nanosecond(0)
        .unwrap();
    for (jti, exp) in [
        ("within-leeway", now - Duration::seconds(LEEWAY_S - 1)),
        ("at-leeway", now - Duration::seconds(LEEWAY_S)),
        ("past-leeway", now - Duration::seconds(LEEWAY_S + 1)),
    ] {
        diesel::insert_into(revoked_tokens::table)
            .values((
                revoked_tokens::jti.eq(jti),
                revoked_tokens::tenant_id.eq("t"),
                revoked_tokens::key_id.eq("k"),
                revoked_tokens::expires_at.eq(exp),
                revoked_tokens::revoked_at.eq(now - Duration::hours(1)),
            ))
            .execute(&mut conn)
            .unwrap();
    }

    let purged = keymint::janitor::purge(&mut conn, &settings, now).unwrap();

    assert_eq!(purged.revoked_tokens, 1);
    let mut left: Vec<String> = revoked_tokens::table
        .select(revoked_tokens::jti)
        .load(&mut conn)
        .unwrap();
    left.sort();
    assert_eq!(left, ["at-leeway", "within-leeway"]);
}

async fn revoke_and_delete_clear_previous_secrets(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.admin_token(&app.bootstrap_key).await;
    let previous = |id: &str| -> (Option<Vec<u8>>, Option<Vec<u8>>) {
        api_keys::table
            .find(id)
            .select((
                api_keys::previous_secret_hash,
                api_keys::previous_secret_enc,
            ))
            .first(&mut app.db.connect())
            .unwrap()
    };
    for (level, ending) in [
        ("standard", "revoke"),
        ("advanced", "revoke"),
        ("standard", "delete"),
        ("advanced", "delete"),
    ] {
        let key = app
            .create_key(
                &admin,
                json!({"name": format!("{level}-{ending}"), "security_level": level}),
            )
            .await;
        let id = str_of(&key, "id");
        rotate(&app, &admin, id, 3600).await;
        let (hash, enc) = previous(id);
        assert!(
            hash.is_some() || enc.is_some(),
            "{level}: a previous secret"
        );

        let response = match ending {
            "revoke" => {
                app.call("POST", &format!("/api/v1/keys/{id}/revoke"), &admin, None)
                    .await
            }
            _ => {
                app.call("DELETE", &format!("/api/v1/keys/{id}"), &admin, None)
                    .await
            }
        };
        assert!(response.status().is_success(), "{level} {ending}");

        assert_eq!(previous(id), (None, None), "{level} after {ending}");
        let grace_end: Option<chrono::NaiveDateTime> = api_keys::table
            .find(id)
            .select(api_keys::previous_expires_at)
            .first(&mut app.db.connect())
            .unwrap();
        assert_eq!(grace_end, None, "{level} after {ending}");
    }
}
