//! `GET`/`PATCH /api/v1/settings`: the acting tenant's policy.

use actix_web::{HttpRequest, HttpResponse, web};

use crate::app::AppState;
use crate::auth::Principal;
use crate::error::ApiError;
use crate::input::body::{BODY_LIMIT, read_limited};
use crate::input::json::is_json;
use crate::tenants::policy;

#[utoipa::path(operation_id = "getSettings", get, path = "/api/v1/settings", tag = "tenants", security(("admin_bearer" = [])),
    responses((status = 200, description = "The acting tenant's policy", body = crate::tenants::policy::SettingsView), crate::openapi::schemas::AdminErrors))]
pub async fn get(
    principal: Principal,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    principal.settings_admin()?;
    let view = policy::view(&state, &principal.tenant).await?;
    Ok(HttpResponse::Ok().json(view))
}

#[utoipa::path(operation_id = "updateSettings", patch, path = "/api/v1/settings", tag = "tenants", security(("admin_bearer" = [])),
    request_body(content = crate::openapi::schemas::SettingsPatch, content_type = "application/merge-patch+json"),
    responses((status = 200, description = "The new policy", body = crate::tenants::policy::SettingsView), crate::openapi::schemas::AdminErrors))]
pub async fn patch(
    req: HttpRequest,
    principal: Principal,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let body = read_limited(payload, BODY_LIMIT).await?;
    principal.settings_admin()?;
    if !is_json(&req, true) {
        return Err(ApiError::UnsupportedMediaType(
            "the body must be application/merge-patch+json or application/json".to_owned(),
        ));
    }
    let view = policy::patch(&state, &principal, &body).await?;
    Ok(HttpResponse::Ok().json(view))
}
