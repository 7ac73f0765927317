//! Exchanging an API key for a JWT. Each grant file turns its request into
//! [`Presented`] credentials and [`Requested`] parameters; [`exchange()`] is the
//! one checklist they share, in this order:
//!
//! 1. parse the secret (format and checksum) — no database work for garbage;
//! 2. one indexed query: key and tenant policy by the secret's hash;
//! 3. the key is the named one, standard, active, within any grace period;
//! 4. the key's rate bucket admits the request — only now that the key is
//!    proven, so no one else can spend it, and before anything is written
//!    for the request (a signed request's nonce);
//! 5. the tenant allows exchanges, from this address ([`admit`]); a signed
//!    request's nonce is recorded;
//! 6. TTL, audience and scope rules; the token's audience (unless it is the
//!    admin audience) is registered to the tenant right now;
//! 7. sign, count the use in memory.
//!
//! Failures in 1–3 answer identically whatever the cause: which answer
//! depends on the grant ([`Flavor`]). Only the audit tells the causes apart
//! ([`Reason`]): a known key refused is a denial of that key, in its
//! tenant's log; a secret that matches no key is summarised per address.
//! Client authentication elsewhere ([`authenticate_client`]) runs steps 1–5
//! and audits the same way.

pub mod client_credentials;
mod exchange;
pub mod form;
pub mod introspect;
pub mod revoke;
pub mod signed;
pub mod simple;
pub mod store;
pub mod token_exchange;

use std::net::IpAddr;
use std::sync::Arc;

use ipnet::IpNet;
use serde::Serialize;
use zeroize::Zeroizing;

use crate::config::TokenSettings;
use crate::crypto::master::MasterKey;
use crate::db::{AnyConnection, Pool};
use crate::domain::cidr;
use crate::error::AuthScheme;
use crate::keys::secret::ApiKeySecret;
use crate::keys::store::{self as key_store, Candidate};
use crate::keys::{SecurityLevel, Status};
use crate::limits::Limiter;
use crate::tokens::signing::KeyRing;
use crate::usage::Usage;

pub use exchange::{authenticate_client, exchange};

pub const TOKEN_TYPE_API_KEY: &str = "urn:keymint:params:token-type:api-key";
pub const TOKEN_TYPE_ACCESS_TOKEN: &str = "urn:ietf:params:oauth:token-type:access_token";
pub const TOKEN_TYPE_JWT: &str = "urn:ietf:params:oauth:token-type:jwt";

/// A secret as presented, with the key id it claims to be (if any).
pub struct Presented {
    pub key_id: Option<String>,
    pub secret: Zeroizing<String>,
    pub scheme: AuthScheme,
}

/// How the client proves who it is.
pub enum Credential {
    /// The secret itself (standard keys).
    Secret(Presented),
    /// A signed request (advanced keys).
    Signed(signed::SignedRequest),
}

/// How failures answer, per grant.
pub enum Flavor {
    /// `client_credentials` and `/api/v1/token`: 401 `invalid_client`, 400
    /// `unauthorized_client`.
    Client,
    /// RFC 8693: 400 `invalid_request` for both; the client, if it
    /// authenticated, must be the subject's key.
    TokenExchange {
        client_key_id: Option<String>,
        issued_token_type: &'static str,
    },
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TokenResponse {
    pub access_token: String,
    pub token_type: &'static str,
    pub expires_in: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issued_token_type: Option<&'static str>,
}

/// Why a known key was refused. Only its tenant's audit sees the reason:
/// the client gets the same answer whatever it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    Revoked,
    Expired,
    Deleted,
    /// The previous secret, after its rotation grace.
    GracePeriodOver,
    /// A standard key named in a signed request (advanced keys have no
    /// bearer secret to present).
    WrongSecurityLevel,
    /// The secret is this key's, but the request named another key id.
    ClientIdMismatch,
    /// A signed request naming this key whose HMAC does not verify.
    BadSignature,
    NonceReused,
    /// Authenticated, but not admitted: the tenant's API keys are off.
    ApiKeysDisabled,
    /// Authenticated, but not admitted from this address.
    AddressNotAllowed,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Revoked => "revoked",
            Self::Expired => "expired",
            Self::Deleted => "deleted",
            Self::GracePeriodOver => "grace_period_over",
            Self::WrongSecurityLevel => "wrong_security_level",
            Self::ClientIdMismatch => "client_id_mismatch",
            Self::BadSignature => "bad_signature",
            Self::NonceReused => "nonce_reused",
            Self::ApiKeysDisabled => "api_keys_disabled",
            Self::AddressNotAllowed => "address_not_allowed",
        }
    }
}

