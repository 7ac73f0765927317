//! The events' own SQL: receivers (`event_streams`), the outbox that holds
//! one row per event per receiver until it is delivered, and the record of
//! expiry warnings sent.
//!
//! [`enqueue`] runs inside the transaction that writes the change's audit
//! event (see `audit::write`), so an event exists exactly when its change
//! committed.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use serde_json::{Map, Value};

use crate::db::models::{EventStream, OutboxEvent};
use crate::db::schema::{api_keys, event_outbox, event_streams, expiry_warnings, tenants};
use crate::db::{self, AnyConnection};
use crate::domain::events::EventType;

/// A delivery's state.
pub const PENDING: &str = "pending";
pub const DELIVERED: &str = "delivered";
pub const FAILED: &str = "failed";

/// At most this many receivers per tenant.
pub const MAX_STREAMS_PER_TENANT: i64 = 20;

/// A change as the audit log records it: what [`enqueue`] turns into
/// events.
pub struct Change<'a> {
    pub tenant_id: Option<&'a str>,
    pub action: &'a str,
    pub target_id: &'a str,
    pub request_id: Option<&'a str>,
    /// `key`, `cli` or `system`.
    pub actor_type: &'a str,
    pub details: &'a Value,
}

impl Change<'_> {
    fn event_type(&self) -> Option<EventType> {
        if self.action == "settings.updated" {
            return match self.details.get("api_keys_enabled") {
                Some(Value::Bool(true)) => Some(EventType::TenantApiKeysEnabled),
                Some(Value::Bool(false)) => Some(EventType::TenantApiKeysDisabled),
                _ => None,
            };
        }
        EventType::of_action(self.action)
    }
}

/// Whether `stream` asked for events of type `kind`.
pub fn subscribes(stream: &EventStream, kind: EventType) -> bool {
    match &stream.events {
        None => true,
        Some(json) => serde_json::from_str::<Vec<String>>(json)
            .map(|uris| uris.iter().any(|u| EventType::from_uri(u) == Some(kind)))
            .unwrap_or(false),
    }
}

/// Who set it off, in CAEP's words.
fn initiating_entity(actor_type: &str) -> &'static str {
    match actor_type {
        "system" => "system",
        _ => "admin",
    }
}

/// Writes one outbox row per enabled stream that wants this change's event;
/// how many. A change that is no event, or that nobody listens to, writes
/// nothing.
pub fn enqueue(
    conn: &mut AnyConnection,
    change: &Change<'_>,
    at: NaiveDateTime,
) -> QueryResult<usize> {
    let Some(kind) = change.event_type() else {
        return Ok(0);
    };
    let mut query = event_streams::table
        .filter(event_streams::enabled.eq(true))
        .select(EventStream::as_select())
        .into_boxed();
    if !kind.is_global() {
        let Some(tenant_id) = change.tenant_id else {
            return Ok(0);
        };
        query = query.filter(event_streams::tenant_id.eq(tenant_id.to_owned()));
    }
    let streams: Vec<EventStream> = query
        .load(conn)?
        .into_iter()
        .filter(|s| subscribes(s, kind))
        .collect();
    if streams.is_empty() {
        return Ok(0);
    }
    let mut payload = match change.details {
        Value::Object(map) => map.clone(),
        _ => Map::new(),
    };
    // Nothing the audit log records is secret; the status-list entry is an
    // internal detail receivers have no use for.
    payload.remove("status_list");
    payload.remove("fields");
    payload.insert(
        "initiating_entity".into(),
        initiating_entity(change.actor_type).into(),
    );
    let mut subject = change.target_id.to_owned();
    if !kind.is_global()
        && let Some(tenant_id) = change.tenant_id
    {
        let slug: Option<String> = tenants::table
            .find(tenant_id)
            .select(tenants::slug)
            .first(conn)
            .optional()?;
        if let Some(slug) = slug {
            if matches!(
                kind,
                EventType::TenantApiKeysDisabled | EventType::TenantApiKeysEnabled
            ) {
                subject.clone_from(&slug);
            }
            payload.insert("tenant".into(), slug.into());
        }
    }
    let payload = Value::Object(payload).to_string();
    let rows: Vec<OutboxEvent> = streams
        .iter()
        .map(|stream| OutboxEvent {
            id: uuid::Uuid::now_v7().to_string(),
            stream_id: stream.id.clone(),
            tenant_id: stream.tenant_id.clone(),
            event_type: kind.name().to_owned(),
            subject_id: Some(subject.clone()),
            txn: change.request_id.map(str::to_owned),
            occurred_at: at,
            payload: payload.clone(),
            state: PENDING.to_owned(),
            attempts: 0,
            next_attempt_at: at,
            last_attempt_at: None,
            last_status: None,
            last_error: None,
            delivered_at: None,
        })
        .collect();
    // One statement per row: the multi-backend connection has no batch insert.
    for row in &rows {
        diesel::insert_into(event_outbox::table)
            .values(row)
            .execute(conn)?;
    }
    Ok(rows.len())
}

