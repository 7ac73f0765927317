//! Signed requests (advanced keys): the secret never travels. The client
//! sends `X-Keymint-Key-Id`, `X-Keymint-Timestamp` (unix ms),
//! `X-Keymint-Nonce` and `Authorization: KM-HMAC-SHA256 <hex>`, the HMAC-SHA256
//! under the whole secret of
//!
//! ```text
//! timestamp \n nonce \n METHOD \n path-as-received \n hex(sha256(body))
//! ```
//!
//! Checked in this order: headers well-formed → timestamp within ±300 s →
//! key loaded → `ring::hmac::verify` → (the key's rate bucket and the
//! tenant's admission, in [`crate::grants`]) → only then the nonce is
//! recorded ([`record_nonce`]), unique per key until it expires: a request
//! refused before that leaves no row behind. Only a stale timestamp and a
//! reused nonce say so; every other failure reads `invalid signature`. A key id
//! that names no usable key costs the same cryptographic work as one that
//! does, so the time taken does not tell them apart.

use chrono::{DateTime, NaiveDateTime};

use crate::crypto::master::{Aad, MasterKey, Purpose};
use crate::db::models::{ApiKey, Tenant};
use crate::db::{AnyConnection, DbError};
use crate::domain::text::hex;
use crate::error::OAuthError;
use crate::grants::refusal::{Denial, Reason, lifecycle_refusal};
use crate::grants::store as grants_store;
use crate::keys::SecurityLevel;
use crate::keys::store::{self, Candidate};

pub const SCHEME: &str = "KM-HMAC-SHA256";
pub const KEY_ID_HEADER: &str = "x-keymint-key-id";
pub const TIMESTAMP_HEADER: &str = "x-keymint-timestamp";
pub const NONCE_HEADER: &str = "x-keymint-nonce";
pub const MAX_SKEW_MS: i64 = 300_000;

/// A well-formed signed request, not yet verified.
pub struct SignedRequest {
    pub key_id: String,
    pub timestamp_ms: i64,
    pub nonce: String,
    signature: Vec<u8>,
    string_to_sign: Vec<u8>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SignedError {
    #[error("invalid signature")]
    Invalid,
    #[error("stale timestamp")]
    Stale,
    #[error("nonce reused")]
    Reused,
}

/// 401 for a signed request; only a stale timestamp and a reused nonce
/// say so, every other failure reads `invalid signature`.
impl From<SignedError> for OAuthError {
    fn from(err: SignedError) -> Self {
        OAuthError::bad_signature(err.to_string())
    }
}

/// The exact bytes a client signs.
pub fn string_to_sign(
    timestamp_ms: i64,
    nonce: &str,
    method: &str,
    path: &str,
    body: &[u8],
) -> Vec<u8> {
    let body_hash = hex(ring::digest::digest(&ring::digest::SHA256, body).as_ref());
    format!(
        "{timestamp_ms}\n{nonce}\n{}\n{path}\n{body_hash}",
        method.to_ascii_uppercase()
    )
    .into_bytes()
}

/// What a request's headers said, checked for form by the HTTP floor
/// (`input::signed`): the parts a signed request is made of.
pub struct SignedParts<'a> {
    pub key_id: &'a str,
    pub timestamp_ms: i64,
    pub nonce: &'a str,
    /// The signature, decoded from hex.
    pub signature: Vec<u8>,
    pub method: &'a str,
    pub path: &'a str,
    pub body: &'a [u8],
}

impl SignedRequest {
    /// The request to verify: the string it must sign is built here, from
    /// exactly what was received.
    pub fn new(parts: SignedParts<'_>) -> Self {
        Self {
            string_to_sign: string_to_sign(
                parts.timestamp_ms,
                parts.nonce,
                parts.method,
                parts.path,
                parts.body,
            ),
            key_id: parts.key_id.to_owned(),
            timestamp_ms: parts.timestamp_ms,
            nonce: parts.nonce.to_owned(),
            signature: parts.signature,
        }
    }

    /// Step 2, before any database work.
    pub fn check_timestamp(&self, now_ms: i64) -> Result<(), SignedError> {
        if (now_ms - self.timestamp_ms).abs() > MAX_SKEW_MS {
            Err(SignedError::Stale)
        } else {
            Ok(())
        }
    }
}

/// Stands in for a secret when there is none to check against: as long as
/// a secret with the default prefix.
const STAND_IN_SECRET: &[u8] = b"km_00000000000000000000000000000000000000";
const STAND_IN_AAD: Aad<'static> = Aad {
    table: "api_keys",
    row_id: "",
    tenant: "",
};

/// The work of checking a signature against a real key (one master-key
/// operation, one HMAC), spent on a stand-in secret and thrown away.
fn stand_in_check(master: &MasterKey, request: &SignedRequest) {
    let sealed = master.encrypt(Purpose::ApiKeySecrets, &STAND_IN_AAD, STAND_IN_SECRET);
    std::hint::black_box(sealed.is_ok());
    let hmac_key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, STAND_IN_SECRET);
    let verified = ring::hmac::verify(&hmac_key, &request.string_to_sign, &request.signature);
    std::hint::black_box(verified.is_ok());
}

