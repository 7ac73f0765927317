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

/// Every entry that is not VALID, as global indices. An index is in at most
/// one of the two; every other index (allocated or not) is VALID.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NonValid {
    /// Keys revoked or deleted: INVALID, for good (revocation is
    /// irreversible, and a deleted key stays revoked).
    pub invalid: Vec<i64>,
    /// Live keys of tenants whose `api_keys_enabled` is off: SUSPENDED
    /// until the tenant is switched back on.
    pub suspended: Vec<i64>,
}

/// The entries a list rebuild marks. Read after `state()`, so they hold at
/// least every change that version counts; a change made in between moves
/// the version again and the next read rebuilds.
pub fn non_valid(conn: &mut AnyConnection) -> QueryResult<NonValid> {
    use crate::db::schema::{api_keys, tenants};
    // Its filter is the partial index `api_keys_status_invalid`'s: only the
    // revoked and deleted keys are read, however many live ones there are.
    let invalid = api_keys::table
        .filter(
            api_keys::revoked_at
                .is_not_null()
                .or(api_keys::deleted_at.is_not_null()),
        )
        .filter(api_keys::status_idx.is_not_null())
        .select(api_keys::status_idx.assume_not_null())
        .load(conn)?;
    let suspended = api_keys::table
        .inner_join(tenants::table)
        .filter(tenants::api_keys_enabled.eq(false))
        .filter(api_keys::revoked_at.is_null())
        .filter(api_keys::deleted_at.is_null())
        .filter(api_keys::status_idx.is_not_null())
        .select(api_keys::status_idx.assume_not_null())
        .load(conn)?;
    Ok(NonValid { invalid, suspended })
}
