//! The janitor's own SQL: its lease on the `locks` row. What it purges is
//! deleted by each table's own store.

use chrono::{Duration, NaiveDateTime};
use diesel::prelude::*;

use crate::db::AnyConnection;
use crate::db::schema::locks;

/// Takes (or renews) the janitor lease for `holder`; false when another
/// replica holds it.
pub fn take_lease(
    conn: &mut AnyConnection,
    holder: &str,
    now: NaiveDateTime,
    length: Duration,
) -> QueryResult<bool> {
    let taken = diesel::update(
        locks::table.filter(locks::name.eq("janitor")).filter(
            locks::held_until
                .is_null()
                .or(locks::held_until.lt(now))
                .or(locks::holder.eq(holder)),
        ),
    )
    .set((locks::holder.eq(holder), locks::held_until.eq(now + length)))
    .execute(conn)?;
    Ok(taken == 1)
}
