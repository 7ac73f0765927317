//! Edges a security review (issue 13) found open: the client address behind
//! proxies, refused admin requests (counted by the limiter, summarised in
//! memory), and the modes of the files keymint creates.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use keymint::db::models::AuditEvent;
use keymint::db::schema::audit_events;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::backend_tests;
use crate::helpers::{BIN, Backend, TestApp, spawn_app, spawn_app_with};

backend_tests!(
    only_the_configured_forwarding_header_names_the_client,
    admin_requests_without_credentials_count_as_failed_authentications,
    refused_admin_requests_are_summarised_without_a_write_each,
);

/// Exchanges `secret` at `/api/v1/token` with the given forwarding headers.
async fn exchange_via_proxy(app: &TestApp, secret: &str, headers: &[(&str, &str)]) -> u16 {
    let mut request = app
        .client
        .post(app.url("/api/v1/token"))
        .header("X-API-Key", secret);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.unwrap().status().as_u16()
}

async fn only_the_configured_forwarding_header_names_the_client(backend: Backend) {
    let trusted = "[server]\ntrusted_proxies = [\"127.0.0.0/8\"]\n";
    for header in ["x-forwarded-for", "forwarded"] {
        // X-Forwarded-For is the default: the first server leaves it unset.
        let config = match header {
            "x-forwarded-for" => trusted.to_owned(),
            _ => format!("{trusted}forwarded_header = \"{header}\"\n"),
        };
        let app = spawn_app_with(backend, &config).await;
        let admin = app.admin_token(&app.bootstrap_key).await;
        let key = app
            .create_key(
                &admin,
                json!({"name": "one-address", "ip_allowlist": ["203.0.113.7/32"]}),
            )
            .await;
        let secret = key["key"].as_str().unwrap();
        let forged_forwarded = [
            ("Forwarded", "for=203.0.113.7"),
            ("X-Forwarded-For", "198.51.100.1"),
        ];
        let forged_xff = [
            ("X-Forwarded-For", "203.0.113.7"),
            ("Forwarded", "for=198.51.100.1"),
        ];
        let (forged, honest) = match header {
            "x-forwarded-for" => (forged_forwarded, forged_xff),
            _ => (forged_xff, forged_forwarded),
        };
        assert_eq!(
            exchange_via_proxy(&app, secret, &forged).await,
            400,
            "{header}: the other header cannot name the client"
        );
        assert_eq!(
            exchange_via_proxy(&app, secret, &honest).await,
            200,
            "{header}: the configured header names the client"
        );
        assert_eq!(
            exchange_via_proxy(&app, secret, &honest[..1]).await,
            200,
            "{header}: alone, too"
        );
        assert_eq!(
            exchange_via_proxy(&app, secret, &forged[..1]).await,
            400,
            "{header}: the other header alone leaves the peer as the client"
        );
    }
}

async fn admin_requests_without_credentials_count_as_failed_authentications(backend: Backend) {
    let app = spawn_app_with(backend, "[limits]\nfailed_auth_per_minute = 5\n").await;
    let admin = app.admin_token(&app.bootstrap_key).await;
    let mut statuses = Vec::new();
    for i in 0..30 {
        let mut request = app.client.get(app.url("/api/v1/keys"));
        // No Authorization at all, or one that is not Bearer: both refused.
        match i % 3 {
            0 => {}
            1 => request = request.header("Authorization", "Basic a2V5OnNlY3JldA=="),
            _ => request = request.header("Authorization", "ApiKey km_guess"),
        }
        statuses.push(request.send().await.unwrap().status().as_u16());
    }
    assert_eq!(statuses[..5], [401; 5], "{statuses:?}");
    assert!(statuses[5..].iter().all(|s| *s == 429), "{statuses:?}");
    // The address is refused before its credentials are even read.
    let response = app.call("GET", "/api/v1/keys", &admin, None).await;
    assert_eq!(response.status(), 429);
    assert!(response.headers().contains_key("retry-after"));
}

/// Holds the database's write lock (SQLite) or a lock that stops writes
/// to the audit table (PostgreSQL) until dropped.
struct AuditWritesBlocked(keymint::db::AnyConnection);

impl AuditWritesBlocked {
    fn hold(app: &TestApp) -> Self {
        let mut conn = app.db.connect();
        let sql = if conn.is_sqlite() {
            "BEGIN IMMEDIATE"
        } else {
            "BEGIN; LOCK TABLE audit_events IN EXCLUSIVE MODE"
        };
        conn.batch_execute(sql).expect("take the lock");
        Self(conn)
    }
}

impl Drop for AuditWritesBlocked {
    fn drop(&mut self) {
        let _ = self.0.batch_execute("ROLLBACK");
    }
}

