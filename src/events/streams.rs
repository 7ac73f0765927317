//! What the event-stream routes do: register, read, change and remove a
//! tenant's receivers, list their deliveries and replay one. Each change is
//! one transaction with its audit event; the receiver URL passes the guard
//! before anything is written.

use std::sync::Arc;

use chrono::Utc;
use zeroize::Zeroizing;

use super::deliver::secret_aad;
use super::outbound::Guard;
use super::request::{DeliveryQuery, NewStream, StreamChanges};
use super::store::{self, MAX_STREAMS_PER_TENANT};
use super::view::{DeliveryView, StreamView};
use crate::audit::{self, Actor, Origin};
use crate::crypto::check;
use crate::crypto::master::{MasterKey, Purpose};
use crate::db::models::EventStream;
use crate::db::{self, AnyConnection, Pool};
use crate::domain::events::EventType;
use crate::error::{ApiError, FieldError};
use crate::pagination::{Page, open_cursor};
use crate::powers::{EventAdmin, Principal};
use crate::tenants::store as tenants;

/// What the stream service reads and writes through.
pub struct Deps<'a> {
    pub pool: &'a Pool,
    pub master: &'a Arc<MasterKey>,
    pub guard: &'a Guard,
}

/// 422 naming `endpoint` when the guard refuses it.
async fn check_endpoint(guard: &Guard, endpoint: &str) -> Result<(), ApiError> {
    let refuse = |why: String| ApiError::Unprocessable {
        detail: format!("the endpoint is refused: it {why}"),
        errors: vec![FieldError::new("endpoint", why)],
    };
    let url = guard.parse(endpoint).map_err(refuse)?;
    guard.check_addresses(&url).await.map_err(|why| {
        refuse(format!(
            "resolves to an address events may not reach: {why}"
        ))
    })
}

fn events_json(events: Option<&[EventType]>) -> Option<String> {
    events.map(|list| {
        let uris: Vec<String> = list.iter().map(|t| t.uri()).collect();
        serde_json::to_string(&uris).unwrap_or_else(|_| "[]".into())
    })
}

fn seal_secret(
    conn: &mut AnyConnection,
    master: &MasterKey,
    stream: &EventStream,
    secret: Option<&Zeroizing<String>>,
) -> Result<Option<Vec<u8>>, ApiError> {
    secret
        .map(|s| {
            check::seal(
                conn,
                master,
                Purpose::EventStreamSecrets,
                &secret_aad(stream),
                s.as_bytes(),
            )
            .map_err(ApiError::from)
        })
        .transpose()
}

fn record(
    conn: &mut AnyConnection,
    action: &'static str,
    tenant_id: &str,
    who: (&Actor, &Origin),
    stream_id: &str,
    details: serde_json::Value,
) -> Result<(), ApiError> {
    let (actor, origin) = who;
    audit::write(
        conn,
        audit::Record {
            tenant_id: Some(tenant_id),
            action,
            actor,
            origin,
            target_type: "event_stream",
            target_id: stream_id,
            success: true,
            details,
        },
        Utc::now().naive_utc(),
    )?;
    Ok(())
}

fn view(
    conn: &mut AnyConnection,
    stream: &EventStream,
    slug: &str,
) -> Result<StreamView, ApiError> {
    Ok(StreamView::of(
        stream,
        slug,
        store::backlog(conn, &stream.id)?,
    ))
}