// --- streams ---------------------------------------------------------------

pub fn insert_stream(conn: &mut AnyConnection, stream: &EventStream) -> QueryResult<()> {
    diesel::insert_into(event_streams::table)
        .values(stream)
        .execute(conn)
        .map(|_| ())
}

pub fn update_stream(conn: &mut AnyConnection, stream: &EventStream) -> QueryResult<()> {
    diesel::update(event_streams::table.find(&stream.id))
        .set(stream)
        .execute(conn)
        .map(|_| ())
}

pub fn count_streams(conn: &mut AnyConnection, tenant_id: &str) -> QueryResult<i64> {
    event_streams::table
        .filter(event_streams::tenant_id.eq(tenant_id))
        .count()
        .get_result(conn)
}

pub fn find_stream(
    conn: &mut AnyConnection,
    tenant_id: &str,
    id: &str,
) -> QueryResult<Option<EventStream>> {
    event_streams::table
        .find(id)
        .filter(event_streams::tenant_id.eq(tenant_id))
        .select(EventStream::as_select())
        .first(conn)
        .optional()
}

/// A tenant's streams, oldest first (there are at most
/// [`MAX_STREAMS_PER_TENANT`]).
pub fn list_streams(conn: &mut AnyConnection, tenant_id: &str) -> QueryResult<Vec<EventStream>> {
    event_streams::table
        .filter(event_streams::tenant_id.eq(tenant_id))
        .order(event_streams::id.asc())
        .select(EventStream::as_select())
        .load(conn)
}

/// Deletes a stream and every delivery it still had.
pub fn delete_stream(conn: &mut AnyConnection, tenant_id: &str, id: &str) -> QueryResult<bool> {
    diesel::delete(event_outbox::table.filter(event_outbox::stream_id.eq(id))).execute(conn)?;
    let gone = diesel::delete(
        event_streams::table
            .find(id)
            .filter(event_streams::tenant_id.eq(tenant_id)),
    )
    .execute(conn)?;
    Ok(gone == 1)
}

/// How many of a stream's deliveries are pending and how many failed.
pub fn backlog(conn: &mut AnyConnection, stream_id: &str) -> QueryResult<(i64, i64)> {
    let count = |conn: &mut AnyConnection, state: &str| {
        event_outbox::table
            .filter(event_outbox::stream_id.eq(stream_id))
            .filter(event_outbox::state.eq(state))
            .count()
            .get_result::<i64>(conn)
    };
    Ok((count(conn, PENDING)?, count(conn, FAILED)?))
}

// --- deliveries --------------------------------------------------------------

/// A stream's deliveries, newest first, optionally of one state and before
/// (older than) a delivery id.
pub fn deliveries(
    conn: &mut AnyConnection,
    stream_id: &str,
    state: Option<&str>,
    before: Option<&str>,
    limit: i64,
) -> QueryResult<Vec<OutboxEvent>> {
    let mut query = event_outbox::table
        .filter(event_outbox::stream_id.eq(stream_id))
        .order(event_outbox::id.desc())
        .limit(limit)
        .select(OutboxEvent::as_select())
        .into_boxed();
    if let Some(state) = state {
        query = query.filter(event_outbox::state.eq(state.to_owned()));
    }
    if let Some(before) = before {
        query = query.filter(event_outbox::id.lt(before.to_owned()));
    }
    query.load(conn)
}

