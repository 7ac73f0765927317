//! Verifying a fetched Status List Token (§8.3 of the draft): the
//! signature with the issuer's cached key set, `typ`, `sub`, `iat`, `exp`,
//! `ttl` and the list itself, within its bounds.

use std::future::Future;
use std::time::Duration;

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;

use crate::domain::status_list::{StatusList, StatusListError};
use crate::validator::error::{StatusListProblem, VerifyError};

/// The `typ` of a Status List Token (§5.1), compared exactly.
const LIST_TOKEN_TYPE: &str = "statuslist+jwt";

#[derive(Deserialize)]
struct ListClaims {
    sub: String,
    iat: i64,
    #[serde(default)]
    exp: Option<i64>,
    #[serde(default)]
    ttl: Option<serde_json::Number>,
    status_list: ListBody,
}

#[derive(Deserialize)]
struct ListBody {
    bits: u64,
    lst: String,
}

pub(super) fn problem(p: StatusListProblem) -> VerifyError {
    VerifyError::StatusList(p)
}

pub(super) fn invalid_list(message: impl Into<String>) -> VerifyError {
    problem(StatusListProblem::Invalid(message.into()))
}

/// The verifier's bounds on a list.
pub(super) struct ListRules {
    pub(super) leeway_s: i64,
    pub(super) max_list_bytes: usize,
    /// `ttl` is clamped to `[min_fresh, max_fresh]`.
    pub(super) min_fresh: Duration,
    pub(super) max_fresh: Duration,
}

/// A list that passed every check.
pub(super) struct VerifiedList {
    pub(super) statuses: StatusList,
    pub(super) exp: Option<i64>,
    /// How long it stays fresh from now: its `ttl`, clamped.
    pub(super) ttl: Duration,
}

/// The checks of §8.3 on a fetched Status List Token: signed by a key of
/// the issuer's set (`key_for(kid, alg)`: the verifier's cache, with its
/// refetch rule), `typ` exactly `statuslist+jwt`, `sub` exactly the URI,
/// `iat` present and not ahead, `exp` not passed, a decodable list.
pub(super) async fn verify<K, F>(
    text: &str,
    uri: &str,
    rules: &ListRules,
    key_for: &K,
) -> Result<VerifiedList, VerifyError>
where
    K: Fn(String, Algorithm) -> F,
    F: Future<Output = Result<DecodingKey, VerifyError>>,
{
    let header =
        jsonwebtoken::decode_header(text).map_err(|_| invalid_list("it is not a compact JWS"))?;
    if header.typ.as_deref() != Some(LIST_TOKEN_TYPE) {
        return Err(problem(StatusListProblem::WrongType));
    }
    if !matches!(header.alg, Algorithm::ES256 | Algorithm::EdDSA) {
        return Err(invalid_list("its alg is neither ES256 nor EdDSA"));
    }
    let kid = header.kid.ok_or(problem(StatusListProblem::UnknownKey))?;
    let key = key_for(kid, header.alg).await.map_err(|e| match e {
        VerifyError::UnknownKey => problem(StatusListProblem::UnknownKey),
        other => other,
    })?;
    let mut validation = Validation::new(header.alg);
    validation.leeway = rules.leeway_s.max(0) as u64;
    validation.validate_nbf = true;
    validation.validate_aud = false;
    // `exp` is checked when present; `iat` and `status_list` are
    // required by `ListClaims`.
    validation.set_required_spec_claims(&["sub"]);
    let claims = jsonwebtoken::decode::<ListClaims>(text, &key, &validation)
        .map_err(|e| match e.kind() {
            ErrorKind::ExpiredSignature => problem(StatusListProblem::Expired),
            _ => invalid_list(e.to_string()),
        })?
        .claims;
    if claims.sub != uri {
        return Err(problem(StatusListProblem::SubjectMismatch));
    }
    let now = chrono::Utc::now().timestamp();
    if claims.iat > now.saturating_add(rules.leeway_s) {
        return Err(invalid_list("it was issued in the future"));
    }
    let ttl = freshness(rules, claims.ttl.as_ref(), claims.exp, now)?;
    let body = &claims.status_list;
    let statuses =
        StatusList::decode(body.bits, &body.lst, rules.max_list_bytes).map_err(|e| match e {
            StatusListError::TooLarge(max) => problem(StatusListProblem::ListTooLarge(max)),
            other => invalid_list(other.to_string()),
        })?;
    Ok(VerifiedList {
        statuses,
        exp: claims.exp,
        ttl,
    })
}

/// How long a list stays fresh: its `ttl` (seconds, positive), else
/// until its `exp` (§13.7), else `max_cache`; always within
/// `[min_refresh_status, max_cache]` (§11.5: no request storms).
fn freshness(
    rules: &ListRules,
    ttl: Option<&serde_json::Number>,
    exp: Option<i64>,
    now: i64,
) -> Result<Duration, VerifyError> {
    let wanted = match ttl {
        Some(ttl) => {
            let seconds = ttl
                .as_f64()
                .filter(|s| s.is_finite() && *s > 0.0)
                .ok_or_else(|| invalid_list("its ttl is not a positive number"))?;
            Duration::try_from_secs_f64(seconds).unwrap_or(rules.max_fresh)
        }
        None => exp.map_or(rules.max_fresh, |exp| {
            Duration::from_secs(u64::try_from(exp.saturating_sub(now)).unwrap_or(0))
        }),
    };
    Ok(wanted.clamp(rules.min_fresh, rules.max_fresh))
}
