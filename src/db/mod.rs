//! Persistence: one connection type over SQLite and PostgreSQL, its pool, the
//! migrations, and the helpers every query goes through.
//!
//! Error policy: every failure below this module is a [`DbError`]. Callers map
//! [`DbError::Unavailable`] to 503 and everything else to an opaque 500; the
//! cause goes to the log only (it may name tables, never secrets: queries bind
//! secrets as parameters and Diesel never prints parameters).
mod batch;
pub mod connection;
mod deadline;
pub mod error;
mod files;
mod inline;
mod lane;
pub mod lease;
pub mod models;
mod pool;
pub mod schema;

use std::time::Duration;

use diesel::prelude::*;
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

pub use batch::Batched;
pub use connection::{AnyConnection, ping};
use connection::{SQLITE_STARTUP_WAIT, is_busy};
pub use deadline::ReadBound;
pub use error::DbError;
pub use files::create_private_dir;
pub use inline::{InlineReads, point_read};
pub use lane::{AdminLane, read};
pub use pool::{
    ConnectError, ConnectionManager, DbConnection, Pool, PooledConnection, connect, connection,
    ping_pool, pool, run,
};

const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");

/// Serialises start-up (migrations, the master-key check row, the first
/// signing keys, the bootstrap) across processes on one PostgreSQL
/// database. An arbitrary constant: "keymint" in ASCII.
const PG_STARTUP_LOCK: i64 = 0x006b_6579_6d69_6e74;

/// Runs `insert` in a nested transaction (on PostgreSQL a failed statement
/// aborts the transaction around it): true when it inserted, false when a
/// unique key already held the row, which leaves the caller's transaction
/// usable. For "once" records: a warning sent, a report acted on.
pub fn insert_new(
    conn: &mut AnyConnection,
    insert: impl FnOnce(&mut AnyConnection) -> QueryResult<usize>,
) -> QueryResult<bool> {
    match conn.transaction(insert) {
        Ok(_) => Ok(true),
        Err(diesel::result::Error::DatabaseError(
            diesel::result::DatabaseErrorKind::UniqueViolation,
            _,
        )) => Ok(false),
        Err(other) => Err(other),
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
