//! Key rotation with grace, introspection and revocation.

use std::time::Duration;

use serde_json::{Value, json};

use crate::backend_tests;
use crate::client::{Form, basic, nonce};
use crate::helpers::{Backend, spawn_app};

backend_tests!(
    rotation_keeps_the_old_secret_only_through_its_grace,
    introspection_answers_active_only_for_good_tokens,
    clients_revoke_their_own_tokens_and_keys,
    hammering_a_key_or_an_address_gets_429,
    allow_lists_use_the_client_address_behind_trusted_proxies_only,
    an_emergency_revoke_unpublishes_a_signing_key_at_once,
    advanced_keys_sign_requests_that_cannot_be_replayed,
);

async fn rotation_keeps_the_old_secret_only_through_its_grace(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.admin_token(&app.bootstrap_key).await;
    let key = app
        .create_key(&admin, json!({"name": "rotating", "scopes": ["a"]}))
        .await;
    let id = key["id"].as_str().unwrap();
    let old = key["key"].as_str().unwrap().to_owned();

    let response = app
        .call(
            "POST",
            &format!("/api/v1/keys/{id}/rotate"),
            &admin,
            Some(json!({"grace_period_s": 2})),
        )
        .await;
    assert_eq!(response.status(), 200);
    let rotated: Value = response.json().await.unwrap();
    let new = rotated["key"].as_str().unwrap().to_owned();
    assert_ne!(new, old);
    assert_eq!(rotated["id"], id, "the id is kept");
    assert!(rotated["previous_expires_at"].is_string());

    // Both work now; a token from the old secret never outlives its grace.
    for secret in [&old, &new] {
        assert_eq!(app.exchange(Form::XApiKey, secret, &[]).await.status(), 200);
    }
    let response = app
        .exchange_as(Form::Basic, Some(id), &old, &[("expires_in", "600")])
        .await;
    let body: Value = response.json().await.unwrap();
    assert!(body["expires_in"].as_i64().unwrap() <= 2, "{body}");

    tokio::time::sleep(Duration::from_millis(2200)).await;
    assert_eq!(app.exchange(Form::XApiKey, &old, &[]).await.status(), 401);
    assert_eq!(app.exchange(Form::XApiKey, &new, &[]).await.status(), 200);

    // Rotating again without grace kills the previous secret at once.
    let again: Value = app
        .call("POST", &format!("/api/v1/keys/{id}/rotate"), &admin, None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(again["previous_expires_at"], Value::Null);
    assert_eq!(app.exchange(Form::XApiKey, &new, &[]).await.status(), 401);
    assert_eq!(
        app.exchange(Form::XApiKey, again["key"].as_str().unwrap(), &[])
            .await
            .status(),
        200
    );

    // Revoked keys do not rotate; bounds are checked.
    app.call("POST", &format!("/api/v1/keys/{id}/revoke"), &admin, None)
        .await;
    assert_eq!(
        app.call("POST", &format!("/api/v1/keys/{id}/rotate"), &admin, None)
            .await
            .status(),
        409
    );
    let other = app.create_key(&admin, json!({"name": "o"})).await;
    let response = app
        .call(
            "POST",
            &format!("/api/v1/keys/{}/rotate", other["id"].as_str().unwrap()),
            &admin,
            Some(json!({"grace_period_s": 604801})),
        )
        .await;
    assert_eq!(response.status(), 400);
    let events: Value = app
        .call(
            "GET",
            "/api/v1/audit-events?action=key.rotated",
            &admin,
            None,
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(events["items"].as_array().unwrap().len(), 2);
}

async fn introspection_answers_active_only_for_good_tokens(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.admin_token(&app.bootstrap_key).await;
    let inspector = app
        .create_key(
            &admin,
            json!({"name": "gateway", "scopes": ["tokens:introspect"]}),
        )
        .await;
    let inspector_id = inspector["id"].as_str().unwrap().to_owned();
    let inspector_auth = basic(&inspector_id, inspector["key"].as_str().unwrap());
    let svc = app
        .create_key(
            &admin,
            json!({"name": "svc", "owner": "svc-a", "scopes": ["read", "write"]}),
        )
        .await;
    let svc_secret = svc["key"].as_str().unwrap().to_owned();
    let token = app.access_token(&svc_secret, &[("scope", "read")]).await;

    let introspect = |auth: String, token: String| {
        let app = &app;
        async move {
            app.client
                .post(app.url("/oauth/introspect"))
                .header("Authorization", auth)
                .form(&[("token", token)])
                .send()
                .await
                .unwrap()
        }
    };
    let response = introspect(inspector_auth.clone(), token.clone()).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["active"], true);
    assert_eq!(body["scope"], "read");
    assert_eq!(body["sub"], "svc-a");
    assert_eq!(body["client_id"], svc["id"]);
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["tid"], "default");
    for member in ["aud", "iss", "exp", "iat", "nbf", "jti"] {
        assert!(body.get(member).is_some(), "{member}");
    }
    // A Bearer admin token holding tokens:introspect may ask too.
    let bearer = format!("Bearer {admin}");
    let body: Value = introspect(bearer.clone(), token.clone())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["active"], true);

    // Inactive: garbage, an API-key secret, an admin-audience token, a
    // tampered token — all exactly {"active":false}.
    let mut tampered = token.clone();
    tampered.pop();
    tampered.push(if token.ends_with('A') { 'B' } else { 'A' });
    for candidate in [
        "garbage".to_owned(),
        svc_secret.clone(),
        admin.clone(),
        tampered,
    ] {
        let body: Value = introspect(inspector_auth.clone(), candidate)
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(body, json!({"active": false}));
    }

    // Another tenant's token is inactive to this tenant's caller.
    app.call(
        "POST",
        "/api/v1/tenants",
        &admin,
        Some(json!({"slug": "other", "name": "Other"})),
    )
    .await;
    let foreign = app
        .client
        .post(app.url("/api/v1/keys"))
        .header("Authorization", format!("Bearer {admin}"))
        .header("X-Tenant", "other")
        .json(&json!({"name": "f", "scopes": ["read"]}))
        .send()
        .await
        .unwrap();
    let foreign: Value = foreign.json().await.unwrap();
    let foreign_token = app
        .access_token(foreign["key"].as_str().unwrap(), &[])
        .await;
    let body: Value = introspect(inspector_auth.clone(), foreign_token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body, json!({"active": false}));

    // The key revoked after issuing: its token turns inactive.
    app.call(
        "POST",
        &format!("/api/v1/keys/{}/revoke", svc["id"].as_str().unwrap()),
        &admin,
        None,
    )
    .await;
    let body: Value = introspect(inspector_auth.clone(), token.clone())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body, json!({"active": false}));

    // Callers without tokens:introspect, or not authenticated, are refused.
    let plain = app
        .create_key(&admin, json!({"name": "plain", "scopes": ["read"]}))
        .await;
    let response = introspect(
        basic(
            plain["id"].as_str().unwrap(),
            plain["key"].as_str().unwrap(),
        ),
        token.clone(),
    )
    .await;
    assert_eq!(response.status(), 400);
    let response = introspect(basic(&inspector_id, "km_wrong"), token.clone()).await;
    assert_eq!(response.status(), 401);
}

