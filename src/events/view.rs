//! Streams and deliveries as the admin API shows them: never the bearer
//! secret, only whether there is one.

use serde::Serialize;

use crate::db::models::{EventStream, OutboxEvent};
use crate::domain::events::{EventType, URI_PREFIX};
use crate::domain::text::timestamp;

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct StreamView {
    pub id: String,
    pub tenant: String,
    pub endpoint: String,
    /// The `aud` of every SET sent to it.
    pub audience: String,
    /// The event URIs it receives; `null`: every event.
    pub events: Option<Vec<String>>,
    pub enabled: bool,
    /// Whether keymint sends `Authorization: Bearer …` (the secret itself is
    /// never shown again).
    pub has_bearer_secret: bool,
    /// After a failed push: until when only one probe goes to it.
    pub paused_until: Option<String>,
    /// Deliveries waiting (first try or retry) and given up.
    pub pending: i64,
    pub failed: i64,
    pub created_at: String,
    pub updated_at: String,
}

impl StreamView {
    pub fn of(stream: &EventStream, tenant: &str, (pending, failed): (i64, i64)) -> Self {
        Self {
            id: stream.id.clone(),
            tenant: tenant.to_owned(),
            endpoint: stream.endpoint.clone(),
            audience: stream.audience.clone(),
            events: stream
                .events
                .as_deref()
                .and_then(|j| serde_json::from_str(j).ok()),
            enabled: stream.enabled,
            has_bearer_secret: stream.bearer_secret.is_some(),
            paused_until: stream.paused_until.map(timestamp),
            pending,
            failed,
            created_at: timestamp(stream.created_at),
            updated_at: timestamp(stream.updated_at),
        }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DeliveryView {
    /// The SET's `jti`: the same on every retry and replay.
    pub id: String,
    /// The keymint event URI.
    pub event: String,
    /// The key id, signing key id or tenant the event is about.
    pub subject: Option<String>,
    /// The request id of the change (the SET's `txn`).
    pub txn: Option<String>,
    pub occurred_at: String,
    /// `pending`, `delivered` or `failed`.
    pub state: String,
    pub attempts: i32,
    /// When a pending delivery is tried next.
    pub next_attempt_at: Option<String>,
    pub last_attempt_at: Option<String>,
    /// The receiver's HTTP status on the last attempt.
    pub last_status: Option<i32>,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
    pub delivered_at: Option<String>,
}

impl DeliveryView {
    pub fn of(event: &OutboxEvent) -> Self {
        Self {
            id: event.id.clone(),
            event: EventType::from_name(&event.event_type).map_or_else(
                || format!("{URI_PREFIX}{}", event.event_type),
                EventType::uri,
            ),
            subject: event.subject_id.clone(),
            txn: event.txn.clone(),
            occurred_at: timestamp(event.occurred_at),
            state: event.state.clone(),
            attempts: event.attempts,
            next_attempt_at: (event.state == super::store::PENDING)
                .then(|| timestamp(event.next_attempt_at)),
            last_attempt_at: event.last_attempt_at.map(timestamp),
            last_status: event.last_status,
            last_error: event.last_error.clone(),
            delivered_at: event.delivered_at.map(timestamp),
        }
    }
}
