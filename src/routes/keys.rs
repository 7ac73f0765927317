//! `/api/v1/keys`: thin handlers over `keys::manage`.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};

use crate::auth::Principal;
use crate::error::ApiError;
use crate::keys::manage::{self, ListQuery};
use crate::routes::json_body::{is_json, read_limited};
use crate::startup::{AppState, BODY_LIMIT};

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

pub async fn list(
    principal: Principal,
    query: web::Query<ListQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let page = manage::list(&state, principal, query.into_inner()).await?;
    Ok(HttpResponse::Ok().json(page))
}

pub async fn get(
    principal: Principal,
    id: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(manage::get(&state, principal, &id).await?))
}

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

pub async fn delete(
    principal: Principal,
    id: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    manage::delete(&state, principal, &id).await?;
    Ok(HttpResponse::NoContent().finish())
}

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
