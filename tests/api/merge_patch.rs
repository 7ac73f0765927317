//! `PATCH /api/v1/keys/{id}` is a JSON merge patch (RFC 7396) all the way
//! down: inside `metadata` and `claims` too, a member set to `null` goes and
//! the others merge; the merged object keeps the 4 KiB bound.

use serde_json::json;

use crate::backend_tests;
use crate::client::claims_unverified;
use crate::helpers::{Backend, spawn_app};

backend_tests!(object_members_merge_as_rfc_7396_says);

async fn object_members_merge_as_rfc_7396_says(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.admin_token(&app.bootstrap_key).await;
    let key = app
        .create_key(
            &admin,
            json!({
                "name": "merge",
                "metadata": {"team": "data", "env": "prod", "contact": {"mail": "a@x", "pager": "1"}},
                "claims": {"plan": "gold", "region": "eu"},
            }),
        )
        .await;
    let id = key["id"].as_str().unwrap();
    let path = format!("/api/v1/keys/{id}");
    let secret = key["key"].as_str().unwrap().to_owned();

    let patched = app
        .api(
            "PATCH",
            &path,
            &admin,
            None,
            Some(json!({
                "metadata": {"env": null, "contact": {"pager": null, "chat": "#ops"}, "tier": 2},
                "claims": {"region": null, "seats": 5},
            })),
        )
        .await;
    assert_eq!(patched.status, 200, "{:?}", patched.body);
    assert_eq!(
        patched.body["metadata"],
        json!({"team": "data", "contact": {"mail": "a@x", "chat": "#ops"}, "tier": 2})
    );
    assert_eq!(patched.body["claims"], json!({"plan": "gold", "seats": 5}));
    // The token carries the merged claims.
    let token = app.access_token(&secret, &[]).await;
    assert_eq!(
        claims_unverified(&token)["ext"],
        json!({"plan": "gold", "seats": 5})
    );

    // A merge that would outgrow the bound is refused, naming the member,
    // and changes nothing.
    let half = "x".repeat(2500);
    let first = app
        .api(
            "PATCH",
            &path,
            &admin,
            None,
            Some(json!({"metadata": {"a": half}})),
        )
        .await;
    assert_eq!(first.status, 200);
    let second = app
        .api(
            "PATCH",
            &path,
            &admin,
            None,
            Some(json!({"metadata": {"b": half}})),
        )
        .await;
    assert_eq!(second.status, 400);
    assert_eq!(second.body["errors"][0]["field"], "metadata");
    let now = app.api("GET", &path, &admin, None, None).await;
    assert!(now.body["metadata"].get("b").is_none());

    // `null` for the member itself still clears it.
    let cleared = app
        .api(
            "PATCH",
            &path,
            &admin,
            None,
            Some(json!({"metadata": null})),
        )
        .await;
    assert_eq!(cleared.body["metadata"], json!(null));
}
