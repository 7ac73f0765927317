//! The token endpoints' key lookups run where each backend wants them
//! (SQLite: inline on the worker; PostgreSQL: batched per worker) and a
//! batch never hands one request another request's key, nor a revoked one.

use std::sync::Arc;

use serde_json::{Value, json};

use crate::backend_tests;
use crate::client::{Form, claims_unverified, metric};
use crate::helpers::{Backend, spawn_app};

backend_tests!(
    concurrent_exchanges_each_get_their_own_key,
    lookups_run_where_the_backend_wants,
);

async fn concurrent_exchanges_each_get_their_own_key(backend: Backend) {
    let app = Arc::new(spawn_app(backend).await);
    let admin = app.admin_token(&app.bootstrap_key).await;
    let mut keys = Vec::new();
    for n in 0..12 {
        let made = app
            .create_key(
                &admin,
                json!({"name": format!("k{n}"), "scopes": ["reports:read"]}),
            )
            .await;
        let id = made["id"].as_str().unwrap().to_owned();
        let secret = made["key"].as_str().unwrap().to_owned();
        keys.push((id, secret));
    }
    // Two revoked: their lookups share batches with live keys' lookups.
    let revoked: Vec<String> = keys[..2].iter().map(|(id, _)| id.clone()).collect();
    for id in &revoked {
        let response = app
            .call(
                "POST",
                &format!("/api/v1/keys/{id}/revoke"),
                &admin,
                Some(json!({"reason": "test"})),
            )
            .await;
        assert_eq!(response.status(), 200);
    }
    for round in 0..3 {
        let mut calls = Vec::new();
        for n in 0..96 {
            let app = app.clone();
            let (id, secret) = keys[(n * 7 + round) % keys.len()].clone();
            calls.push(tokio::spawn(async move {
                let response = app.exchange(Form::XApiKey, &secret, &[]).await;
                let status = response.status().as_u16();
                let body: Value = response.json().await.unwrap();
                (id, status, body)
            }));
        }
        for call in calls {
            let (id, status, body) = call.await.unwrap();
            if revoked.contains(&id) {
                assert_eq!(status, 401, "revoked {id} exchanged: {body}");
                continue;
            }
            assert_eq!(status, 200, "{id}: {body}");
            let claims = claims_unverified(body["access_token"].as_str().unwrap());
            assert_eq!(claims["client_id"], id.as_str(), "a token for another key");
        }
    }
}

async fn lookups_run_where_the_backend_wants(backend: Backend) {
    let app = spawn_app(backend).await;
    for _ in 0..3 {
        let response = app.exchange(Form::XApiKey, &app.bootstrap_key, &[]).await;
        assert_eq!(response.status(), 200);
    }
    let text = app.metrics_text().await;
    let count = |place: &str| {
        metric(
            &text,
            &format!("keymint_db_point_reads_total{{where=\"{place}\"}}"),
        )
        .unwrap_or(0.0)
    };
    let wanted = match backend {
        Backend::Sqlite => "inline",
        Backend::Postgres => "batched",
    };
    // The recorder is process-wide (every in-process app counts): at
    // least ours, and none at all if the backend's way were not taken.
    assert!(count(wanted) >= 3.0, "{wanted}:\n{text}");
}
