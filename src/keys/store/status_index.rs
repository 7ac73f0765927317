//! Token Status List indices: allocated from the one `status_list_state`
//! row inside the caller's transaction, so two replicas never hand out the
//! same index (the row's update serializes them) and an index is never
//! reused (the counter only grows, and a deleted key keeps its entry).

use diesel::prelude::*;

use crate::db::AnyConnection;
use crate::db::schema::status_list_state;

/// Reserves `count` consecutive indices; returns the first. Must run in the
/// transaction that stores the keys, so a rollback returns nothing taken.
pub fn allocate(conn: &mut AnyConnection, count: i64) -> QueryResult<i64> {
    diesel::update(status_list_state::table.find(1))
        .set(status_list_state::next_idx.eq(status_list_state::next_idx + count))
        .execute(conn)?;
    let next: i64 = status_list_state::table
        .find(1)
        .select(status_list_state::next_idx)
        .first(conn)?;
    Ok(next - count)
}

/// The version and the number of indices handed out so far.
pub fn state(conn: &mut AnyConnection) -> QueryResult<(i64, i64)> {
    status_list_state::table
        .find(1)
        .select((status_list_state::version, status_list_state::next_idx))
        .first(conn)
}
