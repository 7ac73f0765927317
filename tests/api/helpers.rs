//! The test harness: a real keymint on a random loopback port, over a fresh
//! SQLite file in a temp dir or a fresh PostgreSQL database that is dropped
//! when the test ends.
//!
//! PostgreSQL tests run when `KEYMINT_TEST_POSTGRES_URL` names a server
//! (e.g. `postgres://postgres@127.0.0.1:5432/test`); without it they are
//! skipped, except under `CI=true`, where they fail.

#![allow(dead_code)] // each test module uses its own part of the harness

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::{Connection, PgConnection};
use keymint::config::{Overrides, Settings};
use keymint::crypto::master::MasterKey;
use keymint::startup::{Application, StartOptions};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Generates one `#[tokio::test]` per backend for each named async fn taking
/// a `Backend`: `sqlite::name` and `postgres::name`.
#[macro_export]
macro_rules! backend_tests {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::helpers::Backend::Sqlite).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    if $crate::helpers::postgres_admin_url().is_some() {
                        super::$name($crate::helpers::Backend::Postgres).await
                    }
                }
            )*
        }
    };
}

/// The server to create test databases on, or `None` to skip. Under
/// `CI=true` a missing or unreachable server fails the test instead.
pub fn postgres_admin_url() -> Option<String> {
    let ci = std::env::var("CI").is_ok_and(|v| v == "true");
    match std::env::var("KEYMINT_TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ if ci => panic!("CI=true but KEYMINT_TEST_POSTGRES_URL is not set"),
        _ => {
            eprintln!("skipped: KEYMINT_TEST_POSTGRES_URL is not set");
            None
        }
    }
}

/// A PostgreSQL database that exists for one test.
pub struct PgDatabase {
    admin_url: String,
    pub name: String,
    pub url: String,
}

impl PgDatabase {
    pub fn create() -> Self {
        let admin_url =
            postgres_admin_url().expect("postgres tests need KEYMINT_TEST_POSTGRES_URL");
        let name = format!("keymint_test_{}", uuid::Uuid::now_v7().simple());
        let mut admin = PgConnection::establish(&admin_url)
            .unwrap_or_else(|e| panic!("cannot reach PostgreSQL for tests: {e}"));
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .expect("create test database");
        let mut url = url::Url::parse(&admin_url).expect("KEYMINT_TEST_POSTGRES_URL is a URL");
        url.set_path(&name);
        Self {
            admin_url,
            url: url.to_string(),
            name,
        }
    }

    /// Runs SQL as the administrator (outside the test database).
    pub fn admin(&self, sql: &str) {
        let mut admin = PgConnection::establish(&self.admin_url).expect("admin connection");
        admin.batch_execute(sql).expect("admin sql");
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        if let Ok(mut admin) = PgConnection::establish(&self.admin_url) {
            let _ = admin.batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ));
        }
    }
}

/// Where a test's data lives; dropped (files deleted, database dropped) with it.
pub struct TestDatabase {
    pub backend: Backend,
    pub dir: tempfile::TempDir,
    pub pg: Option<PgDatabase>,
    /// A database of the test's own (e.g. on a throwaway cluster).
    pub url_override: Option<String>,
}

impl TestDatabase {
    pub fn new(backend: Backend) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let pg = (backend == Backend::Postgres).then(PgDatabase::create);
        MasterKey::generate_file(&dir.path().join("test-master.key")).expect("master key");
        Self {
            backend,
            dir,
            pg,
            url_override: None,
        }
    }

    /// A PostgreSQL database the test manages itself.
    pub fn at_url(url: &str) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        MasterKey::generate_file(&dir.path().join("test-master.key")).expect("master key");
        Self {
            backend: Backend::Postgres,
            dir,
            pg: None,
            url_override: Some(url.to_owned()),
        }
    }

    /// The master key every server and CLI run of this test uses.
    pub fn master_key_file(&self) -> PathBuf {
        self.dir.path().join("test-master.key")
    }

    pub fn master_key(&self) -> MasterKey {
        MasterKey::from_file(&self.master_key_file(), "test").expect("master key")
    }

    /// A connection for reading what the server wrote.
    pub fn connect(&self) -> keymint::db::AnyConnection {
        let settings = self.settings("");
        keymint::db::connect(&settings.database).expect("connect to the test database")
    }

    /// Environment for child processes and CLI runs against this database.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            ("DATABASE_URL".into(), self.url()),
            (
                "KEYMINT_MASTER_KEY_FILE".into(),
                self.master_key_file().to_string_lossy().into_owned(),
            ),
            (
                "KEYMINT__DATA_DIR".into(),
                self.dir.path().to_string_lossy().into_owned(),
            ),
        ]
    }

    pub fn url(&self) -> String {
        if let Some(url) = &self.url_override {
            return url.clone();
        }
        match &self.pg {
            Some(pg) => pg.url.clone(),
            None => format!("sqlite://{}", self.sqlite_path().display()),
        }
    }

    pub fn sqlite_path(&self) -> PathBuf {
        self.dir.path().join("keymint.db")
    }

    pub fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    /// Settings for a server on this database, with `extra` TOML layered on.
    pub fn settings(&self, extra: &str) -> Settings {
        let overrides = Overrides {
            data_dir: Some(self.dir.path().to_path_buf()),
            bind: Some("127.0.0.1:0".parse().expect("addr")),
            database_url: Some(self.url()),
        };
        let base = "[server]\nworkers = 1\nshutdown_timeout_s = 2\n\
                    [database]\nmax_connections = 4\n\
                    [usage]\nflush_interval_ms = 200\n\
                    [limits]\nfailed_auth_per_minute = 10000\nadmin_per_s = 100000\n\
                    [metrics]\nbind = \"127.0.0.1:0\"\n";
        Settings::from_toml(&[base, extra], &overrides).expect("test settings")
    }
}

