//! Persistence: one connection type over SQLite and PostgreSQL, its pool, the
//! migrations, and the helpers every query goes through.
//!
//! Error policy: every failure below this module is a [`DbError`]. Callers map
//! [`DbError::Unavailable`] to 503 and everything else to an opaque 500; the
//! cause goes to the log only (it may name tables, never secrets: queries bind
//! secrets as parameters and Diesel never prints parameters).

pub mod models;
pub mod schema;

use std::path::Path;
use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

use crate::config::{DatabaseSettings, DatabaseTarget};

const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");

/// Serialises start-up (migrations, the master-key check row, the first
/// signing keys, the bootstrap) across processes on one PostgreSQL
/// database. An arbitrary constant: "keymint" in ASCII.
const PG_STARTUP_LOCK: i64 = 0x006b_6579_6d69_6e74;

/// How long a SQLite start-up waits for other processes' start-ups, beyond
/// the busy timeout of each attempt.
const SQLITE_STARTUP_WAIT: Duration = Duration::from_secs(60);

/// One connection type for both backends; queries are written once against it.
#[derive(diesel::MultiConnection)]
pub enum AnyConnection {
    Postgresql(diesel::PgConnection),
    Sqlite(diesel::SqliteConnection),
}

impl AnyConnection {
    pub fn is_sqlite(&self) -> bool {
        matches!(self, Self::Sqlite(_))
    }
}

/// Runs one query text on the concrete connection underneath. Through
/// `AnyConnection` Diesel rebuilds a query's SQL on every call to find its
/// cached statement; on the concrete connection the statement is found by
/// type. Only for the hot path (the token exchange): the query is still
/// written once, and must compile for both backends.
#[macro_export]
macro_rules! on_backend {
    ($conn:expr, |$c:ident| $body:expr) => {
        match $conn {
            $crate::db::AnyConnection::Sqlite($c) => $body,
            $crate::db::AnyConnection::Postgresql($c) => $body,
        }
    };
}

pub type Pool = r2d2::Pool<ConnectionManager>;
pub type PooledConnection = r2d2::PooledConnection<ConnectionManager>;

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The database cannot be reached or no connection was free in time.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    #[error("database query failed: {0}")]
    Query(#[from] diesel::result::Error),
    #[error("migrations failed: {0}")]
    Migration(String),
    /// The blocking task was cancelled or panicked.
    #[error("database task failed: {0}")]
    Task(String),
}

impl DbError {
    pub fn is_unavailable(&self) -> bool {
        match self {
            Self::Unavailable(_) => true,
            // A connection that dies mid-query reports as a closed connection;
            // to the caller that is the same outage.
            Self::Query(diesel::result::Error::DatabaseError(
                diesel::result::DatabaseErrorKind::ClosedConnection,
                _,
            )) => true,
            _ => false,
        }
    }
}

