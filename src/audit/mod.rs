//! The audit log: one event per changed object, written in the transaction
//! that makes the change. Events never hold a secret, a secret's hash or an
//! `Authorization` value; `details` is built by the caller from known fields.

pub mod denials;

use chrono::NaiveDateTime;
use diesel::prelude::*;
use serde::{Deserialize, Serialize};

use crate::db::models::AuditEvent;
use crate::db::schema::audit_events;
use crate::db::{AnyConnection, ReadBound};
use crate::events::store as outbox;

/// Who did it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
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

    /// A caller that presented no usable key.
    pub fn anonymous() -> Self {
        Self {
            kind: ActorKind::Key,
            key_id: None,
            sub: None,
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

fn actor_type(kind: ActorKind) -> &'static str {
    match kind {
        ActorKind::Key => "key",
        ActorKind::Cli => "cli",
        ActorKind::System => "system",
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

/// The row for `record`, counting `count` occurrences.
fn event_row(
    record: &Record<'_>,
    at: NaiveDateTime,
    count: i64,
    dedup_key: Option<String>,
) -> AuditEvent {
    AuditEvent {
        id: uuid::Uuid::now_v7().to_string(),
        at,
        tenant_id: record.tenant_id.map(str::to_owned),
        action: record.action.to_owned(),
        actor_type: actor_type(record.actor.kind).to_owned(),
        actor_key_id: record.actor.key_id.clone(),
        actor_sub: record.actor.sub.clone(),
        actor_tenant: record.actor.tenant.clone(),
        ip: record.origin.ip.clone(),
        request_id: record.origin.request_id.clone(),
        target_type: Some(record.target_type.to_owned()),
        target_id: Some(record.target_id.to_owned()),
        outcome: if record.success { "success" } else { "failure" }.to_owned(),
        details: record.details.to_string(),
        count,
        dedup_key,
    }
}

/// Writes the event, and in the same transaction the security events it
/// sends to the tenant's receivers (see [`crate::events`]).
pub fn write(conn: &mut AnyConnection, record: Record<'_>, at: NaiveDateTime) -> QueryResult<()> {
    let event = event_row(&record, at, 1, None);
    diesel::insert_into(audit_events::table)
        .values(&event)
        .execute(conn)?;
    send(conn, &record, at)
}

fn send(conn: &mut AnyConnection, record: &Record<'_>, at: NaiveDateTime) -> QueryResult<()> {
    outbox::enqueue(
        conn,
        &outbox::Change {
            tenant_id: record.tenant_id,
            action: record.action,
            target_id: record.target_id,
            request_id: record.origin.request_id.as_deref(),
            actor_type: actor_type(record.actor.kind),
            details: &record.details,
        },
        at,
    )?;
    Ok(())
}

pub const ACTIONS: [&str; 21] = [
    "key.created",
    "key.updated",
    "key.revoked",
    "key.deleted",
    "key.rotated",
    "key.expiring",
    "key.leaked",
    "event_stream.created",
    "event_stream.updated",
    "event_stream.deleted",
    "event_stream.replayed",
    "token.revoked",
    "token.denied",
    "settings.updated",
    "tenant.created",
    "tenant.updated",
    "signing_key.rotated",
    "signing_key.activated",
    "signing_key.retired",
    "signing_key.revoked",
    "admin.denied",
];

/// The event as the API shows it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EventView {
    pub id: String,
    pub at: String,
    pub tenant: Option<String>,
    pub action: String,
    pub actor: Actor,
    pub ip: Option<String>,
    pub request_id: Option<String>,
    pub target_type: Option<String>,
    pub target_id: Option<String>,
    /// `success` or `failure`.
    pub outcome: String,
    #[schema(value_type = Object)]
    pub details: serde_json::Value,
    pub count: i64,
}

impl EventView {
    pub fn of(event: AuditEvent, tenant_slug: Option<&str>) -> Self {
        let kind = match event.actor_type.as_str() {
            "key" => ActorKind::Key,
            "cli" => ActorKind::Cli,
            _ => ActorKind::System,
        };
        Self {
            at: event
                .at
                .and_utc()
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            tenant: tenant_slug.map(str::to_owned),
            action: event.action,
            actor: Actor {
                kind,
                key_id: event.actor_key_id,
                sub: event.actor_sub,
                tenant: event.actor_tenant,
            },
            ip: event.ip,
            request_id: event.request_id,
            target_type: event.target_type,
            target_id: event.target_id,
            outcome: event.outcome,
            details: serde_json::from_str(&event.details).unwrap_or_default(),
            count: event.count,
            id: event.id,
        }
    }
}

/// Filters of `GET /api/v1/audit-events`, already validated.
#[derive(Debug, Default, Clone)]
pub struct Filter {
    pub action: Option<String>,
    pub key_id: Option<String>,
    pub actor: Option<String>,
    pub since: Option<NaiveDateTime>,
    pub until: Option<NaiveDateTime>,
    pub before_id: Option<String>,
}

/// A tenant's events, newest first (ids are UUID v7), within `bound`: a
/// filter that matches little walks the tenant's whole log.
pub fn list(
    conn: &mut AnyConnection,
    tenant_id: &str,
    filter: &Filter,
    limit: i64,
    bound: &ReadBound,
) -> QueryResult<Vec<AuditEvent>> {
    use audit_events::dsl as e;
    let mut query = e::audit_events
        .filter(e::tenant_id.eq(tenant_id))
        .select(AuditEvent::as_select())
        .order(e::id.desc())
        .limit(limit)
        .into_boxed();
    // Before the other conditions, so every row visited checks it.
    if let Some(guard) = bound.sqlite_guard() {
        query = query.filter(guard);
    }
    if let Some(action) = &filter.action {
        query = query.filter(e::action.eq(action.clone()));
    }
    if let Some(key_id) = &filter.key_id {
        query = query.filter(
            e::target_id
                .eq(key_id.clone())
                .or(e::actor_key_id.eq(key_id.clone())),
        );
    }
    if let Some(actor) = &filter.actor {
        query = query.filter(
            e::actor_sub
                .eq(actor.clone())
                .or(e::actor_key_id.eq(actor.clone())),
        );
    }
    if let Some(since) = filter.since {
        query = query.filter(e::at.ge(since));
    }
    if let Some(until) = filter.until {
        query = query.filter(e::at.lt(until));
    }
    if let Some(before) = &filter.before_id {
        query = query.filter(e::id.lt(before.clone()));
    }
    query.load(conn)
}

/// Deletes every event older than `before` (retention); how many went.
pub fn purge_before(conn: &mut AnyConnection, before: NaiveDateTime) -> QueryResult<usize> {
    diesel::delete(audit_events::table.filter(audit_events::at.lt(before))).execute(conn)
}

/// Records a denial without letting a flood of them fill the table: the
/// first one for `dedup` in a minute is written, later ones only count.
pub fn denied(
    conn: &mut AnyConnection,
    record: Record<'_>,
    dedup: &str,
    at: NaiveDateTime,
) -> QueryResult<()> {
    denied_many(conn, record, dedup, at, 1)
}

/// Adds `count` denials for `dedup` to the row of `at`'s minute, writing
/// the row (from `record`) if the minute has none yet. Safe inside a larger
/// transaction: a row another writer inserted first is counted on, not an
/// aborted transaction.
pub fn denied_many(
    conn: &mut AnyConnection,
    record: Record<'_>,
    dedup: &str,
    at: NaiveDateTime,
    count: i64,
) -> QueryResult<()> {
    use audit_events::dsl as e;
    let minute = at.and_utc().timestamp() / 60;
    let key = format!("{}:{dedup}:{minute}", record.action);
    let bump = |conn: &mut AnyConnection| {
        diesel::update(e::audit_events.filter(e::dedup_key.eq(&key)))
            .set(e::count.eq(e::count + count))
            .execute(conn)
    };
    if bump(conn)? > 0 {
        return Ok(());
    }
    // A denial is a failure whatever the record says.
    let record = Record {
        success: false,
        ..record
    };
    let event = event_row(&record, at, count, Some(key.clone()));
    let inserted = crate::db::insert_new(conn, |conn| {
        diesel::insert_into(audit_events::table)
            .values(&event)
            .execute(conn)
    })?;
    if inserted {
        Ok(())
    } else {
        // Another writer inserted the minute's row first: count on it.
        bump(conn).map(|_| ())
    }
}
