//! Tenant policy, shown to change behaviour field by field.

use serde_json::{Value, json};

use crate::backend_tests;
use crate::client::Form;
use crate::helpers::{Backend, run_cli_on, spawn_app};

backend_tests!(
    the_switch_blocks_and_restores_exchanges,
    lifetimes_apply_to_new_keys_only,
    keys_per_owner_hold_under_concurrent_creation,
    token_ttl_bounds_and_ip_rules_apply,
    bad_settings_are_named_and_change_nothing,
);

async fn the_switch_blocks_and_restores_exchanges(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.admin_token(&app.bootstrap_key).await;
    let key = app
        .create_key(&admin, json!({"name": "svc", "scopes": ["a"]}))
        .await;
    let secret = key["key"].as_str().unwrap();

    // Turning the switch off would lock the caller out: 422 without force.
    let response = app
        .patch_settings(&admin, json!({"api_keys_enabled": false}))
        .await;
    assert_eq!(response.status(), 422);
    let problem: Value = response.json().await.unwrap();
    assert!(problem["detail"].as_str().unwrap().contains("force"));
    assert_eq!(app.exchange(Form::XApiKey, secret, &[]).await.status(), 200);

    let response = app
        .patch_settings(&admin, json!({"api_keys_enabled": false, "force": true}))
        .await;
    assert_eq!(response.status(), 200);
    let view: Value = response.json().await.unwrap();
    assert_eq!(view["api_keys_enabled"], false);
    for (form, status, error) in [
        (Form::XApiKey, 400, "unauthorized_client"),
        (Form::Exchange, 400, "invalid_request"),
    ] {
        let response = app.exchange(form, secret, &[]).await;
        assert_eq!(response.status(), status);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"], error, "{form:?}");
    }
    // The admin API refuses the tenant's principals too.
    assert_eq!(
        app.call("GET", "/api/v1/settings", &admin, None)
            .await
            .status(),
        401
    );

    // Offline recovery, then everything works again; keys are unchanged.
    let (code, _, stderr) = run_cli_on(
        &app.db,
        &[
            "settings",
            "set",
            "--tenant",
            "default",
            "api_keys_enabled=true",
        ],
    )
    .await;
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(app.exchange(Form::XApiKey, secret, &[]).await.status(), 200);
    let settings: Value = app
        .call("GET", "/api/v1/settings", &admin, None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(settings["api_keys_enabled"], true);
    assert_eq!(settings["default_audience"], "urn:keymint:tenant:default");
    assert_eq!(settings["audiences"], json!(["urn:keymint:tenant:default"]));
}

async fn lifetimes_apply_to_new_keys_only(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.admin_token(&app.bootstrap_key).await;
    let old = app
        .create_key(&admin, json!({"name": "old", "never_expires": true}))
        .await;
    let response = app
        .patch_settings(
            &admin,
            json!({"max_key_lifetime_s": 3600, "default_key_lifetime_s": 600}),
        )
        .await;
    assert_eq!(response.status(), 200);

    let response = app
        .call(
            "POST",
            "/api/v1/keys",
            &admin,
            Some(json!({"name": "long", "expires_in_s": 7200})),
        )
        .await;
    assert_eq!(response.status(), 422);
    let response = app
        .call(
            "POST",
            "/api/v1/keys",
            &admin,
            Some(json!({"name": "forever", "never_expires": true})),
        )
        .await;
    assert_eq!(response.status(), 422);
    let ok = app.create_key(&admin, json!({"name": "default"})).await;
    let expires = chrono::DateTime::parse_from_rfc3339(ok["expires_at"].as_str().unwrap()).unwrap();
    let lifetime = expires.timestamp() - chrono::Utc::now().timestamp();
    assert!(
        (590..=600).contains(&lifetime),
        "the default lifetime applies: {lifetime}"
    );

    // The older key keeps its (lack of) expiry and still works.
    let view: Value = app
        .call(
            "GET",
            &format!("/api/v1/keys/{}", old["id"].as_str().unwrap()),
            &admin,
            None,
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(view["expires_at"], Value::Null);
    assert_eq!(
        app.exchange(Form::XApiKey, old["key"].as_str().unwrap(), &[])
            .await
            .status(),
        200
    );
}

async fn keys_per_owner_hold_under_concurrent_creation(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.admin_token(&app.bootstrap_key).await;
    assert_eq!(
        app.patch_settings(&admin, json!({"max_keys_per_owner": 5}))
            .await
            .status(),
        200
    );
    let attempts = (0..20).map(|i| {
        let app = &app;
        let admin = admin.clone();
        async move {
            app.call(
                "POST",
                "/api/v1/keys",
                &admin,
                Some(json!({"name": format!("k{i}"), "owner": "olga"})),
            )
            .await
            .status()
            .as_u16()
        }
    });
    let statuses = futures_util::future::join_all(attempts).await;
    assert_eq!(
        statuses.iter().filter(|s| **s == 201).count(),
        5,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 422).count(),
        15,
        "{statuses:?}"
    );
    let page: Value = app
        .call("GET", "/api/v1/keys?owner=olga", &admin, None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(page["items"].as_array().unwrap().len(), 5);
}

async fn token_ttl_bounds_and_ip_rules_apply(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.admin_token(&app.bootstrap_key).await;
    let key = app
        .create_key(&admin, json!({"name": "svc", "scopes": ["a"]}))
        .await;
    let secret = key["key"].as_str().unwrap();
    assert_eq!(
        app.patch_settings(
            &admin,
            json!({"default_token_ttl_s": 120, "max_token_ttl_s": 300})
        )
        .await
        .status(),
        200
    );
    let body: Value = app
        .exchange(Form::XApiKey, secret, &[])
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["expires_in"], 120);
    let response = app
        .exchange(Form::XApiKey, secret, &[("expires_in", "301")])
        .await;
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert!(body["error_description"].as_str().unwrap().contains("300"));
    assert_eq!(
        app.exchange(Form::XApiKey, secret, &[("expires_in", "300")])
            .await
            .status(),
        200
    );

    // Addresses: a range that excludes 127.0.0.1 refuses the tenant's
    // exchanges (the caller must force it: it excludes the caller too).
    let response = app
        .patch_settings(&admin, json!({"allowed_ip_ranges": ["10.0.0.0/8"]}))
        .await;
    assert_eq!(response.status(), 422);
    assert_eq!(
        app.patch_settings(
            &admin,
            json!({"allowed_ip_ranges": ["10.0.0.0/8"], "force": true})
        )
        .await
        .status(),
        200
    );
    let response = app.exchange(Form::XApiKey, secret, &[]).await;
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "unauthorized_client");
    let (code, _, stderr) = run_cli_on(
        &app.db,
        &["settings", "set", "allowed_ip_ranges=[\"127.0.0.0/8\"]"],
    )
    .await;
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(app.exchange(Form::XApiKey, secret, &[]).await.status(), 200);

    // The tenant's default rate applies to keys without their own.
    assert_eq!(
        app.patch_settings(&admin, json!({"default_rate_limit_per_s": 1}))
            .await
            .status(),
        200
    );
    let fresh = app.create_key(&admin, json!({"name": "limited"})).await;
    let fresh_secret = fresh["key"].as_str().unwrap();
    assert_eq!(
        app.exchange(Form::XApiKey, fresh_secret, &[])
            .await
            .status(),
        200
    );
    assert_eq!(
        app.exchange(Form::XApiKey, fresh_secret, &[])
            .await
            .status(),
        429
    );

    // require_ip_allowlist: keys without a list stop exchanging and cannot be made.
    let listed = app
        .create_key(
            &admin,
            json!({"name": "listed", "ip_allowlist": ["127.0.0.1/32"]}),
        )
        .await;
    let (code, _, stderr) =
        run_cli_on(&app.db, &["settings", "set", "require_ip_allowlist=true"]).await;
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(app.exchange(Form::XApiKey, secret, &[]).await.status(), 400);
    assert_eq!(
        app.exchange(Form::XApiKey, listed["key"].as_str().unwrap(), &[])
            .await
            .status(),
        200
    );
}

