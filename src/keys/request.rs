//! What the key routes ask of the key service, already parsed: the HTTP
//! floor (`routes::keys::parse`) reads the JSON, names every bad field and
//! builds these; the service never sees bytes or JSON members.

use serde_json::Value;

use crate::domain::lists::{AllowList, Audiences, Scopes};
use crate::domain::owner::Owner;
use crate::keys::SecurityLevel;
use crate::keys::rules::Expiry;

/// `POST /api/v1/keys`: every field checked for syntax; the tenant's policy
/// and the caller's powers are the service's to apply.
#[derive(Debug, Clone)]
pub struct CreateKey {
    pub name: String,
    pub description: Option<String>,
    pub owner: Option<Owner>,
    pub scopes: Scopes,
    pub expiry: Expiry,
    pub ip_allowlist: Option<AllowList>,
    pub security_level: SecurityLevel,
    pub max_token_ttl_s: Option<i64>,
    pub audiences: Audiences,
    pub rate_limit_per_s: Option<f64>,
    pub claims: Option<Value>,
    pub metadata: Option<Value>,
}

/// One member of a merge patch (RFC 7396).
#[derive(Debug, Clone, PartialEq)]
pub enum Change<T> {
    /// Not sent: the field stays as it is.
    Keep,
    /// `null`: the field is removed.
    Clear,
    Set(T),
}

impl<T> Change<T> {
    pub fn is_keep(&self) -> bool {
        matches!(self, Self::Keep)
    }

    /// `Keep` → `None`; otherwise the new value (`None` for `Clear`).
    pub fn into_update(self) -> Option<Option<T>> {
        match self {
            Self::Keep => None,
            Self::Clear => Some(None),
            Self::Set(v) => Some(Some(v)),
        }
    }
}

/// `PATCH /api/v1/keys/{id}`.
#[derive(Debug, Clone)]
pub struct PatchKey {
    /// A name cannot be removed: `Some` sets it.
    pub name: Option<String>,
    pub description: Change<String>,
    pub ip_allowlist: Change<AllowList>,
    pub metadata: Change<Value>,
    pub claims: Change<Value>,
    pub expires_at: Change<chrono::DateTime<chrono::Utc>>,
}

/// `POST /api/v1/keys/{id}/revoke`.
#[derive(Debug, Clone, Default)]
pub struct RevokeKey {
    pub reason: Option<String>,
}

/// `POST /api/v1/keys/revoke`: 1..=`MAX_BULK` ids.
#[derive(Debug, Clone)]
pub struct RevokeKeys {
    pub ids: Vec<String>,
    pub reason: Option<String>,
}

/// `POST /api/v1/keys/{id}/rotate`.
#[derive(Debug, Clone, Default)]
pub struct RotateKey {
    /// How long the previous secret keeps working; 0 kills it at once.
    pub grace_period_s: i64,
}

/// `GET /api/v1/keys`: the filters, checked; the owner already narrowed
/// to the caller's own for `keys:self`.
#[derive(Debug, Clone)]
pub struct ListKeys {
    pub q: Option<String>,
    pub status: Option<String>,
    pub owner: Option<String>,
    pub limit: i64,
    /// The last id of the previous page, from a cursor made for these
    /// filters in this tenant.
    pub after: Option<String>,
}

pub const MAX_JSON_OBJECT: usize = 4096;
pub const MAX_ALLOWLIST: usize = 100;
pub const MAX_BULK: usize = 1000;
pub const MAX_GRACE_S: i64 = 604_800;
