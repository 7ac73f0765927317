//! Building and running the server: the shared state, the whole route table
//! in one place, and the listener (bound here so tests can ask for port 0).

use std::io::IsTerminal;
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::Server;
use actix_web::middleware::{DefaultHeaders, from_fn};
use actix_web::{App, HttpServer, web};
use chrono::Utc;

use crate::app::AppState;
use crate::audit::denials::AdminDenials;
use crate::bootstrap;
use crate::config::Settings;
use crate::crypto::check;
use crate::crypto::master::{MasterKey, MasterKeyError};
use crate::db::{self, AnyConnection, DbError};
use crate::input::body::BODY_LIMIT;
use crate::routes::{
    audit, docs, fallback, health, keys, oauth, settings, signing_keys, tenants, token, wellknown,
};
use crate::telemetry;
use crate::tokens::signing::{self, KeyRing};
use crate::usage::Usage;

/// Choices made by whoever starts the server, beyond the configuration.
#[derive(Debug, Clone, Default)]
pub struct StartOptions {
    /// Print a new bootstrap key on stdout even when it is not a terminal.
    pub print_bootstrap_key: bool,
    /// Write a new bootstrap key here (`KEYMINT_BOOTSTRAP_KEY_FILE`).
    pub bootstrap_key_file: Option<PathBuf>,
    /// Read the master key from this file instead of the environment.
    pub master_key_file: Option<PathBuf>,
    /// Stop on SIGTERM/SIGINT/SIGQUIT (draining first). Off for servers
    /// embedded in another process, such as the tests', whose signals are
    /// not theirs to take.
    pub handle_signals: bool,
}

impl StartOptions {
    pub fn from_env(print_bootstrap_key: bool) -> Self {
        Self {
            print_bootstrap_key,
            bootstrap_key_file: std::env::var_os(bootstrap::KEY_FILE_ENV)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from),
            master_key_file: None,
            handle_signals: true,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("cannot bind {addr}: {source}")]
    Bind {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("database {target}: {source}")]
    Database { target: String, source: DbError },
    #[error("master key: {0}")]
    MasterKey(String),
    #[error("signing keys: {0}")]
    Signing(#[from] signing::SigningError),
    #[error("bootstrap: {0}")]
    Bootstrap(#[from] bootstrap::BootstrapError),
    #[error("{0}")]
    Other(String),
}

pub struct Application {
    port: u16,
    metrics_port: u16,
    server: Server,
    metrics_server: Server,
    state: web::Data<AppState>,
    handle_signals: bool,
}

impl Application {
    /// Connects, migrates and binds; the server does not serve until
    /// [`Application::run_until_stopped`].
    pub async fn build(settings: Settings) -> Result<Self, StartupError> {
        Self::build_with(settings, StartOptions::default()).await
    }

    pub async fn build_with(
        mut settings: Settings,
        options: StartOptions,
    ) -> Result<Self, StartupError> {
        crate::tokens::crypto::install();
        // Start-up (migrations included, see `prepare`) runs on one direct
        // connection; the pool (and its background threads) exists only
        // once start-up has succeeded, so a failed start exits with nothing
        // half-open.
        let listener =
            TcpListener::bind(settings.server.bind).map_err(|source| StartupError::Bind {
                addr: settings.server.bind,
                source,
            })?;
        let bound = listener
            .local_addr()
            .map_err(|e| StartupError::Other(e.to_string()))?;
        settings.bound_to(bound);
        let port = bound.port();
        let settings = Arc::new(settings);
        let handle_signals = options.handle_signals;
        let prepared = {
            let settings = settings.clone();
            tokio::task::spawn_blocking(move || prepare(&settings, &options))
                .await
                .map_err(|e| StartupError::Other(e.to_string()))??
        };
        let pool = db::pool(&settings.database);
        let state = web::Data::new(AppState {
            settings: settings.clone(),
            pool,
            keyring: Arc::new(prepared.keyring),
            usage: Arc::new(Usage::default()),
            denials: Arc::new(AdminDenials::default()),
            master: Arc::new(prepared.master),
            limiter: Arc::new(crate::limits::Limiter::new(
                settings.limits.failed_auth_per_minute,
            )),
            admin_limiter: Arc::new(crate::limits::AdminLimiter::new(
                settings.limits.admin_per_s,
            )),
            admin_lane: Arc::new(db::AdminLane::new(&settings.database)),
            draining: Arc::default(),
        });
        if let Some(secret) = prepared.bootstrap_secret {
            println!("{}{}", bootstrap::STDOUT_MARKER, secret.expose());
        }
        let server = serve(listener, state.clone(), &settings)?;
        let (metrics_server, metrics_port) = serve_metrics(state.clone(), &settings)?;
        Ok(Self {
            port,
            metrics_port,
            server,
            metrics_server,
            state,
            handle_signals,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The port of the metrics listener (`metrics.bind`).
    pub fn metrics_port(&self) -> u16 {
        self.metrics_port
    }

    /// Serves until SIGTERM/SIGINT (or a stop through the server handle),
    /// letting in-flight requests finish within `server.shutdown_timeout_s`.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let background = spawn_background(self.state.clone());
        let metrics_upkeep = tokio::spawn(crate::metrics::upkeep());
        let metrics = self.metrics_server.handle();
        let metrics_task = tokio::spawn(self.metrics_server);
        let signals = self
            .handle_signals
            .then(|| tokio::spawn(stop_on_signal(self.server.handle(), self.state.clone())));
        let served = self.server.await;
        if let Some(signals) = signals {
            signals.abort();
        }
        background.abort();
        metrics_upkeep.abort();
        metrics.stop(true).await;
        let _ = metrics_task.await;
        // Whatever was counted since the last flush is written before exit.
        if let Err(err) = self.state.usage.flush(&self.state.pool).await {
            tracing::warn!(error = %err, "final usage flush failed");
        }
        if let Err(err) = self.state.denials.flush(&self.state.pool).await {
            tracing::warn!(error = %err, "final admin.denied flush failed");
        }
        served
    }
}

/// SIGTERM/SIGINT: drain (readiness 503, `Connection: close`, still
/// serving) for `server.drain_s`, then stop accepting and let in-flight
/// requests finish within `server.shutdown_timeout_s`. SIGQUIT: stop now.
async fn stop_on_signal(server: actix_web::dev::ServerHandle, state: web::Data<AppState>) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int), Ok(mut quit)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::quit()),
    ) else {
        tracing::error!("cannot listen for signals; stop the process with SIGKILL");
        return;
    };
    let graceful = tokio::select! {
        _ = term.recv() => true,
        _ = int.recv() => true,
        _ = quit.recv() => false,
    };
    if graceful {
        state
            .draining
            .store(true, std::sync::atomic::Ordering::Relaxed);
        let drain = Duration::from_secs(state.settings.server.drain_s);
        tracing::info!(drain_s = drain.as_secs(), "shutting down: draining");
        tokio::time::sleep(drain).await;
    }
    tracing::info!(graceful, "stopping");
    server.stop(graceful).await;
}

