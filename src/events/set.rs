//! One outbox row as the Security Event Token (RFC 8417) a receiver gets.
//!
//! `iss` is keymint's issuer and the token is signed with its signing keys,
//! so a receiver verifies it with the JWKS it already trusts; `aud` is the
//! stream's; `jti` is the outbox row's id, the same on every retry and
//! replay, so receivers de-duplicate on it. `sub_id` (RFC 9493, as the Shared
//! Signals Framework places it) names the subject. The `events` member holds
//! keymint's own event and, for the key changes CAEP has a name for, CAEP's
//! credential-change event about the same change.

use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::db::models::{EventStream, OutboxEvent};
use crate::domain::events::{CAEP_CREDENTIAL_CHANGE, EventType};

#[derive(Debug, Serialize)]
pub struct SetClaims {
    pub iss: String,
    pub aud: String,
    pub iat: i64,
    pub jti: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub txn: Option<String>,
    pub sub_id: Value,
    pub events: Map<String, Value>,
}

/// The claims of `event` for `stream`, as issued by `issuer`.
pub fn claims(event: &OutboxEvent, stream: &EventStream, issuer: &str) -> SetClaims {
    let kind = EventType::from_name(&event.event_type);
    let occurred = event.occurred_at.and_utc().timestamp();
    let mut body = match serde_json::from_str::<Value>(&event.payload) {
        Ok(Value::Object(map)) => map,
        _ => Map::new(),
    };
    body.insert("event_timestamp".into(), occurred.into());
    let subject = event.subject_id.clone().unwrap_or_default();
    match kind {
        Some(EventType::SigningKeyRotated | EventType::SigningKeyRevoked) => {
            body.insert("kid".into(), subject.clone().into());
        }
        Some(EventType::TenantApiKeysDisabled | EventType::TenantApiKeysEnabled) => {}
        _ => {
            body.insert("key_id".into(), subject.clone().into());
        }
    }
    let mut events = Map::new();
    if let Some(change_type) = kind.and_then(EventType::caep_change_type) {
        let mut caep = Map::new();
        caep.insert("credential_type".into(), "api-key".into());
        caep.insert("change_type".into(), change_type.into());
        caep.insert("event_timestamp".into(), occurred.into());
        if let Some(entity) = body.get("initiating_entity") {
            caep.insert("initiating_entity".into(), entity.clone());
        }
        if let Some(Value::String(reason)) = body.get("reason") {
            caep.insert("reason_admin".into(), json!({ "en": reason }));
        }
        events.insert(CAEP_CREDENTIAL_CHANGE.into(), Value::Object(caep));
    }
    let uri = kind.map_or_else(
        || format!("{}{}", crate::domain::events::URI_PREFIX, event.event_type),
        EventType::uri,
    );
    events.insert(uri, Value::Object(body));
    SetClaims {
        iss: issuer.to_owned(),
        aud: stream.audience.clone(),
        iat: occurred,
        jti: event.id.clone(),
        txn: event.txn.clone(),
        sub_id: json!({ "format": "opaque", "id": subject }),
        events,
    }
}
