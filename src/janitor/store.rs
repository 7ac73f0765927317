//! The janitor's own SQL: its lease on the `locks` row. What it purges is
//! deleted by each table's own store.

use chrono::{Duration, NaiveDateTime};
use diesel::QueryResult;

use crate::db::{AnyConnection, lease};

/// Takes (or renews) the janitor lease for `holder`; false when another
/// replica holds it.
pub fn take_lease(
    conn: &mut AnyConnection,
    holder: &str,
    now: NaiveDateTime,
    length: Duration,
) -> QueryResult<bool> {
    lease::take(conn, "janitor", holder, now, length)
}
