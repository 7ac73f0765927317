//! The process as an operator sees it: start-up errors, readiness while the
//! database comes and goes, and graceful shutdown.

use std::time::Duration;

use crate::helpers::{
    Backend, ServerProcess, TestDatabase, postgres_admin_url, run_cli, spawn_app,
};

#[tokio::test]
async fn a_bad_database_url_is_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_string_lossy().into_owned();
    let (code, _, stderr) = run_cli(
        &[
            "migrate",
            "--data-dir",
            &data,
            "--database-url",
            "mysql://db/x",
        ],
        &[],
    )
    .await;
    assert_eq!(code, 1);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("database.url") && stderr.contains("mysql"),
        "{stderr}"
    );

    // Nothing listens on port 1: the error says so at once, on one line.
    let (code, _, stderr) = run_cli(
        &[
            "serve",
            "--bind",
            "127.0.0.1:0",
            "--data-dir",
            &data,
            "--database-url",
            "postgres://keymint@127.0.0.1:1/keymint",
        ],
        &[("RUST_LOG", "off")],
    )
    .await;
    assert_eq!(code, 1);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(
        lines[0].starts_with("keymint: database postgres 127.0.0.1:1"),
        "{stderr}"
    );
    assert!(lines[0].contains("refused"), "{stderr}");
}

#[tokio::test]
async fn invalid_configuration_names_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_string_lossy().into_owned();
    let (code, _, stderr) = run_cli(
        &["migrate", "--data-dir", &data],
        &[("KEYMINT__SIGNING__PREPUBLISH_S", "10")],
    )
    .await;
    assert_eq!(code, 1);
    assert!(stderr.contains("signing.prepublish_s"), "{stderr}");

    let (code, _, stderr) =
        run_cli(&["serve", "--bind", "0.0.0.0:0", "--data-dir", &data], &[]).await;
    assert_eq!(code, 1);
    assert!(stderr.contains("tokens.issuer"), "{stderr}");

    let (code, _, _) = run_cli(&["serve", "--no-such-flag"], &[]).await;
    assert_eq!(code, 2, "usage errors exit 2");
}

#[tokio::test]
async fn migrate_applies_and_is_idempotent() {
    let db = TestDatabase::new(Backend::Sqlite);
    let url = db.url();
    for _ in 0..2 {
        let (code, stdout, stderr) = run_cli(&["migrate", "--database-url", &url], &[]).await;
        assert_eq!(code, 0, "{stderr}");
        assert!(stdout.contains("up to date"));
    }
    assert!(db.sqlite_path().is_file());
}

/// Readiness follows the database: connections refused and existing ones
/// killed → 503 with a reason; connections allowed again → 200, without
/// restarting keymint.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_follows_a_postgres_outage() {
    if postgres_admin_url().is_none() {
        return;
    }
    let app = spawn_app(Backend::Postgres).await;
    assert_eq!(app.get("/readyz").await.status(), 200);
    let pg = app.db.pg.as_ref().unwrap();

    pg.admin(&format!(
        "ALTER DATABASE {db} WITH ALLOW_CONNECTIONS false;
         SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{db}';",
        db = pg.name
    ));
    let started = std::time::Instant::now();
    let response = app.get("/readyz").await;
    assert!(started.elapsed() < Duration::from_secs(5), "answers fast");
    assert_eq!(response.status(), 503);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["reason"], "database unreachable");

    pg.admin(&format!(
        "ALTER DATABASE {} WITH ALLOW_CONNECTIONS true",
        pg.name
    ));
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        if app.get("/readyz").await.status() == 200 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "readiness came back");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn sigterm_lets_an_in_flight_request_finish_then_exits_0() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let db = TestDatabase::new(Backend::Sqlite);
    let mut server = ServerProcess::start(&db, &[]).await;

    // A token request whose body arrives slowly: the server is reading it
    // when the signal comes.
    let body = b"grant_type=client_credentials";
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", server.port))
        .await
        .unwrap();
    let head = format!(
        "POST /oauth/token HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(&body[..10]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    server.signal("TERM");
    tokio::time::sleep(Duration::from_millis(700)).await;
    stream.write_all(&body[10..]).await.unwrap();
    let mut response = String::new();
    tokio::time::timeout(
        Duration::from_secs(10),
        stream.read_to_string(&mut response),
    )
    .await
    .expect("answered in time")
    .unwrap();
    // The request was answered in full (no credentials: 401 invalid_client).
    assert!(response.starts_with("HTTP/1.1 401"), "{response}");
    assert!(response.contains("invalid_client"), "{response}");

    let status = tokio::time::timeout(Duration::from_secs(15), server.child.wait())
        .await
        .expect("exits in time")
        .unwrap();
    assert_eq!(status.code(), Some(0));
}
