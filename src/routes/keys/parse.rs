//! The key routes' input, read on the HTTP floor: JSON bodies and query
//! parameters become the typed requests of [`crate::keys::request`], every
//! bad field named in one 400. The key service never sees bytes.

use serde::Deserialize;

use crate::crypto::master::MasterKey;
use crate::domain::lists::{AllowList, Audiences, Scopes};
use crate::domain::owner::Owner;
use crate::error::{ApiError, FieldError};
use crate::input::json::{Body, Field, page_limit};
use crate::keys::SecurityLevel;
use crate::keys::list::cursor_after;
use crate::keys::request::{
    Change, CreateKey, ListKeys, MAX_ALLOWLIST, MAX_BULK, MAX_GRACE_S, MAX_JSON_OBJECT, PatchKey,
    RevokeKey, RevokeKeys, RotateKey,
};
use crate::keys::rules::{self, Expiry};
use crate::powers::KeyReader;

/// Wraps a list [`Body::strings`] has already checked entry by entry with
/// the same rule, into its newtype; a refusal here repeats that rule.
pub(crate) fn checked<T>(
    body: &mut Body,
    name: &str,
    field: Field<Vec<String>>,
    parse: fn(Vec<String>) -> Result<T, String>,
) -> Field<T> {
    match field {
        Field::Value(list) => match parse(list) {
            Ok(v) => Field::Value(v),
            Err(e) => {
                body.error(name, e);
                Field::Absent
            }
        },
        Field::Null => Field::Null,
        Field::Absent => Field::Absent,
    }
}

/// An owner to filter a list by: any valid owner, or the `key:<id>` owner
/// of keys made through `keys:self` by a key without one.
fn owner_filter_syntax(value: &str) -> Result<(), String> {
    if value
        .strip_prefix("key:")
        .is_some_and(|id| uuid::Uuid::try_parse(id).is_ok())
    {
        return Ok(());
    }
    rules::owner(value).map_err(|e| e.message)
}

pub(crate) const CREATE_FIELDS: &[&str] = &[
    "name",
    "description",
    "owner",
    "scopes",
    "expires_at",
    "expires_in_s",
    "never_expires",
    "ip_allowlist",
    "security_level",
    "max_token_ttl_s",
    "audiences",
    "rate_limit_per_s",
    "claims",
    "metadata",
];

/// `POST /api/v1/keys`.
pub fn create(bytes: &[u8]) -> Result<CreateKey, ApiError> {
    let mut body = Body::parse(bytes, CREATE_FIELDS)?;
    let name = body.string("name", 1, rules::MAX_NAME).value();
    if name.is_none() && !body.has("name") {
        body.error("name", "is required");
    }
    let description = body
        .string("description", 0, rules::MAX_DESCRIPTION)
        .value();
    let owner = match body.string("owner", 1, rules::MAX_OWNER) {
        Field::Value(o) => match Owner::parse(o) {
            Ok(o) => Some(o),
            Err(e) => {
                body.error("owner", e);
                None
            }
        },
        _ => None,
    };
    let scopes = body.strings("scopes", rules::MAX_SCOPES, Scopes::check);
    let scopes = checked(&mut body, "scopes", scopes, Scopes::parse)
        .value()
        .unwrap_or_default();
    let expires_at = body.timestamp("expires_at");
    let expires_in = body.integer("expires_in_s", 1, 100 * 365 * 86_400);
    let never = body.boolean("never_expires");
    let chosen = [
        !expires_at.is_absent(),
        !expires_in.is_absent(),
        !never.is_absent(),
    ]
    .iter()
    .filter(|x| **x)
    .count();
    let expiry = if chosen > 1 {
        body.error(
            "expires_at",
            "send at most one of expires_at, expires_in_s and never_expires",
        );
        Expiry::Unspecified
    } else if let Field::Value(at) = expires_at {
        Expiry::At(at)
    } else if let Field::Value(s) = expires_in {
        Expiry::In(s)
    } else if let Field::Value(n) = never {
        if !n {
            body.error("never_expires", "may only be true");
        }
        Expiry::Never
    } else {
        Expiry::Unspecified
    };
    let ip_allowlist = body.strings("ip_allowlist", MAX_ALLOWLIST, AllowList::check);
    let ip_allowlist = checked(&mut body, "ip_allowlist", ip_allowlist, AllowList::parse).value();
    let security_level = match body.string("security_level", 1, 20) {
        Field::Value(level) => match level.as_str() {
            "standard" => SecurityLevel::Standard,
            "advanced" => SecurityLevel::Advanced,
            _ => {
                body.error("security_level", "must be `standard` or `advanced`");
                SecurityLevel::Standard
            }
        },
        _ => SecurityLevel::Standard,
    };
    let max_token_ttl_s = body.integer("max_token_ttl_s", 30, 3600).value();
    let audiences = body.strings("audiences", rules::MAX_AUDIENCES, Audiences::check);
    let audiences = checked(&mut body, "audiences", audiences, Audiences::parse)
        .value()
        .unwrap_or_default();
    let rate_limit_per_s = body
        .positive_number("rate_limit_per_s", 1_000_000.0)
        .value();
    let claims = body.object("claims", MAX_JSON_OBJECT).value();
    let metadata = body.object("metadata", MAX_JSON_OBJECT).value();
    body.finish()?;
    Ok(CreateKey {
        name: name.unwrap_or_default(),
        description,
        owner,
        scopes,
        expiry,
        ip_allowlist,
        security_level,
        max_token_ttl_s,
        audiences,
        rate_limit_per_s,
        claims,
        metadata,
    })
}

