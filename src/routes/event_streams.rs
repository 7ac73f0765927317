//! `/api/v1/event-streams`: a tenant's receivers of security events
//! (`admin:events`). Bodies are read here, every bad field named; the
//! receiver URL's addresses are checked by the service.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use zeroize::Zeroizing;

use crate::app::AppState;
use crate::domain::audience;
use crate::domain::events::EventType;
use crate::error::{ApiError, FieldError};
use crate::events::request::{DeliveryQuery, NewStream, StreamChanges};
use crate::events::store::{DELIVERED, FAILED, PENDING};
use crate::events::streams::{self, Deps};
use crate::input::body::{BODY_LIMIT, read_limited};
use crate::input::json::{Body, Field, is_json, page_limit};
use crate::powers::Principal;

pub(crate) const FIELDS: &[&str] = &["endpoint", "audience", "events", "enabled", "bearer_secret"];
const MAX_SECRET: usize = 512;
const MIN_SECRET: usize = 16;

fn deps(state: &AppState) -> Deps<'_> {
    Deps {
        pool: &state.pool,
        master: &state.master,
        guard: state.events.guard(),
    }
}

fn require_json(req: &HttpRequest, merge_patch: bool) -> Result<(), ApiError> {
    if is_json(req, merge_patch) {
        Ok(())
    } else {
        Err(ApiError::UnsupportedMediaType(
            "the body must be application/json".to_owned(),
        ))
    }
}

fn event_uri(value: &str) -> Result<(), String> {
    EventType::from_uri(value)
        .map(|_| ())
        .ok_or_else(|| "must be urn:keymint:event:… names of keymint's events".to_owned())
}

/// A bearer secret goes into a header: printable ASCII without spaces.
fn secret(body: &mut Body, field: Field<String>) -> Field<Zeroizing<String>> {
    match field {
        Field::Value(s) => {
            if (MIN_SECRET..=MAX_SECRET).contains(&s.len())
                && s.bytes().all(|b| b.is_ascii_graphic())
            {
                Field::Value(Zeroizing::new(s))
            } else {
                body.error(
                    "bearer_secret",
                    format!("must be {MIN_SECRET} to {MAX_SECRET} printable ASCII characters without spaces"),
                );
                Field::Absent
            }
        }
        Field::Null => Field::Null,
        Field::Absent => Field::Absent,
    }
}

fn events(body: &mut Body) -> Field<Vec<EventType>> {
    match body.strings("events", EventType::ALL.len(), event_uri) {
        Field::Value(list) if list.is_empty() => {
            body.error("events", "must name at least one event (null: every event)");
            Field::Absent
        }
        Field::Value(list) => {
            Field::Value(list.iter().filter_map(|u| EventType::from_uri(u)).collect())
        }
        Field::Null => Field::Null,
        Field::Absent => Field::Absent,
    }
}

fn audience_field(body: &mut Body) -> Field<String> {
    let field = body.string("audience", 1, 200);
    if let Field::Value(a) = &field
        && let Err(why) = audience::check(a)
    {
        body.error("audience", why);
        return Field::Absent;
    }
    field
}

fn parse_new(bytes: &[u8]) -> Result<NewStream, ApiError> {
    let mut body = Body::parse(bytes, FIELDS)?;
    let endpoint = body
        .string("endpoint", 1, crate::events::outbound::MAX_URL_LEN)
        .value();
    let audience = audience_field(&mut body).value();
    let events = events(&mut body).value();
    let enabled = body.boolean("enabled").value().unwrap_or(true);
    let f = body.string("bearer_secret", 1, MAX_SECRET);
    let bearer_secret = secret(&mut body, f).value();
    if endpoint.is_none() && !body.has("endpoint") {
        body.error("endpoint", "is required");
    }
    if audience.is_none() && !body.has("audience") {
        body.error("audience", "is required");
    }
    body.finish()?;
    match (endpoint, audience) {
        (Some(endpoint), Some(audience)) => Ok(NewStream {
            endpoint,
            audience,
            events,
            enabled,
            bearer_secret,
        }),
        _ => Err(ApiError::invalid_fields(vec![FieldError::new(
            "endpoint",
            "endpoint and audience are required",
        )])),
    }
}

fn parse_changes(bytes: &[u8]) -> Result<StreamChanges, ApiError> {
    let mut body = Body::parse(bytes, FIELDS)?;
    let f = body.string("endpoint", 1, crate::events::outbound::MAX_URL_LEN);
    let endpoint = body.not_null("endpoint", f);
    let f = audience_field(&mut body);
    let audience = body.not_null("audience", f);
    let events = events(&mut body).nullable();
    let f = body.boolean("enabled");
    let enabled = body.not_null("enabled", f);
    let f = body.string("bearer_secret", 1, MAX_SECRET);
    let bearer_secret = secret(&mut body, f).nullable();
    body.finish()?;
    Ok(StreamChanges {
        endpoint,
        audience,
        events,
        enabled,
        bearer_secret,
    })
}

#[utoipa::path(operation_id = "createEventStream", post, path = "/api/v1/event-streams", tag = "events", security(("admin_bearer" = [])),
    request_body(content = crate::openapi::schemas::CreateEventStreamRequest, content_type = "application/json"),
    responses(
        (status = 201, description = "Registered", body = crate::events::view::StreamView, headers(("Location" = String))),
        (status = 409, description = "The tenant already has 20 streams", body = crate::openapi::schemas::ProblemDoc, content_type = "application/problem+json"),
        (status = 422, description = "The endpoint is refused (not https, or not a public address)", body = crate::openapi::schemas::ProblemDoc, content_type = "application/problem+json"),
        crate::openapi::schemas::AdminErrors,
    ))]
