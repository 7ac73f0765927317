//! Leases on `locks` rows: work that one replica at a time does (the
//! janitor, event delivery) holds one, renewing it while it works.

use chrono::{Duration, NaiveDateTime};
use diesel::prelude::*;

use super::AnyConnection;
use super::schema::locks;

/// Takes (or renews) the lease `name` for `holder` until `now + length`;
/// false when another holder's lease has not run out.
pub fn take(
    conn: &mut AnyConnection,
    name: &str,
    holder: &str,
    now: NaiveDateTime,
    length: Duration,
) -> QueryResult<bool> {
    let taken = diesel::update(
        locks::table.filter(locks::name.eq(name)).filter(
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

/// Gives the lease up, if `holder` has it, so another replica need not wait
/// for it to run out (a graceful stop).
pub fn release(conn: &mut AnyConnection, name: &str, holder: &str) -> QueryResult<()> {
    diesel::update(
        locks::table
            .filter(locks::name.eq(name))
            .filter(locks::holder.eq(holder)),
    )
    .set(locks::held_until.eq(None::<NaiveDateTime>))
    .execute(conn)?;
    Ok(())
}