/// Query parameters of `GET /api/v1/keys`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    pub q: Option<String>,
    pub status: Option<String>,
    pub owner: Option<String>,
    pub limit: Option<String>,
    pub cursor: Option<String>,
}

/// `GET /api/v1/keys` query parameters, every bad one named; `reader`
/// narrows the owner, and a cursor must be one sealed for this tenant and
/// these filters.
pub fn list(
    query: ListQuery,
    reader: &KeyReader,
    tenant_id: &str,
    master: &MasterKey,
) -> Result<ListKeys, ApiError> {
    let mut errors = Vec::new();
    // No control characters: names, ids and owners hold none, and SQLite
    // reads a pattern only up to a NUL, so `q=%00x` would match every key.
    if let Some(q) = &query.q
        && (!(1..=100).contains(&q.chars().count()) || q.chars().any(char::is_control))
    {
        errors.push(FieldError::new(
            "q",
            "must be 1 to 100 characters, none of them control characters",
        ));
    }
    let status = match query.status.as_deref() {
        None => None,
        Some(s @ ("active" | "expired" | "revoked")) => Some(s.to_owned()),
        Some(_) => {
            errors.push(FieldError::new(
                "status",
                "must be active, expired or revoked",
            ));
            None
        }
    };
    if let Some(owner) = &query.owner
        && let Err(e) = owner_filter_syntax(owner)
    {
        errors.push(FieldError::new("owner", e));
    }
    let limit = page_limit(query.limit.as_deref(), &mut errors);
    // keys:self callers see only their own keys, whatever they ask.
    let owner = reader
        .forced_owner()
        .map(str::to_owned)
        .or_else(|| query.owner.clone());
    let after = match &query.cursor {
        None => None,
        Some(raw) => match cursor_after(
            master,
            raw,
            tenant_id,
            query.q.as_deref(),
            status.as_deref(),
            owner.as_deref(),
        ) {
            Some(after) => Some(after),
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
    Ok(ListKeys {
        q: query.q,
        status,
        owner,
        limit,
        after,
    })
}

pub(crate) const PATCH_FIELDS: &[&str] = &[
    "name",
    "description",
    "ip_allowlist",
    "metadata",
    "claims",
    "expires_at",
];

/// `PATCH /api/v1/keys/{id}`: a JSON merge patch (RFC 7396).
pub fn patch(bytes: &[u8]) -> Result<PatchKey, ApiError> {
    let mut body = Body::parse(bytes, PATCH_FIELDS)?;
    let name = body.string("name", 1, rules::MAX_NAME);
    if name == Field::Null {
        body.error("name", "cannot be removed");
    }
    let description = body.string("description", 0, rules::MAX_DESCRIPTION);
    let ip_allowlist = body.strings("ip_allowlist", MAX_ALLOWLIST, AllowList::check);
    let ip_allowlist = checked(&mut body, "ip_allowlist", ip_allowlist, AllowList::parse);
    let metadata = body.object("metadata", MAX_JSON_OBJECT);
    let claims = body.object("claims", MAX_JSON_OBJECT);
    let expires_at = body.timestamp("expires_at");
    body.finish()?;

    Ok(PatchKey {
        name: name.value(),
        description: change(description),
        ip_allowlist: change(ip_allowlist),
        metadata: change(metadata),
        claims: change(claims),
        expires_at: change(expires_at),
    })
}

fn change<T>(field: Field<T>) -> Change<T> {
    match field {
        Field::Absent => Change::Keep,
        Field::Null => Change::Clear,
        Field::Value(v) => Change::Set(v),
    }
}

fn reason(body: &mut Body) -> Option<String> {
    body.string("reason", 1, 500).value()
}

/// A body that may be empty (whitespace only) or an object of `allowed`.
fn optional_body(bytes: &[u8], allowed: &[&str]) -> Result<Body, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        Ok(Body::empty())
    } else {
        Body::parse(bytes, allowed)
    }
}

/// `POST /api/v1/keys/{id}/revoke`: an optional `reason`.
pub fn revoke(bytes: &[u8]) -> Result<RevokeKey, ApiError> {
    let mut body = optional_body(bytes, &["reason"])?;
    let reason = reason(&mut body);
    body.finish()?;
    Ok(RevokeKey { reason })
}

/// `POST /api/v1/keys/revoke`: 1 to `MAX_BULK` ids and a `reason`.
pub fn revoke_many(bytes: &[u8]) -> Result<RevokeKeys, ApiError> {
    let mut body = Body::parse(bytes, &["ids", "reason"])?;
    let ids = match body.strings("ids", MAX_BULK, |_| Ok(())) {
        Field::Value(ids) if !ids.is_empty() => ids,
        _ => {
            if !body.has("ids") {
                body.error(
                    "ids",
                    format!("a list of 1 to {MAX_BULK} key ids is required"),
                );
            }
            Vec::new()
        }
    };
    let reason = reason(&mut body);
    body.finish()?;
    Ok(RevokeKeys { ids, reason })
}

/// `POST /api/v1/keys/{id}/rotate`: an optional `grace_period_s`.
pub fn rotate(bytes: &[u8]) -> Result<RotateKey, ApiError> {
    let mut body = optional_body(bytes, &["grace_period_s"])?;
    let grace_period_s = body
        .integer("grace_period_s", 0, MAX_GRACE_S)
        .value()
        .unwrap_or(0);
    body.finish()?;
    Ok(RotateKey { grace_period_s })
}