pub struct TestApp {
    pub address: String,
    pub port: u16,
    pub metrics_port: u16,
    pub client: reqwest::Client,
    pub db: TestDatabase,
    /// The bootstrap key's secret (every reserved scope, system tenant).
    pub bootstrap_key: String,
    pub issuer: String,
    pub admin_audience: String,
}

pub async fn spawn_app(backend: Backend) -> TestApp {
    spawn_app_with(backend, "").await
}

/// Starts keymint in-process with `extra` TOML layered on the test defaults.
pub async fn spawn_app_with(backend: Backend, extra: &str) -> TestApp {
    keymint::telemetry::init(keymint::config::LogFormat::Human, "warn");
    let db = TestDatabase::new(backend);
    let bootstrap_file = db.dir.path().join("bootstrap.key");
    let options = StartOptions {
        print_bootstrap_key: false,
        bootstrap_key_file: Some(bootstrap_file.clone()),
        master_key_file: Some(db.master_key_file()),
        // The test process's signals are not the embedded server's.
        handle_signals: false,
    };
    let app = Application::build_with(db.settings(extra), options)
        .await
        .expect("keymint starts");
    let port = app.port();
    let metrics_port = app.metrics_port();
    tokio::spawn(app.run_until_stopped());
    let bootstrap_key = std::fs::read_to_string(&bootstrap_file)
        .expect("bootstrap key file")
        .trim()
        .to_owned();
    let issuer = format!("http://127.0.0.1:{port}");
    TestApp {
        address: issuer.clone(),
        port,
        metrics_port,
        client: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client"),
        db,
        bootstrap_key,
        admin_audience: format!("{issuer}/api"),
        issuer,
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .send()
            .await
            .expect("request")
    }

    /// Creates a key with the CLI; returns (id, secret).
    pub async fn cli_key(&self, args: &[&str]) -> (String, String) {
        let mut all = vec!["keys", "create"];
        all.extend_from_slice(args);
        let (code, stdout, stderr) = run_cli_on(&self.db, &all).await;
        assert_eq!(code, 0, "{stderr}");
        let secret = stdout.trim().to_owned();
        assert_eq!(stdout.lines().count(), 1, "only the secret on stdout");
        let id = stderr
            .split("created key ")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .expect("the id on stderr")
            .to_owned();
        (id, secret)
    }
}

pub const BIN: &str = env!("CARGO_BIN_EXE_keymint");

