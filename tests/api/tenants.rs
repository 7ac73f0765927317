//! Tenants keep apart: keys, settings, events and tokens; and the audit log
//! records every change once, in the change's own transaction.

use serde_json::{Value, json};

use crate::backend_tests;
use crate::client::Form;
use crate::helpers::{Backend, spawn_app};

backend_tests!(
    tenants_see_only_their_own,
    tenants_are_created_once_and_renamed,
    every_change_has_exactly_one_event,
);

async fn tenants_see_only_their_own(backend: Backend) {
    let app = spawn_app(backend).await;
    let root = app.admin_token(&app.bootstrap_key).await;
    let response = app
        .call(
            "POST",
            "/api/v1/tenants",
            &root,
            Some(json!({"slug": "acme", "name": "Acme"})),
        )
        .await;
    assert_eq!(response.status(), 201);

    // An admin key inside acme, made by the system admin through X-Tenant.
    let response = app
        .call_in_tenant(
            "POST",
            "/api/v1/keys",
            &root,
            "acme",
            Some(json!({
                "name": "acme-admin",
                "scopes": ["admin:keys:write", "admin:settings", "admin:audit", "orders:read"]
            })),
        )
        .await;
    assert_eq!(response.status(), 201);
    let acme_admin_key: Value = response.json().await.unwrap();
    assert_eq!(acme_admin_key["tenant"], "acme");
    let acme = app
        .admin_token(acme_admin_key["key"].as_str().unwrap())
        .await;
    let claims = crate::client::claims_unverified(&acme);
    assert_eq!(claims["tid"], "acme");

    // admin:tenants and admin:signing-keys exist only in the system tenant.
    let response = app
        .call_in_tenant(
            "POST",
            "/api/v1/keys",
            &root,
            "acme",
            Some(json!({"name": "x", "scopes": ["admin:tenants"]})),
        )
        .await;
    assert_eq!(response.status(), 422);

    // Same names in both tenants; each sees its own.
    let ours = app
        .create_key(&root, json!({"name": "shared-name", "scopes": ["s"]}))
        .await;
    let theirs = app
        .create_key(
            &acme,
            json!({"name": "shared-name", "scopes": ["orders:read"]}),
        )
        .await;
    let list: Value = app
        .call("GET", "/api/v1/keys?q=shared-name", &acme, None)
        .await
        .json()
        .await
        .unwrap();
    let ids: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [theirs["id"].as_str().unwrap()]);
    let response = app
        .call(
            "GET",
            &format!("/api/v1/keys/{}", ours["id"].as_str().unwrap()),
            &acme,
            None,
        )
        .await;
    assert_eq!(response.status(), 404);
    let response = app
        .call(
            "POST",
            &format!("/api/v1/keys/{}/revoke", ours["id"].as_str().unwrap()),
            &acme,
            None,
        )
        .await;
    assert_eq!(response.status(), 404);

    // Settings and events are per tenant.
    let settings: Value = app
        .call("GET", "/api/v1/settings", &acme, None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(settings["tenant"], "acme");
    assert_eq!(settings["default_audience"], "urn:keymint:tenant:acme");
    let events: Value = app
        .call("GET", "/api/v1/audit-events?limit=200", &acme, None)
        .await
        .json()
        .await
        .unwrap();
    for event in events["items"].as_array().unwrap() {
        assert_eq!(event["tenant"], "acme");
        assert_ne!(event["target_id"], ours["id"]);
    }

    // X-Tenant from a non-system caller is refused.
    let response = app
        .call_in_tenant("GET", "/api/v1/keys", &acme, "default", None)
        .await;
    assert_eq!(response.status(), 400);

    // Tokens: an acme key addresses acme's audience, never another tenant's.
    let secret = theirs["key"].as_str().unwrap();
    let body: Value = app
        .exchange(Form::XApiKey, secret, &[])
        .await
        .json()
        .await
        .unwrap();
    let claims = app
        .verify(
            body["access_token"].as_str().unwrap(),
            "urn:keymint:tenant:acme",
        )
        .await;
    assert_eq!(claims["tid"], "acme");
    let response = app
        .exchange(
            Form::XApiKey,
            secret,
            &[("audience", "urn:keymint:tenant:default")],
        )
        .await;
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "invalid_target");
}

