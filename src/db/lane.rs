//! The admin lane: connections of their own for admin lists and searches.

use std::sync::Arc;
use std::time::Duration;

use diesel::QueryResult;

use super::connection::AnyConnection;
use super::deadline::{ReadBound, bounded_read};
use super::error::DbError;
use super::pool::{Pool, run, sized_pool};
use crate::config::DatabaseSettings;

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
