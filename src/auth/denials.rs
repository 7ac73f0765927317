//! Records refused admin-API requests (401/403) as they leave: the
//! middleware half of `admin.denied`. The counting, its bound and the
//! batched writes are the audit's ([`crate::audit::denials`]); this file
//! only reads what the request tells about the refusal.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{Error, HttpMessage, web};
use chrono::Utc;

use crate::app::AppState;
use crate::audit::denials::Refusal;
use crate::client_ip::client_ip;
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
    let Some(state) = request.app_data::<web::Data<AppState>>() else {
        return Ok(response);
    };
    let extensions = request.extensions();
    state.denials.record(
        Refusal {
            tenant: extensions
                .get::<AuthenticatedTenant>()
                .map(|t| t.0.as_str()),
            ip: client_ip(request, &state.settings.server),
            request_id: extensions.get::<RequestId>().map(|r| r.0.as_str()),
            status,
            method: request.method().as_str(),
            route: &route,
        },
        Utc::now().naive_utc(),
    );
    drop(extensions);
    Ok(response)
}
