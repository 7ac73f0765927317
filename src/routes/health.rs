//! `GET /healthz` (the process answers) and `GET /readyz` (it can serve:
//! the database answers, a loaded key can sign now, and the master key is
//! the database's).

use std::time::Duration;

use actix_web::{HttpResponse, web};
use serde_json::json;

use crate::app::AppState;
use crate::db;

/// How long readiness waits for a database connection: a probe must answer
/// quickly even when the database is gone.
const READY_DB_TIMEOUT: Duration = Duration::from_millis(1500);

#[utoipa::path(operation_id = "healthz", get, path = "/healthz", tag = "meta",
    responses((status = 200, description = "The process answers", body = crate::openapi::schemas::Health)))]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

#[utoipa::path(operation_id = "readyz", get, path = "/readyz", tag = "meta",
    responses(
        (status = 200, description = "The database answers and a key can sign", body = crate::openapi::schemas::Health),
        (status = 503, description = "Not ready; `reason` says why", body = crate::openapi::schemas::Health,
            headers(("Retry-After" = u32))),
    ))]
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    if state.draining.load(std::sync::atomic::Ordering::Relaxed) {
        return not_ready("shutting down");
    }
    let pool = state.pool.clone();
    let database =
        tokio::task::spawn_blocking(move || db::ping_pool(&pool, READY_DB_TIMEOUT)).await;
    match database {
        Ok(Ok(())) => {}
        Ok(Err(err)) => {
            tracing::warn!(error = %err, "readiness: database unreachable");
            return not_ready("database unreachable");
        }
        Err(err) => {
            tracing::error!(error = %err, "readiness check failed");
            return not_ready("readiness check failed");
        }
    }
    // A retired or revoked key is never counted: the ring answers for the
    // key that would sign a token now.
    if state
        .keyring
        .signer(chrono::Utc::now().timestamp())
        .is_none()
    {
        return not_ready("no signing key can sign");
    }
    // Set by the signing reload (or a refused write) after a master-key
    // rotation this replica could not follow: it stores no secrets and
    // cannot check advanced keys rotated since.
    if state.master.is_behind() {
        return not_ready(
            "master key rotated: this server holds the previous key; put the new one in its key file or restart it",
        );
    }
    HttpResponse::Ok().json(json!({"status": "ready"}))
}

fn not_ready(reason: &str) -> HttpResponse {
    HttpResponse::ServiceUnavailable()
        .insert_header(("Retry-After", "1"))
        .json(json!({"status": "unavailable", "reason": reason}))
}
