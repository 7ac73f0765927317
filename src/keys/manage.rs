//! What the admin API does with keys: create under the caller's powers and
//! the tenant's policy, list and search with opaque cursors, change, revoke
//! and delete. Each change is one transaction with its audit events.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{NaiveDateTime, Utc};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::app::AppState;
use crate::audit::{self, Origin};
use crate::auth::Principal;
use crate::auth::powers::{ChildRequest, KeyAdmin, KeyCreator, KeyReader, KeyRevoker, Refused};
use crate::db::models::{ApiKey, Tenant};
use crate::db::schema::api_keys;
use crate::db::{self, AnyConnection};
use crate::domain::text::ascii_quote;
use crate::domain::{audience, cidr, scope};
use crate::error::{ApiError, FieldError};
use crate::input::json::{Body, Field};
use crate::keys::SecurityLevel;
use crate::keys::rules::{self, Expiry};
use crate::keys::store::{self, NewKey};
use crate::keys::view::{CreatedKey, KeyView};
use crate::pagination::{Page, open_cursor, seal_cursor};
use crate::tenants;
use crate::tokens::issue::AccessClaims;

pub const MAX_JSON_OBJECT: usize = 4096;
pub const MAX_ALLOWLIST: usize = 100;
pub const MAX_BULK: usize = 1000;

diesel::define_sql_function!(fn lower(x: diesel::sql_types::Nullable<diesel::sql_types::Text>) -> diesel::sql_types::Nullable<diesel::sql_types::Text>);