struct Prepared {
    master: MasterKey,
    keyring: KeyRing,
    bootstrap_secret: Option<crate::keys::secret::ApiKeySecret>,
}

/// Blocking start-up work: migrations, master key, signing keys, bootstrap.
/// All of it runs under the start-up lock, so replicas starting together on
/// a new database take turns: the first does the work, the others find it
/// done, and that is success.
fn prepare(settings: &Settings, options: &StartOptions) -> Result<Prepared, StartupError> {
    let database = |source| StartupError::Database {
        target: settings.database.target.describe(),
        source,
    };
    let mut conn = db::connect(&settings.database).map_err(database)?;
    let conn = &mut conn;
    let output = bootstrap::Output {
        stdout: options.print_bootstrap_key || std::io::stdout().is_terminal(),
        file: options.bootstrap_key_file.clone(),
    };
    // Set once the bootstrap key file holds a secret: if the lock's commit
    // then fails (SQLite), that key does not exist and the file must go.
    let mut wrote_file = None;
    let locked = db::with_startup_lock(conn, |conn| {
        // The time once the lock is held: a replica that waited must judge
        // the keys the first one just made by the time it sees them, or a
        // key activated "in its future" looks missing and is made again.
        let now = Utc::now().naive_utc();
        let applied = db::migrate(conn).map_err(database)?;
        if applied > 0 {
            tracing::info!(applied, "database migrations applied");
        }
        let master = open_master_key(settings, conn, options.master_key_file.as_deref())?;
        signing::ensure_keys(conn, &master, &settings.signing, now)?;
        let secret = bootstrap::run(
            conn,
            &output,
            settings.bootstrap.ttl_s,
            &settings.tokens.key_prefix,
            now,
        )?;
        if secret.is_some() {
            wrote_file = output.file.clone();
        }
        Ok::<_, StartupError>((master, secret))
    });
    let (master, bootstrap_secret) = match locked {
        Ok(result) => result?,
        Err(err) => {
            if let Some(path) = wrote_file {
                let _ = std::fs::remove_file(path);
            }
            return Err(database(err));
        }
    };
    let now = Utc::now().naive_utc();
    let rows = signing::load_rows(conn).map_err(signing::SigningError::from)?;
    let keyring = KeyRing::load(&rows, &master, &settings.signing, now)?;
    let bootstrap_secret = bootstrap_secret.filter(|_| output.stdout);
    Ok(Prepared {
        master,
        keyring,
        bootstrap_secret,
    })
}