async fn clients_revoke_their_own_tokens_and_keys(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.admin_token(&app.bootstrap_key).await;
    let inspector = app
        .create_key(
            &admin,
            json!({"name": "gw", "scopes": ["tokens:introspect"]}),
        )
        .await;
    let inspector_auth = basic(
        inspector["id"].as_str().unwrap(),
        inspector["key"].as_str().unwrap(),
    );
    let svc = app
        .create_key(&admin, json!({"name": "svc", "scopes": ["read"]}))
        .await;
    let svc_id = svc["id"].as_str().unwrap().to_owned();
    let svc_secret = svc["key"].as_str().unwrap().to_owned();
    let svc_auth = basic(&svc_id, &svc_secret);
    let token = app.access_token(&svc_secret, &[]).await;

    let revoke = |auth: Option<String>, token: String| {
        let app = &app;
        async move {
            let mut request = app
                .client
                .post(app.url("/oauth/revoke"))
                .form(&[("token", token)]);
            if let Some(auth) = auth {
                request = request.header("Authorization", auth);
            }
            request.send().await.unwrap()
        }
    };
    let introspect = |token: String| {
        let app = &app;
        let auth = inspector_auth.clone();
        async move {
            let body: Value = app
                .client
                .post(app.url("/oauth/introspect"))
                .header("Authorization", auth)
                .form(&[("token", token)])
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            body["active"].as_bool().unwrap()
        }
    };
    assert!(introspect(token.clone()).await);

    // Another client cannot revoke it: 200, no effect.
    let response = revoke(Some(inspector_auth.clone()), token.clone()).await;
    assert_eq!(response.status(), 200);
    assert!(introspect(token.clone()).await);

    // Its own client can: the jti is denied until exp.
    let response = revoke(Some(svc_auth.clone()), token.clone()).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");
    assert!(!introspect(token.clone()).await);
    // Revoking again, or revoking nonsense, is still 200.
    assert_eq!(
        revoke(Some(svc_auth.clone()), token.clone()).await.status(),
        200
    );
    assert_eq!(
        revoke(Some(svc_auth.clone()), "nonsense".into())
            .await
            .status(),
        200
    );
    // Bad client credentials are refused.
    assert_eq!(
        revoke(Some(basic(&svc_id, "km_wrong")), token.clone())
            .await
            .status(),
        401
    );

    // The admin API sees a revoked admin token as revoked at once.
    let dev = app
        .create_key(
            &admin,
            json!({"name": "dev", "scopes": ["admin:keys:read"]}),
        )
        .await;
    let dev_token = app.admin_token(dev["key"].as_str().unwrap()).await;
    assert_eq!(
        app.call("GET", "/api/v1/keys", &dev_token, None)
            .await
            .status(),
        200
    );
    let dev_auth = basic(dev["id"].as_str().unwrap(), dev["key"].as_str().unwrap());
    assert_eq!(
        revoke(Some(dev_auth), dev_token.clone()).await.status(),
        200
    );
    assert_eq!(
        app.call("GET", "/api/v1/keys", &dev_token, None)
            .await
            .status(),
        401
    );

    // A bare secret in `token` revokes its own key.
    let fresh = app.access_token(&svc_secret, &[]).await;
    assert_eq!(revoke(None, svc_secret.clone()).await.status(), 200);
    assert_eq!(
        app.exchange(Form::XApiKey, &svc_secret, &[]).await.status(),
        401
    );
    assert!(!introspect(fresh).await, "its tokens are inactive too");
    let events: Value = app
        .call(
            "GET",
            "/api/v1/audit-events?action=token.revoked",
            &admin,
            None,
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(events["items"].as_array().unwrap().len(), 2);
}

async fn hammering_a_key_or_an_address_gets_429(backend: Backend) {
    let app =
        crate::helpers::spawn_app_with(backend, "[limits]\nfailed_auth_per_minute = 5\n").await;
    let admin = app.admin_token(&app.bootstrap_key).await;
    let slow = app
        .create_key(&admin, json!({"name": "slow", "rate_limit_per_s": 2}))
        .await;
    let other = app.create_key(&admin, json!({"name": "other"})).await;
    let slow_secret = slow["key"].as_str().unwrap();

    // The key's bucket: a burst of 2, then 429 with Retry-After.
    let mut statuses = Vec::new();
    for _ in 0..4 {
        let response = app.exchange(Form::XApiKey, slow_secret, &[]).await;
        statuses.push(response.status().as_u16());
        if response.status() == 429 {
            assert!(
                response.headers()["retry-after"]
                    .to_str()
                    .unwrap()
                    .parse::<u64>()
                    .unwrap()
                    >= 1
            );
            let body: Value = response.json().await.unwrap();
            assert_eq!(body["error"], "temporarily_unavailable");
        }
    }
    assert_eq!(&statuses[..2], &[200, 200]);
    assert!(statuses[2..].iter().all(|s| *s == 429), "{statuses:?}");
    // Other keys keep working.
    assert_eq!(
        app.exchange(Form::XApiKey, other["key"].as_str().unwrap(), &[])
            .await
            .status(),
        200
    );

    // Failed authentications from one address: after 5, even a good key
    // from there waits (the check comes before any key lookup).
    for _ in 0..5 {
        assert_eq!(
            app.exchange(Form::XApiKey, "km_guess", &[]).await.status(),
            401
        );
    }
    let response = app
        .exchange(Form::XApiKey, other["key"].as_str().unwrap(), &[])
        .await;
    assert_eq!(response.status(), 429);
    assert!(response.headers().contains_key("retry-after"));
    // The admin API answers problem+json.
    let response = app.call("GET", "/api/v1/keys", &admin, None).await;
    assert_eq!(response.status(), 429);
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
}

async fn allow_lists_use_the_client_address_behind_trusted_proxies_only(backend: Backend) {
    let behind_proxy =
        crate::helpers::spawn_app_with(backend, "[server]\ntrusted_proxies = [\"127.0.0.0/8\"]\n")
            .await;
    let direct = spawn_app(backend).await;
    for (app, trusted) in [(&behind_proxy, true), (&direct, false)] {
        let admin = app.admin_token(&app.bootstrap_key).await;
        let key = app
            .create_key(
                &admin,
                json!({"name": "listed", "ip_allowlist": ["203.0.113.0/24", "2001:db8::/32"]}),
            )
            .await;
        let secret = key["key"].as_str().unwrap();
        let send = |xff: &'static str| {
            app.client
                .post(app.url("/api/v1/token"))
                .header("X-API-Key", secret)
                .header("X-Forwarded-For", xff)
                .send()
        };
        let inside = send("198.51.100.9, 203.0.113.5").await.unwrap();
        let outside = send("203.0.113.5, 198.51.100.9").await.unwrap();
        let forwarded = app
            .client
            .post(app.url("/api/v1/token"))
            .header("X-API-Key", secret)
            .header("Forwarded", "for=\"[2001:db8::7]:443\"")
            .send()
            .await
            .unwrap();
        if trusted {
            assert_eq!(
                inside.status(),
                200,
                "the right-most untrusted hop is inside"
            );
            assert_eq!(outside.status(), 400);
            // `Forwarded` is not the configured header: ignored, 127.0.0.1 is outside.
            assert_eq!(forwarded.status(), 400);
        } else {
            // From an untrusted peer the header is ignored: 127.0.0.1 is outside.
            assert_eq!(inside.status(), 400);
            assert_eq!(outside.status(), 400);
            assert_eq!(forwarded.status(), 400);
        }
        let body: Value = outside.json().await.unwrap();
        assert_eq!(body["error"], "unauthorized_client");
        // And without any header, straight from loopback: refused.
        assert_eq!(app.exchange(Form::XApiKey, secret, &[]).await.status(), 400);
    }
}

