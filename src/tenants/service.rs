//! What the tenant routes do: create, list and rename tenants, each change
//! one transaction with its audit event. Slugs are immutable and never
//! reused.

use chrono::Utc;
use serde::{Deserialize, Serialize};

use super::request::{NewTenant, RenameTenant, TenantPage};
use super::{default_audience, store};
use crate::audit;
use crate::crypto::master::MasterKey;
use crate::db::models::Tenant;
use crate::db::{self, Pool};
use crate::error::ApiError;
use crate::pagination::{Page, open_cursor};
use crate::powers::{Principal, TenantAdmin};

#[derive(Serialize, Deserialize)]
struct TenantCursor {
    after: String,
}

/// Where the page a cursor ends stopped, if this list sealed it.
pub fn cursor_after(master: &MasterKey, raw: &str) -> Option<String> {
    open_cursor::<TenantCursor>(master, raw).map(|c| c.after)
}

/// `POST /api/v1/tenants`: 409 when the slug, or its default audience, is
/// taken.
pub async fn create(
    pool: &Pool,
    principal: &Principal,
    _power: TenantAdmin,
    request: NewTenant,
) -> Result<Tenant, ApiError> {
    let NewTenant { slug, name } = request;
    let actor = principal.actor();
    let origin = principal.origin.clone();
    let now = Utc::now().naive_utc();
    db::run(pool, move |conn| {
        db::write_transaction(conn, |conn| {
            if store::find_by_slug(conn, &slug)?.is_some() {
                return Err(ApiError::Conflict(format!("tenant `{slug}` exists")));
            }
            if store::audience_owner(conn, &default_audience(&slug))?.is_some() {
                return Err(ApiError::Conflict(format!(
                    "the audience {} is registered to another tenant",
                    default_audience(&slug)
                )));
            }
            let tenant = store::create(conn, &slug, &name, now)?;
            audit::write(
                conn,
                audit::Record {
                    tenant_id: Some(&tenant.id),
                    action: "tenant.created",
                    actor: &actor,
                    origin: &origin,
                    target_type: "tenant",
                    target_id: &tenant.slug,
                    success: true,
                    details: serde_json::json!({ "name": tenant.name }),
                },
                now,
            )?;
            Ok::<_, ApiError>(tenant)
        })
    })
    .await
}

/// `GET /api/v1/tenants`: by id (creation order), a sealed cursor to the
/// next page.
pub async fn list(
    pool: &Pool,
    master: &MasterKey,
    _power: TenantAdmin,
    request: TenantPage,
) -> Result<Page<Tenant>, ApiError> {
    let TenantPage { limit, after } = request;
    let rows = db::run(pool, move |conn| {
        store::list(conn, after.as_deref(), limit + 1).map_err(ApiError::from)
    })
    .await?;
    Ok(Page::of_rows(
        rows,
        limit,
        master,
        |last| TenantCursor {
            after: last.id.clone(),
        },
        |tenant| tenant,
    ))
}

/// `PATCH /api/v1/tenants/{slug}`: renames it (or, without a name, only
/// reads it).
pub async fn rename(
    pool: &Pool,
    principal: &Principal,
    _power: TenantAdmin,
    slug: String,
    request: RenameTenant,
) -> Result<Tenant, ApiError> {
    let name = request.name;
    let actor = principal.actor();
    let origin = principal.origin.clone();
    let now = Utc::now().naive_utc();
    db::run(pool, move |conn| {
        db::write_transaction(conn, |conn| {
            let mut tenant = store::find_by_slug(conn, &slug)?.ok_or(ApiError::NotFound)?;
            if let Some(name) = name {
                tenant.name = name;
                tenant.updated_at = now;
                store::rename(conn, &tenant.id, &tenant.name, now)?;
                audit::write(
                    conn,
                    audit::Record {
                        tenant_id: Some(&tenant.id),
                        action: "tenant.updated",
                        actor: &actor,
                        origin: &origin,
                        target_type: "tenant",
                        target_id: &tenant.slug,
                        success: true,
                        details: serde_json::json!({ "fields": ["name"] }),
                    },
                    now,
                )?;
            }
            Ok::<_, ApiError>(tenant)
        })
    })
    .await
}
