//! The audit log: one event per changed object, written in the transaction
//! that makes the change. Events never hold a secret, a secret's hash or an
//! `Authorization` value; `details` is built by the caller from known fields.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use serde::{Deserialize, Serialize};

use crate::db::AnyConnection;
use crate::db::models::AuditEvent;
use crate::db::schema::audit_events;

/// Who did it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    #[serde(rename = "type")]
    pub kind: ActorKind,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ActorKind {
    Key,
    Cli,
    System,
}

impl Actor {
    pub fn cli() -> Self {
        Self {
            kind: ActorKind::Cli,
            key_id: None,
            sub: std::env::var("USER").ok().filter(|u| u.len() <= 64),
            tenant: None,
        }
    }

    pub fn system(sub: &str) -> Self {
        Self {
            kind: ActorKind::System,
            key_id: None,
            sub: Some(sub.to_owned()),
            tenant: None,
        }
    }

    pub fn key(key_id: &str, sub: &str, tenant: &str) -> Self {
        Self {
            kind: ActorKind::Key,
            key_id: Some(key_id.to_owned()),
            sub: Some(sub.to_owned()),
            tenant: Some(tenant.to_owned()),
        }
    }
}

/// Where a request came from, for the event.
#[derive(Debug, Clone, Default)]
pub struct Origin {
    pub ip: Option<String>,
    pub request_id: Option<String>,
}

/// An event about to be written.
pub struct Record<'a> {
    pub tenant_id: Option<&'a str>,
    pub action: &'static str,
    pub actor: &'a Actor,
    pub origin: &'a Origin,
    pub target_type: &'static str,
    pub target_id: &'a str,
    pub success: bool,
    pub details: serde_json::Value,
}

pub fn write(conn: &mut AnyConnection, record: Record<'_>, at: NaiveDateTime) -> QueryResult<()> {
    let event = AuditEvent {
        id: uuid::Uuid::now_v7().to_string(),
        at,
        tenant_id: record.tenant_id.map(str::to_owned),
        action: record.action.to_owned(),
        actor_type: match record.actor.kind {
            ActorKind::Key => "key",
            ActorKind::Cli => "cli",
            ActorKind::System => "system",
        }
        .to_owned(),
        actor_key_id: record.actor.key_id.clone(),
        actor_sub: record.actor.sub.clone(),
        actor_tenant: record.actor.tenant.clone(),
        ip: record.origin.ip.clone(),
        request_id: record.origin.request_id.clone(),
        target_type: Some(record.target_type.to_owned()),
        target_id: Some(record.target_id.to_owned()),
        outcome: if record.success { "success" } else { "failure" }.to_owned(),
        details: record.details.to_string(),
        count: 1,
        dedup_key: None,
    };
    diesel::insert_into(audit_events::table)
        .values(&event)
        .execute(conn)?;
    Ok(())
}
