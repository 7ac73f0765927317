//! `GET /api/v1/audit-events`: the acting tenant's events, newest first.

use actix_web::{HttpResponse, web};
use chrono::DateTime;
use serde::Deserialize;

use crate::app::AppState;
use crate::audit::{ACTIONS, Filter};
use crate::crypto::master::MasterKey;
use crate::error::{ApiError, FieldError};
use crate::input::json::page_limit;
use crate::powers::Principal;
use crate::tenants::audit::{self, ListEvents, cursor_before, filter_digest};

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
    let auditor = principal.auditor()?;
    let request = parse(query.into_inner(), &principal.tenant.id, &state.master)?;
    let page = audit::list(
        &state.admin_lane,
        &state.master,
        auditor,
        &principal.tenant,
        request,
    )
    .await?;
    Ok(HttpResponse::Ok().json(page))
}

/// The query into a [`ListEvents`], every bad parameter named at once.
fn parse(q: Query, tenant_id: &str, master: &MasterKey) -> Result<ListEvents, ApiError> {
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
    let limit = page_limit(q.limit.as_deref(), &mut errors);
    let digest = filter_digest([&q.action, &q.key_id, &q.actor, &q.since, &q.until]);
    let before_id = match &q.cursor {
        None => None,
        Some(raw) => match cursor_before(master, raw, tenant_id, &digest) {
            Some(id) => Some(id),
            None => {
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
    Ok(ListEvents {
        filter: Filter {
            action: q.action,
            key_id: q.key_id,
            actor: q.actor,
            since,
            until,
            before_id,
        },
        limit,
        digest,
    })
}