fn hmac_matches(master: &MasterKey, key: &ApiKey, sealed: &[u8], request: &SignedRequest) -> bool {
    let Ok(secret) = master.decrypt(Purpose::ApiKeySecrets, &store::secret_aad(key), sealed) else {
        return false;
    };
    let hmac_key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &secret);
    ring::hmac::verify(&hmac_key, &request.string_to_sign, &request.signature).is_ok()
}

/// Why the key a signed request names may not sign now, before its
/// signature is looked at.
fn unusable(key: &ApiKey, now: NaiveDateTime) -> Option<Reason> {
    if let Some(reason) = lifecycle_refusal(key, now) {
        return Some(reason);
    }
    if key.security_level != SecurityLevel::Advanced.as_str() || key.secret_enc.is_none() {
        return Some(Reason::WrongSecurityLevel);
    }
    None
}

/// A refused signed request: what the client is told, and what the audit
/// records.
pub type Refused = (SignedError, Denial);

/// Steps 3–4: the key and the signature. Blocking. The nonce is not looked
/// at yet: [`record_nonce`] does that once the request is admitted.
pub fn verify(
    conn: &mut AnyConnection,
    master: &MasterKey,
    request: &SignedRequest,
    now: NaiveDateTime,
) -> Result<Result<Candidate, Refused>, DbError> {
    // Deleted keys are loaded too: a request naming one is that key's denial.
    let found = store::find_with_tenant(conn, &request.key_id)?;
    let Some((key, tenant)) = found else {
        stand_in_check(master, request);
        return Ok(Err((SignedError::Invalid, Denial::Unknown)));
    };
    let refuse = |key: ApiKey, tenant: Tenant, error: SignedError, reason: Reason| {
        let candidate = Candidate {
            key,
            tenant,
            via_previous: false,
            registered_audiences: None,
        };
        Ok(Err((error, Denial::Key(Box::new(candidate), reason))))
    };
    if let Some(reason) = unusable(&key, now) {
        stand_in_check(master, request);
        return refuse(key, tenant, SignedError::Invalid, reason);
    }
    let via_current = key
        .secret_enc
        .as_deref()
        .is_some_and(|sealed| hmac_matches(master, &key, sealed, request));
    // The previous secret is checked even after its grace, to tell a
    // client still signing with it from a forged signature.
    let via_previous = !via_current
        && key
            .previous_secret_enc
            .as_deref()
            .is_some_and(|sealed| hmac_matches(master, &key, sealed, request));
    if !via_current && !via_previous {
        return refuse(key, tenant, SignedError::Invalid, Reason::BadSignature);
    }
    if via_previous && key.previous_expires_at.is_none_or(|end| end <= now) {
        return refuse(key, tenant, SignedError::Invalid, Reason::GracePeriodOver);
    }
    Ok(Ok(Candidate {
        key,
        tenant,
        via_previous,
        registered_audiences: None,
    }))
}

/// Step 5, for a request whose signature verified and that was admitted:
/// records its nonce, or refuses it as a replay. Blocking.
pub fn record_nonce(
    conn: &mut AnyConnection,
    request: &SignedRequest,
    candidate: Candidate,
    now: NaiveDateTime,
) -> Result<Result<Candidate, Refused>, DbError> {
    let expires_at = DateTime::from_timestamp_millis(request.timestamp_ms + MAX_SKEW_MS)
        .map(|t| t.naive_utc())
        .unwrap_or(now);
    if grants_store::record_nonce(conn, &candidate.key.id, &request.nonce, expires_at)? {
        Ok(Ok(candidate))
    } else {
        Ok(Err((
            SignedError::Reused,
            Denial::Key(Box::new(candidate), Reason::NonceReused),
        )))
    }
}

/// Signing for clients: the headers to send with a request. `nonce` must be
/// 16..64 of `[A-Za-z0-9_-]`, fresh for every request.
///
/// ```
/// let headers = keymint::grants::signed::sign_request(
///     "km_…secret…", "01935a3e-0000-7000-8000-000000000000",
///     1_732_400_000_000, "3f2a9c0d1e2f3a4b", "POST", "/api/v1/token", b"",
/// );
/// assert_eq!(headers.len(), 4);
/// ```
pub fn sign_request(
    secret: &str,
    key_id: &str,
    timestamp_ms: i64,
    nonce: &str,
    method: &str,
    path: &str,
    body: &[u8],
) -> Vec<(&'static str, String)> {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    let tag = ring::hmac::sign(
        &key,
        &string_to_sign(timestamp_ms, nonce, method, path, body),
    );
    vec![
        ("X-Keymint-Key-Id", key_id.to_owned()),
        ("X-Keymint-Timestamp", timestamp_ms.to_string()),
        ("X-Keymint-Nonce", nonce.to_owned()),
        ("Authorization", format!("{SCHEME} {}", hex(tag.as_ref()))),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_string_to_sign_is_five_lines() {
        let s = String::from_utf8(string_to_sign(
            1_732_400_000_000,
            "n0nce-n0nce-n0nce",
            "post",
            "/oauth/token",
            b"test",
        ))
        .unwrap();
        assert_eq!(
            s,
            "1732400000000\nn0nce-n0nce-n0nce\nPOST\n/oauth/token\n9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
        );
    }
}
