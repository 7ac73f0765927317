//! The admin API for keys, driven by tokens keymint itself issued.

use std::collections::HashSet;

use serde_json::{Value, json};

use crate::backend_tests;
use crate::client::Form;
use crate::helpers::{Backend, TestApp, spawn_app};

backend_tests!(
    the_bootstrap_key_creates_a_key_whose_secret_is_shown_once,
    lists_page_without_duplicates_or_gaps_while_keys_change,
    revocation_and_deletion_are_final,
    the_permission_matrix_holds,
    bad_input_is_named_and_changes_nothing,
    admin_authentication_is_bearer_only,
);

fn count_keys(app: &TestApp) -> i64 {
    use diesel::prelude::*;
    let mut conn = app.db.connect();
    keymint::db::schema::api_keys::table
        .count()
        .get_result(&mut conn)
        .unwrap()
}

async fn the_bootstrap_key_creates_a_key_whose_secret_is_shown_once(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.admin_token(&app.bootstrap_key).await;
    let response = app
        .call(
            "POST",
            "/api/v1/keys",
            &admin,
            Some(json!({
                "name": "reports",
                "owner": "alice@example.com",
                "scopes": ["reports:read"],
                "expires_in_s": 86400,
                "metadata": {"team": "data"},
                "claims": {"plan": "pro"},
                "ip_allowlist": ["127.0.0.0/8", "::1/128"]
            })),
        )
        .await;
    assert_eq!(response.status(), 201);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let created: Value = response.json().await.unwrap();
    let secret = created["key"].as_str().unwrap().to_owned();
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(location, format!("/api/v1/keys/{id}"));
    assert_eq!(created["status"], "active");
    assert_eq!(created["owner"], "alice@example.com");
    assert_eq!(created["tenant"], "default");
    assert_eq!(created["start"], &secret[..7]);
    assert_eq!(created["created_by"]["type"], "key");
    for member in [
        "id",
        "tenant",
        "name",
        "description",
        "owner",
        "start",
        "scopes",
        "security_level",
        "ip_allowlist",
        "audiences",
        "max_token_ttl_s",
        "rate_limit_per_s",
        "claims",
        "metadata",
        "status",
        "created_at",
        "updated_at",
        "expires_at",
        "last_used_at",
        "tokens_issued",
        "revoked_at",
        "revoked_reason",
        "previous_expires_at",
        "created_by",
    ] {
        assert!(created.get(member).is_some(), "view member {member}");
    }

    // The new key works, and its token carries the custom claims under ext.
    let response = app.exchange(Form::XApiKey, &secret, &[]).await;
    let body: Value = response.json().await.unwrap();
    let claims = app
        .verify(
            body["access_token"].as_str().unwrap(),
            "urn:keymint:tenant:default",
        )
        .await;
    assert_eq!(claims["ext"]["plan"], "pro");
    assert_eq!(claims["sub"], "alice@example.com");

    // No later response shows the secret again.
    let mut later = Vec::new();
    later.push(
        app.call("GET", &location, &admin, None)
            .await
            .text()
            .await
            .unwrap(),
    );
    later.push(
        app.call("GET", "/api/v1/keys", &admin, None)
            .await
            .text()
            .await
            .unwrap(),
    );
    later.push(
        app.call(
            "PATCH",
            &location,
            &admin,
            Some(json!({"name": "reports-v2", "description": null})),
        )
        .await
        .text()
        .await
        .unwrap(),
    );
    later.push(
        app.call(
            "POST",
            &format!("{location}/revoke"),
            &admin,
            Some(json!({"reason": "done"})),
        )
        .await
        .text()
        .await
        .unwrap(),
    );
    for text in &later {
        assert!(
            !text.contains(&secret[3..]),
            "the secret appears again: {text}"
        );
        let value: Value = serde_json::from_str(text).unwrap();
        assert!(value.get("key").is_none());
    }
    let patched: Value = serde_json::from_str(&later[2]).unwrap();
    assert_eq!(patched["name"], "reports-v2");
}