/// Finds the master key and proves it is the one the database was written
/// with. A key is generated only for SQLite on a loopback bind, and only for
/// a database that has never had one: a wrong or lost key stops the start
/// and changes nothing. Runs under the start-up lock, so processes starting
/// together generate and record one key.
pub fn open_master_key(
    settings: &Settings,
    conn: &mut AnyConnection,
    explicit_file: Option<&std::path::Path>,
) -> Result<MasterKey, StartupError> {
    let database = |source| StartupError::Database {
        target: settings.database.target.describe(),
        source,
    };
    db::with_startup_lock(conn, |conn| find_master_key(settings, conn, explicit_file))
        .map_err(database)?
}

fn find_master_key(
    settings: &Settings,
    conn: &mut AnyConnection,
    explicit_file: Option<&std::path::Path>,
) -> Result<MasterKey, StartupError> {
    let fail = |e: MasterKeyError| StartupError::MasterKey(e.to_string());
    let database = |source: DbError| StartupError::Database {
        target: settings.database.target.describe(),
        source,
    };
    let stored = check::stored(conn).map_err(|e| database(e.into()))?;
    let from_env = match explicit_file {
        Some(path) => Some(MasterKey::from_file(path, "master key file").map_err(fail)?),
        None => MasterKey::from_env().map_err(fail)?,
    };
    let master = match from_env {
        Some(key) => key,
        None if settings.database.target.is_sqlite() && settings.server.bind.ip().is_loopback() => {
            let path = settings.data_dir.join("master.key");
            if path.exists() {
                MasterKey::from_file(&path, "data-dir master.key").map_err(fail)?
            } else if stored.is_some() {
                return Err(StartupError::MasterKey(format!(
                    "{} is missing and the database was written with a master key; set KEYMINT_MASTER_KEY_FILE",
                    path.display()
                )));
            } else {
                db::create_private_dir(&settings.data_dir)
                    .map_err(|e| StartupError::MasterKey(e.to_string()))?;
                let key = MasterKey::generate_file(&path).map_err(fail)?;
                tracing::warn!(
                    path = %path.display(),
                    "generated a master key; backups of the data directory contain it"
                );
                key
            }
        }
        None => {
            return Err(StartupError::MasterKey(
                "set KEYMINT_MASTER_KEY_FILE or KEYMINT_MASTER_KEY (base64 of 32 bytes); one is required with PostgreSQL or a non-loopback bind".to_owned(),
            ));
        }
    };
    let (stored_id, check) = match stored {
        Some(row) => row,
        None => check::record(conn, &master, Utc::now().naive_utc()).map_err(|e| match e {
            check::SealError::Db(db) => database(db),
            check::SealError::MasterKey(key) => fail(key),
        })?,
    };
    if master.verify_check(&check).is_err() {
        return Err(StartupError::MasterKey(format!(
            "the master key (id {}) is not the one this database was written with (id {stored_id})",
            master.id()
        )));
    }
    Ok(master)
}

