//! Exchanging API keys for JWTs through the three forms, verified the way a
//! downstream service would: jsonwebtoken against the JWKS fetched over HTTP.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use jsonwebtoken::Algorithm;
use serde_json::{Value, json};

use crate::backend_tests;
use crate::client::{ALL_FORMS, API_KEY_TYPE, EXCHANGE, Form};
use crate::helpers::{Backend, run_cli_on, spawn_app, spawn_app_with};

backend_tests!(
    every_form_exchanges_the_bootstrap_and_a_cli_key,
    ttl_is_exact_within_bounds_and_refused_outside,
    bad_keys_get_one_identical_answer_per_grant,
    scope_and_audience_rules_hold,
    audience_registration_is_read_at_every_exchange,
    rotation_keeps_old_tokens_verifiable,
    secrets_never_reach_the_database,
    request_shape_is_strict,
    usage_is_counted_and_flushed,
);

async fn every_form_exchanges_the_bootstrap_and_a_cli_key(backend: Backend) {
    let app = spawn_app(backend).await;
    let bootstrap_id = app.key_id_of(&app.bootstrap_key).await;
    for form in ALL_FORMS {
        let response = app
            .exchange_as(form, Some(&bootstrap_id), &app.bootstrap_key, &[])
            .await;
        assert_eq!(response.status(), 200, "{form:?}");
        assert_eq!(response.headers()["cache-control"], "no-store");
        assert_eq!(response.headers()["pragma"], "no-cache");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["token_type"], "Bearer");
        assert_eq!(body["expires_in"], 900);
        let claims = app
            .verify(body["access_token"].as_str().unwrap(), &app.admin_audience)
            .await;
        assert_eq!(claims["client_id"], bootstrap_id.as_str());
        assert_eq!(claims["sub"], format!("key:{bootstrap_id}"));
        assert_eq!(claims["tid"], "default");
        assert_eq!(claims["nbf"], claims["iat"]);
        assert!(
            claims["scope"]
                .as_str()
                .unwrap()
                .contains("admin:keys:write")
        );
        assert!(uuid::Uuid::parse_str(claims["jti"].as_str().unwrap()).is_ok());
        match form {
            Form::Exchange => assert_eq!(
                body["issued_token_type"],
                "urn:ietf:params:oauth:token-type:access_token"
            ),
            _ => assert!(body.get("issued_token_type").is_none()),
        }
    }

    let (id, secret) = app
        .cli_key(&[
            "--name",
            "billing",
            "--owner",
            "svc-billing",
            "--scopes",
            "invoices:read,invoices:write",
        ])
        .await;
    assert!(secret.starts_with("km_"));
    for form in ALL_FORMS {
        let response = app.exchange_as(form, Some(&id), &secret, &[]).await;
        assert_eq!(response.status(), 200, "{form:?}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["scope"], "invoices:read invoices:write");
        let claims = app
            .verify(
                body["access_token"].as_str().unwrap(),
                "urn:keymint:tenant:default",
            )
            .await;
        assert_eq!(claims["sub"], "svc-billing");
        assert_eq!(claims["client_id"], id.as_str());
    }
}

async fn ttl_is_exact_within_bounds_and_refused_outside(backend: Backend) {
    let app = spawn_app(backend).await;
    let (id, secret) = app.cli_key(&["--name", "ttl", "--scopes", "a"]).await;
    for form in ALL_FORMS {
        for ttl in [30, 600, 3600] {
            let ttl_text = ttl.to_string();
            let response = app
                .exchange_as(form, Some(&id), &secret, &[("expires_in", &ttl_text)])
                .await;
            assert_eq!(response.status(), 200, "{form:?} {ttl}");
            let body: Value = response.json().await.unwrap();
            assert_eq!(body["expires_in"], ttl);
            let claims = app
                .verify(
                    body["access_token"].as_str().unwrap(),
                    "urn:keymint:tenant:default",
                )
                .await;
            assert_eq!(
                claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
                ttl
            );
        }
        for bad in ["29", "3601", "abc", "-5", "1e3"] {
            let response = app
                .exchange_as(form, Some(&id), &secret, &[("expires_in", bad)])
                .await;
            assert_eq!(response.status(), 400, "{form:?} {bad}");
            let body: Value = response.json().await.unwrap();
            assert_eq!(body["error"], "invalid_request", "{form:?} {bad}");
            assert!(
                body["error_description"].as_str().unwrap().contains("30"),
                "names the bound: {body}"
            );
        }
    }
    // A key's own maximum narrows the tenant's.
    let (id, secret) = app
        .cli_key(&["--name", "short", "--scopes", "a", "--max-token-ttl", "60"])
        .await;
    let response = app
        .exchange_as(Form::Basic, Some(&id), &secret, &[("expires_in", "61")])
        .await;
    assert_eq!(response.status(), 400);
    let response = app.exchange_as(Form::Basic, Some(&id), &secret, &[]).await;
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["expires_in"], 60);
}

