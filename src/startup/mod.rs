//! Building and running the server: the shared state, the listeners and
//! what runs beside them. The route table is in `routes`, the blocking
//! start-up work (migrations, master key, signing keys, bootstrap) in
//! `prepare`, the periodic loops and signal handling in `background`.

mod background;
mod error;
mod first_run;
mod prepare;
mod routes;

use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use actix_web::dev::Server;
use actix_web::middleware::from_fn;
use actix_web::{App, HttpResponse, HttpServer, web};

pub use error::StartupError;
pub use prepare::{StartOptions, migrate_database, open_master_key};
pub use routes::ROUTES;

use crate::app::AppState;
use crate::audit::denials::AdminDenials;
use crate::config::Settings;
use crate::db;
use crate::input::body::BODY_LIMIT;
use crate::keys::store::KeyLookups;
use crate::openapi;
use crate::routes::{console, docs, fallback, wellknown};
use crate::telemetry;
use crate::usage::Usage;

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
        crate::tokens::ring_provider::install();
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
            tokio::task::spawn_blocking(move || prepare::prepare(&settings, &options))
                .await
                .map_err(|e| StartupError::Other(e.to_string()))??
        };
        let pool = db::pool(&settings.database);
        // One lookup thread per worker (actix's default: one per core).
        let workers = match settings.server.workers {
            0 => std::thread::available_parallelism().map_or(1, usize::from),
            n => n,
        };
        let lookups = KeyLookups::start(
            &settings.database,
            workers,
            crate::keys::store::find_many_by_secret_hash,
        )
        .map_err(|e| StartupError::Other(e.to_string()))?
        .map(Arc::new);
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
            inline: Arc::new(db::InlineReads::new(&settings.database)),
            lookups,
            status_lists: Arc::new(crate::status_lists::StatusLists::new(
                &settings.tokens.issuer,
                settings.statuslist.ttl_s,
            )),
            events: Arc::new(crate::events::Outbound::new(&settings).map_err(StartupError::Other)?),
            leaks: Arc::new(crate::leaks::Leaks::new(&settings.leaks)),
            draining: Arc::default(),
        });
        first_run::announce(
            &settings,
            prepared.bootstrap_secret,
            prepared.bootstrap_without_key,
        );
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
        let background = background::spawn_background(self.state.clone());
        // This process's identity on the delivery lease.
        let holder = uuid::Uuid::now_v7().to_string();
        let events = background::spawn_events(self.state.clone(), holder.clone());
        let metrics_upkeep = tokio::spawn(crate::metrics::upkeep());
        let metrics = self.metrics_server.handle();
        let metrics_task = tokio::spawn(self.metrics_server);
        let signals = self.handle_signals.then(|| {
            tokio::spawn(background::stop_on_signal(
                self.server.handle(),
                self.state.clone(),
            ))
        });
        let served = self.server.await;
        if let Some(signals) = signals {
            signals.abort();
        }
        background.abort();
        events.abort();
        metrics_upkeep.abort();
        metrics.stop(true).await;
        let _ = metrics_task.await;
        if let Err(err) = self.state.events.release(&self.state.pool, &holder).await {
            tracing::warn!(error = %err, "could not give up the event delivery lease");
        }
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

fn serve(
    listener: TcpListener,
    state: web::Data<AppState>,
    settings: &Settings,
) -> Result<Server, StartupError> {
    let server_settings = &settings.server;
    let draining = state.draining.clone();
    let document = web::Data::new(docs::Document(openapi::document_json().into()));
    let well_known = web::Data::new(wellknown::WellKnown::new(settings));
    let console = web::Data::new(console::Console::new(settings));
    let mut server = HttpServer::new(move || {
        let draining = draining.clone();
        App::new()
            .wrap(from_fn(move |req, next| {
                let draining = draining.load(Ordering::Relaxed);
                telemetry::request_span(req, next, draining, ROUTES)
            }))
            .app_data(state.clone())
            .app_data(document.clone())
            .app_data(well_known.clone())
            .app_data(console.clone())
            .app_data(
                web::JsonConfig::default()
                    .limit(BODY_LIMIT)
                    .error_handler(fallback::json_error),
            )
            .app_data(web::PayloadConfig::default().limit(BODY_LIMIT))
            .app_data(web::QueryConfig::default().error_handler(fallback::query_error))
            .configure(routes::routes)
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
            .service(routes::resource("/metrics").route(web::get().to(render_metrics)))
            .default_service(web::to(fallback::not_found))
    })
    .workers(1)
    .disable_signals()
    .listen(listener)
    .map_err(|e| StartupError::Other(e.to_string()))?
    .run();
    Ok((server, port))
}

/// `GET /metrics` on the metrics listener. Gauges that describe state are
/// read now; counters were recorded as things happened.
async fn render_metrics(state: web::Data<AppState>) -> HttpResponse {
    let pool = state.pool.state();
    let now = chrono::Utc::now().timestamp();
    let body = crate::metrics::render(
        crate::metrics::PoolGauge {
            idle: pool.idle_connections,
            in_use: pool.connections - pool.idle_connections,
        },
        state.keyring.schedule(now),
        now,
    );
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(body)
}
