//! Rows as the database holds them. `New*` structs are what inserts take;
//! list-valued columns are JSON text (the one type both backends share).

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::{
    api_keys, audit_events, event_outbox, event_streams, signing_keys, tenant_audiences, tenants,
};

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
    /// JSON list of days before a key's expiry that each send one
    /// `key-expiring` event.
    pub expiry_warning_days: String,
    /// `revoke` or `notify`: what a leak report matching a key does.
    pub leak_response: String,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = tenant_audiences)]
pub struct TenantAudience {
    pub audience: String,
    pub tenant_id: String,
    pub created_at: NaiveDateTime,
}

/// An API key row. Holds hashes and ciphertexts, never a secret; its
/// `Debug` shows neither.
#[derive(Clone, Queryable, Selectable, Identifiable, Insertable)]
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
    /// The key's entry in the Token Status List (`status_lists` module);
    /// set when the row is inserted, never reused.
    pub status_idx: Option<i64>,
}

/// A signing key row; its `Debug` never shows the encrypted private key.
#[derive(Clone, Queryable, Selectable, Insertable)]
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

/// Shows that a secret-derived value is there, never its bytes: a hash
/// lets an attacker test guesses offline, a ciphertext waits for a leaked
/// master key.
struct Redacted<'a>(&'a Option<Vec<u8>>);

impl std::fmt::Debug for Redacted<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(_) => f.write_str("<redacted>"),
            None => f.write_str("None"),
        }
    }
}

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiKey")
            .field("id", &self.id)
            .field("tenant_id", &self.tenant_id)
            .field("name", &self.name)
            .field("description", &self.description)
            .field("owner", &self.owner)
            .field("start", &self.start)
            .field("secret_hash", &Redacted(&self.secret_hash))
            .field(
                "previous_secret_hash",
                &Redacted(&self.previous_secret_hash),
            )
            .field("previous_expires_at", &self.previous_expires_at)
            .field("secret_enc", &Redacted(&self.secret_enc))
            .field("previous_secret_enc", &Redacted(&self.previous_secret_enc))
            .field("security_level", &self.security_level)
            .field("scopes", &self.scopes)
            .field("audiences", &self.audiences)
            .field("ip_allowlist", &self.ip_allowlist)
            .field("max_token_ttl_s", &self.max_token_ttl_s)
            .field("rate_limit_per_s", &self.rate_limit_per_s)
            .field("claims", &self.claims)
            .field("metadata", &self.metadata)
            .field("created_by", &self.created_by)
            .field("parent_key_id", &self.parent_key_id)
            .field("created_at", &self.created_at)
            .field("updated_at", &self.updated_at)
            .field("expires_at", &self.expires_at)
            .field("last_used_at", &self.last_used_at)
            .field("tokens_issued", &self.tokens_issued)
            .field("revoked_at", &self.revoked_at)
            .field("revoked_reason", &self.revoked_reason)
            .field("deleted_at", &self.deleted_at)
            .field("status_idx", &self.status_idx)
            .finish()
    }
}

impl std::fmt::Debug for SigningKeyRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKeyRow")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .field("public_jwk", &self.public_jwk)
            .field("private_key_enc", &format_args!("<redacted>"))
            .field("created_at", &self.created_at)
            .field("activates_at", &self.activates_at)
            .field("retired_at", &self.retired_at)
            .field("revoked_at", &self.revoked_at)
            .finish()
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Bytes whose decimal forms (as `Debug` of a `Vec<u8>` prints them)
    /// appear nowhere else in the rows below.
    const MARKER: [u8; 4] = [0xDE, 0xAD, 0xBE, 0xEF];

    fn shows_marker(text: &str) -> bool {
        ["222", "173", "190", "239"]
            .iter()
            .any(|n| text.contains(n))
    }

    #[test]
    fn debug_never_shows_hashes_or_ciphertext() {
        let now = chrono::DateTime::from_timestamp(1_700_000_000, 0)
            .unwrap()
            .naive_utc();
        let secret = Some(MARKER.to_vec());
        let key = ApiKey {
            id: "key-id".into(),
            tenant_id: "tenant-id".into(),
            name: "payments".into(),
            description: None,
            owner: Some("alice".into()),
            start: "km_AbCd".into(),
            secret_hash: secret.clone(),
            previous_secret_hash: secret.clone(),
            previous_expires_at: Some(now),
            secret_enc: secret.clone(),
            previous_secret_enc: secret.clone(),
            security_level: "standard".into(),
            scopes: "[]".into(),
            audiences: "[]".into(),
            ip_allowlist: None,
            max_token_ttl_s: None,
            rate_limit_per_s: None,
            claims: None,
            metadata: None,
            created_by: "cli".into(),
            parent_key_id: None,
            created_at: now,
            updated_at: now,
            expires_at: None,
            last_used_at: None,
            tokens_issued: 0,
            revoked_at: None,
            revoked_reason: None,
            deleted_at: None,
            status_idx: None,
        };
        let shown = format!("{key:?}");
        assert!(!shows_marker(&shown), "{shown}");
        assert_eq!(shown.matches("<redacted>").count(), 4, "{shown}");
        assert!(
            shown.contains("payments") && shown.contains("km_AbCd"),
            "{shown}"
        );
        let shown = format!("{key:#?}");
        assert!(!shows_marker(&shown), "{shown}");

        let row = SigningKeyRow {
            kid: "kid-1".into(),
            alg: "ES256".into(),
            public_jwk: "{}".into(),
            private_key_enc: MARKER.to_vec(),
            created_at: now,
            activates_at: now,
            retired_at: None,
            revoked_at: None,
        };
        let shown = format!("{row:?} {row:#?}");
        assert!(!shows_marker(&shown), "{shown}");
        assert!(
            shown.contains("kid-1") && shown.contains("<redacted>"),
            "{shown}"
        );
    }
}

/// A receiver of a tenant's security events. `bearer_secret` is sealed under
/// the master key; its `Debug` does not show it.
#[derive(Clone, Queryable, Selectable, Identifiable, Insertable, AsChangeset)]
#[diesel(table_name = event_streams, treat_none_as_null = true)]
pub struct EventStream {
    pub id: String,
    pub tenant_id: String,
    pub endpoint: String,
    pub audience: String,
    /// JSON list of event URIs; `None`: every event.
    pub events: Option<String>,
    pub enabled: bool,
    /// After a failed push: nothing but one probe until then.
    pub paused_until: Option<NaiveDateTime>,
    pub bearer_secret: Option<Vec<u8>>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

impl std::fmt::Debug for EventStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventStream")
            .field("id", &self.id)
            .field("tenant_id", &self.tenant_id)
            .field("endpoint", &self.endpoint)
            .field("audience", &self.audience)
            .field("enabled", &self.enabled)
            .field("has_bearer_secret", &self.bearer_secret.is_some())
            .finish_non_exhaustive()
    }
}

/// One event for one stream: the SET's `jti` is `id`.
#[derive(Debug, Clone, Queryable, Selectable, Identifiable, Insertable)]
#[diesel(table_name = event_outbox)]
pub struct OutboxEvent {
    pub id: String,
    pub stream_id: String,
    pub tenant_id: String,
    pub event_type: String,
    pub subject_id: Option<String>,
    pub txn: Option<String>,
    pub occurred_at: NaiveDateTime,
    pub payload: String,
    pub state: String,
    pub attempts: i32,
    pub next_attempt_at: NaiveDateTime,
    pub last_attempt_at: Option<NaiveDateTime>,
    pub last_status: Option<i32>,
    pub last_error: Option<String>,
    pub delivered_at: Option<NaiveDateTime>,
}
