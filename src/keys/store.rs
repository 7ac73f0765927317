//! Database work on API keys. Every change is one transaction with its
//! audit event.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::audit::{self, Actor, Origin};
use crate::crypto::check::{self, SealError};
use crate::crypto::master::{Aad, MasterKey, Purpose};
use crate::db::models::{ApiKey, Tenant};
use crate::db::schema::{api_keys, tenants};
use crate::db::{self, AnyConnection, DbError};
use crate::domain::status_list::Publication;
use crate::keys::secret::ApiKeySecret;

// The admin service's queries (quota, list and search, merge patch), in a
// file of their own so this one stays readable.
mod admin;
mod lookup;
mod search;
mod status;
pub mod status_index;

pub use lookup::{Candidate, KeyLookups, find_by_secret_hash, find_many_by_secret_hash};
pub use status::{SecurityLevel, Status};

pub use admin::{KeyChanges, ListFilter, count_live, list_page, live_audience_lists, update};

/// What a new key is made of; validated before it gets here.
#[derive(Debug, Clone)]
pub struct NewKey {
    pub tenant_id: String,
    pub name: String,
    pub description: Option<String>,
    pub owner: Option<String>,
    pub scopes: Vec<String>,
    pub audiences: Vec<String>,
    pub expires_at: Option<NaiveDateTime>,
    pub max_token_ttl_s: Option<i64>,
    pub rate_limit_per_s: Option<f64>,
    pub ip_allowlist: Option<Vec<String>>,
    pub claims: Option<serde_json::Value>,
    pub metadata: Option<serde_json::Value>,
    pub security_level: SecurityLevel,
    pub created_by: Actor,
    pub parent_key_id: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum KeyStoreError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("random source failed")]
    Random,
}

impl From<diesel::result::Error> for KeyStoreError {
    fn from(e: diesel::result::Error) -> Self {
        Self::Db(e.into())
    }
}

fn to_json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "null".to_owned())
}

/// Builds the row for a new key and its secret (standard keys: hash only).
pub fn prepare(
    new: &NewKey,
    prefix: &str,
    now: NaiveDateTime,
) -> Result<(ApiKey, ApiKeySecret), KeyStoreError> {
    let secret = ApiKeySecret::generate(prefix, &ring::rand::SystemRandom::new())
        .map_err(|_| KeyStoreError::Random)?;
    let row = ApiKey {
        id: uuid::Uuid::now_v7().to_string(),
        tenant_id: new.tenant_id.clone(),
        name: new.name.clone(),
        description: new.description.clone(),
        owner: new.owner.clone(),
        start: secret.start(),
        secret_hash: Some(secret.hash().as_bytes().to_vec()),
        previous_secret_hash: None,
        previous_expires_at: None,
        secret_enc: None,
        previous_secret_enc: None,
        security_level: new.security_level.as_str().to_owned(),
        scopes: to_json(&new.scopes),
        audiences: to_json(&new.audiences),
        ip_allowlist: new.ip_allowlist.as_ref().map(to_json),
        max_token_ttl_s: new.max_token_ttl_s,
        rate_limit_per_s: new.rate_limit_per_s,
        claims: new.claims.as_ref().map(|c| c.to_string()),
        metadata: new.metadata.as_ref().map(|m| m.to_string()),
        created_by: to_json(&new.created_by),
        parent_key_id: new.parent_key_id.clone(),
        created_at: now,
        updated_at: now,
        expires_at: new.expires_at,
        last_used_at: None,
        tokens_issued: 0,
        revoked_at: None,
        revoked_reason: None,
        deleted_at: None,
        status_idx: None,
    };
    Ok((row, secret))
}

/// Makes a prepared row an advanced key's: the secret is kept only
/// encrypted (to check signatures with) and out of the hash index. Call
/// inside the transaction that stores the row.
pub fn seal_advanced(
    conn: &mut AnyConnection,
    row: &mut ApiKey,
    master: &MasterKey,
    secret: &str,
) -> Result<(), SealError> {
    row.secret_enc = Some(encrypt_secret(conn, master, row, secret)?);
    row.secret_hash = None;
    Ok(())
}

