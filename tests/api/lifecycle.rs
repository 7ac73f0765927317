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

    // Two statements, two transactions: in one batch the refusal of new
    // connections would only take effect at its end, after the backends
    // were terminated, and a connection opened in between would survive.
    // The timeout makes each termination wait until the backend is gone.
    pg.admin(&format!(
        "ALTER DATABASE {} WITH ALLOW_CONNECTIONS false",
        pg.name
    ));
    pg.admin(&format!(
        "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity WHERE datname = '{}'",
        pg.name
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

crate::backend_tests!(
    a_wrong_master_key_stops_the_start_and_changes_nothing,
    master_key_rotation_reencrypts_every_secret,
);

/// Row counts and the stored ciphertexts: what a failed start must not touch.
fn snapshot(db: &TestDatabase) -> String {
    use diesel::prelude::*;
    use keymint::db::schema::{api_keys, master_key_check, signing_keys, tenants};
    let mut conn = db.connect();
    let signing: Vec<(String, Vec<u8>)> = signing_keys::table
        .select((signing_keys::kid, signing_keys::private_key_enc))
        .order(signing_keys::kid)
        .load(&mut conn)
        .unwrap();
    let check: Vec<Vec<u8>> = master_key_check::table
        .select(master_key_check::check_value)
        .load(&mut conn)
        .unwrap();
    let keys: i64 = api_keys::table.count().get_result(&mut conn).unwrap();
    let tenants: i64 = tenants::table.count().get_result(&mut conn).unwrap();
    format!("{signing:?}{check:?}{keys}{tenants}")
}

async fn a_wrong_master_key_stops_the_start_and_changes_nothing(backend: Backend) {
    let db = TestDatabase::new(backend);
    let server = ServerProcess::start(&db, &[]).await;
    server.stop().await; // the database now has keys under the first master key
    let before = snapshot(&db);

    let other = db.dir.path().join("other-master.key");
    keymint::crypto::master::MasterKey::generate_file(&other).unwrap();
    let url = db.url();
    let data_dir = db.data_dir().to_string_lossy().into_owned();
    let other = other.to_string_lossy().into_owned();
    let (code, _, stderr) = run_cli(
        &[
            "serve",
            "--bind",
            "127.0.0.1:0",
            "--database-url",
            &url,
            "--data-dir",
            &data_dir,
        ],
        &[("KEYMINT_MASTER_KEY_FILE", &other), ("RUST_LOG", "off")],
    )
    .await;
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("is not the one this database was written with"),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert_eq!(snapshot(&db), before, "nothing changed");

    if backend == Backend::Sqlite {
        // Without any master key, SQLite on loopback would generate one, but
        // not for a database written under another: nothing is generated.
        let (code, _, stderr) = run_cli(
            &[
                "serve",
                "--bind",
                "127.0.0.1:0",
                "--database-url",
                &url,
                "--data-dir",
                &data_dir,
            ],
            &[("RUST_LOG", "off")],
        )
        .await;
        assert_eq!(code, 1);
        assert!(stderr.contains("master.key is missing"), "{stderr}");
        assert!(!db.data_dir().join("master.key").exists());
        assert_eq!(snapshot(&db), before, "nothing changed");
    } else {
        // PostgreSQL never generates a master key.
        let (code, _, stderr) = run_cli(
            &[
                "serve",
                "--bind",
                "127.0.0.1:0",
                "--database-url",
                &url,
                "--data-dir",
                &data_dir,
            ],
            &[("RUST_LOG", "off")],
        )
        .await;
        assert_eq!(code, 1);
        assert!(stderr.contains("KEYMINT_MASTER_KEY_FILE"), "{stderr}");
    }
}

#[tokio::test]
async fn sqlite_on_loopback_generates_a_private_master_key_once() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_string_lossy().into_owned();
    let (code, _, stderr) = run_cli(
        &["signing-keys", "rotate", "--data-dir", &data],
        &[("RUST_LOG", "off")],
    )
    .await;
    // A fresh database: the key is generated, then rotation refuses a next
    // key that was published just now.
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("may sign only after"), "{stderr}");
    let path = dir.path().join("master.key");
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let first = std::fs::read(&path).unwrap();
    let (_, _, _) = run_cli(&["signing-keys", "rotate", "--data-dir", &data], &[]).await;
    assert_eq!(std::fs::read(&path).unwrap(), first, "never regenerated");
}

