//! The largest token a key could be issued, checked against
//! `tokens.max_jwt_bytes` when a key is created or its claims change.

use serde_json::Value;

use crate::config::TokenSettings;
use crate::db::models::Tenant;
use crate::domain::status_list::StatusClaim;
use crate::error::ApiError;
use crate::keys::rules::policy;
use crate::tokens::issue::AccessClaims;

/// The largest token this key could be issued, in bytes: every scope, the
/// longest audience, its custom claims, an ES256/EdDSA signature.
pub fn worst_case_jwt_bytes(
    key_id: &str,
    owner: Option<&str>,
    scopes: &[String],
    audiences: &[String],
    claims: Option<&Value>,
    settings: &TokenSettings,
    tenant: &Tenant,
) -> usize {
    let longest_audience = audiences
        .iter()
        .map(String::as_str)
        .chain([
            tenant.default_audience.as_str(),
            settings.admin_audience.as_str(),
        ])
        .max_by_key(|a| a.len())
        .unwrap_or_default();
    let claims = AccessClaims {
        iss: settings.issuer.clone(),
        sub: owner.map_or_else(|| format!("key:{key_id}"), str::to_owned),
        aud: longest_audience.to_owned(),
        iat: 99_999_999_999,
        nbf: 99_999_999_999,
        exp: 99_999_999_999,
        jti: uuid::Uuid::now_v7().to_string(),
        client_id: key_id.to_owned(),
        scope: Some(scopes.join(" ")),
        tid: tenant.slug.clone(),
        ext: claims.cloned(),
        // The largest index a key can hold: the counter is a BIGINT.
        status: Some(StatusClaim::for_index(&settings.issuer, i64::MAX as u64)),
    };
    let payload = serde_json::to_vec(&claims)
        .map(|v| v.len())
        .unwrap_or(usize::MAX / 2);
    // {"typ":"at+jwt","alg":"EdDSA","kid":"<43>"} is under 90 bytes.
    let header = 90;
    let b64 = |n: usize| n.div_ceil(3) * 4;
    b64(header) + 1 + b64(payload) + 1 + 86
}

/// 422 when the largest token would exceed `tokens.max_jwt_bytes`.
pub fn check(size: usize, settings: &TokenSettings) -> Result<(), ApiError> {
    if size > settings.max_jwt_bytes {
        return Err(policy(
            "claims",
            format!(
                "this key's largest token would be {size} bytes, over tokens.max_jwt_bytes ({})",
                settings.max_jwt_bytes
            ),
        ));
    }
    Ok(())
}