/// `POST /api/v1/event-streams`: 201, or 409 past
/// [`MAX_STREAMS_PER_TENANT`].
pub async fn create(
    deps: &Deps<'_>,
    principal: &Principal,
    _power: EventAdmin,
    request: NewStream,
) -> Result<StreamView, ApiError> {
    check_endpoint(deps.guard, &request.endpoint).await?;
    let tenant = principal.tenant.clone();
    let actor = principal.actor();
    let origin = principal.origin.clone();
    let master = deps.master.clone();
    db::run(deps.pool, move |conn| {
        db::write_transaction(conn, |conn| {
            tenants::lock(conn, &tenant.id)?;
            if store::count_streams(conn, &tenant.id)? >= MAX_STREAMS_PER_TENANT {
                return Err(ApiError::Conflict(format!(
                    "a tenant has at most {MAX_STREAMS_PER_TENANT} event streams"
                )));
            }
            let now = Utc::now().naive_utc();
            let mut stream = EventStream {
                id: uuid::Uuid::now_v7().to_string(),
                tenant_id: tenant.id.clone(),
                endpoint: request.endpoint,
                audience: request.audience,
                events: events_json(request.events.as_deref()),
                enabled: request.enabled,
                paused_until: None,
                bearer_secret: None,
                created_at: now,
                updated_at: now,
            };
            stream.bearer_secret =
                seal_secret(conn, &master, &stream, request.bearer_secret.as_ref())?;
            store::insert_stream(conn, &stream)?;
            record(
                conn,
                "event_stream.created",
                &tenant.id,
                (&actor, &origin),
                &stream.id,
                serde_json::json!({
                    "endpoint": stream.endpoint,
                    "audience": stream.audience,
                    "events": request.events.map(|l| l.iter().map(|t| t.uri()).collect::<Vec<_>>()),
                    "enabled": stream.enabled,
                    "bearer_secret": stream.bearer_secret.is_some(),
                }),
            )?;
            view(conn, &stream, &tenant.slug)
        })
    })
    .await
}

/// `GET /api/v1/event-streams`: the tenant's streams, oldest first, in one
/// page (there are at most [`MAX_STREAMS_PER_TENANT`]).
pub async fn list(
    pool: &Pool,
    principal: &Principal,
    _power: EventAdmin,
) -> Result<Page<StreamView>, ApiError> {
    let tenant = principal.tenant.clone();
    db::run(pool, move |conn| {
        let streams = store::list_streams(conn, &tenant.id)?;
        let items = streams
            .iter()
            .map(|s| view(conn, s, &tenant.slug))
            .collect::<Result<_, _>>()?;
        Ok(Page {
            items,
            next_cursor: None,
        })
    })
    .await
}

/// `GET /api/v1/event-streams/{id}`.
pub async fn get(
    pool: &Pool,
    principal: &Principal,
    _power: EventAdmin,
    id: String,
) -> Result<StreamView, ApiError> {
    let tenant = principal.tenant.clone();
    db::run(pool, move |conn| {
        let stream = store::find_stream(conn, &tenant.id, &id)?.ok_or(ApiError::NotFound)?;
        view(conn, &stream, &tenant.slug)
    })
    .await
}

/// `PATCH /api/v1/event-streams/{id}`.
pub async fn patch(
    deps: &Deps<'_>,
    principal: &Principal,
    _power: EventAdmin,
    id: String,
    changes: StreamChanges,
) -> Result<StreamView, ApiError> {
    if let Some(endpoint) = &changes.endpoint {
        check_endpoint(deps.guard, endpoint).await?;
    }
    let tenant = principal.tenant.clone();
    let actor = principal.actor();
    let origin = principal.origin.clone();
    let master = deps.master.clone();
    db::run(deps.pool, move |conn| {
        db::write_transaction(conn, |conn| {
            let mut stream =
                store::find_stream(conn, &tenant.id, &id)?.ok_or(ApiError::NotFound)?;
            let fields = changes.fields();
            if let Some(endpoint) = changes.endpoint {
                stream.endpoint = endpoint;
            }
            if let Some(audience) = changes.audience {
                stream.audience = audience;
            }
            if let Some(events) = &changes.events {
                stream.events = events_json(events.as_deref());
            }
            if let Some(enabled) = changes.enabled {
                stream.enabled = enabled;
            }
            if let Some(secret) = &changes.bearer_secret {
                stream.bearer_secret = seal_secret(conn, &master, &stream, secret.as_ref())?;
            }
            if !fields.is_empty() {
                stream.updated_at = Utc::now().naive_utc();
                store::update_stream(conn, &stream)?;
                record(
                    conn,
                    "event_stream.updated",
                    &tenant.id,
                    (&actor, &origin),
                    &stream.id,
                    serde_json::json!({ "fields": fields }),
                )?;
            }
            view(conn, &stream, &tenant.slug)
        })
    })
    .await
}

