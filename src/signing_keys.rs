//! Administering the signing keys: listing their metadata, rotating on
//! demand and revoking in an emergency. Never private material.

use std::sync::Arc;

use chrono::{NaiveDateTime, Utc};
use serde::Serialize;

use crate::audit::{Actor, Origin};
use crate::config::Settings;
use crate::crypto::master::MasterKey;
use crate::db::models::SigningKeyRow;
use crate::db::{self, Pool};
use crate::domain::text::timestamp;
use crate::error::ApiError;
use crate::powers::SigningKeyAdmin;
use crate::tokens::signing::{self, KeyRing, Rotation, SigningError};

/// What these operations need of the running server; owned handles, since
/// the reload runs on the blocking pool.
#[derive(Clone)]
pub struct Deps {
    pub pool: Pool,
    pub master: Arc<MasterKey>,
    /// Read for `signing`.
    pub settings: Arc<Settings>,
    pub keyring: Arc<KeyRing>,
}

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

fn view(row: &SigningKeyRow, rows: &[SigningKeyRow], now: NaiveDateTime) -> SigningKeyView {
    SigningKeyView {
        kid: row.kid.clone(),
        alg: row.alg.clone(),
        state: signing::state_of(row, rows, now),
        created_at: timestamp(row.created_at),
        activates_at: timestamp(row.activates_at),
        retired_at: row.retired_at.map(timestamp),
        revoked_at: row.revoked_at.map(timestamp),
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

/// Every signing key, as metadata.
pub async fn list(deps: &Deps, _power: SigningKeyAdmin) -> Result<Vec<SigningKeyView>, ApiError> {
    let rows = db::run(&deps.pool, |conn| {
        signing::load_rows(conn).map_err(ApiError::from)
    })
    .await?;
    let now = Utc::now().naive_utc();
    Ok(rows.iter().map(|r| view(r, &rows, now)).collect())
}

/// Re-reads the keys so this replica publishes the change at once (the
/// others follow within `signing.reload_s`).
async fn reload(deps: &Deps) -> Result<(), ApiError> {
    let deps = deps.clone();
    tokio::task::spawn_blocking(move || {
        signing::reload(
            &deps.pool,
            &deps.master,
            &deps.settings.signing,
            &deps.keyring,
        )
    })
    .await
    .map_err(ApiError::internal)?
    .map_err(signing_error)
}

/// Schedules the next key now; it activates `signing.reload_s` from now.
pub async fn rotate(
    deps: &Deps,
    _power: SigningKeyAdmin,
    actor: Actor,
    origin: Origin,
) -> Result<Rotation, ApiError> {
    let (master, settings) = (deps.master.clone(), deps.settings.clone());
    let rotation = db::run(&deps.pool, move |conn| {
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
    reload(deps).await?;
    Ok(rotation)
}

/// Revokes `kid`: withdrawn from the JWKS at once.
pub async fn revoke(
    deps: &Deps,
    _power: SigningKeyAdmin,
    kid: String,
    actor: Actor,
    origin: Origin,
) -> Result<SigningKeyView, ApiError> {
    if kid.len() > 64 {
        return Err(ApiError::NotFound);
    }
    let (master, settings) = (deps.master.clone(), deps.settings.clone());
    let now = Utc::now().naive_utc();
    let revoked = db::run(&deps.pool, move |conn| {
        signing::revoke(conn, &master, &settings.signing, &kid, now, &actor, &origin)
            .map_err(signing_error)
    })
    .await?
    .ok_or(ApiError::NotFound)?;
    reload(deps).await?;
    let rows = db::run(&deps.pool, |conn| {
        signing::load_rows(conn).map_err(ApiError::from)
    })
    .await?;
    Ok(view(&revoked, &rows, now))
}
