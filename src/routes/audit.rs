//! `GET /api/v1/audit-events`: the acting tenant's events, newest first.

use actix_web::{HttpResponse, web};
use chrono::DateTime;
use serde::{Deserialize, Serialize};

use crate::app::AppState;
use crate::audit::{self, ACTIONS, EventView, Filter};
use crate::db;
use crate::error::{ApiError, FieldError};
use crate::pagination::{Page, open_cursor, seal_cursor};
use crate::powers::Principal;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Query {
    action: Option<String>,
    key_id: Option<String>,
    actor: Option<String>,
    since: Option<String>,
    until: Option<String>,
    limit: Option<String>,
    cursor: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct AuditCursor {
    t: String,
    f: String,
    k: String,
}

#[utoipa::path(operation_id = "listAuditEvents", get, path = "/api/v1/audit-events", tag = "tenants", security(("admin_bearer" = [])),
    params(
        ("action" = Option<String>, Query),
        ("key_id" = Option<String>, Query),
        ("actor" = Option<String>, Query, description = "An actor's key id, or `cli` / `system`"),
        ("since" = Option<String>, Query, description = "RFC 3339"),
        ("until" = Option<String>, Query, description = "RFC 3339"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 200),
        ("cursor" = Option<String>, Query),
    ),
    responses((status = 200, description = "Newest first", body = crate::pagination::Page<crate::audit::EventView>), crate::openapi::schemas::AdminErrors))]
pub async fn list(
    principal: Principal,
    query: web::Query<Query>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    principal.auditor()?;
    let q = query.into_inner();
    let mut errors = Vec::new();
    if let Some(action) = &q.action
        && !ACTIONS.contains(&action.as_str())
    {
        errors.push(FieldError::new("action", "is not an audit action"));
    }
    for (name, value) in [("key_id", &q.key_id), ("actor", &q.actor)] {
        if value
            .as_ref()
            .is_some_and(|v| v.is_empty() || v.len() > 200)
        {
            errors.push(FieldError::new(name, "must be 1 to 200 characters"));
        }
    }
    let mut time = |name: &str, raw: &Option<String>| {
        raw.as_ref()
            .and_then(|r| match DateTime::parse_from_rfc3339(r) {
                Ok(t) => Some(t.naive_utc()),
                Err(_) => {
                    errors.push(FieldError::new(name, "must be an RFC 3339 date-time"));
                    None
                }
            })
    };
    let since = time("since", &q.since);
    let until = time("until", &q.until);
    let limit = crate::input::json::page_limit(q.limit.as_deref(), &mut errors);
    let digest = format!(
        "{:?}|{:?}|{:?}|{:?}|{:?}",
        q.action, q.key_id, q.actor, q.since, q.until
    );
    let before_id = match &q.cursor {
        None => None,
        Some(raw) => match open_cursor::<AuditCursor>(&state.master, raw) {
            Some(c) if c.t == principal.tenant.id && c.f == digest => Some(c.k),
            _ => {
                errors.push(FieldError::new(
                    "cursor",
                    "is not a cursor this list returned (for these filters)",
                ));
                None
            }
        },
    };
    if !errors.is_empty() {
        return Err(ApiError::invalid_fields(errors));
    }
    let filter = Filter {
        action: q.action,
        key_id: q.key_id,
        actor: q.actor,
        since,
        until,
        before_id,
    };
    let tenant_id = principal.tenant.id.clone();
    let mut rows = db::read(&state.admin_lane, move |conn, bound| {
        audit::list(conn, &tenant_id, &filter, limit + 1, bound)
    })
    .await?;
    let more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    let next_cursor = match (more, rows.last()) {
        (true, Some(last)) => Some(seal_cursor(
            &state.master,
            &AuditCursor {
                t: principal.tenant.id.clone(),
                f: digest,
                k: last.id.clone(),
            },
        )),
        _ => None,
    };
    let slug = principal.tenant.slug.clone();
    Ok(HttpResponse::Ok().json(Page {
        items: rows
            .into_iter()
            .map(|e| EventView::of(e, Some(&slug)))
            .collect::<Vec<_>>(),
        next_cursor,
    }))
}