fn scope_syntax(value: &str) -> Result<(), String> {
    if scope::is_valid(value) {
        Ok(())
    } else {
        Err(format!(
            "`{}` must match ^[A-Za-z0-9:._/-]{{1,100}}$",
            ascii_quote(value)
        ))
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

fn policy(field: &str, message: impl Into<String>) -> ApiError {
    ApiError::Unprocessable {
        detail: message.into(),
        errors: vec![FieldError::new(field, "violates the tenant's policy")],
    }
}

/// Everything a create request asked for, parsed.
struct CreateRequest {
    name: String,
    description: Option<String>,
    owner: Option<String>,
    scopes: Vec<String>,
    expiry: Expiry,
    ip_allowlist: Option<Vec<String>>,
    security_level: SecurityLevel,
    max_token_ttl_s: Option<i64>,
    audiences: Vec<String>,
    rate_limit_per_s: Option<f64>,
    claims: Option<Value>,
    metadata: Option<Value>,
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

fn parse_create(bytes: &[u8]) -> Result<CreateRequest, ApiError> {
    let mut body = Body::parse(bytes, CREATE_FIELDS)?;
    let name = body.string("name", 1, rules::MAX_NAME).value();
    if name.is_none() && !body.has("name") {
        body.error("name", "is required");
    }
    let description = body
        .string("description", 0, rules::MAX_DESCRIPTION)
        .value();
    let owner = match body.string("owner", 1, rules::MAX_OWNER) {
        Field::Value(o) => match rules::owner(&o) {
            Ok(()) => Some(o),
            Err(e) => {
                body.error("owner", e.message);
                None
            }
        },
        _ => None,
    };
    let scopes = body
        .strings("scopes", rules::MAX_SCOPES, scope_syntax)
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
    let ip_allowlist = body
        .strings("ip_allowlist", MAX_ALLOWLIST, cidr::check)
        .value();
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
    let audiences = body
        .strings("audiences", rules::MAX_AUDIENCES, audience::check)
        .value()
        .unwrap_or_default();
    let rate_limit_per_s = body
        .positive_number("rate_limit_per_s", 1_000_000.0)
        .value();
    let claims = body.object("claims", MAX_JSON_OBJECT).value();
    let metadata = body.object("metadata", MAX_JSON_OBJECT).value();
    body.finish()?;
    Ok(CreateRequest {
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

/// The largest token this key could be issued, in bytes: every scope, the
/// longest audience, its custom claims, an ES256/EdDSA signature.
fn worst_case_jwt_bytes(
    key_id: &str,
    owner: Option<&str>,
    scopes: &[String],
    audiences: &[String],
    claims: Option<&Value>,
    settings: &crate::config::TokenSettings,
    tenant: &Tenant,
) -> usize {
    let longest_audience = audiences
        .iter()
        .map(String::as_str)
        .chain([
            tenant.default_audience.as_str(),
            settings.admin_audience.as_str(),
        ])
        .max_by_key(|a| a.len())
        .unwrap_or_default();
    let claims = AccessClaims {
        iss: settings.issuer.clone(),
        sub: owner.map_or_else(|| format!("key:{key_id}"), str::to_owned),
        aud: longest_audience.to_owned(),
        iat: 99_999_999_999,
        nbf: 99_999_999_999,
        exp: 99_999_999_999,
        jti: uuid::Uuid::now_v7().to_string(),
        client_id: key_id.to_owned(),
        scope: Some(scopes.join(" ")),
        tid: tenant.slug.clone(),
        ext: claims.cloned(),
    };
    let payload = serde_json::to_vec(&claims)
        .map(|v| v.len())
        .unwrap_or(usize::MAX / 2);
    // {"typ":"at+jwt","alg":"EdDSA","kid":"<43>"} is under 90 bytes.
    let header = 90;
    let b64 = |n: usize| n.div_ceil(3) * 4;
    b64(header) + 1 + b64(payload) + 1 + 86
}

/// Maps the tenant's expiry rules onto answers: a malformed value is bad
/// input (400), one the policy forbids is a policy violation (422).
fn expiry_error(e: FieldError) -> ApiError {
    match e.field.as_str() {
        "expires_at" if e.message.contains("future") => ApiError::invalid_fields(vec![e]),
        "expires_in_s" if e.message.contains("positive") => ApiError::invalid_fields(vec![e]),
        _ => ApiError::Unprocessable {
            detail: format!("{}: {}", e.field, e.message),
            errors: vec![e],
        },
    }
}

fn jwt_size_check(size: usize, settings: &crate::config::TokenSettings) -> Result<(), ApiError> {
    if size > settings.max_jwt_bytes {
        return Err(policy(
            "claims",
            format!(
                "this key's largest token would be {size} bytes, over tokens.max_jwt_bytes ({})",
                settings.max_jwt_bytes
            ),
        ));
    }
    Ok(())
}

/// `POST /api/v1/keys`. Powers, policy, parent, quota and audiences are all
/// decided inside the transaction that inserts, against the tenant and the
/// parent key as they are under the tenant lock: a concurrent settings
/// change or revocation of the parent cannot slip between check and write.
pub async fn create(
    state: &AppState,
    principal: Principal,
    bytes: &[u8],
) -> Result<CreatedKey, ApiError> {
    let creator = principal.key_creator()?;
    let request = parse_create(bytes)?;
    if let KeyCreator::Admin(admin) = &creator {
        admin.may_grant(&request.scopes)?;
    }
    let now = Utc::now().naive_utc();
    let tenant_id = principal.tenant.id.clone();
    let tenant_slug = principal.tenant.slug.clone();
    // An admin's keys belong to its `sub` unless it names an owner; a `sub`
    // that is not a valid owner (`key:<id>`) leaves them without one.
    let admin_default_owner = Some(principal.sub.clone()).filter(|s| rules::owner(s).is_ok());
    let actor = principal.actor();
    let origin = principal.origin.clone();
    let settings = state.settings.tokens.clone();
    let master = state.master.clone();
    let (row, secret) = db::run(&state.pool, move |conn| {
        db::write_transaction(conn, |conn| {
            // The write to the tenant row serialises key writes in this
            // tenant (row lock on PostgreSQL, write lock on SQLite).
            tenants::lock(conn, &tenant_id)?;
            let tenant = tenants::find_by_id(conn, &tenant_id)?.ok_or(ApiError::NotFound)?;
            if let Err(e) = rules::scopes(&request.scopes, &tenant) {
                return Err(ApiError::Unprocessable {
                    detail: format!("{}: {}", e.field, e.message),
                    errors: vec![e],
                });
            }
            let expires_at = rules::expiry(request.expiry, &tenant, now).map_err(expiry_error)?;
            let mut new = NewKey {
                tenant_id: tenant.id.clone(),
                name: request.name.clone(),
                description: request.description.clone(),
                owner: request.owner.clone().or(admin_default_owner),
                scopes: request.scopes.clone(),
                audiences: request.audiences.clone(),
                expires_at,
                max_token_ttl_s: request.max_token_ttl_s,
                rate_limit_per_s: request.rate_limit_per_s,
                ip_allowlist: request.ip_allowlist.clone(),
                claims: request.claims.clone(),
                metadata: request.metadata.clone(),
                security_level: request.security_level,
                created_by: actor.clone(),
                parent_key_id: None,
            };
            if let KeyCreator::SelfService(own) = &creator {
                let parent = store::find(conn, &tenant.id, own.parent_key_id())?;
                let bounds = own.bound_child(
                    &ChildRequest {
                        owner: request.owner.as_deref(),
                        scopes: &request.scopes,
                        audiences: &request.audiences,
                        has_claims: request.claims.is_some(),
                        ip_allowlist: request.ip_allowlist.as_deref(),
                        expires_at,
                        expiry_requested: request.expiry != Expiry::Unspecified,
                        max_token_ttl_s: request.max_token_ttl_s,
                        rate_limit_per_s: request.rate_limit_per_s,
                    },
                    parent.as_ref(),
                    &tenant,
                    now,
                )?;
                new.owner = Some(bounds.owner);
                new.parent_key_id = Some(bounds.parent_key_id);
                new.ip_allowlist = bounds.ip_allowlist;
                new.expires_at = bounds.expires_at;
                new.max_token_ttl_s = Some(bounds.max_token_ttl_s);
                new.rate_limit_per_s = Some(bounds.rate_limit_per_s);
            }
            if tenant.require_ip_allowlist && new.ip_allowlist.as_ref().is_none_or(Vec::is_empty) {
                return Err(policy(
                    "ip_allowlist",
                    "this tenant requires every key to have an IP allow-list",
                ));
            }
            if let Some(reserved) = new
                .audiences
                .iter()
                .find(|a| audience::reserved_for(a, &settings.admin_audience, &tenant.slug))
            {
                return Err(policy(
                    "audiences",
                    format!(
                        "`{}` is reserved: the admin audience and urn:keymint: names are keymint's",
                        ascii_quote(reserved)
                    ),
                ));
            }
            for audience in &new.audiences {
                if !tenants::has_audience(conn, &tenant.id, audience)? {
                    return Err(ApiError::invalid_fields(vec![FieldError::new(
                        "audiences",
                        format!(
                            "`{}` is not registered in this tenant",
                            ascii_quote(audience)
                        ),
                    )]));
                }
            }
            if let Some(owner) = &new.owner {
                let live = count_live_keys(conn, &tenant.id, owner, now)?;
                if live >= tenant.max_keys_per_owner {
                    return Err(policy(
                        "owner",
                        format!(
                            "owner already has {live} live keys; the tenant allows {}",
                            tenant.max_keys_per_owner
                        ),
                    ));
                }
            }
            let (mut row, secret) =
                store::prepare(&new, &settings.key_prefix, now).map_err(ApiError::internal)?;
            jwt_size_check(
                worst_case_jwt_bytes(
                    &row.id,
                    new.owner.as_deref(),
                    &new.scopes,
                    &new.audiences,
                    new.claims.as_ref(),
                    &settings,
                    &tenant,
                ),
                &settings,
            )?;
            if new.security_level == SecurityLevel::Advanced {
                store::seal_advanced(conn, &mut row, &master, secret.expose())?;
            }
            store::insert(conn, &row, &actor, &origin)?;
            Ok((row, secret))
        })
    })
    .await?;
    Ok(CreatedKey {
        view: KeyView::of(&row, &tenant_slug, now),
        key: secret.expose().to_owned(),
    })
}

fn count_live_keys(
    conn: &mut AnyConnection,
    tenant_id: &str,
    owner: &str,
    now: NaiveDateTime,
) -> QueryResult<i64> {
    api_keys::table
        .filter(api_keys::tenant_id.eq(tenant_id))
        .filter(api_keys::owner.eq(owner))
        .filter(api_keys::deleted_at.is_null())
        .filter(api_keys::revoked_at.is_null())
        .filter(
            api_keys::expires_at
                .is_null()
                .or(api_keys::expires_at.gt(now)),
        )
        .count()
        .get_result(conn)
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

#[derive(Debug, Serialize, Deserialize)]
struct CursorPayload {
    /// Tenant id.
    t: String,
    /// Digest of the filters the cursor was made for.
    f: String,
    /// The last id returned.
    k: String,
}

fn filter_digest(parts: &[Option<&str>]) -> String {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    for part in parts {
        ctx.update(part.unwrap_or("\u{0}").as_bytes());
        ctx.update(b"\x1f");
    }
    URL_SAFE_NO_PAD.encode(&ctx.finish().as_ref()[..12])
}

fn like_pattern(q: &str) -> String {
    let mut out = String::with_capacity(q.len() + 2);
    out.push('%');
    for c in q.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

/// `GET /api/v1/keys`: newest first, keyset pagination on the id (UUID v7,
/// so creation order), stable under concurrent inserts and deletes.
pub async fn list(
    state: &AppState,
    principal: Principal,
    query: ListQuery,
) -> Result<Page<KeyView>, ApiError> {
    let reader = principal.key_reader()?;
    let mut errors = Vec::new();
    if let Some(q) = &query.q
        && !(1..=100).contains(&q.chars().count())
    {
        errors.push(FieldError::new("q", "must be 1 to 100 characters"));
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
    let limit = crate::input::json::page_limit(query.limit.as_deref(), &mut errors);
    // keys:self callers see only their own keys, whatever they ask.
    let owner = reader
        .forced_owner()
        .map(str::to_owned)
        .or_else(|| query.owner.clone());
    let digest = filter_digest(&[query.q.as_deref(), status.as_deref(), owner.as_deref()]);
    let after = match &query.cursor {
        None => None,
        Some(raw) => match open_cursor::<CursorPayload>(&state.master, raw) {
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
    let tenant = principal.tenant.clone();
    let q = query.q.clone();
    let now = Utc::now().naive_utc();
    // On the admin lane, within its time bound: a search scans the tenant's
    // keys, and must never hold the token endpoints' connections.
    let mut rows = db::read(&state.admin_lane, move |conn, bound| {
        let mut select = api_keys::table
            .filter(api_keys::tenant_id.eq(&tenant.id))
            .filter(api_keys::deleted_at.is_null())
            .select(ApiKey::as_select())
            .order(api_keys::id.desc())
            .limit(limit + 1)
            .into_boxed();
        // Before the costly conditions, so every row visited checks it.
        if let Some(guard) = bound.sqlite_guard() {
            select = select.filter(guard);
        }
        if let Some(after) = &after {
            select = select.filter(api_keys::id.lt(after.clone()));
        }
        if let Some(owner) = &owner {
            select = select.filter(api_keys::owner.eq(owner.clone()));
        }
        if let Some(q) = &q {
            let pattern = like_pattern(q);
            select = select.filter(
                lower(api_keys::name.nullable())
                    .like(pattern.clone())
                    .escape('\\')
                    .or(lower(api_keys::id.nullable())
                        .like(pattern.clone())
                        .escape('\\'))
                    .or(lower(api_keys::owner).like(pattern).escape('\\')),
            );
        }
        select = match status.as_deref() {
            Some("revoked") => select.filter(api_keys::revoked_at.is_not_null()),
            Some("expired") => select
                .filter(api_keys::revoked_at.is_null())
                .filter(api_keys::expires_at.le(now)),
            Some("active") => select.filter(api_keys::revoked_at.is_null()).filter(
                api_keys::expires_at
                    .is_null()
                    .or(api_keys::expires_at.gt(now)),
            ),
            _ => select,
        };
        select.load::<ApiKey>(conn)
    })
    .await?;
    let more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    let next_cursor = match (more, rows.last()) {
        (true, Some(last)) => Some(seal_cursor(
            &state.master,
            &CursorPayload {
                t: principal.tenant.id.clone(),
                f: digest,
                k: last.id.clone(),
            },
        )),
        _ => None,
    };
    Ok(Page {
        items: rows
            .iter()
            .map(|k| KeyView::of(k, &principal.tenant.slug, now))
            .collect(),
        next_cursor,
    })
}

/// A key the caller may see, or 404.
async fn visible(state: &AppState, reader: &KeyReader, id: &str) -> Result<ApiKey, ApiError> {
    if uuid::Uuid::try_parse(id).is_err() {
        return Err(ApiError::NotFound);
    }
    let tenant_id = reader.tenant_id().to_owned();
    let id = id.to_owned();
    let key = db::run(&state.pool, move |conn| {
        store::find(conn, &tenant_id, &id).map_err(ApiError::from)
    })
    .await?
    .filter(|key| reader.may_see(key))
    .ok_or(ApiError::NotFound)?;
    Ok(key)
}

pub async fn get(state: &AppState, principal: Principal, id: &str) -> Result<KeyView, ApiError> {
    let reader = principal.key_reader()?;
    let key = visible(state, &reader, id).await?;
    Ok(KeyView::of(
        &key,
        &principal.tenant.slug,
        Utc::now().naive_utc(),
    ))
}

pub(crate) const PATCH_FIELDS: &[&str] = &[
    "name",
    "description",
    "ip_allowlist",
    "metadata",
    "claims",
    "expires_at",
];

/// Reads the key `id` for a change, inside the writing transaction, after
/// locking its tenant: the powers are checked against the row as it is now.
fn key_for_change(
    conn: &mut AnyConnection,
    admin: &KeyAdmin,
    id: &str,
) -> Result<(Tenant, ApiKey), ApiError> {
    tenants::lock(conn, admin.tenant_id())?;
    let tenant = tenants::find_by_id(conn, admin.tenant_id())?.ok_or(ApiError::NotFound)?;
    let key = if uuid::Uuid::try_parse(id).is_ok() {
        store::find(conn, admin.tenant_id(), id)?
    } else {
        None
    };
    let key = key.ok_or(ApiError::NotFound)?;
    admin.may_change(&key)?;
    Ok((tenant, key))
}

/// `PATCH /api/v1/keys/{id}`: a JSON merge patch (RFC 7396).
pub async fn patch(
    state: &AppState,
    principal: Principal,
    id: &str,
    bytes: &[u8],
) -> Result<KeyView, ApiError> {
    let admin = principal.key_admin()?;
    let mut body = Body::parse(bytes, PATCH_FIELDS)?;
    let name = body.string("name", 1, rules::MAX_NAME);
    if name == Field::Null {
        body.error("name", "cannot be removed");
    }
    let description = body.string("description", 0, rules::MAX_DESCRIPTION);
    let ip_allowlist = body.strings("ip_allowlist", MAX_ALLOWLIST, cidr::check);
    let metadata = body.object("metadata", MAX_JSON_OBJECT);
    let claims = body.object("claims", MAX_JSON_OBJECT);
    let expires_at = body.timestamp("expires_at");
    body.finish()?;

    let now = Utc::now().naive_utc();
    let actor = principal.actor();
    let origin = principal.origin.clone();
    let settings = state.settings.tokens.clone();
    let id = id.to_owned();
    let (tenant, updated) = db::run(&state.pool, move |conn| {
        db::write_transaction(conn, |conn| {
            let (tenant, key) = key_for_change(conn, &admin, &id)?;
            if key.revoked_at.is_some() {
                return Err(ApiError::Conflict(
                    "the key is revoked; it cannot change".into(),
                ));
            }
            let new_expiry = match &expires_at {
                Field::Absent => key.expires_at,
                Field::Null => {
                    if key.expires_at.is_some() {
                        return Err(ApiError::invalid_fields(vec![FieldError::new(
                            "expires_at",
                            "can only be shortened, not removed",
                        )]));
                    }
                    None
                }
                Field::Value(at) => {
                    let at = at.naive_utc();
                    if at <= now {
                        return Err(ApiError::invalid_fields(vec![FieldError::new(
                            "expires_at",
                            "must be in the future",
                        )]));
                    }
                    if key.expires_at.is_some_and(|current| at > current) {
                        return Err(ApiError::invalid_fields(vec![FieldError::new(
                            "expires_at",
                            "can only be shortened",
                        )]));
                    }
                    Some(at)
                }
            };
            let new_allowlist: Option<Vec<String>> = match &ip_allowlist {
                Field::Absent => key
                    .ip_allowlist
                    .as_deref()
                    .and_then(|j| serde_json::from_str(j).ok()),
                Field::Null => None,
                Field::Value(list) => Some(list.clone()),
            };
            if tenant.require_ip_allowlist && new_allowlist.as_ref().is_none_or(Vec::is_empty) {
                return Err(policy(
                    "ip_allowlist",
                    "this tenant requires every key to have an IP allow-list",
                ));
            }
            let new_claims: Option<Value> = match &claims {
                Field::Absent => key
                    .claims
                    .as_deref()
                    .and_then(|c| serde_json::from_str(c).ok()),
                Field::Null => None,
                Field::Value(v) => Some(v.clone()),
            };
            jwt_size_check(
                worst_case_jwt_bytes(
                    &key.id,
                    key.owner.as_deref(),
                    &key.scope_list(),
                    &key.audience_list(),
                    new_claims.as_ref(),
                    &settings,
                    &tenant,
                ),
                &settings,
            )?;

            let changed: Vec<&'static str> = [
                ("name", name.is_absent()),
                ("description", description.is_absent()),
                ("ip_allowlist", ip_allowlist.is_absent()),
                ("metadata", metadata.is_absent()),
                ("claims", claims.is_absent()),
                ("expires_at", expires_at.is_absent()),
            ]
            .into_iter()
            .filter_map(|(field, absent)| (!absent).then_some(field))
            .collect();
            let update = KeyChanges {
                name: name.clone().value(),
                description: match &description {
                    Field::Absent => None,
                    Field::Null => Some(None),
                    Field::Value(d) => Some(Some(d.clone())),
                },
                ip_allowlist: (!ip_allowlist.is_absent())
                    .then(|| new_allowlist.map(|l| serde_json::to_string(&l).unwrap_or_default())),
                metadata: match &metadata {
                    Field::Absent => None,
                    Field::Null => Some(None),
                    Field::Value(m) => Some(Some(m.to_string())),
                },
                claims: (!claims.is_absent()).then(|| new_claims.map(|c| c.to_string())),
                expires_at: (!expires_at.is_absent()).then_some(new_expiry),
                updated_at: now,
            };
            diesel::update(
                api_keys::table
                    .filter(api_keys::id.eq(&key.id))
                    .filter(api_keys::tenant_id.eq(&tenant.id)),
            )
            .set(&update)
            .execute(conn)?;
            audit::write(
                conn,
                audit::Record {
                    tenant_id: Some(&tenant.id),
                    action: "key.updated",
                    actor: &actor,
                    origin: &origin,
                    target_type: "key",
                    target_id: &key.id,
                    success: true,
                    details: serde_json::json!({ "fields": changed }),
                },
                now,
            )?;
            let updated = store::find(conn, &tenant.id, &key.id)?.ok_or(ApiError::NotFound)?;
            Ok((tenant, updated))
        })
    })
    .await?;
    Ok(KeyView::of(&updated, &tenant.slug, now))
}

#[derive(AsChangeset)]
#[diesel(table_name = api_keys)]
struct KeyChanges {
    name: Option<String>,
    description: Option<Option<String>>,
    ip_allowlist: Option<Option<String>>,
    metadata: Option<Option<String>>,
    claims: Option<Option<String>>,
    expires_at: Option<Option<NaiveDateTime>>,
    updated_at: NaiveDateTime,
}

fn parse_reason(body: &mut Body) -> Option<String> {
    body.string("reason", 1, 500).value()
}

/// `POST /api/v1/keys/{id}/revoke`: irreversible and idempotent.
pub async fn revoke(
    state: &AppState,
    principal: Principal,
    id: &str,
    bytes: &[u8],
) -> Result<KeyView, ApiError> {
    let revoker = principal.key_revoker()?;
    let mut body = if bytes.iter().all(u8::is_ascii_whitespace) {
        Body::empty()
    } else {
        Body::parse(bytes, &["reason"])?
    };
    let reason = parse_reason(&mut body);
    body.finish()?;
    let (done, keys) = revoke_ids(
        state,
        &principal,
        revoker,
        vec![id.to_owned()],
        reason,
        false,
    )
    .await?;
    match keys.first() {
        Some(key) if done.not_found.is_empty() => Ok(KeyView::of(
            key,
            &principal.tenant.slug,
            Utc::now().naive_utc(),
        )),
        _ => Err(ApiError::NotFound),
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct BulkRevoked {
    pub revoked: Vec<String>,
    pub not_found: Vec<String>,
}

/// `POST /api/v1/keys/revoke`: 1..1000 ids in one transaction. Ids the
/// caller cannot see are `not_found`; one it sees but may not change
/// refuses the whole request, and nothing is revoked.
pub async fn revoke_many(
    state: &AppState,
    principal: Principal,
    bytes: &[u8],
) -> Result<BulkRevoked, ApiError> {
    let revoker = principal.key_revoker()?;
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
    let reason = parse_reason(&mut body);
    body.finish()?;
    let (done, _) = revoke_ids(state, &principal, revoker, ids, reason, false).await?;
    Ok(done)
}

/// `DELETE /api/v1/keys/{id}`: revokes and leaves a tombstone.
pub async fn delete(state: &AppState, principal: Principal, id: &str) -> Result<(), ApiError> {
    let admin = principal.key_admin()?;
    let (done, _) = revoke_ids(
        state,
        &principal,
        KeyRevoker::Admin(admin),
        vec![id.to_owned()],
        None,
        true,
    )
    .await?;
    if done.not_found.is_empty() {
        Ok(())
    } else {
        Err(ApiError::NotFound)
    }
}

/// Revokes (and optionally deletes) keys, with the keys they created
/// through `keys:self`, in one transaction under the tenant lock (so a child
/// being created at the same moment is either refused or revoked too); one
/// audit event per key, all sharing the request id. Returns the rows as
/// they are after the change.
async fn revoke_ids(
    state: &AppState,
    principal: &Principal,
    revoker: KeyRevoker,
    ids: Vec<String>,
    reason: Option<String>,
    delete: bool,
) -> Result<(BulkRevoked, Vec<ApiKey>), ApiError> {
    let actor = principal.actor();
    let origin: Origin = principal.origin.clone();
    let now = Utc::now().naive_utc();
    db::run(&state.pool, move |conn| {
        db::write_transaction(conn, |conn| {
            let tenant_id = revoker.tenant_id().to_owned();
            tenants::lock(conn, &tenant_id)?;
            let mut revoked = Vec::new();
            let mut not_found = Vec::new();
            let mut rows = Vec::new();
            for id in ids {
                let key = if uuid::Uuid::try_parse(&id).is_ok() {
                    store::find(conn, &tenant_id, &id)?
                } else {
                    None
                };
                let Some(key) = key else {
                    not_found.push(id);
                    continue;
                };
                match revoker.may_revoke(&key) {
                    Ok(()) => {}
                    Err(Refused::NotVisible) => {
                        not_found.push(id);
                        continue;
                    }
                    Err(refused) => return Err(refused.into()),
                }
                store::revoke_cascade(
                    conn,
                    &tenant_id,
                    &key.id,
                    reason.as_deref(),
                    &actor,
                    &origin,
                    now,
                )?;
                if delete {
                    store::tombstone(conn, &tenant_id, &key.id, &actor, &origin, now)?;
                } else if let Some(row) = store::find(conn, &tenant_id, &key.id)? {
                    rows.push(row);
                }
                revoked.push(key.id);
            }
            Ok::<_, ApiError>((BulkRevoked { revoked, not_found }, rows))
        })
    })
    .await
}

/// The rotate response: the view, the new secret (shown this once) and until
/// when the previous secret still works.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RotatedKey {
    #[serde(flatten)]
    pub view: KeyView,
    pub key: String,
}

pub const MAX_GRACE_S: i64 = 604_800;

/// `POST /api/v1/keys/{id}/rotate`: a new secret under the same id; the
/// previous one works until the grace period ends (never past the key's own
/// expiry). Rotating again kills the previous secret at once.
///
/// The key is read inside the writing transaction, after the lock, and the
/// update only applies to the secret that read saw: two concurrent
/// rotations act as if one ran after the other, never reviving a secret
/// the first one killed.
pub async fn rotate(
    state: &AppState,
    principal: Principal,
    id: &str,
    bytes: &[u8],
) -> Result<RotatedKey, ApiError> {
    let admin = principal.key_admin()?;
    let mut body = if bytes.iter().all(u8::is_ascii_whitespace) {
        Body::empty()
    } else {
        Body::parse(bytes, &["grace_period_s"])?
    };
    let grace = body
        .integer("grace_period_s", 0, MAX_GRACE_S)
        .value()
        .unwrap_or(0);
    body.finish()?;
    let now = Utc::now().naive_utc();
    let actor = principal.actor();
    let origin = principal.origin.clone();
    let prefix = state.settings.tokens.key_prefix.clone();
    let master = state.master.clone();
    let id = id.to_owned();
    let (updated, secret) = db::run(&state.pool, move |conn| {
        db::write_transaction(conn, |conn| {
            let (tenant, key) = key_for_change(conn, &admin, &id)?;
            let status = key.status(now);
            if status != crate::keys::Status::Active {
                return Err(ApiError::Conflict(format!(
                    "the key is {}; only active keys rotate",
                    status.as_str()
                )));
            }
            let secret = crate::keys::secret::ApiKeySecret::generate(
                &prefix,
                &ring::rand::SystemRandom::new(),
            )
            .map_err(ApiError::internal)?;
            let advanced = key.security_level == SecurityLevel::Advanced.as_str();
            let previous_until = (grace > 0).then(|| {
                let end = now + chrono::Duration::seconds(grace);
                key.expires_at.map_or(end, |exp| end.min(exp))
            });
            let changes = store::SecretChange {
                start: secret.start(),
                secret_hash: (!advanced).then(|| secret.hash().as_bytes().to_vec()),
                previous_secret_hash: previous_until.and(key.secret_hash.clone()),
                secret_enc: if advanced {
                    Some(
                        store::encrypt_secret(conn, &master, &key, secret.expose())?,
                    )
                } else {
                    None
                },
                previous_secret_enc: previous_until.and(key.secret_enc.clone()),
                previous_expires_at: previous_until,
                updated_at: now,
            };
            let n = store::swap_secret(conn, &key, &changes)?;
            if n == 0 {
                return Err(ApiError::Conflict(
                    "the key changed while rotating; try again".into(),
                ));
            }
            audit::write(
                conn,
                audit::Record {
                    tenant_id: Some(&tenant.id),
                    action: "key.rotated",
                    actor: &actor,
                    origin: &origin,
                    target_type: "key",
                    target_id: &key.id,
                    success: true,
                    details: serde_json::json!({
                        "grace_period_s": grace,
                        "previous_expires_at": changes.previous_expires_at.map(|t| t.and_utc().to_rfc3339()),
                    }),
                },
                now,
            )?;
            let updated = store::find(conn, &tenant.id, &key.id)?.ok_or(ApiError::NotFound)?;
            Ok((updated, secret))
        })
    })
    .await?;
    Ok(RotatedKey {
        view: KeyView::of(&updated, &principal.tenant.slug, now),
        key: secret.expose().to_owned(),
    })
}
