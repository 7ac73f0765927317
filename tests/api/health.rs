use crate::backend_tests;
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
