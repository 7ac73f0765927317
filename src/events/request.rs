//! What the event-stream routes ask of the service, already parsed (the
//! HTTP floor names every bad field).

use zeroize::Zeroizing;

use crate::domain::events::EventType;

/// `POST /api/v1/event-streams`.
pub struct NewStream {
    pub endpoint: String,
    pub audience: String,
    /// `None`: every event.
    pub events: Option<Vec<EventType>>,
    pub enabled: bool,
    pub bearer_secret: Option<Zeroizing<String>>,
}

/// `PATCH /api/v1/event-streams/{id}`: `None` leaves a field as it is; for
/// `events` and `bearer_secret`, `Some(None)` clears it (all events, no
/// secret).
#[derive(Default)]
pub struct StreamChanges {
    pub endpoint: Option<String>,
    pub audience: Option<String>,
    pub events: Option<Option<Vec<EventType>>>,
    pub enabled: Option<bool>,
    pub bearer_secret: Option<Option<Zeroizing<String>>>,
}

impl StreamChanges {
    pub fn fields(&self) -> Vec<&'static str> {
        let mut out = Vec::new();
        if self.endpoint.is_some() {
            out.push("endpoint");
        }
        if self.audience.is_some() {
            out.push("audience");
        }
        if self.events.is_some() {
            out.push("events");
        }
        if self.enabled.is_some() {
            out.push("enabled");
        }
        if self.bearer_secret.is_some() {
            out.push("bearer_secret");
        }
        out
    }
}

/// `GET /api/v1/event-streams/{id}/deliveries`: the state filter, the
/// page size, and the sealed cursor as sent (opened by the service, which
/// knows the stream it must be bound to).
pub struct DeliveryQuery {
    pub state: Option<&'static str>,
    pub cursor: Option<String>,
    pub limit: i64,
}