async fn lists_page_without_duplicates_or_gaps_while_keys_change(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.admin_token(&app.bootstrap_key).await;
    let owners = ["ann", "bob", "cy"];
    let mut created = Vec::new();
    for i in 0..250 {
        let body = app
            .create_key(
                &admin,
                json!({"name": format!("key-{i:03}"), "owner": owners[i % 3], "scopes": ["s"]}),
            )
            .await;
        created.push(body["id"].as_str().unwrap().to_owned());
    }
    let bootstrap_id = app.key_id_of(&app.bootstrap_key).await;
    let mut expected: HashSet<String> = created.iter().cloned().collect();
    expected.insert(bootstrap_id);

    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    let mut deleted = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/v1/keys?limit=50&cursor={c}"),
            None => "/api/v1/keys?limit=50".to_owned(),
        };
        let page: Value = app
            .call("GET", &path, &admin, None)
            .await
            .json()
            .await
            .unwrap();
        let items = page["items"].as_array().unwrap();
        seen.extend(items.iter().map(|k| k["id"].as_str().unwrap().to_owned()));
        pages += 1;
        if pages == 2 {
            // Mid-walk: new keys arrive and an unseen key is deleted.
            for i in 0..10 {
                app.create_key(&admin, json!({"name": format!("late-{i}"), "owner": "ann"}))
                    .await;
            }
            let victim = created[10].clone(); // oldest ones come last
            let response = app
                .call("DELETE", &format!("/api/v1/keys/{victim}"), &admin, None)
                .await;
            assert_eq!(response.status(), 204);
            expected.remove(&victim);
            deleted = Some(victim);
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    let unique: HashSet<String> = seen.iter().cloned().collect();
    assert_eq!(unique.len(), seen.len(), "no duplicates");
    assert_eq!(unique, expected, "no gaps");
    assert!(!unique.contains(deleted.as_deref().unwrap()));
    // Newest first.
    let mut sorted = seen.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(sorted, seen);

    // Search: name, id, owner, case-insensitively.
    let page: Value = app
        .call("GET", "/api/v1/keys?q=KEY-24&limit=200", &admin, None)
        .await
        .json()
        .await
        .unwrap();
    let names: HashSet<&str> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        HashSet::from([
            "key-240", "key-241", "key-242", "key-243", "key-244", "key-245", "key-246", "key-247",
            "key-248", "key-249"
        ])
    );
    let id = &created[77];
    let page: Value = app
        .call(
            "GET",
            &format!("/api/v1/keys?q={}", &id[24..].to_uppercase()),
            &admin,
            None,
        )
        .await
        .json()
        .await
        .unwrap();
    assert!(
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|k| k["id"] == id.as_str())
    );
    let page: Value = app
        .call("GET", "/api/v1/keys?owner=bob&limit=200", &admin, None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        page["items"].as_array().unwrap().len(),
        82,
        "83 of bob's, one deleted"
    );
    let page: Value = app
        .call("GET", "/api/v1/keys?q=%25&limit=200", &admin, None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(page["items"].as_array().unwrap().len(), 0, "% is literal");

    // Status filters.
    let revoked_id = &created[5];
    app.call(
        "POST",
        &format!("/api/v1/keys/{revoked_id}/revoke"),
        &admin,
        None,
    )
    .await;
    let short = app
        .create_key(&admin, json!({"name": "brief", "expires_in_s": 1}))
        .await;
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let page: Value = app
        .call("GET", "/api/v1/keys?status=revoked", &admin, None)
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
    assert_eq!(ids, [revoked_id.as_str()]);
    let page: Value = app
        .call("GET", "/api/v1/keys?status=expired", &admin, None)
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
    assert_eq!(ids, [short["id"].as_str().unwrap()]);
    assert_eq!(page["items"][0]["status"], "expired");
    let page: Value = app
        .call("GET", "/api/v1/keys?status=active&limit=200", &admin, None)
        .await
        .json()
        .await
        .unwrap();
    assert!(
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|k| k["status"] == "active")
    );

    // A cursor is bound to its filters.
    let page: Value = app
        .call("GET", "/api/v1/keys?limit=5&owner=ann", &admin, None)
        .await
        .json()
        .await
        .unwrap();
    let cursor = page["next_cursor"].as_str().unwrap();
    let response = app
        .call(
            "GET",
            &format!("/api/v1/keys?limit=5&owner=bob&cursor={cursor}"),
            &admin,
            None,
        )
        .await;
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["errors"][0]["field"], "cursor");
}

