//! Building and running the server: the shared state, the whole route table
//! in one place, and the listener (bound here so tests can ask for port 0).

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::Server;
use actix_web::middleware::from_fn;
use actix_web::{App, HttpServer, web};

use crate::config::Settings;
use crate::db::{self, DbError, Pool};
use crate::routes::{fallback, health};
use crate::telemetry;

/// Bodies on every route but the token endpoints (which take 8 KiB).
pub const BODY_LIMIT: usize = 64 * 1024;

/// What every handler can reach.
pub struct AppState {
    pub settings: Arc<Settings>,
    pub pool: Pool,
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
    #[error("{0}")]
    Other(String),
}

pub struct Application {
    port: u16,
    server: Server,
}

impl Application {
    /// Connects, migrates and binds; the server does not serve until
    /// [`Application::run_until_stopped`].
    pub async fn build(mut settings: Settings) -> Result<Self, StartupError> {
        let pool = open_database(&settings).await?;
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
        let state = web::Data::new(AppState {
            settings: settings.clone(),
            pool,
        });
        let server = serve(listener, state, &settings)?;
        Ok(Self { port, server })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Serves until SIGTERM/SIGINT (or a stop through the server handle),
    /// letting in-flight requests finish within `server.shutdown_timeout_s`.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.server.await
    }
}

/// Opens the pool, proves the database answers, and applies migrations.
pub async fn open_database(settings: &Settings) -> Result<Pool, StartupError> {
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
    Ok(db::pool(&settings.database))
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

/// The whole route table. Every resource answers unknown methods with 405.
fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/healthz").route(web::get().to(health::healthz)))
        .service(resource("/readyz").route(web::get().to(health::readyz)));
}

fn resource(path: &str) -> actix_web::Resource {
    web::resource(path).default_service(web::to(fallback::method_not_allowed))
}