async fn bad_keys_get_one_identical_answer_per_grant(backend: Backend) {
    let app = spawn_app(backend).await;
    let (revoked_id, revoked) = app.cli_key(&["--name", "revoked", "--scopes", "a"]).await;
    let (code, _, stderr) = run_cli_on(
        &app.db,
        &["keys", "revoke", &revoked_id, "--reason", "test"],
    )
    .await;
    assert_eq!(code, 0, "{stderr}");
    let (expired_id, expired) = app
        .cli_key(&["--name", "expired", "--scopes", "a", "--expires-in", "1"])
        .await;
    let (good_id, good) = app.cli_key(&["--name", "good", "--scopes", "a"]).await;
    tokio::time::sleep(Duration::from_millis(1200)).await;

    // A well-formed secret nobody issued: valid checksum, unknown hash.
    let unknown =
        keymint::keys::secret::ApiKeySecret::generate("km", &ring::rand::SystemRandom::new())
            .unwrap()
            .expose()
            .to_owned();
    let mut bad_checksum = good.clone();
    let last = bad_checksum.pop().unwrap();
    bad_checksum.push(if last == 'a' { 'b' } else { 'a' });
    let cases: Vec<(&str, String, String)> = vec![
        ("revoked", revoked_id.clone(), revoked.clone()),
        ("expired", expired_id.clone(), expired.clone()),
        ("unknown", good_id.clone(), unknown),
        ("malformed", good_id.clone(), "not-a-key".into()),
        ("bad checksum", good_id.clone(), bad_checksum),
        ("wrong id", revoked_id.clone(), good.clone()),
    ];
    for form in ALL_FORMS {
        let mut answers = Vec::new();
        for (label, id, secret) in &cases {
            if matches!(form, Form::Exchange | Form::ApiKeyHeader | Form::XApiKey)
                && *label == "wrong id"
            {
                continue; // these forms name no id
            }
            let response = app.exchange_as(form, Some(id), secret, &[]).await;
            let status = response.status().as_u16();
            let challenge = response
                .headers()
                .get("www-authenticate")
                .map(|v| v.to_str().unwrap().to_owned());
            let body: Value = response.json().await.unwrap();
            answers.push((label, status, challenge, body));
        }
        let first = &answers[0];
        for answer in &answers {
            assert_eq!(
                (answer.1, &answer.2, &answer.3),
                (first.1, &first.2, &first.3),
                "{form:?} {}",
                answer.0
            );
        }
        match form {
            Form::Exchange => {
                assert_eq!(first.1, 400);
                assert_eq!(first.3["error"], "invalid_request");
                assert_eq!(first.3["error_description"], "subject_token is invalid");
            }
            Form::Basic | Form::Post => {
                assert_eq!(first.1, 401);
                assert_eq!(first.3["error"], "invalid_client");
                assert_eq!(first.2.as_deref(), Some("Basic realm=\"keymint\""));
            }
            Form::ApiKeyHeader | Form::XApiKey => {
                assert_eq!(first.1, 401);
                assert_eq!(first.3["error"], "invalid_client");
                assert_eq!(first.2.as_deref(), Some("ApiKey realm=\"keymint\""));
            }
        }
    }
    // The good key still works: the failures above changed nothing.
    assert_eq!(app.exchange(Form::XApiKey, &good, &[]).await.status(), 200);
}