/// Opens connections of the backend named by the URL scheme, with the
/// per-connection settings each backend needs.
#[derive(Debug)]
pub struct ConnectionManager {
    target: DatabaseTarget,
    sqlite_busy_timeout_ms: u64,
    connect_timeout_s: u64,
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
    fn open(&self) -> Result<AnyConnection, ConnectError> {
        match &self.target {
            DatabaseTarget::Sqlite(path) => {
                let path = path.to_string_lossy();
                let mut conn = diesel::SqliteConnection::establish(&path)?;
                conn.batch_execute(&format!(
                    "PRAGMA busy_timeout = {};
                     PRAGMA journal_mode = WAL;
                     PRAGMA synchronous = NORMAL;
                     PRAGMA foreign_keys = ON;",
                    self.sqlite_busy_timeout_ms
                ))?;
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
        }
    }
}

/// Creates `dir` (and missing parents) readable by its owner only, whatever
/// the umask; a directory that already exists is left as the operator made it.
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    if dir.is_dir() {
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
}

/// Creates an empty SQLite database file, mode 0600 whatever the umask,
/// before SQLite does (with 0644). SQLite gives its `-wal` and `-shm` files
/// the database file's mode, so they are private too.
fn create_private_sqlite_file(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let name = path.to_string_lossy();
    if name == ":memory:" || name.starts_with("file:") || path.exists() {
        return Ok(());
    }
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(file) => file.set_permissions(std::fs::Permissions::from_mode(0o600)),
        // Another process created it first; it is theirs to have made.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
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
    ConnectionManager::new(settings)
        .open()
        .map_err(|e| DbError::Unavailable(e.to_string()))
}

/// Builds the pool without connecting: call [`connect`] first to prove the
/// database is there.
pub fn pool(settings: &DatabaseSettings) -> Pool {
    let manager = ConnectionManager::new(settings);
    r2d2::Pool::builder()
        .max_size(settings.max_connections)
        .min_idle(Some(1))
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

/// A transaction for work that writes. On SQLite its first statement is a
/// write, so the write lock is taken (waiting up to the busy timeout) before
/// anything is read: a read-then-write transaction could otherwise fail at
/// once with SQLITE_BUSY instead of waiting. PostgreSQL needs no such step.
pub fn write_transaction<T, E, F>(conn: &mut AnyConnection, work: F) -> Result<T, E>
where
    F: FnOnce(&mut AnyConnection) -> Result<T, E>,
    E: From<diesel::result::Error>,
{
    conn.transaction(|conn| {
        if conn.is_sqlite() {
            diesel::sql_query("UPDATE locks SET holder = holder WHERE name = 'write'")
                .execute(conn)?;
        }
        work(conn)
    })
}

/// A transaction that runs alone among all replicas for the named lock row
/// (`bootstrap`, `signing`, `janitor`, `master_key`; `write` is
/// [`write_transaction`]'s): the update takes a row
/// lock on PostgreSQL and the database write lock on SQLite.
pub fn exclusive_transaction<T, E, F>(
    conn: &mut AnyConnection,
    lock: &'static str,
    work: F,
) -> Result<T, E>
where
    F: FnOnce(&mut AnyConnection) -> Result<T, E>,
    E: From<diesel::result::Error>,
{
    use schema::locks::dsl;
    conn.transaction(|conn| {
        diesel::update(dsl::locks.filter(dsl::name.eq(lock)))
            .set(dsl::holder.eq(dsl::holder))
            .execute(conn)?;
        work(conn)
    })
}

/// Runs `work` alone among the processes starting on this database:
/// migrations, the master-key check row and the bootstrap happen once, and
/// the next process finds them done. PostgreSQL: a session advisory lock
/// (the lock table itself may not exist yet). SQLite: one `BEGIN EXCLUSIVE`
/// transaction around `work`, waited for as long as other start-ups take.
/// Re-entrant: inside it (or any SQLite transaction), `work` just runs.
/// The outer `Result` is the lock's own failure.
pub fn with_startup_lock<T, E, F>(
    conn: &mut AnyConnection,
    work: F,
) -> Result<Result<T, E>, DbError>
where
    F: FnOnce(&mut AnyConnection) -> Result<T, E>,
{
    use diesel::connection::{AnsiTransactionManager, TransactionManager};
    match conn {
        AnyConnection::Postgresql(c) => {
            diesel::sql_query(format!("SELECT pg_advisory_lock({PG_STARTUP_LOCK})")).execute(c)?;
            let result = work(conn);
            // Advisory locks stack per session: one unlock per lock taken.
            diesel::sql_query(format!("SELECT pg_advisory_unlock({PG_STARTUP_LOCK})"))
                .execute(conn)?;
            Ok(result)
        }
        AnyConnection::Sqlite(c) => {
            let depth =
                AnsiTransactionManager::transaction_manager_status_mut(c).transaction_depth()?;
            if depth.is_some() {
                return Ok(work(conn));
            }
            let deadline = std::time::Instant::now() + SQLITE_STARTUP_WAIT;
            loop {
                // A process that opened the database at the same moment may
                // hold it past one busy timeout (its migrations, key
                // generation): keep waiting until the deadline.
                match AnsiTransactionManager::begin_transaction_sql(&mut *c, "BEGIN EXCLUSIVE") {
                    Ok(()) => break,
                    Err(e) if is_busy(&e) && std::time::Instant::now() < deadline => {
                        std::thread::sleep(Duration::from_millis(50));
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            // Ended through the connection's own manager, which hands it to
            // the SQLite one that began it.
            type Manager = <AnyConnection as Connection>::TransactionManager;
            match work(conn) {
                Ok(value) => {
                    Manager::commit_transaction(conn)?;
                    Ok(Ok(value))
                }
                Err(err) => {
                    Manager::rollback_transaction(conn)?;
                    Ok(Err(err))
                }
            }
        }
    }
}

/// SQLite's "database is locked" (SQLITE_BUSY), which Diesel does not name.
fn is_busy(e: &diesel::result::Error) -> bool {
    matches!(e, diesel::result::Error::DatabaseError(_, info)
        if info.message().contains("locked") || info.message().contains("busy"))
}

/// Applies pending migrations under the start-up lock, so processes
/// starting together take turns and the later ones find nothing to do.
pub fn migrate(conn: &mut AnyConnection) -> Result<usize, DbError> {
    with_startup_lock(conn, |conn| match conn {
        AnyConnection::Sqlite(c) => c
            .run_pending_migrations(SQLITE_MIGRATIONS)
            .map(|done| done.len())
            .map_err(|e| DbError::Migration(e.to_string())),
        AnyConnection::Postgresql(c) => c
            .run_pending_migrations(POSTGRES_MIGRATIONS)
            .map(|done| done.len())
            .map_err(|e| DbError::Migration(e.to_string())),
    })?
}

/// A cheap round trip.
pub fn ping(conn: &mut AnyConnection) -> Result<(), DbError> {
    conn.batch_execute("SELECT 1").map_err(DbError::from)
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