/// Where an advanced key's secret ciphertext belongs: its own row.
pub fn secret_aad(key: &ApiKey) -> Aad<'_> {
    Aad {
        table: "api_keys",
        row_id: &key.id,
        tenant: &key.tenant_id,
    }
}

/// An advanced key's secret, encrypted for its row; only while the
/// database is under the master key used (checked in the caller's
/// transaction, see `crypto::check::seal`).
pub fn encrypt_secret(
    conn: &mut AnyConnection,
    master: &MasterKey,
    key: &ApiKey,
    secret: &str,
) -> Result<Vec<u8>, SealError> {
    check::seal(
        conn,
        master,
        Purpose::ApiKeySecrets,
        &secret_aad(key),
        secret.as_bytes(),
    )
}

/// Inserts a prepared key with its `key.created` event. Call inside a
/// transaction.
/// Stores a new key with its audit event, giving it its status-list index
/// (set on `row`, so the caller's view shows it).
pub fn insert(
    conn: &mut AnyConnection,
    row: &mut ApiKey,
    actor: &Actor,
    origin: &Origin,
) -> QueryResult<()> {
    row.status_idx = Some(status_index::allocate(conn, 1)?);
    diesel::insert_into(api_keys::table)
        .values(&*row)
        .execute(conn)?;
    audit::write(
        conn,
        audit::Record {
            tenant_id: Some(&row.tenant_id),
            action: "key.created",
            actor,
            origin,
            target_type: "key",
            target_id: &row.id,
            success: true,
            details: serde_json::json!({
                "name": row.name,
                "owner": row.owner,
                "scopes": serde_json::from_str::<serde_json::Value>(&row.scopes).unwrap_or_default(),
                "expires_at": row.expires_at.map(|t| t.and_utc().to_rfc3339()),
                "security_level": row.security_level,
            }),
        },
        row.created_at,
    )
}

pub fn find(conn: &mut AnyConnection, tenant_id: &str, id: &str) -> QueryResult<Option<ApiKey>> {
    api_keys::table
        .filter(api_keys::id.eq(id))
        .filter(api_keys::tenant_id.eq(tenant_id))
        .filter(api_keys::deleted_at.is_null())
        .select(ApiKey::as_select())
        .first(conn)
        .optional()
}

/// All of a tenant's keys, oldest first (the CLI's list).
pub fn list_all(conn: &mut AnyConnection, tenant_id: &str) -> QueryResult<Vec<ApiKey>> {
    api_keys::table
        .filter(api_keys::tenant_id.eq(tenant_id))
        .filter(api_keys::deleted_at.is_null())
        .order(api_keys::id.asc())
        .select(ApiKey::as_select())
        .load(conn)
}

/// What a revocation's audit events record besides the key: why, who and
/// from where, when, and where the key's status is published (so the event
/// says how soon offline verifiers see it).
#[derive(Debug, Clone, Copy)]
pub struct KeyRevocation<'a> {
    pub reason: Option<&'a str>,
    pub actor: &'a Actor,
    pub origin: &'a Origin,
    pub lists: Publication<'a>,
    pub now: NaiveDateTime,
}

/// Revokes a key (and, in the same transaction, the keys it created through
/// `keys:self`), each with its `key.revoked` event. Idempotent: an already
/// revoked key keeps its first time and reason. Returns the ids newly
/// revoked, or `None` when the tenant has no such key.
pub fn revoke(
    conn: &mut AnyConnection,
    tenant_id: &str,
    id: &str,
    revocation: &KeyRevocation<'_>,
) -> Result<Option<Vec<String>>, DbError> {
    db::write_transaction(conn, |conn| {
        // Under the tenant lock, like every key write: a child being made
        // through `keys:self` at this moment is refused or revoked too.
        crate::tenants::store::lock(conn, tenant_id)?;
        let Some(key) = find(conn, tenant_id, id)? else {
            return Ok(None);
        };
        Ok(Some(revoke_cascade(conn, tenant_id, &key, revocation)?))
    })
}

