//! `api_keys` queries of the admin service: the owner quota, list and
//! search, a merge patch, the audiences live keys hold.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::models::ApiKey;
use crate::db::schema::api_keys;
use crate::db::{AnyConnection, ReadBound};

use super::search;

/// Keys of `owner` that still work: neither revoked, deleted nor expired.
pub fn count_live(
    conn: &mut AnyConnection,
    tenant_id: &str,
    owner: &str,
    now: NaiveDateTime,
) -> QueryResult<i64> {
    api_keys::table
        .filter(api_keys::tenant_id.eq(tenant_id))
        .filter(api_keys::owner.eq(owner))
        .filter(api_keys::deleted_at.is_null())
        .filter(api_keys::revoked_at.is_null())
        .filter(
            api_keys::expires_at
                .is_null()
                .or(api_keys::expires_at.gt(now)),
        )
        .count()
        .get_result(conn)
}

/// Which keys a list asks for; every field already checked.
#[derive(Debug, Clone)]
pub struct ListFilter {
    pub tenant_id: String,
    /// Substring of name, id or owner, ASCII case ignored (see `search`).
    pub q: Option<String>,
    /// `active`, `expired` or `revoked`.
    pub status: Option<String>,
    pub owner: Option<String>,
    /// Only ids below this one (the previous page's last).
    pub before_id: Option<String>,
    pub limit: i64,
}

/// A page of a tenant's keys, newest first (ids are UUID v7), for the
/// admin lane: `bound` keeps a search within its time on SQLite.
pub fn list_page(
    conn: &mut AnyConnection,
    bound: &ReadBound,
    filter: &ListFilter,
    now: NaiveDateTime,
) -> QueryResult<Vec<ApiKey>> {
    let plan = match &filter.q {
        Some(q) => Some(search::plan(conn, bound, q)?),
        None => None,
    };
    let mut select = api_keys::table
        .filter(api_keys::deleted_at.is_null())
        .select(ApiKey::as_select())
        .order(api_keys::id.desc())
        .limit(filter.limit)
        .into_boxed();
    select = if plan.as_ref().is_some_and(|p| p.by_rowid) {
        select.filter(search::tenant_unindexed(&filter.tenant_id))
    } else {
        select.filter(api_keys::tenant_id.eq(&filter.tenant_id))
    };
    // Before the costly conditions, so every row visited checks it.
    if let Some(guard) = bound.sqlite_guard() {
        select = select.filter(guard);
    }
    if let Some(after) = &filter.before_id {
        select = select.filter(api_keys::id.lt(after.clone()));
    }
    if let Some(owner) = &filter.owner {
        select = select.filter(api_keys::owner.eq(owner.clone()));
    }
    for condition in plan.into_iter().flat_map(|p| p.conditions) {
        select = select.filter(condition);
    }
    select = match filter.status.as_deref() {
        Some("revoked") => select.filter(api_keys::revoked_at.is_not_null()),
        Some("expired") => select
            .filter(api_keys::revoked_at.is_null())
            .filter(api_keys::expires_at.le(now)),
        Some("active") => select.filter(api_keys::revoked_at.is_null()).filter(
            api_keys::expires_at
                .is_null()
                .or(api_keys::expires_at.gt(now)),
        ),
        _ => select,
    };
    select.load::<ApiKey>(conn)
}

/// A merge patch's columns: `None` leaves one as it is.
#[derive(AsChangeset)]
#[diesel(table_name = api_keys)]
pub struct KeyChanges {
    pub name: Option<String>,
    pub description: Option<Option<String>>,
    pub ip_allowlist: Option<Option<String>>,
    pub metadata: Option<Option<String>>,
    pub claims: Option<Option<String>>,
    pub expires_at: Option<Option<NaiveDateTime>>,
    pub updated_at: NaiveDateTime,
}

/// Applies a merge patch to one key of the tenant.
pub fn update(
    conn: &mut AnyConnection,
    tenant_id: &str,
    id: &str,
    changes: &KeyChanges,
) -> QueryResult<usize> {
    diesel::update(
        api_keys::table
            .filter(api_keys::id.eq(id))
            .filter(api_keys::tenant_id.eq(tenant_id)),
    )
    .set(changes)
    .execute(conn)
}

/// The `audiences` column (JSON text) of the tenant's keys that are
/// neither revoked nor deleted; the caller parses them.
pub fn live_audience_lists(conn: &mut AnyConnection, tenant_id: &str) -> QueryResult<Vec<String>> {
    api_keys::table
        .filter(api_keys::tenant_id.eq(tenant_id))
        .filter(api_keys::deleted_at.is_null())
        .filter(api_keys::revoked_at.is_null())
        .select(api_keys::audiences)
        .load(conn)
}
