//! What a token may hold: the TTL, audience and scope rules of the token
//! endpoint, and the RFC 9068 claims. Shared by every grant.

use std::collections::BTreeSet;

use chrono::NaiveDateTime;
use serde::{Deserialize, Serialize};

use crate::db::models::Tenant;
use crate::domain::scope;
use crate::domain::status_list::StatusClaim;
use crate::domain::text::ascii_quote;
use crate::error::{OAuthError, OAuthErrorCode};
use crate::keys::store::Candidate;

pub const MIN_TTL_S: i64 = 30;
pub const MAX_TTL_S: i64 = 3600;

/// The RFC 9068 access-token claims keymint issues.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AccessClaims {
    pub iss: String,
    pub sub: String,
    pub aud: String,
    pub iat: i64,
    pub nbf: i64,
    pub exp: i64,
    pub jti: String,
    pub client_id: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub scope: Option<String>,
    pub tid: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub ext: Option<serde_json::Value>,
    /// Where verifiers read the key's status (Token Status List): every
    /// token of a key names the key's entry, so revoking the key reaches
    /// offline verifiers within the list's `ttl`.
    #[serde(
        skip_serializing_if = "Option::is_none",
        default,
        deserialize_with = "present"
    )]
    pub status: Option<StatusClaim>,
}

/// A `status` member, when there is one, must be a status claim: `null`
/// is malformed, not absent.
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<StatusClaim>, D::Error> {
    StatusClaim::deserialize(d).map(Some)
}

/// What the client asked for, as sent (not yet validated).
#[derive(Debug, Default, Clone)]
pub struct Requested {
    pub expires_in: Option<String>,
    pub scope: Option<String>,
    pub audience: Option<String>,
    pub resource: Option<String>,
}

/// What the token will hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub ttl_s: i64,
    pub audience: String,
    pub scopes: BTreeSet<String>,
}

fn invalid_scope(description: String) -> OAuthError {
    OAuthError::new(OAuthErrorCode::InvalidScope, description)
}

fn invalid_target(description: &str) -> OAuthError {
    OAuthError::new(OAuthErrorCode::InvalidTarget, description)
}

/// Applies the TTL, audience and scope rules to an authenticated key.
pub fn decide(
    candidate: &Candidate,
    requested: &Requested,
    admin_audience: &str,
    now: NaiveDateTime,
) -> Result<Decision, OAuthError> {
    let key = &candidate.key;
    let tenant: &Tenant = &candidate.tenant;

    let max_ttl = key
        .max_token_ttl_s
        .unwrap_or(MAX_TTL_S)
        .min(tenant.max_token_ttl_s)
        .clamp(MIN_TTL_S, MAX_TTL_S);
    let mut ttl_s = match requested.expires_in.as_deref() {
        None => tenant.default_token_ttl_s.min(max_ttl),
        Some(raw) => parse_ttl(raw)
            .filter(|ttl| (MIN_TTL_S..=max_ttl).contains(ttl))
            .ok_or_else(|| {
                OAuthError::invalid_request(format!(
                    "expires_in must be a whole number of seconds from {MIN_TTL_S} to {max_ttl}"
                ))
            })?,
    };
    // Never outlive the key, nor a previous secret's grace period.
    if let Some(expires_at) = key.expires_at {
        ttl_s = ttl_s.min((expires_at - now).num_seconds());
    }
    if candidate.via_previous
        && let Some(grace_end) = key.previous_expires_at
    {
        ttl_s = ttl_s.min((grace_end - now).num_seconds());
    }
    if ttl_s <= 0 {
        return Err(OAuthError::invalid_request("the key has expired"));
    }

    let key_scopes = key.scope_list();
    let key_audiences = key.audience_list();
    let holds_reserved = key_scopes.iter().any(|s| scope::is_reserved(s));

    let wanted = match (&requested.audience, &requested.resource) {
        (Some(_), Some(_)) => {
            return Err(OAuthError::invalid_request(
                "send at most one of audience and resource",
            ));
        }
        (Some(a), None) | (None, Some(a)) => Some(a.as_str()),
        (None, None) => None,
    };
    // Whether the audience is registered to the tenant is the caller's
    // check (a database look-up), for every audience but the admin one.
    let audience = match wanted {
        Some(aud) => {
            if !crate::domain::audience::is_valid(aud) {
                return Err(invalid_target(
                    "the audience must be an absolute URI or a urn:",
                ));
            }
            if aud == admin_audience {
                if !holds_reserved {
                    return Err(invalid_target("this key may not address the admin API"));
                }
            } else if !key_audiences.is_empty() && !key_audiences.iter().any(|a| a == aud) {
                return Err(invalid_target("the audience is not allowed for this key"));
            }
            aud.to_owned()
        }
        None => match key_audiences.first() {
            Some(first) => first.clone(),
            None if holds_reserved && key_scopes.iter().all(|s| scope::is_reserved(s)) => {
                admin_audience.to_owned()
            }
            None => tenant.default_audience.clone(),
        },
    };
    let for_admin = audience == admin_audience;

    let scopes = match requested.scope.as_deref() {
        Some(raw) => {
            let wanted = scope::parse_request(raw).map_err(|bad| {
                invalid_scope(format!("scope `{}` is malformed", ascii_quote(&bad)))
            })?;
            for s in &wanted {
                if !key_scopes.iter().any(|k| k == s) {
                    return Err(invalid_scope(format!(
                        "scope `{s}` is not held by this key"
                    )));
                }
                if scope::is_reserved(s) != for_admin {
                    return Err(invalid_scope(format!(
                        "scope `{s}` cannot be granted for this audience"
                    )));
                }
            }
            wanted
        }
        None => key_scopes
            .into_iter()
            .filter(|s| scope::is_reserved(s) == for_admin)
            .collect(),
    };

    Ok(Decision {
        ttl_s,
        audience,
        scopes,
    })
}

/// A decimal integer of at most 10 digits, nothing else.
fn parse_ttl(raw: &str) -> Option<i64> {
    if raw.is_empty() || raw.len() > 10 || !raw.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    raw.parse().ok()
}

/// The claims for a decision, `iat` in whole seconds.
pub fn claims(
    candidate: &Candidate,
    decision: &Decision,
    issuer: &str,
    now_unix: i64,
) -> AccessClaims {
    let key = &candidate.key;
    AccessClaims {
        iss: issuer.to_owned(),
        sub: key
            .owner
            .clone()
            .unwrap_or_else(|| format!("key:{}", key.id)),
        aud: decision.audience.clone(),
        iat: now_unix,
        nbf: now_unix,
        exp: now_unix + decision.ttl_s,
        jti: uuid::Uuid::now_v7().to_string(),
        client_id: key.id.clone(),
        scope: (!decision.scopes.is_empty()).then(|| {
            decision
                .scopes
                .iter()
                .cloned()
                .collect::<Vec<_>>()
                .join(" ")
        }),
        tid: candidate.tenant.slug.clone(),
        ext: key
            .claims
            .as_deref()
            .and_then(|c| serde_json::from_str(c).ok()),
        status: key
            .status_idx
            .and_then(|index| u64::try_from(index).ok())
            .map(|index| StatusClaim::for_index(issuer, index)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_parsing_is_strict() {
        assert_eq!(parse_ttl("600"), Some(600));
        assert_eq!(parse_ttl("+600"), None);
        assert_eq!(parse_ttl("6e2"), None);
        assert_eq!(parse_ttl(" 600"), None);
        assert_eq!(parse_ttl("99999999999"), None);
        assert_eq!(parse_ttl(""), None);
    }
}