async fn revocation_and_deletion_are_final(backend: Backend) {
    use diesel::prelude::*;
    let app = spawn_app(backend).await;
    let admin = app.admin_token(&app.bootstrap_key).await;
    let one = app
        .create_key(&admin, json!({"name": "one", "scopes": ["s"]}))
        .await;
    let two = app
        .create_key(&admin, json!({"name": "two", "scopes": ["s"]}))
        .await;
    let three = app
        .create_key(&admin, json!({"name": "three", "scopes": ["s"]}))
        .await;
    let id = |k: &Value| k["id"].as_str().unwrap().to_owned();
    let secret = |k: &Value| k["key"].as_str().unwrap().to_owned();

    let response = app
        .call(
            "POST",
            &format!("/api/v1/keys/{}/revoke", id(&one)),
            &admin,
            Some(json!({"reason": "leaked"})),
        )
        .await;
    assert_eq!(response.status(), 200);
    let view: Value = response.json().await.unwrap();
    assert_eq!(view["status"], "revoked");
    assert_eq!(view["revoked_reason"], "leaked");
    let first_revoked_at = view["revoked_at"].clone();
    let response = app.exchange(Form::XApiKey, &secret(&one), &[]).await;
    assert_eq!(response.status(), 401);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "invalid_client");

    // Idempotent: the first time and reason stay. Nothing un-revokes.
    let view: Value = app
        .call(
            "POST",
            &format!("/api/v1/keys/{}/revoke", id(&one)),
            &admin,
            Some(json!({"reason": "again"})),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(view["revoked_at"], first_revoked_at);
    assert_eq!(view["revoked_reason"], "leaked");
    let response = app
        .call(
            "PATCH",
            &format!("/api/v1/keys/{}", id(&one)),
            &admin,
            Some(json!({"name": "back"})),
        )
        .await;
    assert_eq!(response.status(), 409);
    for attempt in [json!({"revoked_at": null}), json!({"status": "active"})] {
        let response = app
            .call(
                "PATCH",
                &format!("/api/v1/keys/{}", id(&one)),
                &admin,
                Some(attempt),
            )
            .await;
        assert_eq!(response.status(), 400);
    }
    let view: Value = app
        .call("GET", &format!("/api/v1/keys/{}", id(&one)), &admin, None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(view["status"], "revoked");

    // Bulk: one transaction, found and not found reported.
    let missing = uuid::Uuid::now_v7().to_string();
    let response = app
        .call(
            "POST",
            "/api/v1/keys/revoke",
            &admin,
            Some(
                json!({"ids": [id(&two), id(&three), missing, "not-an-id"], "reason": "rotation"}),
            ),
        )
        .await;
    assert_eq!(response.status(), 200);
    let result: Value = response.json().await.unwrap();
    assert_eq!(result["revoked"], json!([id(&two), id(&three)]));
    assert_eq!(result["not_found"], json!([missing, "not-an-id"]));
    for k in [&two, &three] {
        assert_eq!(
            app.exchange(Form::XApiKey, &secret(k), &[]).await.status(),
            401
        );
    }

    // Who and why are recorded, one event per key, sharing the request id.
    let bootstrap_id = app.key_id_of(&app.bootstrap_key).await;
    let mut conn = app.db.connect();
    use keymint::db::schema::audit_events as ae;
    let rows: Vec<(String, Option<String>, Option<String>, String)> = ae::table
        .filter(ae::action.eq("key.revoked"))
        .select((
            ae::target_id.assume_not_null(),
            ae::actor_key_id,
            ae::request_id,
            ae::details,
        ))
        .load(&mut conn)
        .unwrap();
    assert_eq!(rows.len(), 3, "{rows:?}");
    for row in &rows {
        assert_eq!(row.1.as_deref(), Some(bootstrap_id.as_str()));
    }
    let bulk: Vec<_> = rows.iter().filter(|r| r.3.contains("rotation")).collect();
    assert_eq!(bulk.len(), 2);
    assert_eq!(bulk[0].2, bulk[1].2);
    assert!(rows.iter().any(|r| r.3.contains("leaked")));

    // Delete: gone from reads, lists and exchanges; a tombstone remains.
    let four = app
        .create_key(&admin, json!({"name": "four", "scopes": ["s"]}))
        .await;
    let response = app
        .call(
            "DELETE",
            &format!("/api/v1/keys/{}", id(&four)),
            &admin,
            None,
        )
        .await;
    assert_eq!(response.status(), 204);
    assert_eq!(
        app.call("GET", &format!("/api/v1/keys/{}", id(&four)), &admin, None)
            .await
            .status(),
        404
    );
    assert_eq!(
        app.call(
            "DELETE",
            &format!("/api/v1/keys/{}", id(&four)),
            &admin,
            None
        )
        .await
        .status(),
        404
    );
    let list = app
        .call("GET", "/api/v1/keys", &admin, None)
        .await
        .text()
        .await
        .unwrap();
    assert!(!list.contains(&id(&four)));
    assert_eq!(
        app.exchange(Form::XApiKey, &secret(&four), &[])
            .await
            .status(),
        401
    );
    use keymint::db::schema::api_keys as ak;
    let (deleted_at, revoked_at): (Option<chrono::NaiveDateTime>, Option<chrono::NaiveDateTime>) =
        ak::table
            .find(id(&four))
            .select((ak::deleted_at, ak::revoked_at))
            .first(&mut conn)
            .unwrap();
    assert!(deleted_at.is_some() && revoked_at.is_some());
}

async fn the_permission_matrix_holds(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.admin_token(&app.bootstrap_key).await;

    // A developer key: keys:self plus two ordinary scopes.
    let dev = app.create_key(&admin,
        json!({"name": "dev", "owner": "dana", "scopes": ["keys:self", "app:read", "app:write"]}),
    )
    .await;
    let dev_token = app.admin_token(dev["key"].as_str().unwrap()).await;
    let other = app
        .create_key(
            &admin,
            json!({"name": "someone else's", "owner": "erin", "scopes": ["app:read"]}),
        )
        .await;

    // keys:self creates for itself only, with what it holds.
    let mine = app
        .create_key(&dev_token, json!({"name": "mine", "scopes": ["app:read"]}))
        .await;
    assert_eq!(mine["owner"], "dana");
    for (body, status) in [
        (json!({"name": "x", "owner": "erin"}), 403),
        (json!({"name": "x", "scopes": ["app:admin"]}), 403),
        (json!({"name": "x", "scopes": ["keys:self"]}), 403),
        (json!({"name": "x", "scopes": ["admin:keys:write"]}), 403),
        (json!({"name": "x", "claims": {"a": 1}}), 403),
        (json!({"name": "x", "rate_limit_per_s": 1000}), 403),
    ] {
        let response = app
            .call("POST", "/api/v1/keys", &dev_token, Some(body.clone()))
            .await;
        assert_eq!(response.status(), status, "{body}");
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json"
        );
    }
    // It sees only its own keys: another owner's key is simply not found.
    let other_id = other["id"].as_str().unwrap();
    assert_eq!(
        app.call("GET", &format!("/api/v1/keys/{other_id}"), &dev_token, None)
            .await
            .status(),
        404
    );
    assert_eq!(
        app.call(
            "POST",
            &format!("/api/v1/keys/{other_id}/revoke"),
            &dev_token,
            None
        )
        .await
        .status(),
        404
    );
    let page: Value = app
        .call("GET", "/api/v1/keys?owner=erin", &dev_token, None)
        .await
        .json()
        .await
        .unwrap();
    assert!(
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|k| k["owner"] == "dana")
    );
    // It revokes its own.
    let mine_id = mine["id"].as_str().unwrap();
    assert_eq!(
        app.call(
            "POST",
            &format!("/api/v1/keys/{mine_id}/revoke"),
            &dev_token,
            None
        )
        .await
        .status(),
        200
    );
    // PATCH needs admin:keys:write.
    let response = app
        .call(
            "PATCH",
            &format!("/api/v1/keys/{mine_id}"),
            &dev_token,
            Some(json!({"name": "y"})),
        )
        .await;
    assert_eq!(response.status(), 403);
    assert!(
        response.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("scope=\"admin:keys:write\"")
    );

    // Revoking the developer's key revokes what it created, in one go.
    let child = app
        .create_key(
            &dev_token,
            json!({"name": "child", "scopes": ["app:write"]}),
        )
        .await;
    let dev_id = dev["id"].as_str().unwrap();
    app.call(
        "POST",
        &format!("/api/v1/keys/{dev_id}/revoke"),
        &admin,
        None,
    )
    .await;
    let child_view: Value = app
        .call(
            "GET",
            &format!("/api/v1/keys/{}", child["id"].as_str().unwrap()),
            &admin,
            None,
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(child_view["status"], "revoked");
    // ... and its admin token stops at once.
    let response = app.call("GET", "/api/v1/keys", &dev_token, None).await;
    assert_eq!(response.status(), 401);
    assert!(
        response.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("invalid_token")
    );

    // admin:keys:read reads but cannot write.
    let reader = app
        .create_key(
            &admin,
            json!({"name": "reader", "scopes": ["admin:keys:read"]}),
        )
        .await;
    let reader_token = app.admin_token(reader["key"].as_str().unwrap()).await;
    assert_eq!(
        app.call("GET", "/api/v1/keys", &reader_token, None)
            .await
            .status(),
        200
    );
    assert_eq!(
        app.call(
            "GET",
            &format!("/api/v1/keys/{other_id}"),
            &reader_token,
            None
        )
        .await
        .status(),
        200
    );
    for (method, path, body) in [
        (
            "POST",
            "/api/v1/keys".to_owned(),
            Some(json!({"name": "n"})),
        ),
        ("POST", format!("/api/v1/keys/{other_id}/revoke"), None),
        ("DELETE", format!("/api/v1/keys/{other_id}"), None),
        (
            "PATCH",
            format!("/api/v1/keys/{other_id}"),
            Some(json!({"name": "n"})),
        ),
    ] {
        let response = app.call(method, &path, &reader_token, body).await;
        assert_eq!(response.status(), 403, "{method} {path}");
        let challenge = response.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(challenge.contains("insufficient_scope"), "{challenge}");
    }

    // A writer without a reserved scope cannot grant it.
    let writer = app
        .create_key(
            &admin,
            json!({"name": "writer", "scopes": ["admin:keys:write"]}),
        )
        .await;
    let writer_token = app.admin_token(writer["key"].as_str().unwrap()).await;
    let response = app
        .call(
            "POST",
            "/api/v1/keys",
            &writer_token,
            Some(json!({"name": "n", "scopes": ["admin:audit"]})),
        )
        .await;
    assert_eq!(response.status(), 403);
    assert!(
        response.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("scope=\"admin:audit\"")
    );
    let response = app
        .call(
            "POST",
            "/api/v1/keys",
            &writer_token,
            Some(json!({"name": "n", "scopes": ["admin:keys:write", "app:x"]})),
        )
        .await;
    assert_eq!(response.status(), 201);

    // A token for a downstream audience is refused by the admin API, even
    // when its key holds admin scopes.
    let mixed = app
        .create_key(
            &admin,
            json!({"name": "mixed", "scopes": ["admin:keys:write", "app:read"]}),
        )
        .await;
    let response = app
        .exchange(Form::XApiKey, mixed["key"].as_str().unwrap(), &[])
        .await;
    let body: Value = response.json().await.unwrap();
    let downstream = body["access_token"].as_str().unwrap();
    let response = app.call("GET", "/api/v1/keys", downstream, None).await;
    assert_eq!(response.status(), 401);
    assert!(
        response.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("invalid_token")
    );
}

