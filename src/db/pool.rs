//! Connections: the manager that opens them per backend, the pool, and
//! running blocking work on the blocking thread pool.

use std::path::Path;
use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::prelude::*;

use super::connection::{AnyConnection, SQLITE_STARTUP_WAIT, is_busy, ping};
use super::deadline::{BeforeDeadline, keymint_before_utils, unix_ms};
use super::error::DbError;
use super::files::{create_private_dir, create_private_sqlite_file};
use crate::config::{DatabaseSettings, DatabaseTarget};

pub type Pool = r2d2::Pool<ConnectionManager>;
pub type PooledConnection = r2d2::PooledConnection<ConnectionManager>;

/// Opens connections of the backend named by the URL scheme, with the
/// per-connection settings each backend needs.
#[derive(Debug)]
pub struct ConnectionManager {
    target: DatabaseTarget,
    sqlite_busy_timeout_ms: u64,
    connect_timeout_s: u64,
    /// How long opening a SQLite connection retries its WAL switch: the
    /// busy timeout for pooled connections, longer at start-up, when other
    /// replicas may hold the file through their whole start-up.
    sqlite_setup_wait: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error(transparent)]
    Connection(#[from] diesel::ConnectionError),
    #[error(transparent)]
    Query(#[from] diesel::result::Error),
}

/// A pooled connection and whether it has been seen to fail.
pub struct DbConnection {
    inner: AnyConnection,
    broken: bool,
}

impl DbConnection {
    pub fn get(&mut self) -> &mut AnyConnection {
        &mut self.inner
    }

    /// After a failed operation: if the connection no longer answers, it is
    /// dropped on return instead of being handed out again. Costs a round
    /// trip only on the error path.
    fn check_after_error(&mut self) {
        if ping(&mut self.inner).is_err() {
            self.broken = true;
        }
    }
}

impl r2d2::ManageConnection for ConnectionManager {
    type Connection = DbConnection;
    type Error = ConnectError;

    fn connect(&self) -> Result<DbConnection, ConnectError> {
        self.open().map(|inner| DbConnection {
            inner,
            broken: false,
        })
    }

    fn is_valid(&self, conn: &mut DbConnection) -> Result<(), ConnectError> {
        conn.inner
            .batch_execute("SELECT 1")
            .map_err(ConnectError::from)
    }

    fn has_broken(&self, conn: &mut DbConnection) -> bool {
        conn.broken
    }
}

impl ConnectionManager {
    pub(super) fn open(&self) -> Result<AnyConnection, ConnectError> {
        match &self.target {
            DatabaseTarget::Sqlite(path) => {
                let path = path.to_string_lossy();
                let mut conn = diesel::SqliteConnection::establish(&path)?;
                conn.batch_execute(&format!(
                    "PRAGMA busy_timeout = {};",
                    self.sqlite_busy_timeout_ms
                ))?;
                enter_wal(&mut conn, self.sqlite_setup_wait)?;
                conn.batch_execute(
                    "PRAGMA synchronous = NORMAL;
                     PRAGMA foreign_keys = ON;",
                )?;
                keymint_before_utils::register_nondeterministic_impl(
                    &mut conn,
                    |deadline_ms: i64| BeforeDeadline(unix_ms() < deadline_ms),
                )?;
                Ok(AnyConnection::Sqlite(conn))
            }
            DatabaseTarget::Postgres(url) => {
                let url = with_connect_timeout(url, self.connect_timeout_s);
                let conn = diesel::PgConnection::establish(&url)?;
                Ok(AnyConnection::Postgresql(conn))
            }
        }
    }
}

/// Puts the database in WAL mode (a no-op once it is). On a file still in
/// rollback mode the switch needs the exclusive lock, and SQLite answers
/// BUSY at once, without the busy timeout, while another process writes
/// (waiting could deadlock): exactly what replicas opening a new file
/// together meet. So retry, up to `wait`.
fn enter_wal(conn: &mut diesel::SqliteConnection, wait: Duration) -> diesel::QueryResult<()> {
    let deadline = std::time::Instant::now() + wait;
    loop {
        match conn.batch_execute("PRAGMA journal_mode = WAL;") {
            Err(e) if is_busy(&e) && std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20));
            }
            done => return done,
        }
    }
}

