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
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

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
    /// An admin list or search ran past `database.admin_query_timeout_ms`.
    #[error("the query ran past its {0} ms bound")]
    TimedOut(u64),
    /// No connection of the admin lane came free within `connect_timeout_ms`.
    #[error("every admin list connection is busy")]
    LaneBusy,
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
    fn open(&self) -> Result<AnyConnection, ConnectError> {
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

fn sized_pool(settings: &DatabaseSettings, max_size: u32, min_idle: u32) -> Pool {
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

/// Admin lists and searches: the one kind of request whose cost grows with
/// the data (a search scans a tenant's keys), so the kind that could take
/// every connection and starve the token endpoints. They run here instead:
/// on `database.admin_max_connections` connections of their own, one
/// statement at a time per connection, each within
/// `database.admin_query_timeout_ms`.
pub struct AdminLane {
    pool: Pool,
    /// One per connection. A request waits for its turn here, not in the
    /// pool: waiting in the pool would hold a blocking thread, and the
    /// exchange's database work queues for those.
    turns: Arc<tokio::sync::Semaphore>,
    wait: Duration,
    timeout: Duration,
}

impl AdminLane {
    /// Builds the lane's pool without connecting; connections open on first use.
    pub fn new(settings: &DatabaseSettings) -> Self {
        let size = settings.admin_max_connections.max(1);
        Self {
            pool: sized_pool(settings, size, 0),
            turns: Arc::new(tokio::sync::Semaphore::new(size as usize)),
            wait: Duration::from_millis(settings.connect_timeout_ms),
            timeout: Duration::from_millis(settings.admin_query_timeout_ms),
        }
    }
}

/// [`run`] for admin lists and searches: on the [`AdminLane`], after
/// waiting at most `connect_timeout_ms` for a turn ([`DbError::LaneBusy`]),
/// within the time bound ([`DbError::TimedOut`]), which `work` applies with
/// [`ReadBound`].
pub async fn read<T, F>(lane: &AdminLane, work: F) -> Result<T, DbError>
where
    F: FnOnce(&mut AnyConnection, &ReadBound) -> QueryResult<T> + Send + 'static,
    T: Send + 'static,
{
    let turn = tokio::time::timeout(lane.wait, lane.turns.clone().acquire_owned())
        .await
        .map_err(|_| DbError::LaneBusy)?
        .map_err(|_| DbError::LaneBusy)?;
    let timeout = lane.timeout;
    let result = run(&lane.pool, move |conn| bounded_read(conn, timeout, work)).await;
    drop(turn);
    result
}

diesel::define_sql_function! {
    /// SQLite only (registered on every SQLite connection): true until the
    /// clock reaches `deadline_ms` (unix ms), then an error that ends the
    /// statement.
    fn keymint_before(deadline_ms: diesel::sql_types::BigInt) -> diesel::sql_types::Bool;
}

/// Marks the error [`keymint_before`] ends a statement with.
const DEADLINE_PASSED: &str = "keymint: admin query deadline passed";

/// What [`keymint_before`] answers: the only way a function registered
/// through Diesel (no `unsafe` here) can fail the statement it runs in is a
/// value that refuses to be written.
#[derive(Debug)]
struct BeforeDeadline(bool);

impl diesel::serialize::ToSql<diesel::sql_types::Bool, diesel::sqlite::Sqlite> for BeforeDeadline {
    fn to_sql<'b>(
        &'b self,
        out: &mut diesel::serialize::Output<'b, '_, diesel::sqlite::Sqlite>,
    ) -> diesel::serialize::Result {
        if self.0 {
            <bool as diesel::serialize::ToSql<diesel::sql_types::Bool, diesel::sqlite::Sqlite>>::to_sql(
                &true, out,
            )
        } else {
            Err(DEADLINE_PASSED.into())
        }
    }
}

fn unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// The time bound of one admin list or search, as its query must carry it.
pub struct ReadBound {
    deadline_ms: i64,
    sqlite: bool,
}

impl ReadBound {
    /// A condition for the query to filter by first, on SQLite: it has no
    /// statement timeout (and interrupting a statement from outside needs
    /// `unsafe`), so the statement checks the clock on every row it
    /// visits, and fails once the deadline has passed. `None` on
    /// PostgreSQL, where `statement_timeout` bounds the statement.
    pub fn sqlite_guard(&self) -> Option<keymint_before<i64>> {
        self.sqlite.then(|| keymint_before(self.deadline_ms))
    }
}

/// Runs `work` within `timeout`: PostgreSQL cancels it through
/// `statement_timeout`, set for its transaction only; on SQLite `work`
/// applies [`ReadBound::sqlite_guard`].
fn bounded_read<T, F>(conn: &mut AnyConnection, timeout: Duration, work: F) -> Result<T, DbError>
where
    F: FnOnce(&mut AnyConnection, &ReadBound) -> QueryResult<T>,
{
    let timeout_ms = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
    let started = Instant::now();
    let sqlite = conn.is_sqlite();
    let bound = ReadBound {
        deadline_ms: unix_ms().saturating_add(i64::try_from(timeout_ms).unwrap_or(i64::MAX)),
        sqlite,
    };
    let result = if sqlite {
        work(conn, &bound)
    } else {
        conn.transaction(|conn| {
            // LOCAL: it ends with the transaction, so the connection goes
            // back to the pool without it.
            diesel::sql_query(format!("SET LOCAL statement_timeout = {timeout_ms}"))
                .execute(conn)?;
            work(conn, &bound)
        })
    };
    result.map_err(|err| match &err {
        // PostgreSQL reports the cancellation only in words (which depend
        // on its locale); that it failed once the bound had passed says it
        // as well.
        diesel::result::Error::DatabaseError(kind, info)
            if !matches!(kind, diesel::result::DatabaseErrorKind::ClosedConnection)
                && (info.message().contains(DEADLINE_PASSED)
                    || (!sqlite && started.elapsed() >= timeout)) =>
        {
            DbError::TimedOut(timeout_ms)
        }
        _ => err.into(),
    })
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