#[tokio::test]
async fn bootstrap_prints_or_writes_the_key_once() {
    use tokio::io::AsyncBufReadExt;
    let db = TestDatabase::new(Backend::Sqlite);

    // Not a terminal and no flag, no file: the tenant is made, no key.
    let server = ServerProcess::start(&db, &[]).await;
    server.stop().await;
    {
        use diesel::prelude::*;
        let mut conn = db.connect();
        let keys: i64 = keymint::db::schema::api_keys::table
            .count()
            .get_result(&mut conn)
            .unwrap();
        assert_eq!(keys, 0);
    }

    // A fresh database with --print-bootstrap-key: one line on stdout.
    let db = TestDatabase::new(Backend::Sqlite);
    let file = db.dir.path().join("bootstrap-out.key");
    let file_text = file.to_string_lossy().into_owned();
    let mut server = ServerProcess::start_with_args(
        &db,
        &["--print-bootstrap-key"],
        &[("KEYMINT_BOOTSTRAP_KEY_FILE", &file_text)],
    )
    .await;
    let stdout = server.child.stdout.take().unwrap();
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    let line = tokio::time::timeout(Duration::from_secs(5), lines.next_line())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let printed = line
        .strip_prefix("bootstrap admin key: ")
        .expect("the marker");
    assert!(printed.starts_with("km_"));
    let written = std::fs::read_to_string(&file).unwrap();
    assert_eq!(written.trim(), printed);
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    drop(server);

    // Started again: the database has a tenant, so nothing is printed; an
    // existing key file is an error only when a bootstrap would happen.
    let db2 = TestDatabase::new(Backend::Sqlite);
    std::fs::write(db2.dir.path().join("exists.key"), "x").unwrap();
    let exists = db2
        .dir
        .path()
        .join("exists.key")
        .to_string_lossy()
        .into_owned();
    let url = db2.url();
    let env = db2.env();
    let mut env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    env.push(("KEYMINT_BOOTSTRAP_KEY_FILE", &exists));
    env.push(("RUST_LOG", "off"));
    let (code, _, stderr) = run_cli(
        &["serve", "--bind", "127.0.0.1:0", "--database-url", &url],
        &env,
    )
    .await;
    assert_eq!(code, 1);
    assert!(stderr.contains("KEYMINT_BOOTSTRAP_KEY_FILE"), "{stderr}");
    assert_eq!(
        std::fs::read_to_string(db2.dir.path().join("exists.key")).unwrap(),
        "x"
    );
}