async fn bad_input_is_named_and_changes_nothing(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.admin_token(&app.bootstrap_key).await;
    let existing = app.create_key(&admin, json!({"name": "existing"})).await;
    let existing_id = existing["id"].as_str().unwrap().to_owned();
    let before = count_keys(&app);

    let cases: Vec<(Value, Vec<&str>)> = vec![
        (json!({}), vec!["name"]),
        (json!({"name": ""}), vec!["name"]),
        (json!({"name": "x".repeat(101)}), vec!["name"]),
        (json!({"name": "ok", "bogus": 1}), vec!["bogus"]),
        (
            json!({"name": "ok", "ip_allowlist": ["10.0.0.1/8"]}),
            vec!["ip_allowlist"],
        ),
        (
            json!({"name": "ok", "ip_allowlist": ["not-a-cidr"]}),
            vec!["ip_allowlist"],
        ),
        (
            json!({"name": "ok", "expires_at": "tomorrow"}),
            vec!["expires_at"],
        ),
        (
            json!({"name": "ok", "expires_at": "2001-01-01T00:00:00Z"}),
            vec!["expires_at"],
        ),
        (
            json!({"name": "ok", "expires_in_s": 60, "never_expires": true}),
            vec!["expires_at"],
        ),
        (json!({"name": "ok", "owner": "key:abc"}), vec!["owner"]),
        (
            json!({"name": "ok", "scopes": ["bad scope"]}),
            vec!["scopes"],
        ),
        (
            json!({"name": "ok", "max_token_ttl_s": 29}),
            vec!["max_token_ttl_s"],
        ),
        (
            json!({"name": "ok", "rate_limit_per_s": 0}),
            vec!["rate_limit_per_s"],
        ),
        (
            json!({"name": "ok", "security_level": "extreme"}),
            vec!["security_level"],
        ),
        (
            json!({"name": "ok", "audiences": ["not a uri"]}),
            vec!["audiences"],
        ),
        (
            json!({"name": "ok", "audiences": ["https://unregistered.example"]}),
            vec!["audiences"],
        ),
        (json!({"name": "ok", "metadata": "text"}), vec!["metadata"]),
        (
            json!({"name": "ok", "metadata": {"big": "x".repeat(5000)}}),
            vec!["metadata"],
        ),
        (
            json!({"name": 5, "description": "d".repeat(1001), "bogus": true}),
            vec!["name", "description", "bogus"],
        ),
    ];
    for (body, fields) in cases {
        let response = app
            .call("POST", "/api/v1/keys", &admin, Some(body.clone()))
            .await;
        assert_eq!(response.status(), 400, "{body}");
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json"
        );
        let problem: Value = response.json().await.unwrap();
        let named: HashSet<&str> = problem["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["field"].as_str().unwrap())
            .collect();
        for field in fields {
            assert!(named.contains(field), "{body} → {problem}");
        }
    }
    // Not JSON, not an object, too deep, wrong media type.
    let raw = |body: &'static str, content_type: &'static str| {
        app.client
            .post(app.url("/api/v1/keys"))
            .header("Authorization", format!("Bearer {admin}"))
            .header("Content-Type", content_type)
            .body(body)
    };
    for (request, status) in [
        (raw("{\"name\":", "application/json"), 400),
        (raw("[1,2]", "application/json"), 400),
        (
            raw(
                "{\"name\":\"x\",\"metadata\":{\"a\":{\"b\":{\"c\":{\"d\":{\"e\":{\"f\":{\"g\":{\"h\":{\"i\":{\"j\":{\"k\":{\"l\":{\"m\":{\"n\":{\"o\":{\"p\":1}}}}}}}}}}}}}}}}}",
                "application/json",
            ),
            400,
        ),
        (raw("name=x", "application/x-www-form-urlencoded"), 415),
    ] {
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), status);
        let problem: Value = response.json().await.unwrap();
        assert_eq!(problem["status"], status);
    }
    // PATCH and list input.
    for (body, field) in [
        (json!({"name": null}), "name"),
        (json!({"expires_at": "2001-01-01T00:00:00Z"}), "expires_at"),
        (json!({"owner": "someone"}), "owner"),
        (json!({"ip_allowlist": ["300.0.0.0/8"]}), "ip_allowlist"),
    ] {
        let response = app
            .call(
                "PATCH",
                &format!("/api/v1/keys/{existing_id}"),
                &admin,
                Some(body.clone()),
            )
            .await;
        assert_eq!(response.status(), 400, "{body}");
        let problem: Value = response.json().await.unwrap();
        assert_eq!(problem["errors"][0]["field"], field, "{problem}");
    }
    for (query, field) in [
        ("limit=0", "limit"),
        ("limit=201", "limit"),
        ("status=gone", "status"),
        ("cursor=forged.cursor", "cursor"),
        (&*format!("q={}", "x".repeat(101)), "q"),
        ("q=%00abc", "q"),
        ("q=abc%0A", "q"),
    ] {
        let response = app
            .call("GET", &format!("/api/v1/keys?{query}"), &admin, None)
            .await;
        assert_eq!(response.status(), 400, "{query}");
        let problem: Value = response.json().await.unwrap();
        assert_eq!(problem["errors"][0]["field"], field, "{problem}");
    }
    assert_eq!(count_keys(&app), before, "nothing was written");
    let view: Value = app
        .call("GET", &format!("/api/v1/keys/{existing_id}"), &admin, None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(view["name"], "existing");
}

