//! Why a key was refused, for the audit only: the client gets the same
//! answer whatever the reason.

use chrono::NaiveDateTime;

use crate::db::models::ApiKey;
use crate::keys::Status;
use crate::keys::store::Candidate;

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

/// Whether a key's life allows any use now: not deleted, revoked or
/// expired. Both ways of authenticating (secret and signed request) start
/// with it.
pub fn lifecycle_refusal(key: &ApiKey, now: NaiveDateTime) -> Option<Reason> {
    if key.deleted_at.is_some() {
        return Some(Reason::Deleted);
    }
    match key.status(now) {
        Status::Revoked => Some(Reason::Revoked),
        Status::Expired => Some(Reason::Expired),
        Status::Active => None,
    }
}