/// The work of [`revoke`] for `root`, inside the caller's transaction.
pub fn revoke_cascade(
    conn: &mut AnyConnection,
    tenant_id: &str,
    root: &ApiKey,
    revocation: &KeyRevocation<'_>,
) -> QueryResult<Vec<String>> {
    let KeyRevocation {
        reason,
        actor,
        origin,
        lists,
        now,
    } = *revocation;
    let mut revoked = Vec::new();
    let mut pending = vec![(root.id.clone(), root.status_idx)];
    while let Some((current, status_idx)) = pending.pop() {
        let changed = diesel::update(
            api_keys::table
                .filter(api_keys::id.eq(&current))
                .filter(api_keys::tenant_id.eq(tenant_id))
                .filter(api_keys::revoked_at.is_null()),
        )
        .set((
            api_keys::revoked_at.eq(now),
            api_keys::revoked_reason.eq(reason),
            // Revoking kills the previous secret with the current one: no
            // trace of it (hash or ciphertext) outlives the key's use. The
            // current hash stays, so a later use is seen as this key's.
            api_keys::previous_secret_hash.eq(None::<Vec<u8>>),
            api_keys::previous_secret_enc.eq(None::<Vec<u8>>),
            api_keys::previous_expires_at.eq(None::<NaiveDateTime>),
            api_keys::updated_at.eq(now),
        ))
        .execute(conn)?;
        if changed > 0 {
            let cascade_from = (current != root.id).then_some(root.id.as_str());
            audit::write(
                conn,
                audit::Record {
                    tenant_id: Some(tenant_id),
                    action: "key.revoked",
                    actor,
                    origin,
                    target_type: "key",
                    target_id: &current,
                    success: true,
                    details: serde_json::json!({
                        "reason": reason,
                        "cascade_from": cascade_from,
                        "status_list": lists.entry(status_idx),
                    }),
                },
                now,
            )?;
            revoked.push(current.clone());
        }
        let children: Vec<(String, Option<i64>)> = api_keys::table
            .filter(api_keys::parent_key_id.eq(&current))
            .filter(api_keys::tenant_id.eq(tenant_id))
            .filter(api_keys::revoked_at.is_null())
            .select((api_keys::id, api_keys::status_idx))
            .load(conn)?;
        pending.extend(children);
    }
    Ok(revoked)
}

/// A rotation's secret columns. Every one is set, so a rotation without
/// grace clears the previous secret (`treat_none_as_null`).
#[derive(AsChangeset)]
#[diesel(table_name = api_keys, treat_none_as_null = true)]
pub struct SecretChange {
    pub start: String,
    pub secret_hash: Option<Vec<u8>>,
    pub previous_secret_hash: Option<Vec<u8>>,
    pub secret_enc: Option<Vec<u8>>,
    pub previous_secret_enc: Option<Vec<u8>>,
    pub previous_expires_at: Option<NaiveDateTime>,
    pub updated_at: NaiveDateTime,
}

/// Applies a rotation only while the key still holds the secret `current`
/// was read with, and is neither revoked nor deleted (a compare-and-swap).
/// Returns the rows changed: 0 means someone else changed it first.
pub fn swap_secret(
    conn: &mut AnyConnection,
    current: &ApiKey,
    change: &SecretChange,
) -> QueryResult<usize> {
    let live = api_keys::table
        .filter(api_keys::id.eq(&current.id))
        .filter(api_keys::tenant_id.eq(&current.tenant_id))
        .filter(api_keys::revoked_at.is_null())
        .filter(api_keys::deleted_at.is_null());
    match (&current.secret_hash, &current.secret_enc) {
        (Some(hash), _) => diesel::update(live.filter(api_keys::secret_hash.eq(hash)))
            .set(change)
            .execute(conn),
        (None, Some(enc)) => diesel::update(live.filter(api_keys::secret_enc.eq(enc)))
            .set(change)
            .execute(conn),
        (None, None) => Ok(0),
    }
}