async fn admin_authentication_is_bearer_only(backend: Backend) {
    let app = spawn_app(backend).await;
    let response = app.get("/api/v1/keys").await;
    assert_eq!(response.status(), 401);
    assert_eq!(
        response.headers()["www-authenticate"],
        "Bearer realm=\"keymint\""
    );
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    for header in [
        format!("ApiKey {}", app.bootstrap_key),
        format!("Basic {}", app.bootstrap_key),
        format!("Bearer {}", app.bootstrap_key),
        "Bearer not.a.jwt".to_owned(),
    ] {
        let response = app
            .client
            .get(app.url("/api/v1/keys"))
            .header("Authorization", header.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401, "{header}");
    }
    let response = app
        .client
        .get(app.url("/api/v1/keys"))
        .header("X-API-Key", &app.bootstrap_key)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);

    // X-Tenant from a caller without admin:tenants is refused; an unknown
    // slug from one that has it is not found.
    let admin = app.admin_token(&app.bootstrap_key).await;
    let writer = app
        .create_key(&admin, json!({"name": "w", "scopes": ["admin:keys:write"]}))
        .await;
    let writer_token = app.admin_token(writer["key"].as_str().unwrap()).await;
    let response = app
        .client
        .get(app.url("/api/v1/keys"))
        .header("Authorization", format!("Bearer {writer_token}"))
        .header("X-Tenant", "default")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let response = app
        .client
        .get(app.url("/api/v1/keys"))
        .header("Authorization", format!("Bearer {admin}"))
        .header("X-Tenant", "nobody")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
}
