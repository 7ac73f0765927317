//! Faults on purpose: replicas sharing one PostgreSQL, a database outage
//! under load, kill -9 during writes, SIGTERM under load, and what is left
//! on disk.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::sync::Mutex;

use crate::backend_tests;
use crate::client::admin_token_at;
use crate::helpers::{
    Backend, PgCluster, ServerProcess, TestDatabase, postgres_admin_url, spawn_app,
};

/// Shared by the replicas; a loopback URL, so plain http is allowed.
const ISSUER: &str = "http://127.0.0.1:1";

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

async fn token(
    client: &reqwest::Client,
    base: &str,
    secret: &str,
    body: Value,
) -> reqwest::Response {
    client
        .post(format!("{base}/api/v1/token"))
        .header("X-API-Key", secret)
        .json(&body)
        .send()
        .await
        .unwrap()
}

async fn admin(
    client: &reqwest::Client,
    method: reqwest::Method,
    url: String,
    bearer: &str,
    body: Option<Value>,
) -> Result<reqwest::Response, reqwest::Error> {
    let mut request = client.request(method, url).bearer_auth(bearer);
    if let Some(body) = body {
        request = request.json(&body);
    }
    request.send().await
}

fn read_bootstrap(file: &str) -> String {
    std::fs::read_to_string(file).unwrap().trim().to_owned()
}

/// A lone server's base URL (its own issuer on loopback) and an admin
/// token from the bootstrap key.
async fn own_admin(
    http: &reqwest::Client,
    server: &ServerProcess,
    bootstrap: &str,
) -> (String, String) {
    let node = server.base_url();
    let jwt = admin_token_at(http, &node, bootstrap, &node).await;
    (node, jwt)
}

/// Creates a key through `node`; the 201 answer (the view plus `key`).
async fn create_key_at(http: &reqwest::Client, node: &str, bearer: &str, body: Value) -> Value {
    let response = admin(
        http,
        reqwest::Method::POST,
        format!("{node}/api/v1/keys"),
        bearer,
        Some(body),
    )
    .await
    .unwrap();
    assert_eq!(response.status(), 201, "key created");
    response.json().await.unwrap()
}

fn bootstrap_env(db: &TestDatabase) -> (String, Vec<(String, String)>) {
    let file = db.dir.path().join("bootstrap.key");
    let path = file.to_string_lossy().into_owned();
    (
        path.clone(),
        vec![("KEYMINT_BOOTSTRAP_KEY_FILE".into(), path)],
    )
}

