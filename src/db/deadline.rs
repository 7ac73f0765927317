//! The time bound of an admin read: `statement_timeout` on PostgreSQL, a
//! registered function that fails the statement on SQLite.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use diesel::prelude::*;

use super::connection::AnyConnection;
use super::error::DbError;

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
pub(super) struct BeforeDeadline(pub(super) bool);

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

pub(super) fn unix_ms() -> i64 {
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
pub(super) fn bounded_read<T, F>(
    conn: &mut AnyConnection,
    timeout: Duration,
    work: F,
) -> Result<T, DbError>
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