async fn bad_settings_are_named_and_change_nothing(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.admin_token(&app.bootstrap_key).await;
    let before: Value = app
        .call("GET", "/api/v1/settings", &admin, None)
        .await
        .json()
        .await
        .unwrap();
    for (body, field) in [
        (json!({"max_keys_per_owner": 0}), "max_keys_per_owner"),
        (json!({"max_keys_per_owner": 1001}), "max_keys_per_owner"),
        (json!({"default_token_ttl_s": 29}), "default_token_ttl_s"),
        (json!({"max_token_ttl_s": 3601}), "max_token_ttl_s"),
        (
            json!({"default_token_ttl_s": 600, "max_token_ttl_s": 300}),
            "default_token_ttl_s",
        ),
        (
            json!({"allowed_ip_ranges": ["10.0.0.1/8"]}),
            "allowed_ip_ranges",
        ),
        (json!({"audiences": ["not a uri"]}), "audiences"),
        (json!({"api_keys_enabled": "yes"}), "api_keys_enabled"),
        (
            json!({"default_rate_limit_per_s": -1}),
            "default_rate_limit_per_s",
        ),
        (json!({"max_keys_per_owner": 10, "bogus": 1}), "bogus"),
    ] {
        let response = app.patch_settings(&admin, body.clone()).await;
        assert_eq!(response.status(), 400, "{body}");
        let problem: Value = response.json().await.unwrap();
        let fields: Vec<&str> = problem["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["field"].as_str().unwrap())
            .collect();
        assert!(fields.contains(&field), "{body} → {problem}");
    }
    let after: Value = app
        .call("GET", "/api/v1/settings", &admin, None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(before, after, "never half-updated");

    // Audiences: registered ones become usable; the default stays registered.
    let response = app
        .patch_settings(&admin, json!({"audiences": ["https://billing.example"]}))
        .await;
    assert_eq!(response.status(), 200);
    let view: Value = response.json().await.unwrap();
    assert_eq!(
        view["audiences"],
        json!(["https://billing.example", "urn:keymint:tenant:default"])
    );
    let key = app
        .create_key(
            &admin,
            json!({"name": "b", "scopes": ["x"], "audiences": ["https://billing.example"]}),
        )
        .await;
    let body: Value = app
        .exchange(Form::XApiKey, key["key"].as_str().unwrap(), &[])
        .await
        .json()
        .await
        .unwrap();
    app.verify(
        body["access_token"].as_str().unwrap(),
        "https://billing.example",
    )
    .await;
    // In use: cannot be removed.
    let response = app.patch_settings(&admin, json!({"audiences": []})).await;
    assert_eq!(response.status(), 422);
}