fn env_refs(env: &[(String, String)]) -> Vec<(&str, &str)> {
    env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

fn no_panics(server: &ServerProcess) {
    let lines = server.stderr.lock().unwrap();
    assert!(
        !lines.iter().any(|l| l.contains("panicked")),
        "a panic was logged: {:?}",
        lines
            .iter()
            .filter(|l| l.contains("panicked"))
            .collect::<Vec<_>>()
    );
}

// ---- replicas -------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_share_keys_revocations_quotas_and_signing_keys() {
    if postgres_admin_url().is_none() {
        return;
    }
    let db = TestDatabase::new(Backend::Postgres);
    let (bootstrap_file, mut env) = bootstrap_env(&db);
    let shared = [
        ("KEYMINT__TOKENS__ISSUER", ISSUER),
        ("KEYMINT__SIGNING__RELOAD_S", "1"),
        ("KEYMINT__SIGNING__JWKS_MAX_AGE_S", "1"),
        ("KEYMINT__SIGNING__PREPUBLISH_S", "2"),
        ("KEYMINT__DATABASE__MAX_CONNECTIONS", "4"),
    ];
    for (k, v) in shared {
        env.push((k.into(), v.into()));
    }
    let a = ServerProcess::start(&db, &env_refs(&env)).await;
    let rest: Vec<(&str, &str)> = shared.to_vec();
    let b = ServerProcess::start(&db, &rest).await;
    let c = ServerProcess::start(&db, &rest).await;
    let nodes = [a.base_url(), b.base_url(), c.base_url()];
    let http = client();
    let bootstrap = read_bootstrap(&bootstrap_file);
    let admin_jwt = admin_token_at(&http, &nodes[0], &bootstrap, ISSUER).await;

    // Created through A, exchanged through B and C.
    let created: Value = create_key_at(
        &http,
        &nodes[0],
        &admin_jwt,
        json!({"name": "shared", "scopes": ["orders:read"]}),
    )
    .await;
    let (id, secret) = (
        created["id"].as_str().unwrap(),
        created["key"].as_str().unwrap(),
    );
    for node in &nodes[1..] {
        assert_eq!(token(&http, node, secret, json!({})).await.status(), 200);
    }

    // Revoked through B: A refuses it on the very next request.
    let revoked = admin(
        &http,
        reqwest::Method::POST,
        format!("{}/api/v1/keys/{id}/revoke", nodes[1]),
        &admin_jwt,
        Some(json!({})),
    )
    .await
    .unwrap();
    assert_eq!(revoked.status(), 200);
    assert_eq!(
        token(&http, &nodes[0], secret, json!({})).await.status(),
        401
    );
    assert_eq!(
        token(&http, &nodes[2], secret, json!({})).await.status(),
        401
    );

    // max_keys_per_owner holds with creations spread over the replicas.
    let patched = admin(
        &http,
        reqwest::Method::PATCH,
        format!("{}/api/v1/settings", nodes[2]),
        &admin_jwt,
        Some(json!({"max_keys_per_owner": 5})),
    )
    .await
    .unwrap();
    assert_eq!(patched.status(), 200);
    let mut attempts = Vec::new();
    for i in 0..18 {
        let (http, node, jwt) = (http.clone(), nodes[i % 3].clone(), admin_jwt.clone());
        attempts.push(tokio::spawn(async move {
            admin(
                &http,
                reqwest::Method::POST,
                format!("{node}/api/v1/keys"),
                &jwt,
                Some(json!({"name": format!("q{i}"), "owner": "quota-owner"})),
            )
            .await
            .unwrap()
            .status()
            .as_u16()
        }));
    }
    let mut statuses = Vec::new();
    for attempt in attempts {
        statuses.push(attempt.await.unwrap());
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 201).count(),
        5,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 422).count(),
        13,
        "{statuses:?}"
    );

    // A rotation done by A: its new `next` key is on every JWKS within
    // reload_s, and after activation every replica signs with the new key.
    tokio::time::sleep(Duration::from_millis(2100)).await; // prepublish_s
    let rotation: Value = admin(
        &http,
        reqwest::Method::POST,
        format!("{}/api/v1/signing-keys/rotate", nodes[0]),
        &admin_jwt,
        None,
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let next_kid = rotation["next_kid"].as_str().expect("rotated").to_owned();
    let activated = rotation["activated_kid"].as_str().unwrap().to_owned();
    let rotated_at = Instant::now();
    for node in &nodes {
        loop {
            let jwks = http
                .get(format!("{node}/.well-known/jwks.json"))
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            if jwks.contains(&next_kid) {
                break;
            }
            assert!(
                rotated_at.elapsed() < Duration::from_millis(2500),
                "{node} did not publish the new key within reload_s"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let activates =
        chrono::DateTime::parse_from_rfc3339(rotation["activates_at"].as_str().unwrap())
            .unwrap()
            .timestamp();
    while chrono::Utc::now().timestamp() <= activates {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (_, fresh_secret) = {
        let created: Value = create_key_at(
            &http,
            &nodes[1],
            &admin_jwt,
            json!({"name": "after-rotation", "scopes": ["orders:read"]}),
        )
        .await;
        (
            created["id"].as_str().unwrap().to_owned(),
            created["key"].as_str().unwrap().to_owned(),
        )
    };
    let mut tokens = Vec::new();
    for node in &nodes {
        let body: Value = token(&http, node, &fresh_secret, json!({}))
            .await
            .json()
            .await
            .unwrap();
        let jwt = body["access_token"].as_str().unwrap().to_owned();
        let kid = jsonwebtoken::decode_header(&jwt).unwrap().kid.unwrap();
        assert_eq!(kid, activated, "{node} signs with the activated key");
        tokens.push(jwt);
    }
    // Every replica's token verifies against every replica's JWKS.
    for node in &nodes {
        let verifier = keymint::validator::Verifier::builder(ISSUER)
            .jwks_uri(format!("{node}/.well-known/jwks.json"))
            // The shared issuer URL is not served here: read each replica.
            .status_origin(node.as_str())
            .audience("urn:keymint:tenant:default")
            .build()
            .unwrap();
        for jwt in &tokens {
            verifier
                .verify(jwt)
                .await
                .expect("verifies on every replica's JWKS");
        }
    }
    for server in [&a, &b, &c] {
        no_panics(server);
    }
}

// ---- database outage --------------------------------------------------------

#[derive(Default)]
struct Observed {
    /// (status, elapsed) of every answered request.
    answers: Vec<(u16, Duration, String)>,
    /// Ids of keys whose creation answered 201.
    created: Vec<String>,
    transport_errors: Vec<String>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_outage_answers_503_fast_and_recovers_without_a_restart() {
    if postgres_admin_url().is_none() {
        return; // the harness's own rule: PostgreSQL tests run where PostgreSQL does
    }
    let cluster = PgCluster::start();
    let db = TestDatabase::at_url(&cluster.url());
    let (bootstrap_file, mut env) = bootstrap_env(&db);
    env.push((
        "KEYMINT__DATABASE__CONNECT_TIMEOUT_MS".into(),
        "1000".into(),
    ));
    env.push(("KEYMINT__DATABASE__MAX_CONNECTIONS".into(), "4".into()));
    let server = ServerProcess::start(&db, &env_refs(&env)).await;
    let http = client();
    let bootstrap = read_bootstrap(&bootstrap_file);
    let (node, admin_jwt) = own_admin(&http, &server, &bootstrap).await;
    let created: Value = create_key_at(
        &http,
        &node,
        &admin_jwt,
        json!({"name": "load", "scopes": ["a"]}),
    )
    .await;
    let secret = created["key"].as_str().unwrap().to_owned();

    let observed = Arc::new(Mutex::new(Observed::default()));
    let running = Arc::new(AtomicBool::new(true));
    let mut workers = Vec::new();
    for w in 0..4 {
        let (http, node, jwt, secret) = (
            http.clone(),
            node.clone(),
            admin_jwt.clone(),
            secret.clone(),
        );
        let (observed, running) = (observed.clone(), running.clone());
        workers.push(tokio::spawn(async move {
            let mut i = 0;
            while running.load(Ordering::Relaxed) {
                i += 1;
                let started = Instant::now();
                let create = i % 2 == 0;
                let result = if create {
                    admin(
                        &http,
                        reqwest::Method::POST,
                        format!("{node}/api/v1/keys"),
                        &jwt,
                        Some(json!({"name": format!("outage-{w}-{i}"), "scopes": ["a"]})),
                    )
                    .await
                } else {
                    http.post(format!("{node}/api/v1/token"))
                        .header("X-API-Key", &secret)
                        .send()
                        .await
                };
                match result {
                    Ok(response) => {
                        let status = response.status().as_u16();
                        let elapsed = started.elapsed();
                        let body: Value = response.json().await.unwrap_or(Value::Null);
                        let mut all = observed.lock().await;
                        if create && status == 201 {
                            all.created.push(body["id"].as_str().unwrap().to_owned());
                        }
                        let kind = if create { "create" } else { "token" };
                        all.answers
                            .push((status, elapsed, format!("{kind} {body}")));
                    }
                    Err(err) => observed.lock().await.transport_errors.push(err.to_string()),
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }));
    }

    tokio::time::sleep(Duration::from_millis(1500)).await;
    let before_stop = observed.lock().await.answers.len();
    cluster.down();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let probe = Instant::now();
    let ready = http.get(format!("{node}/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 503);
    assert!(
        probe.elapsed() < Duration::from_secs(3),
        "readiness answers fast"
    );
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let during = observed.lock().await.answers.len() - before_stop;

    cluster.up();
    let restarted = Instant::now();
    let recovery = loop {
        let response = http
            .post(format!("{node}/api/v1/token"))
            .header("X-API-Key", &secret)
            .send()
            .await
            .unwrap();
        if response.status() == 200 {
            break restarted.elapsed();
        }
        assert!(
            restarted.elapsed() < Duration::from_secs(15),
            "service came back"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(
        http.get(format!("{node}/readyz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    tokio::time::sleep(Duration::from_millis(1000)).await;
    running.store(false, Ordering::Relaxed);
    for worker in workers {
        worker.await.unwrap();
    }

    let observed = observed.lock().await;
    let failures: Vec<_> = observed
        .answers
        .iter()
        .filter(|(s, _, _)| *s >= 300)
        .collect();
    eprintln!(
        "outage: {} answers ({} during the outage), {} refused with 503, {} keys created, recovery {recovery:?}, slowest {:?}",
        observed.answers.len(),
        during,
        failures.len(),
        observed.created.len(),
        observed.answers.iter().map(|(_, d, _)| *d).max().unwrap()
    );
    assert!(
        observed.transport_errors.is_empty(),
        "{:?}",
        observed.transport_errors
    );
    assert!(!failures.is_empty(), "the outage was felt");
    for (status, elapsed, body) in &observed.answers {
        assert!(
            matches!(status, 200 | 201 | 503),
            "unexpected {status}: {body}"
        );
        // connect_timeout_ms is 1 s; nothing may hang much past it.
        assert!(
            *elapsed < Duration::from_millis(2500),
            "{status} took {elapsed:?}"
        );
        if *status == 503 {
            assert!(
                body.contains("temporarily_unavailable") || body.contains("\"status\":503"),
                "{body}"
            );
        }
    }
    assert!(recovery < Duration::from_secs(10), "{recovery:?}");

    // Nothing half-written: every 201 is there, and every key there has its
    // audit event (written in the same transaction).
    for id in &observed.created {
        let response = admin(
            &http,
            reqwest::Method::GET,
            format!("{node}/api/v1/keys/{id}"),
            &admin_jwt,
            None,
        )
        .await
        .unwrap();
        assert_eq!(
            response.status(),
            200,
            "key {id} answered 201 but is missing"
        );
    }
    let keys = all_pages(&http, &format!("{node}/api/v1/keys?q=outage-"), &admin_jwt).await;
    let events = all_pages(
        &http,
        &format!("{node}/api/v1/audit-events?action=key.created"),
        &admin_jwt,
    )
    .await;
    for key in &keys {
        assert!(
            events.iter().any(|e| e["target_id"] == key["id"]),
            "key {} has no key.created event",
            key["id"]
        );
    }
    assert!(keys.len() >= observed.created.len());
    no_panics(&server);
}

async fn all_pages(http: &reqwest::Client, url: &str, bearer: &str) -> Vec<Value> {
    let mut items = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let sep = if url.contains('?') { '&' } else { '?' };
        let page_url = match &cursor {
            Some(c) => format!("{url}{sep}limit=200&cursor={c}"),
            None => format!("{url}{sep}limit=200"),
        };
        let page: Value = http
            .get(page_url)
            .bearer_auth(bearer)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        items.extend(page["items"].as_array().unwrap().iter().cloned());
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return items,
        }
    }
}

// ---- crash safety on SQLite -------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_survives_kill_9_during_creations_and_revocations() {
    let db = TestDatabase::new(Backend::Sqlite);
    let (bootstrap_file, env) = bootstrap_env(&db);
    let server = ServerProcess::start(&db, &env_refs(&env)).await;
    let http = client();
    let bootstrap = read_bootstrap(&bootstrap_file);
    let (node, admin_jwt) = own_admin(&http, &server, &bootstrap).await;

    let created = Arc::new(Mutex::new(Vec::<String>::new()));
    let revoked = Arc::new(Mutex::new(Vec::<String>::new()));
    let mut workers = Vec::new();
    for w in 0..4 {
        let (http, node, jwt) = (http.clone(), node.clone(), admin_jwt.clone());
        let (created, revoked) = (created.clone(), revoked.clone());
        workers.push(tokio::spawn(async move {
            for i in 0.. {
                let Ok(response) = admin(
                    &http,
                    reqwest::Method::POST,
                    format!("{node}/api/v1/keys"),
                    &jwt,
                    Some(json!({"name": format!("crash-{w}-{i}"), "scopes": ["a"]})),
                )
                .await
                else {
                    return;
                };
                if response.status() != 201 {
                    return;
                }
                let Ok(body) = response.json::<Value>().await else {
                    return;
                };
                let id = body["id"].as_str().unwrap().to_owned();
                created.lock().await.push(id.clone());
                if i % 3 == 0 {
                    let Ok(response) = admin(
                        &http,
                        reqwest::Method::POST,
                        format!("{node}/api/v1/keys/{id}/revoke"),
                        &jwt,
                        Some(json!({"reason": "crash test"})),
                    )
                    .await
                    else {
                        return;
                    };
                    if response.status() == 200 {
                        revoked.lock().await.push(id);
                    }
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    server.signal("KILL");
    for worker in workers {
        let _ = worker.await;
    }
    let created = created.lock().await.clone();
    let revoked = revoked.lock().await.clone();
    assert!(created.len() > 20, "load ran: {}", created.len());

    let check = std::process::Command::new("python3")
        .arg("-c")
        .arg("import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); print(c.execute('pragma integrity_check').fetchone()[0])")
        .arg(db.sqlite_path())
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&check.stdout).trim(),
        "ok",
        "{check:?}"
    );

    let restarted = ServerProcess::start(&db, &[]).await;
    let (node, admin_jwt) = own_admin(&http, &restarted, &bootstrap).await;
    let keys = all_pages(&http, &format!("{node}/api/v1/keys?q=crash-"), &admin_jwt).await;
    let events = all_pages(
        &http,
        &format!("{node}/api/v1/audit-events?action=key.created"),
        &admin_jwt,
    )
    .await;
    let revocations = all_pages(
        &http,
        &format!("{node}/api/v1/audit-events?action=key.revoked"),
        &admin_jwt,
    )
    .await;
    eprintln!(
        "kill -9: {} keys answered 201, {} revocations answered 200, {} keys on disk",
        created.len(),
        revoked.len(),
        keys.len()
    );
    for id in &created {
        let key = keys.iter().find(|k| k["id"] == id.as_str());
        assert!(key.is_some(), "key {id} answered 201 but is gone");
    }
    for id in &revoked {
        let key = keys.iter().find(|k| k["id"] == id.as_str()).unwrap();
        assert_eq!(key["status"], "revoked", "{id}");
    }
    for key in &keys {
        // Complete rows: every key has its creation event, every revoked
        // key its revocation event, and every field a view needs.
        assert!(events.iter().any(|e| e["target_id"] == key["id"]), "{key}");
        if key["status"] == "revoked" {
            assert!(
                revocations.iter().any(|e| e["target_id"] == key["id"]),
                "{key}"
            );
            assert!(key["revoked_at"].is_string());
        }
        assert!(key["start"].as_str().is_some_and(|s| !s.is_empty()));
    }
    no_panics(&restarted);
}

// ---- graceful shutdown under load ------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_load_fails_no_request_and_flushes_usage() {
    let db = TestDatabase::new(Backend::Sqlite);
    let (bootstrap_file, env) = bootstrap_env(&db);
    let mut env = env;
    env.push(("KEYMINT__SERVER__DRAIN_S".into(), "1".into()));
    let mut server = ServerProcess::start(&db, &env_refs(&env)).await;
    let http = client();
    let bootstrap = read_bootstrap(&bootstrap_file);
    let (node, admin_jwt) = own_admin(&http, &server, &bootstrap).await;
    let created: Value = create_key_at(
        &http,
        &node,
        &admin_jwt,
        json!({"name": "load", "scopes": ["a"], "rate_limit_per_s": 100000}),
    )
    .await;
    let (id, secret) = (
        created["id"].as_str().unwrap().to_owned(),
        created["key"].as_str().unwrap().to_owned(),
    );

    let ok = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let failed = Arc::new(Mutex::new(Vec::<String>::new()));
    let refused = Arc::new(std::sync::atomic::AtomicU64::new(0));
    // The load balancer: it polls readiness and stops routing to the
    // replica once it answers 503 (as on SIGTERM, for `server.drain_s`).
    let routed = Arc::new(AtomicBool::new(true));
    let balancer = {
        let (node, routed) = (node.clone(), routed.clone());
        tokio::spawn(async move {
            let http = reqwest::Client::new();
            while let Ok(response) = http.get(format!("{node}/readyz")).send().await {
                if response.status() != 200 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            routed.store(false, Ordering::Relaxed);
        })
    };
    let mut workers = Vec::new();
    for _ in 0..8 {
        let (node, secret, routed) = (node.clone(), secret.clone(), routed.clone());
        let (ok, failed, refused) = (ok.clone(), failed.clone(), refused.clone());
        workers.push(tokio::spawn(async move {
            // Keep-alive connections, as a load balancer's would be.
            let http = reqwest::Client::new();
            while routed.load(Ordering::Relaxed) {
                match http
                    .post(format!("{node}/api/v1/token"))
                    .header("X-API-Key", &secret)
                    .send()
                    .await
                {
                    Ok(response) if response.status() == 200 => {
                        ok.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(response) => {
                        failed
                            .lock()
                            .await
                            .push(format!("status {}", response.status()));
                    }
                    // The listener is closed: nothing was in flight.
                    Err(err) if err.is_connect() => {
                        refused.fetch_add(1, Ordering::Relaxed);
                        return;
                    }
                    // Closed while the request was being sent or answered.
                    Err(err) => {
                        failed.lock().await.push(format!("{err:?}"));
                        return;
                    }
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let signalled = Instant::now();
    server.signal("TERM");
    let status = tokio::time::timeout(Duration::from_secs(12), server.child.wait())
        .await
        .expect("exits within the grace period")
        .unwrap();
    let exit_time = signalled.elapsed();
    for worker in workers {
        worker.await.unwrap();
    }
    balancer.await.unwrap();
    assert_eq!(
        refused.load(Ordering::Relaxed),
        0,
        "nothing was sent after the drain"
    );
    assert_eq!(status.code(), Some(0));
    let ok = ok.load(Ordering::Relaxed);
    let failed = failed.lock().await.clone();
    eprintln!(
        "sigterm: {ok} tokens issued under load, {} failed, exit 0 after {exit_time:?}",
        failed.len()
    );
    assert!(ok > 100, "load ran: {ok}");
    assert!(failed.is_empty(), "in-flight requests failed: {failed:?}");

    // Usage was flushed at shutdown: every issued token is counted.
    let restarted = ServerProcess::start(&db, &[]).await;
    let (node, admin_jwt) = own_admin(&http, &restarted, &bootstrap).await;
    let key: Value = admin(
        &http,
        reqwest::Method::GET,
        format!("{node}/api/v1/keys/{id}"),
        &admin_jwt,
        None,
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(key["tokens_issued"].as_u64(), Some(ok), "{key}");
}

// ---- secrets at rest --------------------------------------------------------

backend_tests!(no_secret_is_stored_in_clear);

async fn no_secret_is_stored_in_clear(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin_jwt = app.admin_token(&app.bootstrap_key).await;
    let mut secrets = vec![app.bootstrap_key.clone()];
    for level in ["standard", "advanced"] {
        let created = app
            .create_key(
                &admin_jwt,
                json!({"name": level, "scopes": ["a"], "security_level": level}),
            )
            .await;
        secrets.push(created["key"].as_str().unwrap().to_owned());
        let rotated: Value = app
            .call(
                "POST",
                &format!("/api/v1/keys/{}/rotate", created["id"].as_str().unwrap()),
                &admin_jwt,
                Some(json!({"grace_period_s": 60})),
            )
            .await
            .json()
            .await
            .unwrap();
        secrets.push(rotated["key"].as_str().unwrap().to_owned());
    }
    let response = app
        .exchange(crate::client::Form::XApiKey, &secrets[2], &[])
        .await;
    assert_eq!(response.status(), 200);
    // Let usage flush, so every table has been written.
    tokio::time::sleep(Duration::from_millis(400)).await;

    let dump = match backend {
        Backend::Sqlite => {
            // The raw file and its WAL: freed pages included.
            let mut bytes = std::fs::read(app.db.sqlite_path()).unwrap();
            let wal = app.db.sqlite_path().with_extension("db-wal");
            if let Ok(more) = std::fs::read(wal) {
                bytes.extend(more);
            }
            bytes
        }
        Backend::Postgres => {
            let output = std::process::Command::new("pg_dump")
                .args(["--data-only", "--no-owner"])
                .arg(app.db.url())
                .output()
                .expect("pg_dump");
            assert!(output.status.success(), "{output:?}");
            output.stdout
        }
    };
    let text = String::from_utf8_lossy(&dump);
    assert!(text.len() > 1000, "the dump has content");
    for secret in &secrets {
        assert!(
            !text.contains(secret.as_str()),
            "an API key secret is stored in clear"
        );
        // Nor its random part alone (the HMAC secret of advanced keys).
        let body = secret.rsplit('_').next().unwrap();
        assert!(
            !text.contains(&body[..body.len().min(24)]),
            "a secret's body is stored in clear"
        );
    }
    // No private key: neither PEM nor PKCS#8 DER (raw or base64).
    assert!(!text.contains("PRIVATE KEY"));
    for marker in ["MIGHAgEAMBMGByqGSM49", "MC4CAQAwBQYDK2Vw"] {
        assert!(
            !text.contains(marker),
            "a PKCS#8 private key is stored in clear"
        );
    }
    let der_p256 = [0x30, 0x81, 0x87, 0x02, 0x01, 0x00, 0x30, 0x13];
    assert!(!dump.windows(der_p256.len()).any(|w| w == der_p256));
    // The master key file is private.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(app.db.master_key_file())
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
}

// ---- connection cap and header limits ---------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_cap_wait_and_huge_headers_are_refused() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let db = TestDatabase::new(Backend::Sqlite);
    let server = ServerProcess::start(
        &db,
        &[
            ("KEYMINT__SERVER__WORKERS", "1"),
            ("KEYMINT__SERVER__MAX_CONNECTIONS", "4"),
            ("KEYMINT__SERVER__CLIENT_REQUEST_TIMEOUT_MS", "3000"),
        ],
    )
    .await;
    let addr = ("127.0.0.1", server.port);
    let request = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";

    // Four slow clients hold every slot with half a request head.
    let mut holders = Vec::new();
    for _ in 0..4 {
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\n")
            .await
            .unwrap();
        holders.push(stream);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    // A fifth is not served while they hold on…
    let mut fifth = tokio::net::TcpStream::connect(addr).await.unwrap();
    fifth.write_all(request).await.unwrap();
    let mut buf = [0u8; 64];
    let early = tokio::time::timeout(Duration::from_millis(800), fifth.read(&mut buf)).await;
    assert!(early.is_err(), "served beyond max_connections");
    // …and is served once a slot frees up.
    drop(holders.pop());
    let n = tokio::time::timeout(Duration::from_secs(5), fifth.read(&mut buf))
        .await
        .expect("served after a slot freed")
        .unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    drop(holders);

    // A request head beyond actix-http's 128 KiB head buffer is refused, not
    // buffered without bound.
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let huge = format!(
        "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(256 * 1024)
    );
    let _ = stream.write_all(huge.as_bytes()).await;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.is_empty()
            || answer.starts_with("HTTP/1.1 431")
            || answer.starts_with("HTTP/1.1 400"),
        "{answer}"
    );
    assert!(!answer.starts_with("HTTP/1.1 200"));
    no_panics(&server);
}
