//! What the admin API does with keys: create under the caller's powers and
//! the tenant's policy, read, and change. Each change is one transaction
//! with its audit events. Lists are in [`super::list`], revocation in
//! [`super::revoke`], rotation in [`super::rotate`].
//!
//! The routes hand in typed requests (`super::request`) and the capability
//! the principal was granted (`crate::powers`); nothing here reads JSON.

use std::sync::Arc;

use chrono::Utc;
use serde_json::Value;

use crate::audit;
use crate::config::{StatusListSettings, TokenSettings};
use crate::crypto::master::MasterKey;
use crate::db::models::{ApiKey, Tenant};
use crate::db::{self, AdminLane, AnyConnection, Pool};
use crate::domain::audience;
use crate::domain::lists::AllowList;
use crate::domain::owner::Owner;
use crate::domain::text::ascii_quote;
use crate::error::{ApiError, FieldError};
use crate::keys::SecurityLevel;
use crate::keys::request::{Change, CreateKey, PatchKey};
use crate::keys::rules::{self, Expiry, policy};
use crate::keys::size;
use crate::keys::store::{self, KeyChanges, NewKey};
use crate::keys::view::{CreatedKey, KeyView};
use crate::powers::{ChildRequest, KeyAdmin, KeyCreator, KeyReader, Principal};
use crate::tenants::store as tenants;

/// What the key service needs from the application, and nothing more.
pub struct Deps<'a> {
    /// Token-endpoint pool: every key write and single-key read.
    pub pool: &'a Pool,
    /// The admin lane: lists and searches.
    pub admin_lane: &'a AdminLane,
    /// Seals advanced keys' secrets and list cursors.
    pub master: &'a Arc<MasterKey>,
    /// Key prefix, admin audience, issuer and JWT size bound.
    pub tokens: &'a TokenSettings,
    /// The status lists' `ttl`, which revocations' audit events cite.
    pub statuslist: &'a StatusListSettings,
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

