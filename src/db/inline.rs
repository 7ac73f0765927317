//! Point reads without a thread hop: on SQLite, each worker thread keeps a
//! read-only connection of its own and runs the token endpoints' lookups
//! on it, where it stands.
//!
//! Why: a lookup by an indexed secret hash that hits SQLite's page cache
//! costs a few microseconds, less than the signature the worker computes
//! anyway; handing it to the blocking pool and back ([`run`]) cost about
//! half the server's CPU in context switches and futex wake-ups. WAL
//! readers never wait for the writer, so such a read cannot stall the
//! worker behind a write. Each read is its own autocommit snapshot of what
//! is committed, exactly what a pooled connection would see: a revocation
//! that has returned is seen by the very next lookup.
//!
//! When the read cannot run at once (PostgreSQL, where a lookup is a
//! network round trip; a busy or broken SQLite connection) it goes to the
//! pool as every other query does.

use std::cell::RefCell;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use diesel::Connection;
use diesel::connection::SimpleConnection;

use super::connection::AnyConnection;
use super::error::DbError;
use super::pool::{Pool, run};
use crate::config::{DatabaseSettings, DatabaseTarget};

/// Where inline reads go: the SQLite file, or nowhere (PostgreSQL).
pub struct InlineReads {
    /// Tells this database's thread connections from another's (a process
    /// that serves two, as some tests do).
    id: u64,
    path: Option<PathBuf>,
}

thread_local! {
    /// This thread's read connection and the [`InlineReads`] it belongs to.
    static READER: RefCell<Option<(u64, AnyConnection)>> = const { RefCell::new(None) };
}

impl InlineReads {
    pub fn new(settings: &DatabaseSettings) -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        Self {
            id: NEXT.fetch_add(1, Ordering::Relaxed),
            path: match &settings.target {
                DatabaseTarget::Sqlite(path) => Some(path.clone()),
                DatabaseTarget::Postgres(_) => None,
            },
        }
    }

    /// Runs `work` on this thread's connection, opening it on first use.
    /// `None` when it cannot run here and now; the connection is then
    /// dropped (reopened next time) if it failed.
    fn try_run<T, F>(&self, work: &mut F) -> Option<Result<T, DbError>>
    where
        F: FnMut(&mut AnyConnection) -> Result<T, DbError>,
    {
        let path = self.path.as_ref()?;
        READER.with(|cell| {
            // Taken out while in use: `work` never reaches back in here, and
            // if it panics the connection is simply gone.
            let mut slot = cell.borrow_mut().take();
            if slot.as_ref().is_none_or(|(id, _)| *id != self.id) {
                slot = open(path).map(|conn| (self.id, conn));
            }
            let (id, mut conn) = slot?;
            match work(&mut conn) {
                Ok(value) => {
                    *cell.borrow_mut() = Some((id, conn));
                    Some(Ok(value))
                }
                // Busy (a checkpoint, WAL recovery) or broken: the pool
                // retries it with the busy timeout and reports a real error.
                Err(_) => None,
            }
        })
    }
}

/// A read-only connection that never waits: a lock it would have to wait
/// for sends the read to the pool instead of stalling the worker.
/// `None` if it cannot be opened; the pool's connections then say why.
fn open(path: &std::path::Path) -> Option<AnyConnection> {
    let mut conn = diesel::SqliteConnection::establish(&path.to_string_lossy()).ok()?;
    // An 8 MiB page cache (SQLite's default is 2 MiB): a large table's
    // index pages for the keys in use stay here instead of being read
    // again from the OS on every lookup.
    conn.batch_execute(
        "PRAGMA query_only = ON;
         PRAGMA busy_timeout = 0;
         PRAGMA cache_size = -8192;",
    )
    .ok()?;
    Some(AnyConnection::Sqlite(conn))
}

/// A short read that writes nothing (the contract: `work` may run twice,
/// inline and then on the pool): inline on this worker's SQLite read
/// connection when it can run at once, else on the pool ([`run`]).
pub async fn point_read<T, F>(pool: &Pool, inline: &InlineReads, mut work: F) -> Result<T, DbError>
where
    F: FnMut(&mut AnyConnection) -> Result<T, DbError> + Send + 'static,
    T: Send + 'static,
{
    if let Some(done) = inline.try_run(&mut work) {
        crate::metrics::point_read("inline");
        return done;
    }
    crate::metrics::point_read("pool");
    run(pool, work).await
}
