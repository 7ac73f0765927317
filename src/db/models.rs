//! Rows as the database holds them. `New*` structs are what inserts take;
//! list-valued columns are JSON text (the one type both backends share).

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::{api_keys, audit_events, signing_keys, tenant_audiences, tenants};

#[derive(Debug, Clone, Queryable, Selectable, Identifiable, Insertable, AsChangeset)]
#[diesel(table_name = tenants)]
pub struct Tenant {
    pub id: String,
    pub slug: String,
    pub name: String,
    pub api_keys_enabled: bool,
    pub default_key_lifetime_s: Option<i64>,
    pub max_key_lifetime_s: Option<i64>,
    pub max_keys_per_owner: i64,
    pub default_token_ttl_s: i64,
    pub max_token_ttl_s: i64,
    pub require_ip_allowlist: bool,
    pub allowed_ip_ranges: String,
    pub default_audience: String,
    pub default_rate_limit_per_s: f64,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = tenant_audiences)]
pub struct TenantAudience {
    pub audience: String,
    pub tenant_id: String,
    pub created_at: NaiveDateTime,
}

/// An API key row. Holds hashes and ciphertexts, never a secret.
#[derive(Debug, Clone, Queryable, Selectable, Identifiable, Insertable)]
#[diesel(table_name = api_keys)]
pub struct ApiKey {
    pub id: String,
    pub tenant_id: String,
    pub name: String,
    pub description: Option<String>,
    pub owner: Option<String>,
    pub start: String,
    pub secret_hash: Option<Vec<u8>>,
    pub previous_secret_hash: Option<Vec<u8>>,
    pub previous_expires_at: Option<NaiveDateTime>,
    pub secret_enc: Option<Vec<u8>>,
    pub previous_secret_enc: Option<Vec<u8>>,
    pub security_level: String,
    pub scopes: String,
    pub audiences: String,
    pub ip_allowlist: Option<String>,
    pub max_token_ttl_s: Option<i64>,
    pub rate_limit_per_s: Option<f64>,
    pub claims: Option<String>,
    pub metadata: Option<String>,
    pub created_by: String,
    pub parent_key_id: Option<String>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    pub expires_at: Option<NaiveDateTime>,
    pub last_used_at: Option<NaiveDateTime>,
    pub tokens_issued: i64,
    pub revoked_at: Option<NaiveDateTime>,
    pub revoked_reason: Option<String>,
    pub deleted_at: Option<NaiveDateTime>,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = signing_keys)]
pub struct SigningKeyRow {
    pub kid: String,
    pub alg: String,
    pub public_jwk: String,
    pub private_key_enc: Vec<u8>,
    pub created_at: NaiveDateTime,
    pub activates_at: NaiveDateTime,
    pub retired_at: Option<NaiveDateTime>,
    pub revoked_at: Option<NaiveDateTime>,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = audit_events)]
pub struct AuditEvent {
    pub id: String,
    pub at: NaiveDateTime,
    pub tenant_id: Option<String>,
    pub action: String,
    pub actor_type: String,
    pub actor_key_id: Option<String>,
    pub actor_sub: Option<String>,
    pub actor_tenant: Option<String>,
    pub ip: Option<String>,
    pub request_id: Option<String>,
    pub target_type: Option<String>,
    pub target_id: Option<String>,
    pub outcome: String,
    pub details: String,
    pub count: i64,
    pub dedup_key: Option<String>,
}