/// libpq waits for a TCP connect as long as the kernel does unless told; a
/// database outage must fail requests quickly instead.
fn with_connect_timeout(url: &str, seconds: u64) -> String {
    if url.contains("connect_timeout=") {
        return url.to_owned();
    }
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}connect_timeout={}", seconds.max(1))
}

impl ConnectionManager {
    pub fn new(settings: &DatabaseSettings) -> Self {
        Self {
            target: settings.target.clone(),
            sqlite_busy_timeout_ms: settings.sqlite_busy_timeout_ms,
            connect_timeout_s: settings.connect_timeout_ms.div_ceil(1000),
            sqlite_setup_wait: Duration::from_millis(settings.sqlite_busy_timeout_ms),
        }
    }
}

/// One connection outside any pool (start-up checks, migrations, the CLI),
/// so a failure is reported once, with its cause.
pub fn connect(settings: &DatabaseSettings) -> Result<AnyConnection, DbError> {
    if let DatabaseTarget::Sqlite(path) = &settings.target {
        let cannot = |what: &Path, e: std::io::Error| {
            DbError::Unavailable(format!("cannot create {}: {e}", what.display()))
        };
        if let Some(dir) = path.parent()
            && !dir.as_os_str().is_empty()
        {
            create_private_dir(dir).map_err(|e| cannot(dir, e))?;
        }
        create_private_sqlite_file(path).map_err(|e| cannot(path, e))?;
    }
    ConnectionManager {
        sqlite_setup_wait: SQLITE_STARTUP_WAIT,
        ..ConnectionManager::new(settings)
    }
    .open()
    .map_err(|e| DbError::Unavailable(e.to_string()))
}

/// Builds the pool without connecting: call [`connect`] first to prove the
/// database is there.
pub fn pool(settings: &DatabaseSettings) -> Pool {
    sized_pool(settings, settings.max_connections, 1)
}

pub(super) fn sized_pool(settings: &DatabaseSettings, max_size: u32, min_idle: u32) -> Pool {
    let manager = ConnectionManager::new(settings);
    r2d2::Pool::builder()
        .max_size(max_size)
        .min_idle(Some(min_idle))
        .connection_timeout(Duration::from_millis(settings.connect_timeout_ms))
        .test_on_check_out(false)
        .error_handler(Box::new(LogPoolErrors))
        .build_unchecked(manager)
}

/// r2d2 reports connection failures from its background threads; route them
/// to our logs instead of its default `log` sink.
#[derive(Debug)]
struct LogPoolErrors;

impl r2d2::HandleError<ConnectError> for LogPoolErrors {
    fn handle_error(&self, error: ConnectError) {
        tracing::warn!(%error, "database connection failed");
    }
}

/// Takes a connection from the pool, mapping a timeout to `Unavailable`.
pub fn connection(pool: &Pool) -> Result<PooledConnection, DbError> {
    pool.get().map_err(|e| DbError::Unavailable(e.to_string()))
}

/// Runs blocking database work on the blocking thread pool, never on the
/// async event loop; the connection is taken inside the blocking task too.
pub async fn run<T, E, F>(pool: &Pool, work: F) -> Result<T, E>
where
    F: FnOnce(&mut AnyConnection) -> Result<T, E> + Send + 'static,
    T: Send + 'static,
    E: From<DbError> + Send + 'static,
{
    let pool = pool.clone();
    let task = tokio::task::spawn_blocking(move || {
        let waited = std::time::Instant::now();
        let mut conn = connection(&pool)?;
        crate::metrics::pool_wait(waited.elapsed());
        let result = work(conn.get());
        if result.is_err() {
            conn.check_after_error();
        }
        result
    });
    match task.await {
        Ok(result) => result,
        Err(join) => Err(E::from(DbError::Task(join.to_string()))),
    }
}

/// Readiness: a pooled connection within `timeout` that answers a round trip.
/// Blocking: call it on the blocking pool.
pub fn ping_pool(pool: &Pool, timeout: Duration) -> Result<(), DbError> {
    let mut conn = pool
        .get_timeout(timeout)
        .map_err(|e| DbError::Unavailable(e.to_string()))?;
    let result = ping(conn.get());
    if result.is_err() {
        conn.broken = true;
    }
    result
}
