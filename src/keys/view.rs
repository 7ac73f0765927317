//! The key as the admin API shows it: never the secret, never its hash.

use chrono::NaiveDateTime;
use serde::Serialize;
use serde_json::Value;

use crate::db::models::ApiKey;
use crate::domain::status_list::StatusClaim;
use crate::domain::text::timestamp;

fn json_or_null(text: Option<&str>) -> Value {
    text.and_then(|t| serde_json::from_str(t).ok())
        .unwrap_or(Value::Null)
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct KeyView {
    pub id: String,
    pub tenant: String,
    pub name: String,
    pub description: Option<String>,
    pub owner: Option<String>,
    pub start: String,
    #[schema(value_type = Vec<String>)]
    pub scopes: Value,
    /// `standard` or `advanced`.
    pub security_level: String,
    #[schema(value_type = Option<Vec<String>>)]
    pub ip_allowlist: Value,
    #[schema(value_type = Vec<String>)]
    pub audiences: Value,
    pub max_token_ttl_s: Option<i64>,
    pub rate_limit_per_s: Option<f64>,
    #[schema(value_type = Option<Object>)]
    pub claims: Value,
    #[schema(value_type = Option<Object>)]
    pub metadata: Value,
    /// `active`, `expired` or `revoked`.
    pub status: &'static str,
    pub created_at: String,
    pub updated_at: String,
    pub expires_at: Option<String>,
    pub last_used_at: Option<String>,
    pub tokens_issued: i64,
    pub revoked_at: Option<String>,
    pub revoked_reason: Option<String>,
    pub previous_expires_at: Option<String>,
    /// The actor that created the key.
    #[schema(value_type = Object)]
    pub created_by: Value,
    /// The key's entry in the Token Status Lists: the `status` claim its
    /// tokens carry. `null` only for a key that has none.
    pub status_list: Option<StatusEntry>,
}

/// Which entry of which list holds a key's status (the `status_list`
/// member of its tokens' `status` claim).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct StatusEntry {
    /// The index in the list, 0..65535.
    pub idx: u64,
    /// The list: `<issuer>/statuslists/<n>`.
    pub uri: String,
}

impl KeyView {
    pub fn of(key: &ApiKey, tenant_slug: &str, issuer: &str, now: NaiveDateTime) -> Self {
        Self {
            id: key.id.clone(),
            tenant: tenant_slug.to_owned(),
            name: key.name.clone(),
            description: key.description.clone(),
            owner: key.owner.clone(),
            start: key.start.clone(),
            scopes: json_or_null(Some(&key.scopes)),
            security_level: key.security_level.clone(),
            ip_allowlist: json_or_null(key.ip_allowlist.as_deref()),
            audiences: json_or_null(Some(&key.audiences)),
            max_token_ttl_s: key.max_token_ttl_s,
            rate_limit_per_s: key.rate_limit_per_s,
            claims: json_or_null(key.claims.as_deref()),
            metadata: json_or_null(key.metadata.as_deref()),
            status: key.status(now).as_str(),
            created_at: timestamp(key.created_at),
            updated_at: timestamp(key.updated_at),
            expires_at: key.expires_at.map(timestamp),
            last_used_at: key.last_used_at.map(timestamp),
            tokens_issued: key.tokens_issued,
            revoked_at: key.revoked_at.map(timestamp),
            revoked_reason: key.revoked_reason.clone(),
            previous_expires_at: key
                .previous_expires_at
                .filter(|at| *at > now)
                .map(timestamp),
            created_by: json_or_null(Some(&key.created_by)),
            status_list: key
                .status_idx
                .and_then(|index| u64::try_from(index).ok())
                .map(|index| {
                    let claim = StatusClaim::for_index(issuer, index).status_list;
                    StatusEntry {
                        idx: claim.idx,
                        uri: claim.uri,
                    }
                }),
        }
    }
}

/// The create response: the view plus the secret, shown this once.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CreatedKey {
    #[serde(flatten)]
    pub view: KeyView,
    /// The secret, shown only in this response.
    pub key: String,
}