async fn scope_and_audience_rules_hold(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, mixed) = app
        .cli_key(&[
            "--name",
            "mixed",
            "--scopes",
            "admin:audit,reports:read,reports:write",
        ])
        .await;

    // Default audience: the tenant's; only non-reserved scopes.
    let body: Value = app
        .exchange(Form::XApiKey, &mixed, &[])
        .await
        .json()
        .await
        .unwrap();
    let claims = app
        .verify(
            body["access_token"].as_str().unwrap(),
            "urn:keymint:tenant:default",
        )
        .await;
    assert_eq!(claims["scope"], "reports:read reports:write");

    // The admin audience: only reserved scopes.
    let body: Value = app
        .exchange(Form::XApiKey, &mixed, &[("audience", &app.admin_audience)])
        .await
        .json()
        .await
        .unwrap();
    let claims = app
        .verify(body["access_token"].as_str().unwrap(), &app.admin_audience)
        .await;
    assert_eq!(claims["scope"], "admin:audit");

    // Fewer scopes on request; unheld, malformed and mismatched ones refused by name.
    let body: Value = app
        .exchange(Form::XApiKey, &mixed, &[("scope", "reports:read")])
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["scope"], "reports:read");
    for (scope, named) in [
        ("reports:delete", "reports:delete"),
        ("reports:read  reports:write", "``"),
        ("admin:audit", "admin:audit"),
    ] {
        let response = app
            .exchange(Form::Exchange, &mixed, &[("scope", scope)])
            .await;
        assert_eq!(response.status(), 400, "{scope}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"], "invalid_scope", "{scope}");
        assert!(
            body["error_description"].as_str().unwrap().contains(named),
            "{body}"
        );
    }

    // Audiences: unregistered → invalid_target; both audience and resource → invalid_request.
    for form in [Form::Exchange, Form::XApiKey] {
        let response = app
            .exchange(form, &mixed, &[("audience", "https://elsewhere.example")])
            .await;
        assert_eq!(response.status(), 400);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"], "invalid_target", "{form:?}");
    }
    let response = app
        .exchange(
            Form::Exchange,
            &mixed,
            &[
                ("audience", "urn:keymint:tenant:default"),
                ("resource", "urn:keymint:tenant:default"),
            ],
        )
        .await;
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "invalid_request");

    // A key with only ordinary scopes cannot address the admin API.
    let (_, plain) = app
        .cli_key(&["--name", "plain", "--scopes", "reports:read"])
        .await;
    let response = app
        .exchange(Form::XApiKey, &plain, &[("audience", &app.admin_audience)])
        .await;
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "invalid_target");

    // The bootstrap key (reserved scopes only) defaults to the admin audience
    // and never carries another scope.
    let body: Value = app
        .exchange(Form::XApiKey, &app.bootstrap_key, &[])
        .await
        .json()
        .await
        .unwrap();
    let claims = app
        .verify(body["access_token"].as_str().unwrap(), &app.admin_audience)
        .await;
    for scope in claims["scope"].as_str().unwrap().split(' ') {
        assert!(keymint::domain::scope::is_reserved(scope), "{scope}");
    }
}

/// The exchange reads the tenant's registered audiences with the key, in
/// one query: a token names only an audience registered at that moment,
/// matched whole (never a prefix of a registered one).
async fn audience_registration_is_read_at_every_exchange(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.admin_token(&app.bootstrap_key).await;
    let (api, v2, other) = (
        "https://api.example.com",
        "https://api.example.com/v2",
        "urn:example:other",
    );
    let set = |audiences: Value| {
        let (app, admin) = (&app, &admin);
        async move {
            let response = app
                .call(
                    "PATCH",
                    "/api/v1/settings",
                    admin,
                    Some(json!({ "audiences": audiences })),
                )
                .await;
            assert_eq!(response.status(), 200);
        }
    };
    set(json!([api, v2, other])).await;
    let (_, secret) = app
        .cli_key(&["--name", "any", "--scopes", "reports:read"])
        .await;
    let asks = |audience: &'static str| {
        let (app, secret) = (&app, &secret);
        async move {
            let response = app
                .exchange(Form::Exchange, secret, &[("audience", audience)])
                .await;
            let status = response.status().as_u16();
            let body: Value = response.json().await.unwrap();
            (
                status,
                body["error"].as_str().unwrap_or_default().to_owned(),
            )
        }
    };
    for audience in [api, v2, other] {
        assert_eq!(asks(audience).await, (200, String::new()), "{audience}");
    }
    for unregistered in [
        "https://api.example.co",
        "urn:example",
        "https://api.example.com/v",
    ] {
        assert_eq!(
            asks(unregistered).await,
            (400, "invalid_target".to_owned()),
            "{unregistered}"
        );
    }
    set(json!([other])).await;
    for given_up in [api, v2] {
        assert_eq!(
            asks(given_up).await,
            (400, "invalid_target".to_owned()),
            "{given_up}"
        );
    }
    assert_eq!(asks(other).await, (200, String::new()));
}

