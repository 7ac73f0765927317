//! Verifying tokens keymint itself issued: signature by a published key whose
//! algorithm matches the header, `typ: at+jwt`, our issuer, the expected
//! audience, and `exp`/`nbf`/`iat` within a 5 s leeway.

use jsonwebtoken::{Algorithm, DecodingKey, Validation};

use crate::tokens::issue::AccessClaims;
use crate::tokens::signing::{KeyRing, LEEWAY_S, TOKEN_TYPE};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum VerifyError {
    #[error("the token is malformed")]
    Malformed,
    #[error("the token's key is not published or its algorithm does not match")]
    UnknownKey,
    #[error("the token is not an access token (typ)")]
    WrongType,
    #[error("the token is invalid: {0}")]
    Invalid(String),
    #[error("the token was issued in the future")]
    IssuedInFuture,
}

/// Longest token we accept; ours are bounded by `tokens.max_jwt_bytes`.
pub const MAX_TOKEN_LEN: usize = 16 * 1024;

pub fn verify(
    keyring: &KeyRing,
    token: &str,
    issuer: &str,
    audience: Option<&str>,
    now_unix: i64,
) -> Result<AccessClaims, VerifyError> {
    verify_with(
        |kid, alg| keyring.decoding_key(kid, alg),
        token,
        issuer,
        audience,
        now_unix,
        LEEWAY_S,
    )
}

/// What the header says about the key: its id and algorithm, once the
/// token is known to be an access token signed with an algorithm we use.
pub fn key_of(token: &str) -> Result<(String, Algorithm), VerifyError> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(VerifyError::Malformed);
    }
    let header = jsonwebtoken::decode_header(token).map_err(|_| VerifyError::Malformed)?;
    if header.typ.as_deref() != Some(TOKEN_TYPE) {
        return Err(VerifyError::WrongType);
    }
    if !matches!(header.alg, Algorithm::ES256 | Algorithm::EdDSA) {
        return Err(VerifyError::UnknownKey);
    }
    let kid = header.kid.ok_or(VerifyError::UnknownKey)?;
    Ok((kid, header.alg))
}

/// [`verify`] against any key source: `lookup(kid, alg)` returns the
/// published key for `kid` only if its algorithm is `alg`. The server uses
/// its key ring; downstream services (`validator`) their cached JWKS.
pub fn verify_with(
    lookup: impl FnOnce(&str, Algorithm) -> Option<DecodingKey>,
    token: &str,
    issuer: &str,
    audience: Option<&str>,
    now_unix: i64,
    leeway_s: i64,
) -> Result<AccessClaims, VerifyError> {
    let (kid, alg) = key_of(token)?;
    let key = lookup(&kid, alg).ok_or(VerifyError::UnknownKey)?;
    let mut validation = Validation::new(alg);
    validation.leeway = leeway_s.max(0) as u64;
    validation.validate_nbf = true;
    validation.set_issuer(&[issuer]);
    match audience {
        Some(audience) => validation.set_audience(&[audience]),
        // The caller checks `aud` itself (introspection, revocation).
        None => validation.validate_aud = false,
    }
    validation.set_required_spec_claims(&["exp", "nbf", "iat", "iss", "aud", "sub"]);
    let data = jsonwebtoken::decode::<AccessClaims>(token, &key, &validation)
        .map_err(|e| VerifyError::Invalid(e.to_string()))?;
    if data.claims.iat > now_unix + leeway_s {
        return Err(VerifyError::IssuedInFuture);
    }
    Ok(data.claims)
}