fn admin_denied_rows(app: &TestApp) -> Vec<AuditEvent> {
    audit_events::table
        .filter(audit_events::action.eq("admin.denied"))
        .select(AuditEvent::as_select())
        .load(&mut app.db.connect())
        .expect("read the audit log")
}

async fn refused_admin_requests_are_summarised_without_a_write_each(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.admin_token(&app.bootstrap_key).await;
    let auditor = app
        .create_key(&admin, json!({"name": "a", "scopes": ["admin:audit"]}))
        .await;
    let auditor = app.admin_token(auditor["key"].as_str().unwrap()).await;

    // While nothing can be written to the audit table, 200 refusals: a
    // write (or a pooled connection) per refusal would starve the pool.
    let blocked = AuditWritesBlocked::hold(&app);
    for i in 0..150 {
        let mut request = app.client.get(app.url("/api/v1/keys"));
        match i % 3 {
            0 => {}
            1 => request = request.header("Authorization", "Basic a2V5OnNlY3JldA=="),
            _ => request = request.header("Authorization", "Bearer not.a.jwt"),
        }
        assert_eq!(request.send().await.unwrap().status(), 401);
    }
    for _ in 0..50 {
        let response = app.call("GET", "/api/v1/keys", &auditor, None).await;
        assert_eq!(response.status(), 403);
    }
    let started = Instant::now();
    let response = app.call("GET", "/api/v1/keys", &admin, None).await;
    assert_eq!(
        response.status(),
        200,
        "an admin request is served while refusals wait for their flush"
    );
    assert!(started.elapsed() < Duration::from_secs(2));
    drop(blocked);

    let deadline = Instant::now() + Duration::from_secs(20);
    let rows = loop {
        let rows = admin_denied_rows(&app);
        if rows.iter().map(|r| r.count).sum::<i64>() >= 200 || Instant::now() > deadline {
            break rows;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let sum = |tenant: bool| -> i64 {
        rows.iter()
            .filter(|r| r.tenant_id.is_some() == tenant)
            .map(|r| r.count)
            .sum()
    };
    assert_eq!(sum(false), 150, "401s, no tenant: {rows:#?}");
    assert_eq!(sum(true), 50, "403s, in the caller's tenant: {rows:#?}");
    // One row per (tenant, address, minute): two, or four across a minute.
    assert!(rows.len() <= 4, "{rows:#?}");
    for row in &rows {
        assert!(row.dedup_key.is_some(), "{row:?}");
        assert_eq!(row.target_type.as_deref(), Some("address"));
        assert_eq!(row.target_id.as_deref(), Some("127.0.0.1"));
        assert_eq!(row.outcome, "failure");
        let details: Value = serde_json::from_str(&row.details).unwrap();
        assert_eq!(details["route"], "/api/v1/keys", "{details}");
    }
}

fn mode_of(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

/// A server started under umask 000 on a data directory that does not
/// exist yet keeps everything it creates to its owner.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_keymint_creates_are_private_whatever_the_umask() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("fresh").join("data");
    let mut child = tokio::process::Command::new("sh")
        .args(["-c", "umask 000 && exec \"$0\" \"$@\"", BIN, "serve"])
        .args(["--bind", "127.0.0.1:0", "--data-dir"])
        .arg(&data)
        .env_remove("DATABASE_URL")
        .env_remove("KEYMINT_MASTER_KEY")
        .env_remove("KEYMINT_MASTER_KEY_FILE")
        .env_remove("KEYMINT_BOOTSTRAP_KEY_FILE")
        .env("KEYMINT__METRICS__BIND", "127.0.0.1:0")
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn keymint");
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut seen = Vec::new();
    let port = tokio::time::timeout(Duration::from_secs(30), async {
        while let Ok(Some(line)) = lines.next_line().await {
            seen.push(line.clone());
            if line.contains("listening")
                && let Some(rest) = line.split("port=").nth(1)
            {
                let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
                return digits.parse::<u16>().ok();
            }
        }
        None
    })
    .await
    .ok()
    .flatten()
    .unwrap_or_else(|| panic!("keymint did not start: {seen:#?}"));
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    let ready = reqwest::get(format!("http://127.0.0.1:{port}/readyz"))
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);

    let wal = data.join("keymint.db-wal");
    let shm = data.join("keymint.db-shm");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !(wal.exists() && shm.exists()) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(mode_of(&data), 0o700, "the data directory");
    for file in [
        "keymint.db",
        "keymint.db-wal",
        "keymint.db-shm",
        "master.key",
    ] {
        assert_eq!(mode_of(&data.join(file)), 0o600, "{file}");
    }
    let _ = child.kill().await;
}