/// Marks a (revoked) key deleted: it leaves every list and lookup, and its
/// row stays as a tombstone so audit targets still resolve.
pub fn tombstone(
    conn: &mut AnyConnection,
    tenant_id: &str,
    key: &ApiKey,
    revocation: &KeyRevocation<'_>,
) -> QueryResult<()> {
    let now = revocation.now;
    let changed = diesel::update(
        api_keys::table
            .filter(api_keys::id.eq(&key.id))
            .filter(api_keys::tenant_id.eq(tenant_id))
            .filter(api_keys::deleted_at.is_null()),
    )
    .set((
        api_keys::deleted_at.eq(now),
        api_keys::secret_hash.eq(None::<Vec<u8>>),
        api_keys::secret_enc.eq(None::<Vec<u8>>),
        api_keys::previous_secret_hash.eq(None::<Vec<u8>>),
        api_keys::previous_secret_enc.eq(None::<Vec<u8>>),
        api_keys::previous_expires_at.eq(None::<NaiveDateTime>),
        api_keys::updated_at.eq(now),
    ))
    .execute(conn)?;
    if changed > 0 {
        audit::write(
            conn,
            audit::Record {
                tenant_id: Some(tenant_id),
                action: "key.deleted",
                actor: revocation.actor,
                origin: revocation.origin,
                target_type: "key",
                target_id: &key.id,
                success: true,
                details: serde_json::json!({
                    "status_list": revocation.lists.entry(key.status_idx),
                }),
            },
            now,
        )?;
    }
    Ok(())
}

impl ApiKey {
    pub fn status(&self, now: NaiveDateTime) -> Status {
        Status::of(self.revoked_at, self.expires_at, now)
    }

    pub fn scope_list(&self) -> Vec<String> {
        serde_json::from_str(&self.scopes).unwrap_or_default()
    }

    pub fn audience_list(&self) -> Vec<String> {
        serde_json::from_str(&self.audiences).unwrap_or_default()
    }
}

// Finders for the grants, the admin extractor and the CLI.

/// A key and its tenant by the key's id, deleted or not: a signed request
/// naming a deleted key is that key's denial, not an unknown key's.
pub fn find_with_tenant(
    conn: &mut AnyConnection,
    id: &str,
) -> QueryResult<Option<(ApiKey, Tenant)>> {
    api_keys::table
        .inner_join(tenants::table)
        .filter(api_keys::id.eq(id))
        .select((ApiKey::as_select(), Tenant::as_select()))
        .first(conn)
        .optional()
}

/// A key that is not deleted and its tenant, by the key's id (the admin
/// extractor's caller).
pub fn find_live_with_tenant(
    conn: &mut AnyConnection,
    id: &str,
) -> QueryResult<Option<(ApiKey, Tenant)>> {
    api_keys::table
        .inner_join(tenants::table)
        .filter(api_keys::id.eq(id))
        .filter(api_keys::deleted_at.is_null())
        .select((ApiKey::as_select(), Tenant::as_select()))
        .first(conn)
        .optional()
}

/// Inserts a prepared key with no audit event: only for the benchmark
/// seeder, whose hundreds of thousands of keys would otherwise bury the
/// audit log.
/// Stores keys in bulk, unaudited (`bench-seed`), with one allocation of
/// status-list indices for all of them.
pub fn insert_unaudited(conn: &mut AnyConnection, rows: &mut [ApiKey]) -> QueryResult<()> {
    let count = i64::try_from(rows.len()).unwrap_or(i64::MAX);
    let first = status_index::allocate(conn, count)?;
    for (offset, row) in (0..).zip(rows.iter_mut()) {
        row.status_idx = Some(first + offset);
    }
    for row in rows.iter() {
        diesel::insert_into(api_keys::table)
            .values(row)
            .execute(conn)?;
    }
    Ok(())
}

/// PostgreSQL: `ANALYZE api_keys`, after a bulk load (`bench-seed`). SQLite
/// keeps no statistics here (built without STAT4): nothing to do.
pub fn refresh_statistics(conn: &mut AnyConnection) -> QueryResult<()> {
    if !conn.is_sqlite() {
        diesel::sql_query("ANALYZE api_keys").execute(conn)?;
    }
    Ok(())
}