async fn tenants_are_created_once_and_renamed(backend: Backend) {
    let app = spawn_app(backend).await;
    let root = app.admin_token(&app.bootstrap_key).await;
    for (body, status) in [
        (json!({"slug": "team-a", "name": "Team A"}), 201),
        (json!({"slug": "team-a", "name": "Again"}), 409),
        (json!({"slug": "Team_B", "name": "bad"}), 400),
        (json!({"slug": "b", "name": "too short"}), 400),
        (json!({"name": "no slug"}), 400),
        (json!({"slug": "team-c", "name": "C", "extra": 1}), 400),
    ] {
        let response = app
            .call("POST", "/api/v1/tenants", &root, Some(body.clone()))
            .await;
        assert_eq!(response.status(), status, "{body}");
    }
    let response = app
        .call(
            "PATCH",
            "/api/v1/tenants/team-a",
            &root,
            Some(json!({"name": "Team Alpha"})),
        )
        .await;
    assert_eq!(response.status(), 200);
    let view: Value = response.json().await.unwrap();
    assert_eq!(view["name"], "Team Alpha");
    assert_eq!(
        app.call(
            "PATCH",
            "/api/v1/tenants/nobody",
            &root,
            Some(json!({"name": "x"}))
        )
        .await
        .status(),
        404
    );
    let response = app
        .call(
            "PATCH",
            "/api/v1/tenants/team-a",
            &root,
            Some(json!({"slug": "renamed"})),
        )
        .await;
    assert_eq!(response.status(), 400, "slugs are immutable");
    let list: Value = app
        .call("GET", "/api/v1/tenants?limit=1", &root, None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list["items"][0]["slug"], "default");
    let cursor = list["next_cursor"].as_str().unwrap();
    let list: Value = app
        .call(
            "GET",
            &format!("/api/v1/tenants?limit=1&cursor={cursor}"),
            &root,
            None,
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list["items"][0]["slug"], "team-a");

    // Without admin:tenants: 403 naming it.
    let writer = app
        .create_key(&root, json!({"name": "w", "scopes": ["admin:keys:write"]}))
        .await;
    let writer = app.admin_token(writer["key"].as_str().unwrap()).await;
    let response = app.call("GET", "/api/v1/tenants", &writer, None).await;
    assert_eq!(response.status(), 403);
    assert!(
        response.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("admin:tenants")
    );
}