pub async fn create(
    req: HttpRequest,
    principal: Principal,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let body = read_limited(payload, BODY_LIMIT).await?;
    let power = principal.event_admin()?;
    require_json(&req, false)?;
    let request = parse_new(&body)?;
    let view = streams::create(&deps(&state), &principal, power, request).await?;
    Ok(HttpResponse::Created()
        .insert_header((
            header::LOCATION,
            format!("/api/v1/event-streams/{}", view.id),
        ))
        .json(view))
}

#[utoipa::path(operation_id = "listEventStreams", get, path = "/api/v1/event-streams", tag = "events", security(("admin_bearer" = [])),
    responses((status = 200, description = "The tenant's streams, oldest first, in one page (at most 20)", body = crate::pagination::Page<crate::events::view::StreamView>), crate::openapi::schemas::AdminErrors))]
pub async fn list(
    principal: Principal,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let power = principal.event_admin()?;
    Ok(HttpResponse::Ok().json(streams::list(&state.pool, &principal, power).await?))
}

#[utoipa::path(operation_id = "getEventStream", get, path = "/api/v1/event-streams/{id}", tag = "events", security(("admin_bearer" = [])),
    params(("id" = String, Path)),
    responses((status = 200, description = "The stream", body = crate::events::view::StreamView), crate::openapi::schemas::AdminErrors))]
pub async fn get(
    principal: Principal,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let power = principal.event_admin()?;
    let view = streams::get(&state.pool, &principal, power, path.into_inner()).await?;
    Ok(HttpResponse::Ok().json(view))
}

#[utoipa::path(operation_id = "updateEventStream", patch, path = "/api/v1/event-streams/{id}", tag = "events", security(("admin_bearer" = [])),
    params(("id" = String, Path)),
    request_body(content = crate::openapi::schemas::PatchEventStreamRequest, content_type = "application/merge-patch+json"),
    responses(
        (status = 200, description = "The stream as changed", body = crate::events::view::StreamView),
        (status = 422, description = "The endpoint is refused", body = crate::openapi::schemas::ProblemDoc, content_type = "application/problem+json"),
        crate::openapi::schemas::AdminErrors,
    ))]
pub async fn patch(
    req: HttpRequest,
    principal: Principal,
    path: web::Path<String>,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let body = read_limited(payload, BODY_LIMIT).await?;
    let power = principal.event_admin()?;
    require_json(&req, true)?;
    let changes = parse_changes(&body)?;
    let view = streams::patch(&deps(&state), &principal, power, path.into_inner(), changes).await?;
    Ok(HttpResponse::Ok().json(view))
}

#[utoipa::path(operation_id = "deleteEventStream", delete, path = "/api/v1/event-streams/{id}", tag = "events", security(("admin_bearer" = [])),
    params(("id" = String, Path)),
    responses((status = 204, description = "Removed, with its pending deliveries"), crate::openapi::schemas::AdminErrors))]
pub async fn delete(
    principal: Principal,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let power = principal.event_admin()?;
    streams::delete(&state.pool, &principal, power, path.into_inner()).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeliveriesQuery {
    state: Option<String>,
    limit: Option<String>,
    cursor: Option<String>,
}

#[utoipa::path(operation_id = "listEventDeliveries", get, path = "/api/v1/event-streams/{id}/deliveries", tag = "events", security(("admin_bearer" = [])),
    params(
        ("id" = String, Path),
        ("state" = Option<String>, Query, description = "`pending`, `delivered` or `failed`"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 200, description = "Default 50"),
        ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page, with the same `state`"),
    ),
    responses((status = 200, description = "Newest first", body = crate::pagination::Page<crate::events::view::DeliveryView>), crate::openapi::schemas::AdminErrors))]
pub async fn deliveries(
    principal: Principal,
    path: web::Path<String>,
    query: web::Query<DeliveriesQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let power = principal.event_admin()?;
    let q = query.into_inner();
    let mut errors = Vec::new();
    let limit = page_limit(q.limit.as_deref(), &mut errors);
    let wanted = match q.state.as_deref() {
        None => None,
        Some(s) => match [PENDING, DELIVERED, FAILED].into_iter().find(|k| *k == s) {
            Some(k) => Some(k),
            None => {
                errors.push(FieldError::new(
                    "state",
                    "must be pending, delivered or failed",
                ));
                None
            }
        },
    };
    if !errors.is_empty() {
        return Err(ApiError::invalid_fields(errors));
    }
    let request = DeliveryQuery {
        state: wanted,
        cursor: q.cursor,
        limit,
    };
    let list = streams::deliveries(
        &state.pool,
        &state.master,
        &principal,
        power,
        path.into_inner(),
        request,
    )
    .await?;
    Ok(HttpResponse::Ok().json(list))
}

#[utoipa::path(operation_id = "replayEventDelivery", post, path = "/api/v1/event-streams/{id}/deliveries/{delivery}/replay", tag = "events", security(("admin_bearer" = [])),
    params(("id" = String, Path), ("delivery" = String, Path, description = "The delivery's id, the SET's `jti`")),
    responses((status = 202, description = "Queued again with the same `jti` and a fresh retry budget", body = crate::events::view::DeliveryView), crate::openapi::schemas::AdminErrors))]
pub async fn replay(
    principal: Principal,
    path: web::Path<(String, String)>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let power = principal.event_admin()?;
    let (id, delivery) = path.into_inner();
    let view = streams::replay(&state.pool, &principal, power, id, delivery).await?;
    Ok(HttpResponse::Accepted().json(view))
}
