//! The error of everything below `db` (see the module's error policy).
//! Ground floor: `error.rs` maps it to answers without depending on the
//! rest of `db`.

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
