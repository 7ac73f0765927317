//! `/api/v1/signing-keys`: the caller's capability, one call to
//! [`crate::signing_keys`], the answer.

use actix_web::{HttpResponse, web};

use crate::app::AppState;
use crate::error::ApiError;
use crate::powers::Principal;
use crate::signing_keys::{self, Deps};

fn deps(state: &AppState) -> Deps {
    Deps {
        pool: state.pool.clone(),
        master: state.master.clone(),
        settings: state.settings.clone(),
        keyring: state.keyring.clone(),
    }
}

#[utoipa::path(operation_id = "listSigningKeys", get, path = "/api/v1/signing-keys", tag = "signing-keys", security(("admin_bearer" = [])),
    responses((status = 200, description = "Every signing key, metadata only", body = crate::pagination::Page<crate::signing_keys::SigningKeyView>), crate::openapi::schemas::AdminErrors))]
pub async fn list(
    principal: Principal,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let power = principal.signing_key_admin()?;
    let items = signing_keys::list(&deps(&state), power).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "items": items, "next_cursor": null })))
}

#[utoipa::path(operation_id = "rotateSigningKeys", post, path = "/api/v1/signing-keys/rotate", tag = "signing-keys", security(("admin_bearer" = [])),
    responses((status = 200, description = "The next key activates `signing.reload_s` from now", body = crate::tokens::signing::Rotation), crate::openapi::schemas::AdminErrors))]
pub async fn rotate(
    principal: Principal,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let power = principal.signing_key_admin()?;
    let rotation = signing_keys::rotate(
        &deps(&state),
        power,
        principal.actor(),
        principal.origin.clone(),
    )
    .await?;
    Ok(HttpResponse::Ok().json(rotation))
}

#[utoipa::path(operation_id = "revokeSigningKey", post, path = "/api/v1/signing-keys/{kid}/revoke", tag = "signing-keys", security(("admin_bearer" = [])),
    params(("kid" = String, Path)),
    responses((status = 200, description = "Revoked: withdrawn from the JWKS at once", body = crate::signing_keys::SigningKeyView), crate::openapi::schemas::AdminErrors))]
pub async fn revoke(
    principal: Principal,
    kid: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let power = principal.signing_key_admin()?;
    let revoked = signing_keys::revoke(
        &deps(&state),
        power,
        kid.into_inner(),
        principal.actor(),
        principal.origin.clone(),
    )
    .await?;
    Ok(HttpResponse::Ok().json(revoked))
}