async fn rotation_keeps_old_tokens_verifiable(backend: Backend) {
    let signing = "[signing]\nreload_s = 1\nprepublish_s = 1\njwks_max_age_s = 0\nrotation_interval_s = 3600\n";
    let app = spawn_app_with(backend, signing).await;
    // The CLI reads the same settings from a --config file.
    let config = app.db.dir.path().join("signing.toml");
    std::fs::write(&config, signing).unwrap();
    let config = config.to_string_lossy().into_owned();
    let (_, secret) = app.cli_key(&["--name", "rot", "--scopes", "a"]).await;
    let body: Value = app
        .exchange(Form::XApiKey, &secret, &[])
        .await
        .json()
        .await
        .unwrap();
    let before = body["access_token"].as_str().unwrap().to_owned();
    let old_kid = jsonwebtoken::decode_header(&before).unwrap().kid.unwrap();

    tokio::time::sleep(Duration::from_millis(1100)).await; // the next key's pre-publication
    let (code, stdout, stderr) =
        run_cli_on(&app.db, &["signing-keys", "rotate", "--config", &config]).await;
    assert_eq!(code, 0, "{stderr}");
    let rotation: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(rotation["retired_kid"], old_kid.as_str());
    let new_kid = rotation["activated_kid"].as_str().unwrap().to_owned();

    // Every replica switches at the activation time; within reload_s + 1 s
    // the server signs with the new key.
    let deadline = std::time::Instant::now() + Duration::from_secs(6);
    let after = loop {
        let body: Value = app
            .exchange(Form::XApiKey, &secret, &[])
            .await
            .json()
            .await
            .unwrap();
        let token = body["access_token"].as_str().unwrap().to_owned();
        if jsonwebtoken::decode_header(&token).unwrap().kid.unwrap() == new_kid {
            break token;
        }
        assert!(std::time::Instant::now() < deadline, "the new key signs");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    app.verify(&before, "urn:keymint:tenant:default").await;
    app.verify(&after, "urn:keymint:tenant:default").await;

    // A second rotation at once is refused: the new next key is too young.
    let (code, _, stderr) = run_cli_on(&app.db, &["signing-keys", "rotate"]).await;
    assert_eq!(code, 1, "default prepublish_s (600 s) has not passed");
    assert!(stderr.contains("may sign only after 600 s"), "{stderr}");

    // The JWKS holds public members only.
    let raw = app.get("/.well-known/jwks.json").await;
    assert_eq!(raw.headers()["cache-control"], "public, max-age=0");
    assert_eq!(raw.headers()["access-control-allow-origin"], "*");
    let jwks: Value = raw.json().await.unwrap();
    let keys = jwks["keys"].as_array().unwrap();
    assert!(keys.len() >= 3, "retired, active and next are published");
    for key in keys {
        let mut members: Vec<&str> = key
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        members.sort();
        assert_eq!(members, ["alg", "crv", "kid", "kty", "use", "x", "y"]);
        assert_eq!(key["use"], "sig");
    }
}

async fn secrets_never_reach_the_database(backend: Backend) {
    use diesel::prelude::*;
    use keymint::db::models::{ApiKey, AuditEvent, SigningKeyRow, Tenant};
    use keymint::db::schema::{api_keys, audit_events, signing_keys, tenants};

    let app = spawn_app(backend).await;
    let (_, secret) = app.cli_key(&["--name", "at-rest", "--scopes", "a"]).await;
    assert_eq!(
        app.exchange(Form::XApiKey, &secret, &[]).await.status(),
        200
    );
    let secrets = [secret.clone(), app.bootstrap_key.clone()];

    let mut conn = app.db.connect();
    let keys: Vec<ApiKey> = api_keys::table
        .select(ApiKey::as_select())
        .load(&mut conn)
        .unwrap();
    let events: Vec<AuditEvent> = audit_events::table
        .select(AuditEvent::as_select())
        .load(&mut conn)
        .unwrap();
    let tenants: Vec<Tenant> = tenants::table
        .select(Tenant::as_select())
        .load(&mut conn)
        .unwrap();
    let signing: Vec<SigningKeyRow> = signing_keys::table
        .select(SigningKeyRow::as_select())
        .load(&mut conn)
        .unwrap();
    let text = format!("{keys:?}{events:?}{tenants:?}{signing:?}");
    for s in &secrets {
        assert!(!text.contains(s.as_str()), "a secret is in the database");
        let random = &s[3..];
        assert!(
            !text.contains(random),
            "part of a secret is in the database"
        );
    }
    assert!(
        keys.iter()
            .all(|k| k.secret_hash.as_ref().is_some_and(|h| h.len() == 32))
    );

    // Private keys are ciphertexts under this master key, bound to their row.
    let master = app.db.master_key();
    // PKCS#8 for P-256 begins with this DER; a plaintext key would show it.
    let pkcs8_head: &[u8] = &[0x30, 0x81, 0x87, 0x02, 0x01, 0x00, 0x30, 0x13, 0x06, 0x07];
    for row in &signing {
        assert!(
            !row.private_key_enc
                .windows(pkcs8_head.len())
                .any(|w| w == pkcs8_head)
        );
        assert_eq!(
            keymint::crypto::master::ciphertext_key_id(&row.private_key_enc).as_deref(),
            Some(master.id().as_str())
        );
        let aad = keymint::crypto::master::Aad {
            table: "signing_keys",
            row_id: &row.kid,
            tenant: "",
        };
        let plain = master
            .decrypt(
                keymint::crypto::master::Purpose::SigningKeys,
                &aad,
                &row.private_key_enc,
            )
            .expect("decrypts under the master key");
        let parsed =
            keymint::tokens::ring_provider::ParsedKey::parse(Algorithm::ES256, &plain).unwrap();
        let jwk =
            keymint::tokens::signing::public_jwk(Algorithm::ES256, parsed.public_key()).unwrap();
        assert_eq!(jwk.kid, row.kid);
    }
}

async fn request_shape_is_strict(backend: Backend) {
    let app = spawn_app(backend).await;
    let (id, secret) = app.cli_key(&["--name", "shape", "--scopes", "a"]).await;
    let basic = format!("Basic {}", STANDARD.encode(format!("{id}:{secret}")));
    let post = |body: String| {
        app.client
            .post(app.url("/oauth/token"))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(body)
    };
    let cases: Vec<(reqwest::RequestBuilder, u16, &str)> = vec![
        // JSON is not a form.
        (
            app.client
                .post(app.url("/oauth/token"))
                .json(&serde_json::json!({"grant_type": "client_credentials"})),
            400,
            "invalid_request",
        ),
        // Parameters in the query string.
        (
            app.client
                .post(app.url("/oauth/token?grant_type=client_credentials"))
                .header("Content-Type", "application/x-www-form-urlencoded")
                .header("Authorization", &basic)
                .body("grant_type=client_credentials"),
            400,
            "invalid_request",
        ),
        (
            post("grant_type=client_credentials&grant_type=client_credentials".into())
                .header("Authorization", &basic),
            400,
            "invalid_request",
        ),
        (post("scope=a".into()), 400, "invalid_request"),
        (
            post("grant_type=password".into()),
            400,
            "unsupported_grant_type",
        ),
        // Two credentials.
        (
            post(format!(
                "grant_type=client_credentials&client_id={id}&client_secret={secret}"
            ))
            .header("Authorization", &basic),
            400,
            "invalid_request",
        ),
        (
            post("grant_type=client_credentials".into()),
            401,
            "invalid_client",
        ),
        (
            post(format!(
                "grant_type={EXCHANGE}&subject_token={secret}&subject_token_type=urn:other"
            )),
            400,
            "invalid_request",
        ),
        (
            post(format!(
                "grant_type={EXCHANGE}&subject_token={secret}&subject_token_type={API_KEY_TYPE}&actor_token=x&actor_token_type=y"
            )),
            400,
            "invalid_request",
        ),
        (
            post(format!(
                "grant_type={EXCHANGE}&subject_token={secret}&subject_token_type={API_KEY_TYPE}&requested_token_type=urn:ietf:params:oauth:token-type:id_token"
            )),
            400,
            "invalid_request",
        ),
        (
            post("x".repeat(9000)).header("Authorization", &basic),
            413,
            "invalid_request",
        ),
        (
            app.client
                .post(app.url("/api/v1/token"))
                .header("Authorization", format!("ApiKey {secret}"))
                .header("X-API-Key", &secret),
            400,
            "invalid_request",
        ),
        (
            app.client
                .post(app.url("/api/v1/token"))
                .header("X-API-Key", &secret)
                .json(&serde_json::json!({"expires_in": 60, "bogus": 1})),
            400,
            "invalid_request",
        ),
    ];
    for (i, (request, status, error)) in cases.into_iter().enumerate() {
        let response = request.send().await.unwrap();
        assert_eq!(response.status().as_u16(), status, "case {i}");
        assert_eq!(response.headers()["cache-control"], "no-store", "case {i}");
        assert_eq!(response.headers()["pragma"], "no-cache", "case {i}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"], error, "case {i}: {body}");
        assert!(body["error_description"].as_str().unwrap().is_ascii());
    }
    // A media type with parameters is still a form; scheme names ignore case.
    let response = app
        .client
        .post(app.url("/oauth/token"))
        .header(
            "Content-Type",
            "Application/X-WWW-Form-URLEncoded; charset=UTF-8",
        )
        .header("Authorization", basic.replacen("Basic", "bAsIc", 1))
        .body("grant_type=client_credentials&expires_in=60")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let response = app
        .client
        .post(app.url("/api/v1/token"))
        .header("Authorization", format!("apikey {secret}"))
        .json(&serde_json::json!({"expires_in": "60"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);

    // Token exchange with client authentication naming the same key works;
    // naming another key does not.
    let response = app
        .client
        .post(app.url("/oauth/token"))
        .header("Authorization", &basic)
        .form(&[
            ("grant_type", EXCHANGE),
            ("subject_token", &secret),
            ("subject_token_type", API_KEY_TYPE),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let bootstrap_id = app.key_id_of(&app.bootstrap_key).await;
    let other = format!(
        "Basic {}",
        STANDARD.encode(format!("{bootstrap_id}:{}", app.bootstrap_key))
    );
    let response = app
        .client
        .post(app.url("/oauth/token"))
        .header("Authorization", &other)
        .form(&[
            ("grant_type", EXCHANGE),
            ("subject_token", &secret),
            ("subject_token_type", API_KEY_TYPE),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);

    // Metadata: the issuer is the iss, byte for byte.
    let meta: Value = app
        .get("/.well-known/oauth-authorization-server")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(meta["issuer"], app.issuer.as_str());
    assert_eq!(
        meta["token_endpoint"],
        format!("{}/oauth/token", app.issuer)
    );
    assert_eq!(
        meta["jwks_uri"],
        format!("{}/.well-known/jwks.json", app.issuer)
    );
    assert_eq!(meta["response_types_supported"], serde_json::json!([]));
    assert_eq!(
        meta["grant_types_supported"],
        serde_json::json!(["client_credentials", EXCHANGE])
    );
    let oidc: Value = app
        .get("/.well-known/openid-configuration")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(oidc["issuer"], app.issuer.as_str());
    assert_eq!(
        oidc["subject_types_supported"],
        serde_json::json!(["public"])
    );
    assert_eq!(
        oidc["id_token_signing_alg_values_supported"],
        serde_json::json!(["ES256"])
    );
}

async fn usage_is_counted_and_flushed(backend: Backend) {
    let app = spawn_app(backend).await;
    let (id, secret) = app.cli_key(&["--name", "used", "--scopes", "a"]).await;
    for _ in 0..3 {
        assert_eq!(
            app.exchange(Form::XApiKey, &secret, &[]).await.status(),
            200
        );
    }
    let (code, stdout, _) = run_cli_on(&app.db, &["keys", "list", "--json"]).await;
    assert_eq!(code, 0);
    assert!(stdout.contains(&id));
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        use diesel::prelude::*;
        use keymint::db::schema::api_keys;
        let mut conn = app.db.connect();
        let (issued, last): (i64, Option<chrono::NaiveDateTime>) = api_keys::table
            .find(&id)
            .select((api_keys::tokens_issued, api_keys::last_used_at))
            .first(&mut conn)
            .unwrap();
        if issued == 3 {
            assert!(last.is_some());
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "usage flushed: {issued}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