pub fn find_delivery(
    conn: &mut AnyConnection,
    stream_id: &str,
    id: &str,
) -> QueryResult<Option<OutboxEvent>> {
    event_outbox::table
        .find(id)
        .filter(event_outbox::stream_id.eq(stream_id))
        .select(OutboxEvent::as_select())
        .first(conn)
        .optional()
}

/// Sends a delivery again, with the same `jti` and a fresh retry budget.
pub fn replay(conn: &mut AnyConnection, id: &str, now: NaiveDateTime) -> QueryResult<()> {
    diesel::update(event_outbox::table.find(id))
        .set((
            event_outbox::state.eq(PENDING),
            event_outbox::attempts.eq(0),
            event_outbox::next_attempt_at.eq(now),
            event_outbox::delivered_at.eq(None::<NaiveDateTime>),
        ))
        .execute(conn)
        .map(|_| ())
}

/// Up to `limit` deliveries due by `now` on enabled streams that are not
/// paused, the longest waiting first.
pub fn due(
    conn: &mut AnyConnection,
    now: NaiveDateTime,
    limit: i64,
) -> QueryResult<Vec<(OutboxEvent, EventStream)>> {
    event_outbox::table
        .inner_join(event_streams::table)
        .filter(event_outbox::state.eq(PENDING))
        .filter(event_outbox::next_attempt_at.le(now))
        .filter(event_streams::enabled.eq(true))
        .filter(
            event_streams::paused_until
                .is_null()
                .or(event_streams::paused_until.le(now)),
        )
        .order((event_outbox::next_attempt_at.asc(), event_outbox::id.asc()))
        .limit(limit)
        .select((OutboxEvent::as_select(), EventStream::as_select()))
        .load(conn)
}

/// After a failed push, sends nothing more to the stream until `until`
/// (but one probe), without spending its deliveries' attempts.
pub fn pause_stream(
    conn: &mut AnyConnection,
    stream_id: &str,
    until: NaiveDateTime,
) -> QueryResult<()> {
    diesel::update(
        event_streams::table.find(stream_id).filter(
            event_streams::paused_until
                .is_null()
                .or(event_streams::paused_until.lt(until)),
        ),
    )
    .set(event_streams::paused_until.eq(Some(until)))
    .execute(conn)
    .map(|_| ())
}

/// A push went through: the stream takes its full share again.
pub fn resume_stream(conn: &mut AnyConnection, stream_id: &str) -> QueryResult<()> {
    diesel::update(
        event_streams::table
            .find(stream_id)
            .filter(event_streams::paused_until.is_not_null()),
    )
    .set(event_streams::paused_until.eq(None::<NaiveDateTime>))
    .execute(conn)
    .map(|_| ())
}

/// What one attempt came to.
#[derive(Debug, Clone, PartialEq)]
pub enum Attempt {
    Delivered {
        status: i32,
    },
    /// Try again at `at`.
    Retry {
        status: Option<i32>,
        error: String,
        at: NaiveDateTime,
    },
    /// Given up: out of attempts, or the receiver refused the SET itself.
    Failed {
        status: Option<i32>,
        error: String,
    },
}

