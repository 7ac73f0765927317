//! `/api/v1/keys`: thin handlers over `keys::manage`.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};

use crate::app::AppState;
use crate::auth::Principal;
use crate::error::ApiError;
use crate::input::body::{BODY_LIMIT, read_limited};
use crate::input::json::is_json;
use crate::keys::manage::{self, ListQuery};

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
    let created = manage::create(&state, principal, &body).await?;
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
    let page = manage::list(&state, principal, query.into_inner()).await?;
    Ok(HttpResponse::Ok().json(page))
}

#[utoipa::path(operation_id = "getKey", get, path = "/api/v1/keys/{id}", tag = "keys", security(("admin_bearer" = [])), params(("id" = String, Path, description = "The key id")),
    responses((status = 200, description = "The key", body = crate::keys::view::KeyView), crate::openapi::schemas::AdminErrors))]
pub async fn get(
    principal: Principal,
    id: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(manage::get(&state, principal, &id).await?))
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
    Ok(HttpResponse::Ok().json(manage::patch(&state, principal, &id, &body).await?))
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
    Ok(HttpResponse::Ok().json(manage::revoke(&state, principal, &id, &body).await?))
}

#[utoipa::path(operation_id = "revokeKeys", post, path = "/api/v1/keys/revoke", tag = "keys", security(("admin_bearer" = [])),
    request_body(content = crate::openapi::schemas::RevokeManyRequest, content_type = "application/json"),
    responses((status = 200, description = "Revoked in one transaction", body = crate::keys::manage::BulkRevoked), crate::openapi::schemas::AdminErrors))]
pub async fn revoke_many(
    req: HttpRequest,
    principal: Principal,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let body = read_limited(payload, BODY_LIMIT).await?;
    json_body(&req, &body, false)?;
    Ok(HttpResponse::Ok().json(manage::revoke_many(&state, principal, &body).await?))
}

#[utoipa::path(operation_id = "deleteKey", delete, path = "/api/v1/keys/{id}", tag = "keys", security(("admin_bearer" = [])), params(("id" = String, Path, description = "The key id")),
    responses((status = 204, description = "Deleted (and the keys it created through `keys:self` revoked)"), crate::openapi::schemas::AdminErrors))]
pub async fn delete(
    principal: Principal,
    id: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    manage::delete(&state, principal, &id).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(operation_id = "rotateKey", post, path = "/api/v1/keys/{id}/rotate", tag = "keys", security(("admin_bearer" = [])), params(("id" = String, Path, description = "The key id")),
    request_body(content = crate::openapi::schemas::RotateKeyRequest, content_type = "application/json"),
    responses((status = 200, description = "A new secret under the same id, shown only here", body = crate::keys::manage::RotatedKey), crate::openapi::schemas::AdminErrors))]
pub async fn rotate(
    req: HttpRequest,
    principal: Principal,
    id: web::Path<String>,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let body = read_limited(payload, BODY_LIMIT).await?;
    json_body(&req, &body, false)?;
    Ok(HttpResponse::Ok().json(manage::rotate(&state, principal, &id, &body).await?))
}