/// A credential that did not get a key through.
pub enum Denial {
    /// It matches no key.
    Unknown,
    /// It names a known key that may not be used now.
    Key(Box<Candidate>, Reason),
}

/// Names the key and the reason, nothing of the row (hashes, ciphertexts).
impl std::fmt::Debug for Denial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Unknown => f.write_str("Unknown"),
            Self::Key(candidate, reason) => f
                .debug_tuple("Key")
                .field(&candidate.key.id)
                .field(reason)
                .finish(),
        }
    }
}

/// What the grants need of the running server, lent for one request by
/// the HTTP floor (which holds the whole state): the services never see
/// more than this.
#[derive(Clone, Copy)]
pub struct Context<'a> {
    pub pool: &'a Pool,
    /// Checks signed requests (advanced keys' secrets are sealed under it).
    pub master: &'a Arc<MasterKey>,
    /// Signs issued tokens; verifies those presented for introspection
    /// and revocation.
    pub keyring: &'a KeyRing,
    /// Per-key buckets and the failed-authentication guard per address.
    pub limiter: &'a Arc<Limiter>,
    /// Counts each issue in memory.
    pub usage: &'a Usage,
    pub tokens: &'a TokenSettings,
}

/// Finds the active standard key a secret belongs to, or says why not.
/// `expected_id`, when given, must be the key's id.
pub fn authenticate(
    conn: &mut AnyConnection,
    secret: &ApiKeySecret,
    expected_id: Option<&str>,
    now: chrono::NaiveDateTime,
) -> diesel::QueryResult<Result<Candidate, Denial>> {
    let Some(candidate) = key_store::find_by_secret_hash(conn, &secret.hash())? else {
        return Ok(Err(Denial::Unknown));
    };
    Ok(match unusable(&candidate, expected_id, now) {
        None => Ok(candidate),
        Some(reason) => Err(Denial::Key(Box::new(candidate), reason)),
    })
}

/// Whether a key's life allows any use now: not deleted, revoked or
/// expired. Both ways of authenticating (secret and signed request) start
/// with it.
pub(crate) fn lifecycle_refusal(
    key: &crate::db::models::ApiKey,
    now: chrono::NaiveDateTime,
) -> Option<Reason> {
    if key.deleted_at.is_some() {
        return Some(Reason::Deleted);
    }
    match key.status(now) {
        Status::Revoked => Some(Reason::Revoked),
        Status::Expired => Some(Reason::Expired),
        Status::Active => None,
    }
}

/// Why a key found by its secret may not be used now, if it may not.
fn unusable(
    candidate: &Candidate,
    expected_id: Option<&str>,
    now: chrono::NaiveDateTime,
) -> Option<Reason> {
    let key = &candidate.key;
    if let Some(reason) = lifecycle_refusal(key, now) {
        return Some(reason);
    }
    if candidate.via_previous && key.previous_expires_at.is_none_or(|end| end <= now) {
        return Some(Reason::GracePeriodOver);
    }
    if key.security_level != SecurityLevel::Standard.as_str() {
        return Some(Reason::WrongSecurityLevel);
    }
    if expected_id.is_some_and(|id| id != key.id) {
        return Some(Reason::ClientIdMismatch);
    }
    None
}

/// Whether an authenticated key may be used from `ip` now: the tenant's
/// switch, `require_ip_allowlist`, the tenant's ranges and the key's list.
/// Every route that authenticates a client applies it.
fn admit(candidate: &Candidate, ip: Option<IpAddr>) -> Result<(), Reason> {
    let tenant = &candidate.tenant;
    if !tenant.api_keys_enabled {
        return Err(Reason::ApiKeysDisabled);
    }
    let key_list: Option<Vec<IpNet>> = candidate.key.ip_allowlist.as_deref().map(cidr::parse_list);
    if tenant.require_ip_allowlist && key_list.as_ref().is_none_or(Vec::is_empty) {
        return Err(Reason::AddressNotAllowed);
    }
    let tenant_ranges = cidr::parse_list(&tenant.allowed_ip_ranges);
    if !tenant_ranges.is_empty() && !cidr::admits(&tenant_ranges, ip) {
        return Err(Reason::AddressNotAllowed);
    }
    if let Some(list) = key_list
        && !cidr::admits(&list, ip)
    {
        return Err(Reason::AddressNotAllowed);
    }
    Ok(())
}