/// Periodic work of a running server: flushes of usage and admin.denied
/// counts, signing-key reloads and the janitor.
fn spawn_background(state: web::Data<AppState>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let settings = state.settings.clone();
        let mut flush =
            tokio::time::interval(Duration::from_millis(settings.usage.flush_interval_ms));
        let mut reload = tokio::time::interval(Duration::from_secs(settings.signing.reload_s));
        let mut janitor = tokio::time::interval(Duration::from_secs(settings.janitor.interval_s));
        flush.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        reload.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        janitor.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        reload.tick().await;
        // A replica's lease identity: unique per process.
        let holder = uuid::Uuid::now_v7().to_string();
        loop {
            tokio::select! {
                _ = flush.tick() => {
                    if let Err(err) = state.usage.flush(&state.pool).await {
                        tracing::warn!(error = %err, "usage flush failed; will retry");
                    }
                    if let Err(err) = state.denials.flush(&state.pool).await {
                        tracing::warn!(error = %err, "admin.denied flush failed; will retry");
                    }
                }
                _ = janitor.tick() => {
                    let st = state.clone();
                    let holder = holder.clone();
                    let result = tokio::task::spawn_blocking(move || {
                        let mut conn = db::connection(&st.pool)?;
                        crate::janitor::run_once(conn.get(), &st.settings, &holder, Utc::now().naive_utc())
                    })
                    .await;
                    match result {
                        Ok(Ok(Some(purged))) if purged != crate::janitor::Purged::default() => {
                            tracing::info!(?purged, "janitor purged expired rows");
                        }
                        Ok(Ok(_)) => {}
                        Ok(Err(err)) => tracing::warn!(error = %err, "janitor failed"),
                        Err(err) => tracing::warn!(error = %err, "janitor failed"),
                    }
                }
                _ = reload.tick() => {
                    let st = state.clone();
                    let result = tokio::task::spawn_blocking(move || reload_keys(&st)).await;
                    match result {
                        Ok(Ok(())) => {}
                        Ok(Err(err)) => tracing::warn!(error = %err, "signing key reload failed"),
                        Err(err) => tracing::warn!(error = %err, "signing key reload failed"),
                    }
                }
            }
        }
    })
}

pub fn reload_keys(state: &AppState) -> Result<(), signing::SigningError> {
    let mut conn = db::connection(&state.pool)?;
    let now = Utc::now().naive_utc();
    // After `keymint master-key rotate`: take the new key from the key file,
    // or stay behind (no new keys sealed; readiness says so) until it is there.
    let standing = check::follow(conn.get(), &state.master)?;
    // A repair that fails (the database refuses writes) must not keep a
    // revoked key in use here: the ring is rebuilt from the rows either way.
    let ensured = if standing == check::Standing::Behind {
        Ok(Default::default())
    } else {
        signing::ensure_keys(conn.get(), &state.master, &state.settings.signing, now)
    };
    let rows = signing::load_rows(conn.get())?;
    state.keyring.reload(&rows, &state.master, now)?;
    ensured.map(|_| ())
}

/// Proves the database answers and applies migrations, on one connection.
pub async fn migrate_database(settings: &Settings) -> Result<(), StartupError> {
    let target = settings.database.target.describe();
    let fail = |source| StartupError::Database {
        target: target.clone(),
        source,
    };
    let database = settings.database.clone();
    tokio::task::spawn_blocking(move || {
        let mut conn = db::connect(&database)?;
        let applied = db::migrate(&mut conn)?;
        if applied > 0 {
            tracing::info!(applied, "database migrations applied");
        }
        Ok::<_, DbError>(())
    })
    .await
    .map_err(|e| StartupError::Other(e.to_string()))?
    .map_err(fail)?;
    Ok(())
}

fn serve(
    listener: TcpListener,
    state: web::Data<AppState>,
    settings: &Settings,
) -> Result<Server, StartupError> {
    let server_settings = &settings.server;
    let mut server = HttpServer::new(move || {
        App::new()
            .wrap(from_fn(telemetry::request_span))
            .app_data(state.clone())
            .app_data(
                web::JsonConfig::default()
                    .limit(BODY_LIMIT)
                    .error_handler(fallback::json_error),
            )
            .app_data(web::PayloadConfig::default().limit(BODY_LIMIT))
            .app_data(web::QueryConfig::default().error_handler(fallback::query_error))
            .configure(routes)
            .default_service(web::to(fallback::not_found))
    })
    .client_request_timeout(Duration::from_millis(
        server_settings.client_request_timeout_ms,
    ))
    .keep_alive(Duration::from_secs(server_settings.keep_alive_s))
    .shutdown_timeout(server_settings.shutdown_timeout_s)
    // `stop_on_signal` handles signals, so it can drain first.
    .disable_signals()
    .max_connections(server_settings.max_connections)
    // Database work runs on the blocking pool; bound it to what the pool can
    // serve rather than actix's default of 512 threads per worker.
    .worker_max_blocking_threads((settings.database.max_connections as usize * 2).max(4));
    if server_settings.workers > 0 {
        server = server.workers(server_settings.workers);
    }
    let server = server
        .listen(listener)
        .map_err(|e| StartupError::Other(e.to_string()))?
        .run();
    Ok(server)
}