/// Records an attempt on a delivery that is still as the worker read it
/// (pending, `attempts` tries so far); false when it changed meanwhile (a
/// replay, another replica), which leaves it as it is.
pub fn record(
    conn: &mut AnyConnection,
    id: &str,
    attempts: i32,
    attempt: &Attempt,
    now: NaiveDateTime,
) -> QueryResult<bool> {
    let target = event_outbox::table
        .find(id)
        .filter(event_outbox::state.eq(PENDING))
        .filter(event_outbox::attempts.eq(attempts));
    let tried = (
        event_outbox::attempts.eq(attempts + 1),
        event_outbox::last_attempt_at.eq(Some(now)),
    );
    let changed = match attempt {
        Attempt::Delivered { status } => diesel::update(target)
            .set((
                tried,
                event_outbox::state.eq(DELIVERED),
                event_outbox::delivered_at.eq(Some(now)),
                event_outbox::last_status.eq(Some(*status)),
                event_outbox::last_error.eq(None::<String>),
            ))
            .execute(conn)?,
        Attempt::Retry { status, error, at } => diesel::update(target)
            .set((
                tried,
                event_outbox::next_attempt_at.eq(*at),
                event_outbox::last_status.eq(*status),
                event_outbox::last_error.eq(Some(error.as_str())),
            ))
            .execute(conn)?,
        Attempt::Failed { status, error } => diesel::update(target)
            .set((
                tried,
                event_outbox::state.eq(FAILED),
                event_outbox::last_status.eq(*status),
                event_outbox::last_error.eq(Some(error.as_str())),
            ))
            .execute(conn)?,
    };
    Ok(changed == 1)
}

/// Deletes delivered and failed rows older than `before` (retention).
pub fn purge_before(conn: &mut AnyConnection, before: NaiveDateTime) -> QueryResult<usize> {
    diesel::delete(
        event_outbox::table
            .filter(event_outbox::state.ne(PENDING))
            .filter(event_outbox::occurred_at.lt(before)),
    )
    .execute(conn)
}

// --- expiry warnings -----------------------------------------------------------

/// Tenants that asked for expiry warnings: id and the stored thresholds.
pub fn warning_tenants(conn: &mut AnyConnection) -> QueryResult<Vec<(String, String)>> {
    tenants::table
        .filter(tenants::expiry_warning_days.ne("[]"))
        .select((tenants::id, tenants::expiry_warning_days))
        .load(conn)
}

/// Up to `limit` of a tenant's live keys that expire after `now` and within
/// `days` days, and have not been warned at that threshold for their
/// current expiry: id and expiry, soonest first. Warned keys are left out
/// by the query, so a scan always gets to the ones still due.
pub fn unwarned_keys(
    conn: &mut AnyConnection,
    tenant_id: &str,
    days: i32,
    now: NaiveDateTime,
    limit: i64,
) -> QueryResult<Vec<(String, NaiveDateTime)>> {
    let until = now + chrono::Duration::days(i64::from(days));
    let warned = expiry_warnings::table
        .filter(expiry_warnings::key_id.eq(api_keys::id))
        .filter(expiry_warnings::days.eq(days))
        .filter(api_keys::expires_at.eq(expiry_warnings::expires_at.nullable()));
    api_keys::table
        .filter(api_keys::tenant_id.eq(tenant_id))
        .filter(api_keys::revoked_at.is_null())
        .filter(api_keys::deleted_at.is_null())
        .filter(api_keys::expires_at.gt(now))
        .filter(api_keys::expires_at.le(until))
        .filter(diesel::dsl::not(diesel::dsl::exists(warned)))
        .order((api_keys::expires_at.asc(), api_keys::id.asc()))
        .limit(limit)
        .select((api_keys::id, api_keys::expires_at.assume_not_null()))
        .load(conn)
}

/// Records that a warning for (key, threshold, expiry) went out; false when
/// it had already (another replica got there first).
pub fn mark_warned(
    conn: &mut AnyConnection,
    key_id: &str,
    days: i32,
    expires_at: NaiveDateTime,
    now: NaiveDateTime,
) -> QueryResult<bool> {
    db::insert_new(conn, |conn| {
        diesel::insert_into(expiry_warnings::table)
            .values((
                expiry_warnings::key_id.eq(key_id),
                expiry_warnings::days.eq(days),
                expiry_warnings::expires_at.eq(expires_at),
                expiry_warnings::sent_at.eq(now),
            ))
            .execute(conn)
    })
}
