//! The janitor's own SQL: its lease on the `locks` row, and the purge of
//! signing keys. The latter belongs with the signing-key store; it waits
//! here until that store is split out of `tokens::signing` (issue #15).

use chrono::{Duration, NaiveDateTime};
use diesel::prelude::*;

use crate::db::AnyConnection;
use crate::db::schema::{locks, signing_keys};

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

/// Deletes the signing keys retired or revoked before `cutoff`; how many
/// went.
pub fn purge_signing_keys(conn: &mut AnyConnection, cutoff: NaiveDateTime) -> QueryResult<usize> {
    diesel::delete(
        signing_keys::table.filter(
            signing_keys::retired_at
                .lt(cutoff)
                .or(signing_keys::revoked_at.lt(cutoff)),
        ),
    )
    .execute(conn)
}
