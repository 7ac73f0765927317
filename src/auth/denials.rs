//! `admin.denied`: refused admin-API requests (401/403), summarised per
//! address per minute so a flood of them cannot fill the audit table. Written
//! after the response, off the request's path.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{Error, HttpMessage, web};
use chrono::Utc;

use crate::audit::{self, Actor, Origin};
use crate::client_ip::client_ip;
use crate::db;
use crate::grants::address_bucket;
use crate::startup::AppState;
use crate::telemetry::RequestId;

/// The tenant of a principal that authenticated, for denials after that
/// (403s): the event then belongs to its tenant.
#[derive(Debug, Clone)]
pub struct AuthenticatedTenant(pub String);

pub async fn record(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let response = next.call(req).await?;
    let status = response.status().as_u16();
    // Everything below runs only for refusals, never on the served path.
    if !matches!(status, 401 | 403) {
        return Ok(response);
    }
    let request = response.request();
    let route = request
        .match_pattern()
        .unwrap_or_else(|| request.path().to_owned());
    if route == "/api/v1/token" {
        return Ok(response);
    }
    let Some(state) = request.app_data::<web::Data<AppState>>().cloned() else {
        return Ok(response);
    };
    let ip = client_ip(request, &state.settings.server);
    let method = request.method().to_string();
    let tenant = request
        .extensions()
        .get::<AuthenticatedTenant>()
        .map(|t| t.0.clone());
    let request_id = request.extensions().get::<RequestId>().map(|r| r.0.clone());
    tokio::spawn(async move {
        let bucket = address_bucket(ip);
        let origin = Origin {
            ip: ip.map(|ip| ip.to_string()),
            request_id,
        };
        let now = Utc::now().naive_utc();
        let written = db::run(&state.pool, move |conn| {
            audit::denied(
                conn,
                audit::Record {
                    tenant_id: tenant.as_deref(),
                    action: "admin.denied",
                    actor: &Actor::anonymous(),
                    origin: &origin,
                    target_type: "address",
                    target_id: &bucket,
                    success: false,
                    details: serde_json::json!({ "status": status, "method": method, "route": route }),
                },
                &format!("{}:{bucket}", tenant.as_deref().unwrap_or("-")),
                now,
            )
            .map_err(db::DbError::from)
        })
        .await;
        if let Err(err) = written {
            tracing::warn!(error = %err, "could not record admin.denied");
        }
    });
    Ok(response)
}
