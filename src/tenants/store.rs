//! All SQL on `tenants` and `tenant_audiences`. Services and handlers call
//! these finders and writers; none builds a query of its own.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::AnyConnection;
use crate::db::models::{Tenant, TenantAudience};
use crate::db::schema::{tenant_audiences, tenants};
use crate::domain::audience::tenant_audience;
use crate::domain::events::LeakResponse;

/// Inserts a tenant with default policy and registers its default audience.
pub fn create(
    conn: &mut AnyConnection,
    slug: &str,
    name: &str,
    now: NaiveDateTime,
) -> QueryResult<Tenant> {
    let tenant = Tenant {
        id: uuid::Uuid::now_v7().to_string(),
        slug: slug.to_owned(),
        name: name.to_owned(),
        api_keys_enabled: true,
        default_key_lifetime_s: None,
        max_key_lifetime_s: None,
        max_keys_per_owner: 100,
        default_token_ttl_s: 900,
        max_token_ttl_s: 3600,
        require_ip_allowlist: false,
        allowed_ip_ranges: "[]".to_owned(),
        default_audience: tenant_audience(slug),
        default_rate_limit_per_s: 100.0,
        created_at: now,
        updated_at: now,
        expiry_warning_days: "[]".to_owned(),
        leak_response: LeakResponse::Revoke.as_str().to_owned(),
    };
    diesel::insert_into(tenants::table)
        .values(&tenant)
        .execute(conn)?;
    diesel::insert_into(tenant_audiences::table)
        .values(&TenantAudience {
            audience: tenant.default_audience.clone(),
            tenant_id: tenant.id.clone(),
            created_at: now,
        })
        .execute(conn)?;
    Ok(tenant)
}

pub fn any_exists(conn: &mut AnyConnection) -> QueryResult<bool> {
    diesel::select(diesel::dsl::exists(tenants::table.select(tenants::id))).get_result(conn)
}

pub fn find_by_slug(conn: &mut AnyConnection, slug: &str) -> QueryResult<Option<Tenant>> {
    tenants::table
        .filter(tenants::slug.eq(slug))
        .select(Tenant::as_select())
        .first(conn)
        .optional()
}

pub fn find_by_id(conn: &mut AnyConnection, id: &str) -> QueryResult<Option<Tenant>> {
    tenants::table
        .find(id)
        .select(Tenant::as_select())
        .first(conn)
        .optional()
}

/// Whether `audience` is registered to this tenant.
pub fn has_audience(
    conn: &mut AnyConnection,
    tenant_id: &str,
    audience: &str,
) -> QueryResult<bool> {
    diesel::select(diesel::dsl::exists(
        tenant_audiences::table
            .filter(tenant_audiences::audience.eq(audience))
            .filter(tenant_audiences::tenant_id.eq(tenant_id)),
    ))
    .get_result(conn)
}

/// Opens a section that runs alone per tenant: a write to the tenant row
/// (a row lock on PostgreSQL, the write lock on SQLite) that holds until the
/// transaction ends. Quotas counted after it cannot race.
pub fn lock(conn: &mut AnyConnection, tenant_id: &str) -> QueryResult<()> {
    diesel::update(tenants::table.find(tenant_id))
        .set(tenants::updated_at.eq(tenants::updated_at))
        .execute(conn)?;
    Ok(())
}

/// All tenants, by id (creation order), after `after`.
pub fn list(conn: &mut AnyConnection, after: Option<&str>, limit: i64) -> QueryResult<Vec<Tenant>> {
    let mut query = tenants::table
        .select(Tenant::as_select())
        .order(tenants::id.asc())
        .limit(limit)
        .into_boxed();
    if let Some(after) = after {
        query = query.filter(tenants::id.gt(after.to_owned()));
    }
    query.load(conn)
}

pub fn rename(
    conn: &mut AnyConnection,
    id: &str,
    name: &str,
    now: NaiveDateTime,
) -> QueryResult<()> {
    diesel::update(tenants::table.find(id))
        .set((tenants::name.eq(name), tenants::updated_at.eq(now)))
        .execute(conn)?;
    Ok(())
}

/// Which tenant (id) an audience is registered to.
pub fn audience_owner(conn: &mut AnyConnection, audience: &str) -> QueryResult<Option<String>> {
    tenant_audiences::table
        .find(audience)
        .select(tenant_audiences::tenant_id)
        .first(conn)
        .optional()
}

/// The tenant's registered audiences, in order.
pub fn audiences_of(conn: &mut AnyConnection, tenant_id: &str) -> QueryResult<Vec<String>> {
    tenant_audiences::table
        .filter(tenant_audiences::tenant_id.eq(tenant_id))
        .select(tenant_audiences::audience)
        .order(tenant_audiences::audience)
        .load(conn)
}

/// Unregisters an audience.
pub fn remove_audience(conn: &mut AnyConnection, audience: &str) -> QueryResult<()> {
    diesel::delete(tenant_audiences::table.find(audience)).execute(conn)?;
    Ok(())
}

/// Registers an audience to a tenant.
pub fn add_audience(
    conn: &mut AnyConnection,
    tenant_id: &str,
    audience: &str,
    now: NaiveDateTime,
) -> QueryResult<()> {
    diesel::insert_into(tenant_audiences::table)
        .values(&TenantAudience {
            audience: audience.to_owned(),
            tenant_id: tenant_id.to_owned(),
            created_at: now,
        })
        .execute(conn)?;
    Ok(())
}

/// Writes every policy column of `tenant` (its id picks the row).
pub fn update(conn: &mut AnyConnection, tenant: &Tenant) -> QueryResult<()> {
    diesel::update(tenants::table.find(&tenant.id))
        .set(tenant)
        .execute(conn)?;
    Ok(())
}