/// `DELETE /api/v1/event-streams/{id}`: the stream and the deliveries it
/// still had.
pub async fn delete(
    pool: &Pool,
    principal: &Principal,
    _power: EventAdmin,
    id: String,
) -> Result<(), ApiError> {
    let tenant = principal.tenant.clone();
    let actor = principal.actor();
    let origin = principal.origin.clone();
    db::run(pool, move |conn| {
        db::write_transaction(conn, |conn| {
            let stream = store::find_stream(conn, &tenant.id, &id)?.ok_or(ApiError::NotFound)?;
            store::delete_stream(conn, &tenant.id, &stream.id)?;
            record(
                conn,
                "event_stream.deleted",
                &tenant.id,
                (&actor, &origin),
                &stream.id,
                serde_json::json!({ "endpoint": stream.endpoint }),
            )
        })
    })
    .await
}

/// What a deliveries cursor carries: the stream, the state filter and the
/// last delivery of its page.
#[derive(serde::Serialize, serde::Deserialize)]
struct DeliveryCursor {
    s: String,
    f: Option<String>,
    k: String,
}

/// `GET /api/v1/event-streams/{id}/deliveries`: newest first, a sealed
/// cursor to the next page; a cursor made for another stream or filter is
/// a 400.
pub async fn deliveries(
    pool: &Pool,
    master: &Arc<MasterKey>,
    principal: &Principal,
    _power: EventAdmin,
    id: String,
    query: DeliveryQuery,
) -> Result<Page<DeliveryView>, ApiError> {
    let filter = query.state.map(str::to_owned);
    let before = match &query.cursor {
        None => None,
        Some(raw) => Some(
            open_cursor::<DeliveryCursor>(master, raw)
                .filter(|c| c.s == id && c.f == filter)
                .map(|c| c.k)
                .ok_or_else(|| {
                    ApiError::invalid_fields(vec![FieldError::new(
                        "cursor",
                        "is not a cursor of this list",
                    )])
                })?,
        ),
    };
    let tenant = principal.tenant.clone();
    let master = master.clone();
    db::run(pool, move |conn| {
        let stream = store::find_stream(conn, &tenant.id, &id)?.ok_or(ApiError::NotFound)?;
        let rows = store::deliveries(
            conn,
            &stream.id,
            query.state,
            before.as_deref(),
            query.limit + 1,
        )?;
        Ok(Page::of_rows(
            rows,
            query.limit,
            &master,
            |last| DeliveryCursor {
                s: stream.id.clone(),
                f: filter.clone(),
                k: last.id.clone(),
            },
            |row| DeliveryView::of(&row),
        ))
    })
    .await
}

/// `POST /api/v1/event-streams/{id}/deliveries/{delivery}/replay`: sends it
/// again (same `jti`) with a fresh retry budget.
pub async fn replay(
    pool: &Pool,
    principal: &Principal,
    _power: EventAdmin,
    id: String,
    delivery: String,
) -> Result<DeliveryView, ApiError> {
    let tenant = principal.tenant.clone();
    let actor = principal.actor();
    let origin = principal.origin.clone();
    db::run(pool, move |conn| {
        db::write_transaction(conn, |conn| {
            let stream = store::find_stream(conn, &tenant.id, &id)?.ok_or(ApiError::NotFound)?;
            let event =
                store::find_delivery(conn, &stream.id, &delivery)?.ok_or(ApiError::NotFound)?;
            store::replay(conn, &event.id, Utc::now().naive_utc())?;
            record(
                conn,
                "event_stream.replayed",
                &tenant.id,
                (&actor, &origin),
                &stream.id,
                serde_json::json!({ "delivery": event.id, "event": event.event_type }),
            )?;
            let event =
                store::find_delivery(conn, &stream.id, &delivery)?.ok_or(ApiError::NotFound)?;
            Ok(DeliveryView::of(&event))
        })
    })
    .await
}
