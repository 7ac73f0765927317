//! `/api/v1/tenants`: the system tenant's administrators create and rename
//! tenants. Slugs are immutable and never reused.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{NaiveDateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

use crate::app::AppState;
use crate::audit;
use crate::auth::Principal;
use crate::db::models::Tenant;
use crate::db::{self};
use crate::error::{ApiError, FieldError};
use crate::input::body::{BODY_LIMIT, read_limited};
use crate::input::json::{Body, is_json};
use crate::pagination::{Page, open_cursor, seal_cursor};
use crate::tenants;

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TenantView {
    pub slug: String,
    pub name: String,
    pub created_at: String,
    pub updated_at: String,
}

fn time(t: NaiveDateTime) -> String {
    t.and_utc().to_rfc3339_opts(SecondsFormat::Millis, true)
}

impl From<&Tenant> for TenantView {
    fn from(t: &Tenant) -> Self {
        Self {
            slug: t.slug.clone(),
            name: t.name.clone(),
            created_at: time(t.created_at),
            updated_at: time(t.updated_at),
        }
    }
}

fn read_name(body: &mut Body, required: bool) -> Option<String> {
    let name = body.string("name", 1, 100).value();
    if name.is_none() && required && !body.has("name") {
        body.error("name", "is required");
    }
    name
}

#[utoipa::path(operation_id = "createTenant", post, path = "/api/v1/tenants", tag = "tenants", security(("admin_bearer" = [])),
    request_body(content = crate::openapi::schemas::CreateTenantRequest, content_type = "application/json"),
    responses((status = 201, description = "Created", body = TenantView, headers(("Location" = String))), crate::openapi::schemas::AdminErrors))]
pub async fn create(
    req: HttpRequest,
    principal: Principal,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let bytes = read_limited(payload, BODY_LIMIT).await?;
    principal.tenant_admin()?;
    if !is_json(&req, false) {
        return Err(ApiError::UnsupportedMediaType(
            "the body must be application/json".into(),
        ));
    }
    let mut body = Body::parse(&bytes, &["slug", "name"])?;
    let slug = body.string("slug", 1, 40).value();
    match &slug {
        Some(s) if !tenants::is_valid_slug(s) => {
            body.error("slug", "must match ^[a-z0-9][a-z0-9-]{1,39}$")
        }
        None if !body.has("slug") => body.error("slug", "is required"),
        _ => {}
    }
    let name = read_name(&mut body, true);
    body.finish()?;
    let (slug, name) = (slug.unwrap_or_default(), name.unwrap_or_default());
    let actor = principal.actor();
    let origin = principal.origin.clone();
    let now = Utc::now().naive_utc();
    let tenant = db::run(&state.pool, move |conn| {
        db::write_transaction(conn, |conn| {
            if tenants::find_by_slug(conn, &slug)?.is_some() {
                return Err(ApiError::Conflict(format!("tenant `{slug}` exists")));
            }
            if tenants::audience_owner(conn, &tenants::default_audience(&slug))?.is_some() {
                return Err(ApiError::Conflict(format!(
                    "the audience {} is registered to another tenant",
                    tenants::default_audience(&slug)
                )));
            }
            let tenant = tenants::create(conn, &slug, &name, now)?;
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
    .await?;
    Ok(HttpResponse::Created()
        .insert_header((header::LOCATION, format!("/api/v1/tenants/{}", tenant.slug)))
        .json(TenantView::from(&tenant)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    limit: Option<String>,
    cursor: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct TenantCursor {
    after: String,
}

#[utoipa::path(operation_id = "listTenants", get, path = "/api/v1/tenants", tag = "tenants", security(("admin_bearer" = [])),
    params(
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 200),
        ("cursor" = Option<String>, Query),
    ),
    responses((status = 200, description = "Tenants by slug", body = crate::pagination::Page<TenantView>), crate::openapi::schemas::AdminErrors))]
pub async fn list(
    principal: Principal,
    query: web::Query<ListQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    principal.tenant_admin()?;
    let mut errors = Vec::new();
    let limit = crate::input::json::page_limit(query.limit.as_deref(), &mut errors);
    let after = match &query.cursor {
        None => None,
        Some(c) => match open_cursor::<TenantCursor>(&state.master, c) {
            Some(c) => Some(c.after),
            None => {
                errors.push(FieldError::new(
                    "cursor",
                    "is not a cursor this list returned",
                ));
                None
            }
        },
    };
    if !errors.is_empty() {
        return Err(ApiError::invalid_fields(errors));
    }
    let mut rows = db::run(&state.pool, move |conn| {
        tenants::list(conn, after.as_deref(), limit + 1).map_err(ApiError::from)
    })
    .await?;
    let more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    let next_cursor = match (more, rows.last()) {
        (true, Some(last)) => Some(seal_cursor(
            &state.master,
            &TenantCursor {
                after: last.id.clone(),
            },
        )),
        _ => None,
    };
    Ok(HttpResponse::Ok().json(Page {
        items: rows.iter().map(TenantView::from).collect::<Vec<_>>(),
        next_cursor,
    }))
}

#[utoipa::path(operation_id = "updateTenant", patch, path = "/api/v1/tenants/{slug}", tag = "tenants", security(("admin_bearer" = [])),
    params(("slug" = String, Path)),
    request_body(content = crate::openapi::schemas::PatchTenantRequest, content_type = "application/merge-patch+json"),
    responses((status = 200, description = "The renamed tenant", body = TenantView), crate::openapi::schemas::AdminErrors))]
pub async fn patch(
    req: HttpRequest,
    principal: Principal,
    slug: web::Path<String>,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let bytes = read_limited(payload, BODY_LIMIT).await?;
    principal.tenant_admin()?;
    if !is_json(&req, true) {
        return Err(ApiError::UnsupportedMediaType(
            "the body must be application/merge-patch+json or application/json".into(),
        ));
    }
    let mut body = Body::parse(&bytes, &["name"])?;
    let name = read_name(&mut body, false);
    if body.has("name") && name.is_none() {
        body.error("name", "cannot be removed");
    }
    body.finish()?;
    let slug = slug.into_inner();
    let actor = principal.actor();
    let origin = principal.origin.clone();
    let now = Utc::now().naive_utc();
    let tenant = db::run(&state.pool, move |conn| {
        db::write_transaction(conn, |conn| {
            let mut tenant = tenants::find_by_slug(conn, &slug)?.ok_or(ApiError::NotFound)?;
            if let Some(name) = name {
                tenant.name = name;
                tenant.updated_at = now;
                tenants::rename(conn, &tenant.id, &tenant.name, now)?;
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
    .await?;
    Ok(HttpResponse::Ok().json(TenantView::from(&tenant)))
}
