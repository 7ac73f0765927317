//! Soak: long runs of requests against a `keymint serve` child, with nobody
//! scraping `/metrics`, so the resident memory measured is the server's own
//! (`VmRSS` in `/proc/<pid>/status`). Finding 1 of issue 14: histogram
//! samples kept until a scrape, one metric series per made-up method.
//!
//! The load comes from a small pipelining HTTP/1.1 client over raw TCP, so
//! the test's own work stays small next to the server's on 2 busy cores.

use std::collections::BTreeMap;
use std::time::Instant;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::backend_tests;
use crate::helpers::{Backend, ServerProcess, TestDatabase, run_cli_on};

/// Requests written before their answers are read, per connection.
const PIPELINE: usize = 32;

/// What a run got back: answers per status, and requests whose connection
/// closed before they were answered.
#[derive(Debug, Default)]
struct Tally {
    statuses: BTreeMap<u16, usize>,
    unanswered: usize,
}

impl Tally {
    fn answered(&self) -> usize {
        self.statuses.values().sum()
    }

    fn merge(&mut self, other: Tally) {
        for (status, n) in other.statuses {
            *self.statuses.entry(status).or_default() += n;
        }
        self.unanswered += other.unanswered;
    }
}

/// Reads one response from `buf` (refilled from `stream`): its status, with
/// the body skipped by `Content-Length`. `None` when the server closed.
async fn read_response(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Option<u16> {
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).into_owned();
            let status: u16 = head.split(' ').nth(1)?.parse().ok()?;
            let length: usize = head
                .lines()
                .filter_map(|l| l.split_once(':'))
                .find(|(name, _)| name.eq_ignore_ascii_case("content-length"))
                .and_then(|(_, v)| v.trim().parse().ok())
                .unwrap_or(0);
            let total = end + 4 + length;
            while buf.len() < total {
                if !fill(stream, buf).await {
                    return None;
                }
            }
            buf.drain(..total);
            return Some(status);
        }
        if !fill(stream, buf).await {
            return None;
        }
    }
}

async fn fill(stream: &mut TcpStream, buf: &mut Vec<u8>) -> bool {
    let mut chunk = [0u8; 16 * 1024];
    match stream.read(&mut chunk).await {
        Ok(0) | Err(_) => false,
        Ok(n) => {
            buf.extend_from_slice(&chunk[..n]);
            true
        }
    }
}

/// Sends `total` requests (`request(i)` is the i-th, whole, as bytes) over
/// `connections` keep-alive connections, [`PIPELINE`] at a time. A
/// connection the server closes is opened again.
async fn drive<F>(port: u16, connections: usize, total: usize, request: F) -> Tally
where
    F: Fn(usize) -> Vec<u8> + Send + Sync + 'static,
{
    let request = std::sync::Arc::new(request);
    let mut tasks = Vec::new();
    for c in 0..connections {
        let request = request.clone();
        tasks.push(tokio::spawn(async move {
            let mut tally = Tally::default();
            let mut stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
            let mut buf = Vec::new();
            let mut i = c;
            while i < total {
                let batch: Vec<usize> = (i..total).step_by(connections).take(PIPELINE).collect();
                i = batch.last().map_or(total, |last| last + connections);
                let mut bytes = Vec::new();
                for &n in &batch {
                    bytes.extend_from_slice(&request(n));
                }
                let mut answered = 0;
                if stream.write_all(&bytes).await.is_ok() {
                    while answered < batch.len() {
                        match read_response(&mut stream, &mut buf).await {
                            Some(status) => {
                                *tally.statuses.entry(status).or_default() += 1;
                                answered += 1;
                            }
                            None => break,
                        }
                    }
                }
                if answered < batch.len() {
                    tally.unanswered += batch.len() - answered;
                    buf.clear();
                    stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
                }
            }
            tally
        }));
    }
    let mut tally = Tally::default();
    for task in tasks {
        tally.merge(task.await.unwrap());
    }
    tally
}

/// The server's resident memory, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

/// A port nobody listens on now, for the child's metrics listener.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `keymint serve` with quiet logs (a line per request would be most of
/// the work) and `/metrics` on a port the test knows and never scrapes
/// until the end.
async fn soak_server(db: &TestDatabase) -> (ServerProcess, u16) {
    let metrics_port = free_port();
    let metrics_bind = format!("127.0.0.1:{metrics_port}");
    let server = ServerProcess::start(
        db,
        &[
            ("RUST_LOG", "warn,keymint::cli=info"),
            ("KEYMINT__SERVER__WORKERS", "2"),
            ("KEYMINT__METRICS__BIND", &metrics_bind),
        ],
    )
    .await;
    (server, metrics_port)
}

