//! `/api/v1/signing-keys`: metadata, on-demand rotation and emergency
//! revocation. Never private material.

use actix_web::{HttpResponse, web};
use chrono::{NaiveDateTime, SecondsFormat, Utc};
use serde::Serialize;

use crate::app::AppState;
use crate::db::models::SigningKeyRow;
use crate::db::{self};
use crate::error::ApiError;
use crate::powers::Principal;
use crate::tokens::signing::{self, SigningError};

#[derive(Serialize, utoipa::ToSchema)]
pub struct SigningKeyView {
    kid: String,
    alg: String,
    /// `next`, `active`, `retired` or `revoked`.
    state: &'static str,
    created_at: String,
    activates_at: String,
    retired_at: Option<String>,
    revoked_at: Option<String>,
}

fn time(t: NaiveDateTime) -> String {
    t.and_utc().to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn view(row: &SigningKeyRow, rows: &[SigningKeyRow], now: NaiveDateTime) -> SigningKeyView {
    SigningKeyView {
        kid: row.kid.clone(),
        alg: row.alg.clone(),
        state: signing::state_of(row, rows, now),
        created_at: time(row.created_at),
        activates_at: time(row.activates_at),
        retired_at: row.retired_at.map(time),
        revoked_at: row.revoked_at.map(time),
    }
}

fn signing_error(err: SigningError) -> ApiError {
    match err {
        SigningError::TooYoung { .. } => ApiError::Conflict(err.to_string()),
        SigningError::Db(db) => db.into(),
        SigningError::MasterKey(key) => key.into(),
        other => ApiError::internal(other),
    }
}

#[utoipa::path(operation_id = "listSigningKeys", get, path = "/api/v1/signing-keys", tag = "signing-keys", security(("admin_bearer" = [])),
    responses((status = 200, description = "Every signing key, metadata only", body = crate::pagination::Page<SigningKeyView>), crate::openapi::schemas::AdminErrors))]
pub async fn list(
    principal: Principal,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    principal.signing_key_admin()?;
    let rows = db::run(&state.pool, |conn| {
        signing::load_rows(conn).map_err(ApiError::from)
    })
    .await?;
    let now = Utc::now().naive_utc();
    let items: Vec<SigningKeyView> = rows.iter().map(|r| view(r, &rows, now)).collect();
    Ok(HttpResponse::Ok().json(serde_json::json!({ "items": items, "next_cursor": null })))
}

/// Re-reads the keys so this replica publishes the change at once (the
/// others follow within `signing.reload_s`).
async fn reload(state: &web::Data<AppState>) -> Result<(), ApiError> {
    let st = state.clone();
    tokio::task::spawn_blocking(move || st.reload_keys())
        .await
        .map_err(ApiError::internal)?
        .map_err(signing_error)
}

#[utoipa::path(operation_id = "rotateSigningKeys", post, path = "/api/v1/signing-keys/rotate", tag = "signing-keys", security(("admin_bearer" = [])),
    responses((status = 200, description = "The next key activates `signing.reload_s` from now", body = crate::tokens::signing::Rotation), crate::openapi::schemas::AdminErrors))]
pub async fn rotate(
    principal: Principal,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    principal.signing_key_admin()?;
    let master = state.master.clone();
    let settings = state.settings.clone();
    let actor = principal.actor();
    let origin = principal.origin.clone();
    let rotation = db::run(&state.pool, move |conn| {
        signing::rotate(
            conn,
            &master,
            &settings.signing,
            Utc::now().naive_utc(),
            &actor,
            &origin,
        )
        .map_err(signing_error)
    })
    .await?;
    reload(&state).await?;
    Ok(HttpResponse::Ok().json(rotation))
}

#[utoipa::path(operation_id = "revokeSigningKey", post, path = "/api/v1/signing-keys/{kid}/revoke", tag = "signing-keys", security(("admin_bearer" = [])),
    params(("kid" = String, Path)),
    responses((status = 200, description = "Revoked: withdrawn from the JWKS at once", body = SigningKeyView), crate::openapi::schemas::AdminErrors))]
pub async fn revoke(
    principal: Principal,
    kid: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    principal.signing_key_admin()?;
    let kid = kid.into_inner();
    if kid.len() > 64 {
        return Err(ApiError::NotFound);
    }
    let master = state.master.clone();
    let settings = state.settings.clone();
    let actor = principal.actor();
    let origin = principal.origin.clone();
    let now = Utc::now().naive_utc();
    let revoked = db::run(&state.pool, move |conn| {
        signing::revoke(conn, &master, &settings.signing, &kid, now, &actor, &origin)
            .map_err(signing_error)
    })
    .await?
    .ok_or(ApiError::NotFound)?;
    reload(&state).await?;
    let rows = db::run(&state.pool, |conn| {
        signing::load_rows(conn).map_err(ApiError::from)
    })
    .await?;
    Ok(HttpResponse::Ok().json(view(&revoked, &rows, now)))
}
