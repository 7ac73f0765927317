//! `/api/v1/tenants`: the system tenant's administrators create and rename
//! tenants. Each handler: extract → parse into a typed request → one
//! `tenants::service` call → serialize.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};

use crate::app::AppState;
use crate::db::models::Tenant;
use crate::domain::text::timestamp;
use crate::error::{ApiError, FieldError};
use crate::input::body::{BODY_LIMIT, read_limited};
use crate::input::json::{Body, is_json, page_limit};
use crate::pagination::Page;
use crate::powers::Principal;
use crate::tenants::request::{NewTenant, RenameTenant, TenantPage};
use crate::tenants::{self, service};

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TenantView {
    pub slug: String,
    pub name: String,
    pub created_at: String,
    pub updated_at: String,
}

impl From<&Tenant> for TenantView {
    fn from(t: &Tenant) -> Self {
        Self {
            slug: t.slug.clone(),
            name: t.name.clone(),
            created_at: timestamp(t.created_at),
            updated_at: timestamp(t.updated_at),
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
    let power = principal.tenant_admin()?;
    if !is_json(&req, false) {
        return Err(ApiError::UnsupportedMediaType(
            "the body must be application/json".into(),
        ));
    }
    let request = parse_new(&bytes)?;
    let tenant = service::create(&state.pool, &principal, power, request).await?;
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
    let power = principal.tenant_admin()?;
    let request = parse_page(&query, &state)?;
    let page = service::list(&state.pool, &state.master, power, request).await?;
    Ok(HttpResponse::Ok().json(Page {
        items: page.items.iter().map(TenantView::from).collect::<Vec<_>>(),
        next_cursor: page.next_cursor,
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
    let power = principal.tenant_admin()?;
    if !is_json(&req, true) {
        return Err(ApiError::UnsupportedMediaType(
            "the body must be application/merge-patch+json or application/json".into(),
        ));
    }
    let request = parse_rename(&bytes)?;
    let tenant =
        service::rename(&state.pool, &principal, power, slug.into_inner(), request).await?;
    Ok(HttpResponse::Ok().json(TenantView::from(&tenant)))
}

fn parse_new(bytes: &[u8]) -> Result<NewTenant, ApiError> {
    let mut body = Body::parse(bytes, &["slug", "name"])?;
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
    Ok(NewTenant {
        slug: slug.unwrap_or_default(),
        name: name.unwrap_or_default(),
    })
}

fn parse_rename(bytes: &[u8]) -> Result<RenameTenant, ApiError> {
    let mut body = Body::parse(bytes, &["name"])?;
    let name = read_name(&mut body, false);
    if body.has("name") && name.is_none() {
        body.error("name", "cannot be removed");
    }
    body.finish()?;
    Ok(RenameTenant { name })
}

/// The page size and cursor, both checked: every bad one named in one 400.
fn parse_page(query: &ListQuery, state: &AppState) -> Result<TenantPage, ApiError> {
    let mut errors = Vec::new();
    let limit = page_limit(query.limit.as_deref(), &mut errors);
    let after = match &query.cursor {
        None => None,
        Some(c) => match service::cursor_after(&state.master, c) {
            Some(after) => Some(after),
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
    Ok(TenantPage { limit, after })
}