/// Keys with a rate limit the buckets never reach, as `(id, secret)`.
async fn seed_keys(db: &TestDatabase, count: usize) -> Vec<(String, String)> {
    let out = db.dir.path().join("soak-keys.txt");
    let (code, _, stderr) = run_cli_on(
        db,
        &[
            "bench-seed",
            "--count",
            &count.to_string(),
            "--out",
            &out.to_string_lossy(),
        ],
    )
    .await;
    assert_eq!(code, 0, "{stderr}");
    std::fs::read_to_string(&out)
        .unwrap()
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(id, secret)| (id.to_owned(), secret.to_owned()))
        .collect()
}

fn exchange_request(secret: &str) -> Vec<u8> {
    format!(
        "POST /api/v1/token HTTP/1.1\r\nHost: soak\r\nX-API-Key: {secret}\r\nContent-Length: 0\r\n\r\n"
    )
    .into_bytes()
}

fn get_request(method: &str, path: &str) -> Vec<u8> {
    format!("{method} {path} HTTP/1.1\r\nHost: soak\r\n\r\n").into_bytes()
}

async fn scrape(port: u16) -> String {
    reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// The soak, sized for CI (a debug build on 2 shared cores, about half a
/// minute per backend). A debug build exchanges a few hundred tokens a
/// second on PostgreSQL, so exchanges are far fewer than the 200k;
/// cheap requests (health, JWKS) make up the rest, 400k of them: every
/// request records a latency sample, and it was the samples that were kept
/// (about 20 bytes each) until a scrape.
const SOAK_EXCHANGES: usize = 8_000;
const SOAK_CHEAP: usize = 400_000;
const PHASES: usize = 4;
/// Growth allowed after the warm-up, in KiB: allocator slack (per-thread
/// arenas, the blocking pool's threads coming and going). Without upkeep
/// the samples of this run alone took about 8 MiB, and kept growing.
const RSS_GROWTH_BOUND_KIB: u64 = 4 * 1024;

/// One part of the soak: `exchanges` token exchanges cycling over the
/// keys on 2 connections, alongside `cheap` health and JWKS requests on 4.
async fn soak_phase(port: u16, secrets: &[String], exchanges: usize, cheap: usize) -> Tally {
    let secrets = secrets.to_vec();
    let (mut tally, other) = tokio::join!(
        drive(port, 2, exchanges, move |i| exchange_request(
            &secrets[i % secrets.len()]
        )),
        drive(port, 4, cheap, |i| if i % 4 == 0 {
            get_request("GET", "/.well-known/jwks.json")
        } else {
            get_request("GET", "/healthz")
        }),
    );
    tally.merge(other);
    tally
}

async fn rss_stays_flat_without_scrapes(backend: Backend) {
    // Arrange: many keys (the per-key maps see them all), a server nobody
    // scrapes, warmed up so its pools and caches are full.
    let db = TestDatabase::new(backend);
    let keys = seed_keys(&db, 500).await;
    let secrets: Vec<String> = keys.into_iter().map(|(_, s)| s).collect();
    let (server, metrics_port) = soak_server(&db).await;
    let pid = server.pid();
    let warm_up = soak_phase(server.port, &secrets, 2_000, 40_000).await;
    assert_eq!(warm_up.unanswered, 0, "{warm_up:?}");

    // Act
    let started = Instant::now();
    let mut series = vec![rss_kib(pid)];
    let mut tally = Tally::default();
    for _ in 0..PHASES {
        let part = soak_phase(
            server.port,
            &secrets,
            SOAK_EXCHANGES / PHASES,
            SOAK_CHEAP / PHASES,
        )
        .await;
        tally.merge(part);
        series.push(rss_kib(pid));
    }
    let elapsed = started.elapsed();

    // Assert
    let total = SOAK_EXCHANGES + SOAK_CHEAP;
    let (before, after) = (series[0], series[PHASES]);
    eprintln!("soak ({backend:?}): {total} requests in {elapsed:?}, RSS (KiB) {series:?}");
    assert_eq!(tally.unanswered, 0, "{tally:?}");
    assert_eq!(tally.answered(), total);
    assert!(
        tally.statuses.keys().all(|s| *s == 200),
        "every request succeeds: {tally:?}"
    );
    assert!(
        after.saturating_sub(before) < RSS_GROWTH_BOUND_KIB,
        "RSS grew from {before} KiB to {after} KiB over {total} requests with no scrape: {series:?}"
    );
    // Upkeep folded the samples in; none were lost.
    let text = scrape(metrics_port).await;
    let served: f64 = text
        .lines()
        .filter(|l| l.starts_with("keymint_http_request_duration_seconds_count"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert!(served >= total as f64, "{served} samples in\n{text}");
    server.stop().await;
}

/// A method name: made up, now and then 7 KiB long.
fn made_up_method(i: usize) -> String {
    if i.is_multiple_of(100) {
        format!("LONG{i}{}", "X".repeat(7 * 1024))
    } else {
        format!("M{i:x}")
    }
}

const RANDOM_REQUESTS: usize = 200_000;
const RANDOM_WARM_UP: usize = 20_000;
/// Before the fix every made-up method became a metric series of its own
/// (the issue measured 28 MiB for 20,000; 86 MiB for 3,000 long ones).
const RANDOM_RSS_GROWTH_BOUND_KIB: u64 = 4 * 1024;
/// /metrics after this run is about 5 KB; before the fix it grew by a
/// series per made-up method (the issue saw 5.6 MB after 20,000).
const METRICS_BYTES_BOUND: usize = 64 * 1024;

async fn random_methods_and_paths_leave_memory_and_metrics_bounded(backend: Backend) {
    // Arrange
    let db = TestDatabase::new(backend);
    let (server, metrics_port) = soak_server(&db).await;
    let pid = server.pid();
    let request = |i: usize| -> Vec<u8> {
        match i % 4 {
            0 => get_request(&made_up_method(i), "/healthz"),
            1 => get_request("GET", &format!("/no/such/{i}")),
            2 => get_request(&made_up_method(i), &format!("/api/v1/keys/{i}")),
            _ => get_request("GET", "/healthz"),
        }
    };
    let warm_up = drive(server.port, 4, RANDOM_WARM_UP, move |i| {
        get_request(["GET", "PUT", "BREW"][i % 3], "/healthz")
    })
    .await;
    assert_eq!(warm_up.unanswered, 0, "{warm_up:?}");
    let before = rss_kib(pid);

    // Act
    let started = Instant::now();
    let tally = drive(server.port, 4, RANDOM_REQUESTS, request).await;
    let elapsed = started.elapsed();
    let after = rss_kib(pid);

    // Assert
    eprintln!(
        "random ({backend:?}): {RANDOM_REQUESTS} requests in {elapsed:?}, RSS {before} KiB -> {after} KiB, {tally:?}"
    );
    let text = scrape(metrics_port).await;
    eprintln!("random ({backend:?}): /metrics is {} bytes", text.len());
    assert_eq!(tally.unanswered, 0, "{tally:?}");
    assert!(
        after.saturating_sub(before) < RANDOM_RSS_GROWTH_BOUND_KIB,
        "RSS grew from {before} KiB to {after} KiB over {RANDOM_REQUESTS} requests with made-up methods and paths"
    );
    assert!(
        text.len() < METRICS_BYTES_BOUND,
        "/metrics is {} bytes after made-up methods and paths",
        text.len()
    );
    let routes: Vec<&str> = keymint::startup::ROUTES.iter().map(|(_, r)| *r).collect();
    for route in label_values(&text, "route") {
        assert!(
            route == "unmatched" || routes.contains(&route.as_str()),
            "route label {route:.40} is not a pattern of the route table"
        );
    }
    for method in label_values(&text, "method") {
        assert!(
            [
                "GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "other"
            ]
            .contains(&method.as_str()),
            "method label {method:.40} is not in the fixed set"
        );
    }
    server.stop().await;
}

/// Every value a label takes in a Prometheus text exposition.
fn label_values(text: &str, label: &str) -> std::collections::BTreeSet<String> {
    let needle = format!("{label}=\"");
    let mut values = std::collections::BTreeSet::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        for (at, _) in line.match_indices(&needle) {
            if let Some(value) = line[at + needle.len()..].split('"').next() {
                values.insert(value.to_owned());
            }
        }
    }
    values
}

backend_tests!(
    rss_stays_flat_without_scrapes,
    random_methods_and_paths_leave_memory_and_metrics_bounded,
);