/// A `keymint serve` child process on a random port.
pub struct ServerProcess {
    pub child: Child,
    pub port: u16,
    /// Every line the process has written to stderr so far.
    pub stderr: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl ServerProcess {
    pub async fn start(db: &TestDatabase, extra_env: &[(&str, &str)]) -> Self {
        Self::start_with_args(db, &[], extra_env).await
    }

    pub async fn start_with_args(
        db: &TestDatabase,
        args: &[&str],
        extra_env: &[(&str, &str)],
    ) -> Self {
        Self::start_bound(db, "127.0.0.1:0", args, extra_env).await
    }

    /// Binds `bind` (e.g. a port reserved with [`free_port`]), for replicas
    /// that must share an issuer URL known before they start.
    pub async fn start_bound(
        db: &TestDatabase,
        bind: &str,
        args: &[&str],
        extra_env: &[(&str, &str)],
    ) -> Self {
        let mut command = Command::new(BIN);
        command
            .arg("serve")
            .args(args)
            .args(["--bind", bind])
            .args(["--database-url", &db.url()])
            .args(["--data-dir", &db.data_dir().to_string_lossy()])
            .env("RUST_LOG", "info")
            .env("KEYMINT_MASTER_KEY_FILE", db.master_key_file())
            .env("KEYMINT__SERVER__SHUTDOWN_TIMEOUT_S", "10")
            .env("KEYMINT__METRICS__BIND", "127.0.0.1:0")
            // Tests drive the admin API faster than an operator would.
            .env("KEYMINT__LIMITS__ADMIN_PER_S", "100000")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        for (k, v) in extra_env {
            command.env(k, v);
        }
        let mut child = command.spawn().expect("spawn keymint");
        let stderr = child.stderr.take().expect("stderr");
        let mut lines = BufReader::new(stderr).lines();
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
        // Keep draining stderr (so the child never blocks on a full pipe),
        // keeping the lines for tests that read the logs.
        let stderr = std::sync::Arc::new(std::sync::Mutex::new(seen));
        let sink = stderr.clone();
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                if let Ok(mut all) = sink.lock() {
                    all.push(line);
                }
            }
        });
        Self {
            child,
            port,
            stderr,
        }
    }

    /// Kills the process and waits until it is gone.
    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
    }

    /// Where to reach it, e.g. `http://127.0.0.1:1234`.
    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn pid(&self) -> u32 {
        self.child.id().expect("running")
    }

    pub fn signal(&self, name: &str) {
        let status = std::process::Command::new("kill")
            .args([format!("-{name}"), self.pid().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
    }
}

/// Runs the CLI against a test database.
pub async fn run_cli_on(db: &TestDatabase, args: &[&str]) -> (i32, String, String) {
    let env = db.env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    run_cli(args, &env).await
}

pub async fn run_cli(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let mut command = Command::new(BIN);
    command.args(args).stdin(Stdio::null());
    for (k, v) in env {
        command.env(k, v);
    }
    let output = tokio::time::timeout(Duration::from_secs(30), command.output())
        .await
        .expect("the command finishes")
        .expect("run keymint");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// A PostgreSQL cluster of the test's own, in a temp dir on a free port, so
/// a test can stop and start it without harming anyone else. `initdb` and
/// `postgres` refuse to run as root, so as root they run as `postgres`.
pub struct PgCluster {
    dir: tempfile::TempDir,
    pub port: u16,
    bin: PathBuf,
    /// Whether the tools must run as `postgres` (they refuse root).
    as_root: bool,
}

impl PgCluster {
    pub fn start() -> Self {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .expect("PostgreSQL binaries under /usr/lib/postgresql")
            .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
            .filter(|p| p.join("initdb").is_file())
            .max()
            .expect("an initdb");
        let dir = tempfile::tempdir().expect("temp dir");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let as_root = std::env::var("USER").as_deref() == Ok("root")
            || std::process::Command::new("id")
                .arg("-u")
                .output()
                .is_ok_and(|o| o.stdout.starts_with(b"0\n"));
        let cluster = Self {
            dir,
            port,
            bin,
            as_root,
        };
        if cluster.as_root {
            let status = std::process::Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(cluster.dir.path())
                .status()
                .expect("chown");
            assert!(status.success());
        }
        let data = cluster.data();
        cluster.run(&[
            "initdb",
            "-D",
            &data,
            "-A",
            "trust",
            "-U",
            "postgres",
            "--no-sync",
        ]);
        cluster.up();
        cluster
    }

    fn data(&self) -> String {
        self.dir.path().join("data").to_string_lossy().into_owned()
    }

    /// A PostgreSQL tool, run as `postgres` when we are root.
    fn tool(&self, name: &str) -> std::process::Command {
        let program = self.bin.join(name);
        if self.as_root {
            let mut c = std::process::Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(program);
            c
        } else {
            std::process::Command::new(program)
        }
    }

    fn run(&self, args: &[&str]) {
        let output = self
            .tool(args[0])
            .args(&args[1..])
            .output()
            .expect("run a PostgreSQL tool");
        assert!(
            output.status.success(),
            "{args:?}: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// Starts the server and waits until it accepts connections.
    pub fn up(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=50",
            self.port,
            self.dir.path().display()
        );
        let log = self.dir.path().join("log").to_string_lossy().into_owned();
        self.run(&[
            "pg_ctl",
            "-D",
            &self.data(),
            "-o",
            &options,
            "-l",
            &log,
            "-w",
            "start",
        ]);
    }

    /// Stops it the hard way: connections are cut, nothing is flushed politely.
    pub fn down(&self) {
        self.run(&[
            "pg_ctl",
            "-D",
            &self.data(),
            "-m",
            "immediate",
            "-w",
            "stop",
        ]);
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        let _ = self
            .tool("pg_ctl")
            .args(["-D", &self.data(), "-m", "immediate", "stop"])
            .output();
    }
}

/// A loopback port free right now (bound, then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("a free port")
}

/// One request a [`Receiver`] got.
#[derive(Debug, Clone)]
pub struct Received {
    /// The compact SET.
    pub body: String,
    pub content_type: Option<String>,
    pub authorization: Option<String>,
    /// What the receiver answered.
    pub status: u16,
}

#[derive(Default)]
struct ReceiverState {
    got: std::sync::Mutex<Vec<Received>>,
    /// Statuses to answer before answering 202 again.
    failures: std::sync::Mutex<std::collections::VecDeque<u16>>,
    /// The `Location` of a 3xx answer.
    location: std::sync::Mutex<Option<String>>,
}

/// A security-event receiver (RFC 8935) on a loopback port: records every
/// push, answers 202 unless told to fail the next ones.
pub struct Receiver {
    pub port: u16,
    state: std::sync::Arc<ReceiverState>,
    handle: actix_web::dev::ServerHandle,
}

async fn receive(
    req: actix_web::HttpRequest,
    body: actix_web::web::Bytes,
    state: actix_web::web::Data<std::sync::Arc<ReceiverState>>,
) -> actix_web::HttpResponse {
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let status = state
        .failures
        .lock()
        .expect("receiver")
        .pop_front()
        .unwrap_or(202);
    state.got.lock().expect("receiver").push(Received {
        body: String::from_utf8_lossy(&body).into_owned(),
        content_type: header("content-type"),
        authorization: header("authorization"),
        status,
    });
    actix_web::HttpResponse::build(actix_web::http::StatusCode::from_u16(status).expect("a status"))
        .finish()
}

impl Receiver {
    pub async fn start() -> Self {
        Self::start_on(0).await
    }

    /// On a given port (`0`: any), e.g. one a stream was registered with
    /// before the receiver came up.
    pub async fn start_on(port: u16) -> Self {
        let state = std::sync::Arc::new(ReceiverState::default());
        let data = actix_web::web::Data::new(state.clone());
        let server = actix_web::HttpServer::new(move || {
            actix_web::App::new()
                .app_data(data.clone())
                .default_service(actix_web::web::to(receive))
        })
        .workers(1)
        .disable_signals()
        .bind(("127.0.0.1", port))
        .expect("receiver binds");
        let port = server.addrs()[0].port();
        let server = server.run();
        let handle = server.handle();
        tokio::spawn(server);
        Self {
            port,
            state,
            handle,
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/events", self.port)
    }

    /// Answers the next `n` pushes with `status`.
    pub fn fail_next(&self, n: usize, status: u16) {
        let mut failures = self.state.failures.lock().expect("receiver");
        failures.extend(std::iter::repeat_n(status, n));
    }

    /// Answers the next `n` pushes with a 307 to `location`.
    pub fn redirect_next(&self, n: usize, location: &str) {
        *self.state.location.lock().expect("receiver") = Some(location.to_owned());
        self.fail_next(n, 307);
    }

    /// Every push so far, accepted or not.
    pub fn received(&self) -> Vec<Received> {
        self.state.got.lock().expect("receiver").clone()
    }

    /// The pushes it accepted (202).
    pub fn accepted(&self) -> Vec<Received> {
        self.received()
            .into_iter()
            .filter(|r| r.status == 202)
            .collect()
    }

    /// Waits until `done` holds for what was accepted, up to `within`.
    pub async fn wait_until(
        &self,
        within: Duration,
        done: impl Fn(&[Received]) -> bool,
    ) -> Vec<Received> {
        let started = std::time::Instant::now();
        loop {
            let accepted = self.accepted();
            if done(&accepted) {
                return accepted;
            }
            assert!(
                started.elapsed() < within,
                "the receiver did not get what was expected within {within:?}; it has {} push(es): {:#?}",
                accepted.len(),
                self.received()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn stop(self) {
        self.handle.stop(false).await;
    }
}

/// A loopback port that accepts connections and never answers: a receiver
/// that hangs until the caller's timeout. Its connections live as long as
/// the task.
pub async fn black_hole() -> (u16, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("black hole binds");
    let port = listener.local_addr().expect("addr").port();
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    (port, task)
}