/// `POST /api/v1/keys`. Powers, policy, parent, quota and audiences are all
/// decided inside the transaction that inserts, against the tenant and the
/// parent key as they are under the tenant lock: a concurrent settings
/// change or revocation of the parent cannot slip between check and write.
pub async fn create(
    deps: &Deps<'_>,
    principal: &Principal,
    creator: KeyCreator,
    request: CreateKey,
) -> Result<CreatedKey, ApiError> {
    if let KeyCreator::Admin(admin) = &creator {
        admin.may_grant(request.scopes.as_slice())?;
    }
    let now = Utc::now().naive_utc();
    let tenant_id = principal.tenant.id.clone();
    let tenant_slug = principal.tenant.slug.clone();
    // An admin's keys belong to its `sub` unless it names an owner; a `sub`
    // that is not a valid owner (`key:<id>`) leaves them without one.
    let admin_default_owner = Some(principal.sub.clone()).filter(|s| rules::owner(s).is_ok());
    let actor = principal.actor();
    let origin = principal.origin.clone();
    let settings = deps.tokens.clone();
    let master = deps.master.clone();
    let (row, secret) = db::run(deps.pool, move |conn| {
        db::write_transaction(conn, |conn| {
            // The write to the tenant row serialises key writes in this
            // tenant (row lock on PostgreSQL, write lock on SQLite).
            tenants::lock(conn, &tenant_id)?;
            let tenant = tenants::find_by_id(conn, &tenant_id)?.ok_or(ApiError::NotFound)?;
            if let Err(e) = rules::scopes(request.scopes.as_slice(), &tenant) {
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
                owner: request
                    .owner
                    .clone()
                    .map(Owner::into_string)
                    .or(admin_default_owner),
                scopes: request.scopes.as_slice().to_vec(),
                audiences: request.audiences.as_slice().to_vec(),
                expires_at,
                max_token_ttl_s: request.max_token_ttl_s,
                rate_limit_per_s: request.rate_limit_per_s,
                ip_allowlist: request.ip_allowlist.clone().map(AllowList::into_vec),
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
                        owner: request.owner.as_ref().map(Owner::as_str),
                        scopes: request.scopes.as_slice(),
                        audiences: request.audiences.as_slice(),
                        has_claims: request.claims.is_some(),
                        ip_allowlist: request.ip_allowlist.as_ref().map(AllowList::as_slice),
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
                let live = store::count_live(conn, &tenant.id, owner, now)?;
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
            size::check(
                size::worst_case_jwt_bytes(
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
            store::insert(conn, &mut row, &actor, &origin)?;
            Ok((row, secret))
        })
    })
    .await?;
    Ok(CreatedKey {
        view: KeyView::of(&row, &tenant_slug, &deps.tokens.issuer, now),
        key: secret.expose().to_owned(),
    })
}

/// A key the caller may see, or 404.
async fn visible(pool: &Pool, reader: &KeyReader, id: &str) -> Result<ApiKey, ApiError> {
    if uuid::Uuid::try_parse(id).is_err() {
        return Err(ApiError::NotFound);
    }
    let tenant_id = reader.tenant_id().to_owned();
    let id = id.to_owned();
    let key = db::run(pool, move |conn| {
        store::find(conn, &tenant_id, &id).map_err(ApiError::from)
    })
    .await?
    .filter(|key| reader.may_see(key))
    .ok_or(ApiError::NotFound)?;
    Ok(key)
}

/// `GET /api/v1/keys/{id}`.
pub async fn get(
    deps: &Deps<'_>,
    principal: &Principal,
    reader: KeyReader,
    id: &str,
) -> Result<KeyView, ApiError> {
    let key = visible(deps.pool, &reader, id).await?;
    Ok(KeyView::of(
        &key,
        &principal.tenant.slug,
        &deps.tokens.issuer,
        Utc::now().naive_utc(),
    ))
}

/// Reads the key `id` for a change, inside the writing transaction, after
/// locking its tenant: the powers are checked against the row as it is now.
pub(super) fn key_for_change(
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
    deps: &Deps<'_>,
    principal: &Principal,
    admin: KeyAdmin,
    id: &str,
    request: PatchKey,
) -> Result<KeyView, ApiError> {
    let PatchKey {
        name,
        description,
        ip_allowlist,
        metadata,
        claims,
        expires_at,
    } = request;
    let now = Utc::now().naive_utc();
    let actor = principal.actor();
    let origin = principal.origin.clone();
    let settings = deps.tokens.clone();
    let id = id.to_owned();
    let (tenant, updated) = db::run(deps.pool, move |conn| {
        db::write_transaction(conn, |conn| {
            let (tenant, key) = key_for_change(conn, &admin, &id)?;
            if key.revoked_at.is_some() {
                return Err(ApiError::Conflict(
                    "the key is revoked; it cannot change".into(),
                ));
            }
            let new_expiry = match &expires_at {
                Change::Keep => key.expires_at,
                Change::Clear => {
                    if key.expires_at.is_some() {
                        return Err(ApiError::invalid_fields(vec![FieldError::new(
                            "expires_at",
                            "can only be shortened, not removed",
                        )]));
                    }
                    None
                }
                Change::Set(at) => {
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
                Change::Keep => key
                    .ip_allowlist
                    .as_deref()
                    .and_then(|j| serde_json::from_str(j).ok()),
                Change::Clear => None,
                Change::Set(list) => Some(list.as_slice().to_vec()),
            };
            if tenant.require_ip_allowlist && new_allowlist.as_ref().is_none_or(Vec::is_empty) {
                return Err(policy(
                    "ip_allowlist",
                    "this tenant requires every key to have an IP allow-list",
                ));
            }
            let new_claims = merged("claims", key.claims.as_deref(), &claims)?;
            let new_metadata = merged("metadata", key.metadata.as_deref(), &metadata)?;
            size::check(
                size::worst_case_jwt_bytes(
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
                ("name", name.is_none()),
                ("description", description.is_keep()),
                ("ip_allowlist", ip_allowlist.is_keep()),
                ("metadata", metadata.is_keep()),
                ("claims", claims.is_keep()),
                ("expires_at", expires_at.is_keep()),
            ]
            .into_iter()
            .filter_map(|(field, absent)| (!absent).then_some(field))
            .collect();
            let update = KeyChanges {
                name: name.clone(),
                description: description.clone().into_update(),
                ip_allowlist: (!ip_allowlist.is_keep())
                    .then(|| new_allowlist.map(|l| serde_json::to_string(&l).unwrap_or_default())),
                metadata: (!metadata.is_keep()).then(|| new_metadata.map(|m| m.to_string())),
                claims: (!claims.is_keep()).then(|| new_claims.map(|c| c.to_string())),
                expires_at: (!expires_at.is_keep()).then_some(new_expiry),
                updated_at: now,
            };
            store::update(conn, &tenant.id, &key.id, &update)?;
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
    Ok(KeyView::of(
        &updated,
        &tenant.slug,
        &deps.tokens.issuer,
        now,
    ))
}

/// A key's object member after a merge patch (RFC 7396): `null` clears it,
/// an object merges into what is stored (its `null` members removing), and
/// the result is held to the same bound as a new value.
fn merged(
    field: &'static str,
    stored: Option<&str>,
    change: &Change<Value>,
) -> Result<Option<Value>, ApiError> {
    let current = stored.and_then(|s| serde_json::from_str::<Value>(s).ok());
    let patch = match change {
        Change::Keep => return Ok(current),
        Change::Clear => return Ok(None),
        Change::Set(patch) => patch,
    };
    let mut value = current.unwrap_or(Value::Object(serde_json::Map::new()));
    crate::domain::merge_patch::apply(&mut value, patch);
    if value.to_string().len() > crate::keys::request::MAX_JSON_OBJECT {
        return Err(ApiError::invalid_fields(vec![FieldError::new(
            field,
            format!(
                "once merged, must be at most {} bytes",
                crate::keys::request::MAX_JSON_OBJECT
            ),
        )]));
    }
    Ok(Some(value))
}
