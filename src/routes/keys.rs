//! `/api/v1/keys`. Each handler: extract (body, media type, the caller's
//! capability) → parse into a typed request (`parse`) → one key-service
//! call → serialize.

pub(crate) mod parse;

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};

use crate::app::AppState;
use crate::error::ApiError;
use crate::input::body::{BODY_LIMIT, read_limited};
use crate::input::json::is_json;
use crate::keys::service::{self, Deps};
use crate::keys::{list, revoke, rotate};
use crate::powers::Principal;
use parse::ListQuery;

fn deps(state: &AppState) -> Deps<'_> {
    Deps {
        pool: &state.pool,
        admin_lane: &state.admin_lane,
        master: &state.master,
        tokens: &state.settings.tokens,
        statuslist: &state.settings.statuslist,
    }
}

fn json_body(req: &HttpRequest, body: &[u8], merge_patch: bool) -> Result<(), ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) || is_json(req, merge_patch) {
        Ok(())
    } else {
        Err(ApiError::UnsupportedMediaType(if merge_patch {
            "the body must be application/merge-patch+json or application/json".to_owned()
        } else {
            "the body must be application/json".to_owned()
        }))
    }
}

#[utoipa::path(operation_id = "createKey", post, path = "/api/v1/keys", tag = "keys", security(("admin_bearer" = [])),
    request_body(content = crate::openapi::schemas::CreateKeyRequest, content_type = "application/json"),
    responses(
        (status = 201, description = "Created; the only response that shows the secret", body = crate::keys::view::CreatedKey,
            headers(("Location" = String))),
        crate::openapi::schemas::AdminErrors,
    ))]
pub async fn create(
    req: HttpRequest,
    principal: Principal,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let body = read_limited(payload, BODY_LIMIT).await?;
    json_body(&req, &body, false)?;
    let creator = principal.key_creator()?;
    let request = parse::create(&body)?;
    let created = service::create(&deps(&state), &principal, creator, request).await?;
    Ok(HttpResponse::Created()
        .insert_header((
            header::LOCATION,
            format!("/api/v1/keys/{}", created.view.id),
        ))
        .json(created))
}

#[utoipa::path(operation_id = "listKeys", get, path = "/api/v1/keys", tag = "keys", security(("admin_bearer" = [])),
    params(
        ("q" = Option<String>, Query, description = "1..100 characters: case-insensitive substring of name, id or owner"),
        ("status" = Option<String>, Query, description = "`active`, `expired` or `revoked`"),
        ("owner" = Option<String>, Query),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 200, description = "Default 50"),
        ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page"),
    ),
    responses((status = 200, description = "Newest first", body = crate::pagination::Page<crate::keys::view::KeyView>), crate::openapi::schemas::AdminErrors))]
pub async fn list(
    principal: Principal,
    query: web::Query<ListQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let reader = principal.key_reader()?;
    let request = parse::list(
        query.into_inner(),
        &reader,
        &principal.tenant.id,
        &state.master,
    )?;
    let page = list::list(&deps(&state), &principal, reader, request).await?;
    Ok(HttpResponse::Ok().json(page))
}

#[utoipa::path(operation_id = "getKey", get, path = "/api/v1/keys/{id}", tag = "keys", security(("admin_bearer" = [])), params(("id" = String, Path, description = "The key id")),
    responses((status = 200, description = "The key", body = crate::keys::view::KeyView), crate::openapi::schemas::AdminErrors))]
pub async fn get(
    principal: Principal,
    id: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let reader = principal.key_reader()?;
    let view = service::get(&deps(&state), &principal, reader, &id).await?;
    Ok(HttpResponse::Ok().json(view))
}

#[utoipa::path(operation_id = "updateKey", patch, path = "/api/v1/keys/{id}", tag = "keys", security(("admin_bearer" = [])), params(("id" = String, Path, description = "The key id")),
    request_body(content = crate::openapi::schemas::PatchKeyRequest, content_type = "application/merge-patch+json"),
    responses((status = 200, description = "The updated key", body = crate::keys::view::KeyView), crate::openapi::schemas::AdminErrors))]
pub async fn patch(
    req: HttpRequest,
    principal: Principal,
    id: web::Path<String>,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let body = read_limited(payload, BODY_LIMIT).await?;
    json_body(&req, &body, true)?;
    let admin = principal.key_admin()?;
    let request = parse::patch(&body)?;
    let view = service::patch(&deps(&state), &principal, admin, &id, request).await?;
    Ok(HttpResponse::Ok().json(view))
}

#[utoipa::path(operation_id = "revokeKey", post, path = "/api/v1/keys/{id}/revoke", tag = "keys", security(("admin_bearer" = [])), params(("id" = String, Path, description = "The key id")),
    request_body(content = Option<crate::openapi::schemas::RevokeKeyRequest>, content_type = "application/json"),
    responses((status = 200, description = "Revoked (idempotent: the first reason and time stay)", body = crate::keys::view::KeyView), crate::openapi::schemas::AdminErrors))]
pub async fn revoke(
    req: HttpRequest,
    principal: Principal,
    id: web::Path<String>,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let body = read_limited(payload, BODY_LIMIT).await?;
    json_body(&req, &body, false)?;
    let revoker = principal.key_revoker()?;
    let request = parse::revoke(&body)?;
    let view = revoke::revoke(&deps(&state), &principal, revoker, &id, request).await?;
    Ok(HttpResponse::Ok().json(view))
}

#[utoipa::path(operation_id = "revokeKeys", post, path = "/api/v1/keys/revoke", tag = "keys", security(("admin_bearer" = [])),
    request_body(content = crate::openapi::schemas::RevokeManyRequest, content_type = "application/json"),
    responses((status = 200, description = "Revoked in one transaction", body = crate::keys::revoke::BulkRevoked), crate::openapi::schemas::AdminErrors))]
pub async fn revoke_many(
    req: HttpRequest,
    principal: Principal,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let body = read_limited(payload, BODY_LIMIT).await?;
    json_body(&req, &body, false)?;
    let revoker = principal.key_revoker()?;
    let request = parse::revoke_many(&body)?;
    let done = revoke::revoke_many(&deps(&state), &principal, revoker, request).await?;
    Ok(HttpResponse::Ok().json(done))
}

#[utoipa::path(operation_id = "deleteKey", delete, path = "/api/v1/keys/{id}", tag = "keys", security(("admin_bearer" = [])), params(("id" = String, Path, description = "The key id")),
    responses((status = 204, description = "Deleted (and the keys it created through `keys:self` revoked)"), crate::openapi::schemas::AdminErrors))]
pub async fn delete(
    principal: Principal,
    id: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let admin = principal.key_admin()?;
    revoke::delete(&deps(&state), &principal, admin, &id).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(operation_id = "rotateKey", post, path = "/api/v1/keys/{id}/rotate", tag = "keys", security(("admin_bearer" = [])), params(("id" = String, Path, description = "The key id")),
    request_body(content = crate::openapi::schemas::RotateKeyRequest, content_type = "application/json"),
    responses((status = 200, description = "A new secret under the same id, shown only here", body = crate::keys::rotate::RotatedKey), crate::openapi::schemas::AdminErrors))]
pub async fn rotate(
    req: HttpRequest,
    principal: Principal,
    id: web::Path<String>,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let body = read_limited(payload, BODY_LIMIT).await?;
    json_body(&req, &body, false)?;
    let admin = principal.key_admin()?;
    let request = parse::rotate(&body)?;
    let rotated = rotate::rotate(&deps(&state), &principal, admin, &id, request).await?;
    Ok(HttpResponse::Ok().json(rotated))
}
