//! After a change through the admin API (any `/api/v1` request that is not
//! a read and succeeded), wakes this replica's event worker, so the events
//! the change queued go out now rather than at the next poll. Only a hint:
//! another replica's change, or one made by the CLI, is found by polling.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::middleware::Next;
use actix_web::{Error, web};

use crate::app::AppState;

pub async fn events_after_change(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    // The exchange changes nothing an event reports: it must not wake the
    // worker once per token.
    let changes = !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS)
        && req.path() != "/api/v1/token";
    let response = next.call(req).await?;
    if changes
        && response.status().is_success()
        && let Some(state) = response.request().app_data::<web::Data<AppState>>()
    {
        state.events.wake();
    }
    Ok(response)
}
