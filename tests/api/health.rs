use crate::backend_tests;
use crate::client::metric;
use crate::helpers::{Backend, spawn_app};

backend_tests!(
    healthz_answers,
    readyz_answers_when_the_database_does,
    unknown_routes_and_methods_answer_problem_json,
    request_ids_are_echoed_or_made,
);

async fn healthz_answers(backend: Backend) {
    let app = spawn_app(backend).await;
    let response = app.get("/healthz").await;
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["status"], "ok");
}

async fn readyz_answers_when_the_database_does(backend: Backend) {
    let app = spawn_app(backend).await;
    let response = app.get("/readyz").await;
    assert_eq!(response.status(), 200);
    if backend == Backend::Sqlite {
        assert!(app.db.sqlite_path().is_file(), "the SQLite file is created");
    }
}

async fn unknown_routes_and_methods_answer_problem_json(backend: Backend) {
    let app = spawn_app(backend).await;
    let response = app.get("/no/such/route").await;
    assert_eq!(response.status(), 404);
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["status"], 404);
    assert!(body["type"].is_string() && body["title"].is_string() && body["detail"].is_string());

    let response = app.client.delete(app.url("/healthz")).send().await.unwrap();
    assert_eq!(response.status(), 405);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["status"], 405);
}

async fn request_ids_are_echoed_or_made(backend: Backend) {
    let app = spawn_app(backend).await;
    let response = app
        .client
        .get(app.url("/healthz"))
        .header("X-Request-Id", "trace-abc.123")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-request-id"], "trace-abc.123");

    // Unsafe or over-long ids are replaced, never echoed.
    let response = app
        .client
        .get(app.url("/healthz"))
        .header("X-Request-Id", "bad id\twith spaces")
        .send()
        .await
        .unwrap();
    let id = response.headers()["x-request-id"].to_str().unwrap();
    assert_ne!(id, "bad id\twith spaces");
    assert!(uuid::Uuid::parse_str(id).is_ok(), "{id}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_move_and_live_on_their_own_listener() {
    let app = spawn_app(Backend::Sqlite).await;
    for _ in 0..3 {
        let response = app
            .exchange(crate::client::Form::XApiKey, &app.bootstrap_key, &[])
            .await;
        assert_eq!(response.status(), 200);
    }
    let response = app
        .exchange(crate::client::Form::XApiKey, "km_nope", &[])
        .await;
    assert_eq!(response.status(), 401);
    // An admin list runs on the pool (its admin lane): the wait is measured.
    let admin = app.admin_token(&app.bootstrap_key).await;
    assert_eq!(
        app.call("GET", "/api/v1/keys", &admin, None).await.status(),
        200
    );

    // Not on the API port.
    assert_eq!(app.get("/metrics").await.status(), 404);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let text = loop {
        let text = app.metrics_text().await;
        if text.contains("keymint_usage_last_flush_timestamp_seconds") {
            break text;
        }
        assert!(std::time::Instant::now() < deadline, "{text}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    let value = |series: &str| -> f64 {
        metric(&text, series).unwrap_or_else(|| panic!("no {series} in\n{text}"))
    };
    // The recorder is process-wide (other tests' apps count too): at least ours.
    assert!(value("keymint_tokens_issued_total{grant=\"api_key\"}") >= 3.0);
    assert!(value("keymint_token_refusals_total{reason=\"invalid_client\"}") >= 1.0);
    assert!(text.contains(
        "keymint_http_requests_total{route=\"/api/v1/token\",method=\"POST\",status=\"200\"}"
    ));
    assert!(text.contains("keymint_http_request_duration_seconds_bucket"));
    assert!(text.contains("keymint_db_pool_connections{state=\"idle\"}"));
    assert!(text.contains("keymint_db_pool_wait_seconds"));
    // On SQLite the exchange's lookups run on the worker, not the pool.
    assert!(value("keymint_db_point_reads_total{where=\"inline\"}") >= 4.0);
    assert!(value("keymint_signing_key_next_rotation_seconds") > 0.0);
    assert!(text.contains("keymint_signing_key_age_seconds"));
    // No key ids, owners, tenants or addresses in labels.
    let key_id = app.key_id_of(&app.bootstrap_key).await;
    assert!(!text.contains(&key_id));
    assert!(!text.contains("127.0.0.1"));
    assert!(!text.contains("tenant="));
}