async fn an_emergency_revoke_unpublishes_a_signing_key_at_once(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.admin_token(&app.bootstrap_key).await;
    let inspector = app
        .create_key(
            &admin,
            json!({"name": "gw", "scopes": ["tokens:introspect"]}),
        )
        .await;
    let inspector_auth = basic(
        inspector["id"].as_str().unwrap(),
        inspector["key"].as_str().unwrap(),
    );
    let svc = app
        .create_key(&admin, json!({"name": "svc", "scopes": ["read"]}))
        .await;
    let before = app.access_token(svc["key"].as_str().unwrap(), &[]).await;

    let keys: Value = app
        .call("GET", "/api/v1/signing-keys", &admin, None)
        .await
        .json()
        .await
        .unwrap();
    let items = keys["items"].as_array().unwrap();
    let states: Vec<&str> = items.iter().map(|k| k["state"].as_str().unwrap()).collect();
    assert!(
        states.contains(&"active") && states.contains(&"next"),
        "{states:?}"
    );
    for k in items {
        let members: Vec<&str> = k.as_object().unwrap().keys().map(String::as_str).collect();
        assert!(
            !members.iter().any(|m| m.contains("private") || *m == "d"),
            "{members:?}"
        );
    }
    let active = items.iter().find(|k| k["state"] == "active").unwrap()["kid"]
        .as_str()
        .unwrap()
        .to_owned();

    // On-demand rotation refuses a next key younger than prepublish_s.
    let response = app
        .call("POST", "/api/v1/signing-keys/rotate", &admin, None)
        .await;
    assert_eq!(response.status(), 409);

    let response = app
        .call(
            "POST",
            &format!("/api/v1/signing-keys/{active}/revoke"),
            &admin,
            None,
        )
        .await;
    assert_eq!(response.status(), 200);
    let revoked: Value = response.json().await.unwrap();
    assert_eq!(revoked["state"], "revoked");

    let jwks = app
        .get("/.well-known/jwks.json")
        .await
        .text()
        .await
        .unwrap();
    assert!(!jwks.contains(&active), "gone from the JWKS at once");
    // Its tokens are inactive; the admin token it signed no longer works.
    let body: Value = app
        .client
        .post(app.url("/oauth/introspect"))
        .header("Authorization", inspector_auth.clone())
        .form(&[("token", before.clone())])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body, json!({"active": false}));
    assert_eq!(
        app.call("GET", "/api/v1/signing-keys", &admin, None)
            .await
            .status(),
        401
    );

    // The next key signs from now on, and verifies.
    let after = app.access_token(svc["key"].as_str().unwrap(), &[]).await;
    let kid = jsonwebtoken::decode_header(&after).unwrap().kid.unwrap();
    assert_ne!(kid, active);
    app.verify(&after, "urn:keymint:tenant:default").await;
    let admin = app.admin_token(&app.bootstrap_key).await;
    let keys: Value = app
        .call("GET", "/api/v1/signing-keys", &admin, None)
        .await
        .json()
        .await
        .unwrap();
    let states: Vec<&str> = keys["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["state"].as_str().unwrap())
        .collect();
    assert_eq!(states.iter().filter(|s| **s == "active").count(), 1);
    assert_eq!(states.iter().filter(|s| **s == "next").count(), 1);
    // Idempotent; unknown kids are 404.
    assert_eq!(
        app.call(
            "POST",
            &format!("/api/v1/signing-keys/{active}/revoke"),
            &admin,
            None
        )
        .await
        .status(),
        200
    );
    assert_eq!(
        app.call("POST", "/api/v1/signing-keys/nope/revoke", &admin, None)
            .await
            .status(),
        404
    );
}