async fn every_change_has_exactly_one_event(backend: Backend) {
    let app = spawn_app(backend).await;
    let root = app.admin_token(&app.bootstrap_key).await;
    let root_id = app.key_id_of(&app.bootstrap_key).await;
    let with_id = |method: &str, path: &str, id: &str, body: Option<Value>| {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut r = app
            .client
            .request(method, app.url(path))
            .header("Authorization", format!("Bearer {root}"))
            .header("X-Request-Id", id);
        if let Some(b) = body {
            r = r.json(&b);
        }
        r.send()
    };
    let created: Value = with_id(
        "POST",
        "/api/v1/keys",
        "req-create",
        Some(json!({"name": "audited", "owner": "ivy"})),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let id = created["id"].as_str().unwrap().to_owned();
    with_id(
        "PATCH",
        &format!("/api/v1/keys/{id}"),
        "req-patch",
        Some(json!({"name": "audited-2"})),
    )
    .await
    .unwrap();
    let second = app.create_key(&root, json!({"name": "second"})).await;
    let second_id = second["id"].as_str().unwrap().to_owned();
    with_id(
        "POST",
        "/api/v1/keys/revoke",
        "req-bulk",
        Some(json!({"ids": [id, second_id]})),
    )
    .await
    .unwrap();

    // A refused create leaves no success event and no row.
    let patch = app
        .client
        .patch(app.url("/api/v1/settings"))
        .header("Authorization", format!("Bearer {root}"))
        .json(&json!({"max_keys_per_owner": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(patch.status(), 200);
    app.create_key(&root, json!({"name": "first-of-jo", "owner": "jo"}))
        .await;
    let refused = with_id(
        "POST",
        "/api/v1/keys",
        "req-refused",
        Some(json!({"name": "second-of-jo", "owner": "jo"})),
    )
    .await
    .unwrap();
    assert_eq!(refused.status(), 422);

    let events: Value = app
        .call("GET", "/api/v1/audit-events?limit=200", &root, None)
        .await
        .json()
        .await
        .unwrap();
    let events = events["items"].as_array().unwrap();
    let find = |action: &str, target: &str| -> Vec<&Value> {
        events
            .iter()
            .filter(|e| e["action"] == action && e["target_id"] == target)
            .collect()
    };
    let created_events = find("key.created", &id);
    assert_eq!(created_events.len(), 1);
    let e = created_events[0];
    assert_eq!(e["request_id"], "req-create");
    assert_eq!(e["actor"]["type"], "key");
    assert_eq!(e["actor"]["key_id"], root_id.as_str());
    assert_eq!(e["outcome"], "success");
    assert_eq!(e["tenant"], "default");
    assert_eq!(e["ip"], "127.0.0.1");
    assert_eq!(find("key.updated", &id).len(), 1);
    assert_eq!(find("key.updated", &id)[0]["request_id"], "req-patch");
    let revoked: Vec<&Value> = events
        .iter()
        .filter(|e| e["action"] == "key.revoked")
        .collect();
    assert_eq!(revoked.len(), 2);
    assert!(revoked.iter().all(|e| e["request_id"] == "req-bulk"));
    assert!(
        events.iter().all(|e| e["request_id"] != "req-refused"),
        "no event for the refused create"
    );
    assert_eq!(
        events
            .iter()
            .filter(|e| e["action"] == "settings.updated")
            .count(),
        1
    );
    let page: Value = app
        .call("GET", "/api/v1/keys?owner=jo", &root, None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    // Newest first.
    let ids: Vec<&str> = events.iter().map(|e| e["id"].as_str().unwrap()).collect();
    let mut sorted = ids.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(ids, sorted);

    // Filters and pages.
    let only: Value = app
        .call(
            "GET",
            "/api/v1/audit-events?action=key.created&limit=1",
            &root,
            None,
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(only["items"].as_array().unwrap().len(), 1);
    let cursor = only["next_cursor"].as_str().unwrap();
    let next: Value = app
        .call(
            "GET",
            &format!("/api/v1/audit-events?action=key.created&limit=1&cursor={cursor}"),
            &root,
            None,
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(next["items"][0]["action"], "key.created");
    assert_ne!(next["items"][0]["id"], only["items"][0]["id"]);
    let by_key: Value = app
        .call(
            "GET",
            &format!("/api/v1/audit-events?key_id={id}"),
            &root,
            None,
        )
        .await
        .json()
        .await
        .unwrap();
    let actions: Vec<&str> = by_key["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["key.revoked", "key.updated", "key.created"]);
    let future: Value = app
        .call(
            "GET",
            "/api/v1/audit-events?since=2999-01-01T00:00:00Z",
            &root,
            None,
        )
        .await
        .json()
        .await
        .unwrap();
    assert!(future["items"].as_array().unwrap().is_empty());
    for bad in [
        "action=key.exploded",
        "since=yesterday",
        "limit=0",
        "cursor=abc.def",
    ] {
        let response = app
            .call("GET", &format!("/api/v1/audit-events?{bad}"), &root, None)
            .await;
        assert_eq!(response.status(), 400, "{bad}");
    }

    // Denials are aggregated: one event per key and reason per minute.
    let svc = app
        .create_key(
            &root,
            json!({"name": "svc", "ip_allowlist": ["10.0.0.0/8"]}),
        )
        .await;
    for _ in 0..5 {
        assert_eq!(
            app.exchange(Form::XApiKey, svc["key"].as_str().unwrap(), &[])
                .await
                .status(),
            400
        );
    }
    let denied: Value = app
        .call(
            "GET",
            "/api/v1/audit-events?action=token.denied",
            &root,
            None,
        )
        .await
        .json()
        .await
        .unwrap();
    let denied = denied["items"].as_array().unwrap();
    assert_eq!(denied.len(), 1, "{denied:?}");
    assert_eq!(denied[0]["count"], 5);
    assert_eq!(denied[0]["details"]["reason"], "address_not_allowed");
    assert_eq!(denied[0]["outcome"], "failure");
}
