//! The leak reports acted on (`leak_reports`): what makes a report sent
//! again change nothing.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::schema::leak_reports;
use crate::db::{self, AnyConnection};

/// Records a report of a token at a URL; false when it was recorded before.
pub fn record(
    conn: &mut AnyConnection,
    token_prefix: &str,
    url_prefix: &str,
    key_id: &str,
    now: NaiveDateTime,
) -> QueryResult<bool> {
    db::insert_new(conn, |conn| {
        diesel::insert_into(leak_reports::table)
            .values((
                leak_reports::token_prefix.eq(token_prefix),
                leak_reports::url_prefix.eq(url_prefix),
                leak_reports::key_id.eq(key_id),
                leak_reports::reported_at.eq(now),
            ))
            .execute(conn)
    })
}

/// Whether a token was reported (and acted on) before, at any URL.
pub fn known(conn: &mut AnyConnection, token_prefix: &str) -> QueryResult<bool> {
    diesel::select(diesel::dsl::exists(
        leak_reports::table.filter(leak_reports::token_prefix.eq(token_prefix)),
    ))
    .get_result(conn)
}

/// Deletes records older than `before` (the audit log's retention: past
/// it, the report's audit event is gone too).
pub fn purge_before(conn: &mut AnyConnection, before: NaiveDateTime) -> QueryResult<usize> {
    diesel::delete(leak_reports::table.filter(leak_reports::reported_at.lt(before))).execute(conn)
}