async fn master_key_rotation_reencrypts_every_secret(backend: Backend) {
    use diesel::prelude::*;
    use keymint::crypto::master::{MasterKey, ciphertext_key_id};
    use keymint::db::schema::{api_keys, event_streams, master_key_check, signing_keys};
    use serde_json::json;

    let app = spawn_app(backend).await;
    let admin = app.admin_token(&app.bootstrap_key).await;
    let key = app
        .create_key(&admin, json!({"name": "adv", "security_level": "advanced"}))
        .await;
    let id = key["id"].as_str().unwrap().to_owned();
    let rotated: serde_json::Value = app
        .call(
            "POST",
            &format!("/api/v1/keys/{id}/rotate"),
            &admin,
            Some(json!({"grace_period_s": 3600})),
        )
        .await
        .json()
        .await
        .unwrap();
    let secret = rotated["key"].as_str().unwrap().to_owned();
    // An event receiver's bearer secret is sealed under the master key too.
    let stream = app
        .api(
            "POST",
            "/api/v1/event-streams",
            &admin,
            None,
            Some(
                json!({"endpoint": "https://1.1.1.1/events", "audience": "urn:siem",
                        "enabled": false, "bearer_secret": "receiver-secret-0123456789"}),
            ),
        )
        .await;
    assert_eq!(stream.status, 201, "{:?}", stream.body);
    let stream_id = stream.body["id"].as_str().unwrap().to_owned();

    let new_file = app.db.dir.path().join("new-master.key");
    let new = MasterKey::generate_file(&new_file).unwrap();
    let new_path = new_file.to_string_lossy().into_owned();
    let (code, _, stderr) = crate::helpers::run_cli_on(
        &app.db,
        &["master-key", "rotate", "--new-key-file", &new_path],
    )
    .await;
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains(
            "re-encrypted 2 signing key(s), 1 advanced key secret(s) and 1 event receiver secret(s)"
        ),
        "{stderr}"
    );

    let mut conn = app.db.connect();
    let sealed: Vec<Vec<u8>> = signing_keys::table
        .select(signing_keys::private_key_enc)
        .load(&mut conn)
        .unwrap();
    let (current, previous): (Option<Vec<u8>>, Option<Vec<u8>>) = api_keys::table
        .find(&id)
        .select((api_keys::secret_enc, api_keys::previous_secret_enc))
        .first(&mut conn)
        .unwrap();
    let receiver_secret: Option<Vec<u8>> = event_streams::table
        .find(&stream_id)
        .select(event_streams::bearer_secret)
        .first(&mut conn)
        .unwrap();
    for blob in sealed.iter().chain([
        current.as_ref().unwrap(),
        previous.as_ref().unwrap(),
        receiver_secret.as_ref().unwrap(),
    ]) {
        assert_eq!(ciphertext_key_id(blob).as_deref(), Some(new.id().as_str()));
    }
    let check_id: String = master_key_check::table
        .select(master_key_check::master_key_id)
        .first(&mut conn)
        .unwrap();
    assert_eq!(check_id, new.id());

    // A server with the new key starts and checks signatures; with the old
    // key it refuses to start.
    let server = ServerProcess::start(&app.db, &[("KEYMINT_MASTER_KEY_FILE", &new_path)]).await;
    let headers = keymint::grants::signed::sign_request(
        &secret,
        &id,
        chrono::Utc::now().timestamp_millis(),
        &uuid::Uuid::now_v7().simple().to_string(),
        "POST",
        "/api/v1/token",
        b"",
    );
    let mut request = app
        .client
        .post(format!("http://127.0.0.1:{}/api/v1/token", server.port));
    for (name, value) in headers {
        request = request.header(name, value);
    }
    assert_eq!(request.send().await.unwrap().status(), 200);
    server.stop().await;
    let url = app.db.url();
    let old = app.db.master_key_file().to_string_lossy().into_owned();
    let (code, _, stderr) = run_cli(
        &["serve", "--bind", "127.0.0.1:0", "--database-url", &url],
        &[("KEYMINT_MASTER_KEY_FILE", &old), ("RUST_LOG", "off")],
    )
    .await;
    assert_eq!(code, 1);
    assert!(
        stderr.contains("is not the one this database was written with"),
        "{stderr}"
    );
}

/// A client that never finishes its request head is cut off after
/// `server.client_request_timeout_ms`, and bodies over the limit are refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_and_oversized_clients_are_cut_off() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = crate::helpers::spawn_app_with(
        Backend::Sqlite,
        "[server]\nclient_request_timeout_ms = 500\n",
    )
    .await;
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", app.port))
        .await
        .unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut buf)).await;
    assert!(read.is_ok(), "the server closed the connection");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    let text = String::from_utf8_lossy(&buf);
    assert!(
        text.is_empty() || text.starts_with("HTTP/1.1 408"),
        "{text}"
    );

    // 64 KiB on admin routes, 8 KiB on token endpoints.
    let admin = app.admin_token(&app.bootstrap_key).await;
    let big = "x".repeat(70 * 1024);
    let response = app
        .client
        .post(app.url("/api/v1/keys"))
        .header("Content-Type", "application/json")
        .header("Authorization", format!("Bearer {admin}"))
        .body(format!("{{\"name\":\"{big}\"}}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    let response = app
        .client
        .post(app.url("/api/v1/token"))
        .header("X-API-Key", &app.bootstrap_key)
        .header("Content-Type", "application/json")
        .body(format!("{{\"scope\":\"{}\"}}", "x".repeat(9 * 1024)))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
}