async fn advanced_keys_sign_requests_that_cannot_be_replayed(backend: Backend) {
    use keymint::grants::signed::sign_request;
    let app = spawn_app(backend).await;
    let admin = app.admin_token(&app.bootstrap_key).await;
    let key = app.create_key(&admin, json!({"name": "adv", "security_level": "advanced", "scopes": ["read", "tokens:introspect"]})).await;
    assert_eq!(key["security_level"], "advanced");
    let id = key["id"].as_str().unwrap().to_owned();
    let secret = key["key"].as_str().unwrap().to_owned();
    let now_ms = || chrono::Utc::now().timestamp_millis();

    let send = |base: String,
                path: &'static str,
                headers: Vec<(&'static str, String)>,
                body: &'static str,
                content_type: &'static str| {
        let client = app.client.clone();
        async move {
            let mut request = client.post(format!("{base}{path}")).body(body);
            if !content_type.is_empty() {
                request = request.header("Content-Type", content_type);
            }
            for (name, value) in headers {
                request = request.header(name, value);
            }
            request.send().await.unwrap()
        }
    };
    let form = "application/x-www-form-urlencoded";
    let body = "grant_type=client_credentials&scope=read";

    // A signed client_credentials request exchanges the key.
    let headers = sign_request(
        &secret,
        &id,
        now_ms(),
        &nonce(),
        "POST",
        "/oauth/token",
        body.as_bytes(),
    );
    let response = send(
        app.address.clone(),
        "/oauth/token",
        headers.clone(),
        body,
        form,
    )
    .await;
    assert_eq!(response.status(), 200);
    let token: Value = response.json().await.unwrap();
    assert_eq!(token["scope"], "read");

    // Replayed: here, and on a second server process sharing the database.
    let replica_process = crate::helpers::ServerProcess::start(&app.db, &[]).await;
    let replica = format!("http://127.0.0.1:{}", replica_process.port);
    for base in [app.address.clone(), replica.clone()] {
        let response = send(base, "/oauth/token", headers.clone(), body, form).await;
        assert_eq!(response.status(), 401);
        assert_eq!(
            response.headers()["www-authenticate"],
            "KM-HMAC-SHA256 realm=\"keymint\""
        );
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"], "invalid_client");
        assert_eq!(body["error_description"], "nonce reused");
    }
    // A fresh nonce on the replica works.
    let headers = sign_request(
        &secret,
        &id,
        now_ms(),
        &nonce(),
        "POST",
        "/oauth/token",
        body.as_bytes(),
    );
    assert_eq!(
        send(replica.clone(), "/oauth/token", headers, body, form)
            .await
            .status(),
        200
    );

    // The one-header endpoint takes signatures too (empty body).
    let headers = sign_request(
        &secret,
        &id,
        now_ms(),
        &nonce(),
        "POST",
        "/api/v1/token",
        b"",
    );
    assert_eq!(
        send(app.address.clone(), "/api/v1/token", headers, "", "")
            .await
            .status(),
        200
    );

    // Stale, changed body, changed path, wrong signature: refused; only the
    // stale timestamp says so.
    let stale = sign_request(
        &secret,
        &id,
        now_ms() - 301_000,
        &nonce(),
        "POST",
        "/oauth/token",
        body.as_bytes(),
    );
    let changed_body = sign_request(
        &secret,
        &id,
        now_ms(),
        &nonce(),
        "POST",
        "/oauth/token",
        b"grant_type=client_credentials&scope=write",
    );
    let changed_path = sign_request(
        &secret,
        &id,
        now_ms(),
        &nonce(),
        "POST",
        "/api/v1/token",
        body.as_bytes(),
    );
    let mut wrong = sign_request(
        &secret,
        &id,
        now_ms(),
        &nonce(),
        "POST",
        "/oauth/token",
        body.as_bytes(),
    );
    wrong[3].1 = format!("KM-HMAC-SHA256 {}", "0".repeat(64));
    let other_secret = sign_request(
        &app.bootstrap_key,
        &id,
        now_ms(),
        &nonce(),
        "POST",
        "/oauth/token",
        body.as_bytes(),
    );
    for (headers, description) in [
        (stale, "stale timestamp"),
        (changed_body, "invalid signature"),
        (changed_path, "invalid signature"),
        (wrong, "invalid signature"),
        (other_secret, "invalid signature"),
    ] {
        let response = send(app.address.clone(), "/oauth/token", headers, body, form).await;
        assert_eq!(response.status(), 401);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error_description"], description);
    }

    // The secret of an advanced key is no bearer credential: like an unknown key.
    let response = app.exchange(Form::XApiKey, &secret, &[]).await;
    assert_eq!(response.status(), 401);
    let response = app.exchange_as(Form::Basic, Some(&id), &secret, &[]).await;
    assert_eq!(response.status(), 401);

    // Introspection with a signed request.
    let introspect_body: &'static str =
        Box::leak(format!("token={}", token["access_token"].as_str().unwrap()).into_boxed_str());
    let headers = sign_request(
        &secret,
        &id,
        now_ms(),
        &nonce(),
        "POST",
        "/oauth/introspect",
        introspect_body.as_bytes(),
    );
    let response = send(
        app.address.clone(),
        "/oauth/introspect",
        headers,
        introspect_body,
        form,
    )
    .await;
    assert_eq!(response.status(), 200);
    let active: Value = response.json().await.unwrap();
    assert_eq!(active["active"], true);

    // The CLI makes advanced keys too.
    let (cli_id, cli_secret) = app
        .cli_key(&["--name", "cli-adv", "--advanced", "--scopes", "read"])
        .await;
    let headers = sign_request(
        &cli_secret,
        &cli_id,
        now_ms(),
        &nonce(),
        "POST",
        "/api/v1/token",
        b"",
    );
    assert_eq!(
        send(app.address.clone(), "/api/v1/token", headers, "", "")
            .await
            .status(),
        200
    );
    assert_eq!(
        app.exchange(Form::XApiKey, &cli_secret, &[]).await.status(),
        401
    );

    // The secret is stored encrypted, never hashed for lookup.
    use diesel::prelude::*;
    let mut conn = app.db.connect();
    let (hash, enc): (Option<Vec<u8>>, Option<Vec<u8>>) = keymint::db::schema::api_keys::table
        .find(&id)
        .select((
            keymint::db::schema::api_keys::secret_hash,
            keymint::db::schema::api_keys::secret_enc,
        ))
        .first(&mut conn)
        .unwrap();
    assert!(hash.is_none());
    let enc = enc.unwrap();
    assert!(!enc.windows(secret.len()).any(|w| w == secret.as_bytes()));
}