/// The metrics listener: `GET /metrics` only, on its own address, one worker.
fn serve_metrics(
    state: web::Data<AppState>,
    settings: &Settings,
) -> Result<(Server, u16), StartupError> {
    crate::metrics::handle();
    let addr = settings.metrics.bind;
    let listener = TcpListener::bind(addr).map_err(|source| StartupError::Bind { addr, source })?;
    let port = listener
        .local_addr()
        .map_err(|e| StartupError::Other(e.to_string()))?
        .port();
    let server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .service(resource("/metrics").route(web::get().to(crate::metrics::render)))
            .default_service(web::to(fallback::not_found))
    })
    .workers(1)
    .disable_signals()
    .listen(listener)
    .map_err(|e| StartupError::Other(e.to_string()))?
    .run();
    Ok((server, port))
}

/// Declares the route table once and derives from it both the actix
/// registration and `ROUTES`, the list the OpenAPI coverage test walks, so a
/// route cannot be added without the test seeing it.
macro_rules! route_table {
    (
        $( $path:literal { $( $method:ident => $handler:path ),+ $(,)? } )*
        $( scope $prefix:literal [ $( $wrap:expr ),* ] {
            $( $spath:literal { $( $smethod:ident => $shandler:path ),+ $(,)? } )*
        } )*
    ) => {
        /// Every route as `(method, path)`, paths in actix/OpenAPI template form.
        pub const ROUTES: &[(&str, &str)] = &[
            $( $( (stringify!($method), $path), )+ )*
            $( $( $( (stringify!($smethod), concat!($prefix, $spath)), )+ )* )*
        ];

        /// The whole route table. Every resource answers unknown methods with 405.
        fn routes(cfg: &mut web::ServiceConfig) {
            $( cfg.service(resource($path) $( .route(web::$method().to($handler)) )+ ); )*
            $(
                cfg.service(
                    web::scope($prefix)
                        $( .wrap($wrap) )*
                        $( .service(resource($spath) $( .route(web::$smethod().to($shandler)) )+ ) )*
                );
            )*
        }
    };
}

route_table! {
    "/healthz" { get => health::healthz }
    "/readyz" { get => health::readyz }
    "/openapi.json" { get => docs::openapi_json }
    "/docs" { get => docs::index_redirect }
    "/docs/{file:.*}" { get => docs::asset }
    "/.well-known/jwks.json" { get => wellknown::jwks }
    "/.well-known/oauth-authorization-server" { get => wellknown::oauth_authorization_server }
    "/.well-known/openid-configuration" { get => wellknown::openid_configuration }
    scope "/oauth" [no_store()] {
        "/token" { post => token::oauth_token }
        "/introspect" { post => oauth::introspect }
        "/revoke" { post => oauth::revoke }
    }
    scope "/api/v1" [no_store(), from_fn(crate::auth::denials::record)] {
        "/token" { post => token::api_token }
        "/keys" { post => keys::create, get => keys::list }
        "/keys/revoke" { post => keys::revoke_many }
        "/keys/{id}" { get => keys::get, patch => keys::patch, delete => keys::delete }
        "/keys/{id}/revoke" { post => keys::revoke }
        "/keys/{id}/rotate" { post => keys::rotate }
        "/settings" { get => settings::get, patch => settings::patch }
        "/tenants" { post => tenants::create, get => tenants::list }
        "/tenants/{slug}" { patch => tenants::patch }
        "/audit-events" { get => audit::list }
        "/signing-keys" { get => signing_keys::list }
        "/signing-keys/rotate" { post => signing_keys::rotate }
        "/signing-keys/{kid}/revoke" { post => signing_keys::revoke }
    }
}

/// Token responses and admin data must never be cached (RFC 6749 §5.1).
fn no_store() -> DefaultHeaders {
    DefaultHeaders::new()
        .add(("Cache-Control", "no-store"))
        .add(("Pragma", "no-cache"))
}

fn resource(path: &str) -> actix_web::Resource {
    web::resource(path).default_service(web::to(fallback::method_not_allowed))
}
