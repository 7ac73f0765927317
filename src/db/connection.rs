//! The one connection type both backends hide behind.

use diesel::connection::SimpleConnection;

use super::error::DbError;

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
            $crate::db::connection::AnyConnection::Sqlite($c) => $body,
            $crate::db::connection::AnyConnection::Postgresql($c) => $body,
        }
    };
}

/// A cheap round trip.
pub fn ping(conn: &mut AnyConnection) -> Result<(), DbError> {
    conn.batch_execute("SELECT 1").map_err(DbError::from)
}

/// How long a SQLite start-up waits for other processes' start-ups, beyond
/// the busy timeout of each attempt.
pub(super) const SQLITE_STARTUP_WAIT: std::time::Duration = std::time::Duration::from_secs(60);

/// SQLite's "database is locked" (SQLITE_BUSY), which Diesel does not name.
pub(super) fn is_busy(e: &diesel::result::Error) -> bool {
    matches!(e, diesel::result::Error::DatabaseError(_, info)
        if info.message().contains("locked") || info.message().contains("busy"))
}
