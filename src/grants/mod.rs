//! Exchanging an API key for a JWT. Each grant file turns its request into
//! [`Presented`] credentials and [`Requested`] parameters; [`exchange`] is the
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
pub mod form;
pub mod signed;
pub mod simple;
pub mod store;
pub mod token_exchange;

use std::net::IpAddr;

use chrono::Utc;
use ipnet::IpNet;
use serde::Serialize;
use zeroize::Zeroizing;

use crate::app::AppState;
use crate::audit::{self, Actor, Origin};
use crate::crypto::master::MasterKey;
use crate::db::{self, AnyConnection, DbError};
use crate::domain::cidr;
use crate::error::{AuthScheme, OAuthError, OAuthErrorCode};
use crate::keys::secret::ApiKeySecret;
use crate::keys::store::{self as key_store, Candidate};
use crate::keys::{SecurityLevel, Status};
use crate::limits::{Limiter, address_bucket};
use crate::tenants;
use crate::tokens::issue::{self, Requested};

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

/// How client authentication failed, as far as the answer goes.
enum Failure {
    /// Unknown, malformed or unusable credentials: one answer for all.
    Unknown,
    /// A signed request refused; the error says only what the client may know.
    BadSignature(signed::SignedError),
    /// Authenticated, but not admitted (tenant switch, address).
    Refused(Reason),
    /// Authenticated, but over the key's rate: retry after this many seconds.
    RateLimited(u64),
}

impl Failure {
    /// Whether it counts against the client address's failed
    /// authentications: only credentials that did not prove a key do.
    fn is_bad_credential(&self) -> bool {
        matches!(self, Failure::Unknown | Failure::BadSignature(_))
    }
}

enum Outcome {
    Failed(Failure),
    Issued(Box<Candidate>, issue::Decision),
    Rejected(OAuthError),
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

/// `token.denied` for a refused credential: a known key's denial goes to
/// its tenant with the reason; a secret that matches no key is summarised
/// per address. Either way the first per minute is written and later ones
/// only count.
fn record_denial(
    conn: &mut AnyConnection,
    denial: &Denial,
    client_ip: Option<IpAddr>,
    origin: &Origin,
    now: chrono::NaiveDateTime,
) -> diesel::QueryResult<()> {
    match denial {
        Denial::Unknown => {
            let bucket = address_bucket(client_ip);
            audit::denied(
                conn,
                audit::Record {
                    tenant_id: None,
                    action: "token.denied",
                    actor: &Actor::anonymous(),
                    origin,
                    target_type: "address",
                    target_id: &bucket,
                    success: false,
                    details: serde_json::json!({ "reason": "unknown_key" }),
                },
                &format!("unknown:{bucket}"),
                now,
            )
        }
        Denial::Key(candidate, reason) => {
            let key = &candidate.key;
            let reason = reason.as_str();
            audit::denied(
                conn,
                audit::Record {
                    tenant_id: Some(&key.tenant_id),
                    action: "token.denied",
                    actor: &Actor::key(
                        &key.id,
                        key.owner.as_deref().unwrap_or_default(),
                        &candidate.tenant.slug,
                    ),
                    origin,
                    target_type: "key",
                    target_id: &key.id,
                    success: false,
                    details: serde_json::json!({ "reason": reason }),
                },
                &format!("{}:{reason}", key.id),
                now,
            )
        }
    }
}

/// Takes one token from the key's bucket (its `rate_limit_per_s`, else the
/// tenant default).
fn spend(limiter: &Limiter, candidate: &Candidate) -> Result<(), u64> {
    let rate = candidate
        .key
        .rate_limit_per_s
        .unwrap_or(candidate.tenant.default_rate_limit_per_s);
    limiter.take(&candidate.key.id, rate)
}

/// Steps 2–5, blocking: the key the proof names, usable, within its rate
/// (when `bucket` is given) and admitted, or the failure, audited (a
/// request over its rate is not: it is not a refusal of the key).
fn identify(
    conn: &mut AnyConnection,
    master: &MasterKey,
    proof: &Proof,
    bucket: Option<&Limiter>,
    client_ip: Option<IpAddr>,
    origin: &Origin,
    now: chrono::NaiveDateTime,
) -> Result<Result<Candidate, Failure>, DbError> {
    let found = match proof {
        Proof::Secret(secret, expected_id) => {
            authenticate(conn, secret, expected_id.as_deref(), now)?
                .map_err(|denial| (Failure::Unknown, denial))
        }
        Proof::Signed(request) => signed::verify(conn, master, request, now)?
            .map_err(|(error, denial)| (Failure::BadSignature(error), denial)),
    };
    let candidate = match found {
        Ok(candidate) => candidate,
        Err((failure, denial)) => {
            record_denial(conn, &denial, client_ip, origin, now)?;
            return Ok(Err(failure));
        }
    };
    if let Some(limiter) = bucket
        && let Err(retry_after_s) = spend(limiter, &candidate)
    {
        return Ok(Err(Failure::RateLimited(retry_after_s)));
    }
    if let Err(reason) = admit(&candidate, client_ip) {
        record_denial(
            conn,
            &Denial::Key(Box::new(candidate), reason),
            client_ip,
            origin,
            now,
        )?;
        return Ok(Err(Failure::Refused(reason)));
    }
    let Proof::Signed(request) = proof else {
        return Ok(Ok(candidate));
    };
    match signed::record_nonce(conn, request, candidate, now)? {
        Ok(candidate) => Ok(Ok(candidate)),
        Err((error, denial)) => {
            record_denial(conn, &denial, client_ip, origin, now)?;
            Ok(Err(Failure::BadSignature(error)))
        }
    }
}

impl Flavor {
    /// The answer to a failed client authentication or admission.
    fn answer(&self, failure: Failure, scheme: AuthScheme) -> OAuthError {
        match failure {
            Failure::Unknown => match self {
                Flavor::Client => OAuthError::invalid_client(scheme),
                Flavor::TokenExchange { .. } => {
                    OAuthError::invalid_request("subject_token is invalid")
                }
            },
            Failure::BadSignature(err) => OAuthError::from(err),
            Failure::RateLimited(retry_after_s) => OAuthError::rate_limited(retry_after_s),
            Failure::Refused(reason) => {
                let description = match reason {
                    Reason::ApiKeysDisabled => "API keys are disabled for this tenant",
                    _ => "this key may not be used from this address",
                };
                match self {
                    Flavor::Client => {
                        OAuthError::new(OAuthErrorCode::UnauthorizedClient, description)
                    }
                    Flavor::TokenExchange { .. } => OAuthError::invalid_request(description),
                }
            }
        }
    }
}

/// The shared checklist, counted in the metrics by grant and refusal reason.
pub async fn exchange(
    state: &AppState,
    credential: Credential,
    requested: Requested,
    flavor: Flavor,
    client_ip: Option<IpAddr>,
    request_id: Option<String>,
) -> Result<TokenResponse, OAuthError> {
    let grant = match (&flavor, &credential) {
        (Flavor::TokenExchange { .. }, _) => "token_exchange",
        (Flavor::Client, Credential::Signed(_)) => "signed_request",
        (Flavor::Client, Credential::Secret(p)) if p.scheme == AuthScheme::ApiKey => "api_key",
        (Flavor::Client, Credential::Secret(_)) => "client_credentials",
    };
    let result = checklist(state, credential, requested, flavor, client_ip, request_id).await;
    match &result {
        Ok(_) => crate::metrics::token_issued(grant),
        Err(err) => crate::metrics::token_refused(err.code.as_str()),
    }
    result
}

/// Authenticate, admit, decide, sign.
async fn checklist(
    state: &AppState,
    credential: Credential,
    requested: Requested,
    flavor: Flavor,
    client_ip: Option<IpAddr>,
    request_id: Option<String>,
) -> Result<TokenResponse, OAuthError> {
    let scheme = match &credential {
        Credential::Secret(p) => p.scheme,
        Credential::Signed(_) => AuthScheme::Hmac,
    };
    let fail = |failure: Failure| {
        if failure.is_bad_credential() {
            state.limiter.record_failure(client_ip);
        }
        flavor.answer(failure, scheme)
    };
    state
        .limiter
        .check_address(client_ip)
        .map_err(OAuthError::rate_limited)?;
    let now = Utc::now();
    let now_naive = now.naive_utc();
    let proof = match Proof::check(credential, now.timestamp_millis()) {
        Ok(proof) => proof,
        Err(failure) => return Err(fail(failure)),
    };
    let admin_audience = state.settings.tokens.admin_audience.clone();
    let master = state.master.clone();
    let limiter = state.limiter.clone();
    let origin = Origin {
        ip: client_ip.map(|ip| ip.to_string()),
        request_id,
    };
    let outcome = db::run(&state.pool, move |conn| {
        let identified = identify(
            conn,
            &master,
            &proof,
            Some(&limiter),
            client_ip,
            &origin,
            now_naive,
        )?;
        let candidate = match identified {
            Ok(candidate) => candidate,
            Err(failure) => return Ok::<_, OAuthError>(Outcome::Failed(failure)),
        };
        let decision = match issue::decide(&candidate, &requested, &admin_audience, now_naive) {
            Ok(decision) => decision,
            Err(err) => return Ok(Outcome::Rejected(err)),
        };
        // Registration is re-checked at every issue, for a key's default
        // audience too: the tenant may have given it up since the key was
        // made.
        if decision.audience != admin_audience
            && !tenants::has_audience(conn, &candidate.tenant.id, &decision.audience)?
        {
            return Ok(Outcome::Rejected(OAuthError::new(
                OAuthErrorCode::InvalidTarget,
                "the audience is not registered for this tenant",
            )));
        }
        Ok(Outcome::Issued(Box::new(candidate), decision))
    })
    .await?;

    let (candidate, decision) = match outcome {
        Outcome::Failed(failure) => return Err(fail(failure)),
        Outcome::Rejected(err) => return Err(err),
        Outcome::Issued(candidate, decision) => (candidate, decision),
    };
    if let Flavor::TokenExchange {
        client_key_id: Some(client),
        ..
    } = &flavor
        && *client != candidate.key.id
    {
        return Err(OAuthError::invalid_request(
            "the authenticated client is not the subject_token's key",
        ));
    }

    let now_unix = now.timestamp();
    let signer = state.keyring.signer(now_unix).ok_or_else(|| {
        // /readyz says the same; the reload loop repairs it.
        tracing::error!("no signing key can sign");
        OAuthError::unavailable(1)
    })?;
    let claims = issue::claims(
        &candidate,
        &decision,
        &state.settings.tokens.issuer,
        now_unix,
    );
    let access_token = signer.sign(&claims).map_err(OAuthError::server_error)?;
    state.usage.record(&candidate.key.id, now_naive);

    Ok(TokenResponse {
        access_token,
        token_type: "Bearer",
        expires_in: decision.ttl_s,
        scope: claims.scope,
        issued_token_type: match flavor {
            Flavor::TokenExchange {
                issued_token_type, ..
            } => Some(issued_token_type),
            Flavor::Client => None,
        },
    })
}

/// What was presented, once its form has been checked.
enum Proof {
    Secret(ApiKeySecret, Option<String>),
    Signed(signed::SignedRequest),
}

impl Proof {
    /// Step 1, before any database work: a secret's format and checksum, a
    /// signed request's timestamp.
    fn check(credential: Credential, now_ms: i64) -> Result<Self, Failure> {
        match credential {
            Credential::Secret(presented) => match ApiKeySecret::parse(&presented.secret) {
                Ok(secret) => Ok(Proof::Secret(secret, presented.key_id)),
                Err(_) => Err(Failure::Unknown),
            },
            Credential::Signed(request) => match request.check_timestamp(now_ms) {
                Ok(()) => Ok(Proof::Signed(request)),
                Err(err) => Err(Failure::BadSignature(err)),
            },
        }
    }
}

/// Client authentication outside an exchange (token exchange's optional
/// client, introspection, revocation): the same checks as the exchange —
/// a usable key, admitted by [`admit`] — behind the same
/// failed-authentication guard, audited alike. `flavor` says how a refusal
/// answers.
pub async fn authenticate_client(
    state: &AppState,
    credential: Credential,
    flavor: &Flavor,
    client_ip: Option<IpAddr>,
    request_id: Option<String>,
) -> Result<Candidate, OAuthError> {
    state
        .limiter
        .check_address(client_ip)
        .map_err(OAuthError::rate_limited)?;
    let scheme = match &credential {
        Credential::Secret(p) => p.scheme,
        Credential::Signed(_) => AuthScheme::Hmac,
    };
    let fail = |failure: Failure| {
        if failure.is_bad_credential() {
            state.limiter.record_failure(client_ip);
        }
        // A client that failed to authenticate is `invalid_client` whatever
        // the grant; only a refusal after it follows the grant's answers.
        match failure {
            Failure::Refused(_) => flavor.answer(failure, scheme),
            other => Flavor::Client.answer(other, scheme),
        }
    };
    // Introspection and revocation spend the caller key's bucket like an
    // exchange. The token exchange's optional client must be the subject's
    // key, whose bucket the exchange that follows spends: once is enough.
    let bucket = match flavor {
        Flavor::Client => Some(state.limiter.clone()),
        Flavor::TokenExchange { .. } => None,
    };
    let now = Utc::now();
    let proof = match Proof::check(credential, now.timestamp_millis()) {
        Ok(proof) => proof,
        Err(failure) => return Err(fail(failure)),
    };
    let master = state.master.clone();
    let origin = Origin {
        ip: client_ip.map(|ip| ip.to_string()),
        request_id,
    };
    let found = db::run(&state.pool, move |conn| {
        identify(
            conn,
            &master,
            &proof,
            bucket.as_deref(),
            client_ip,
            &origin,
            now.naive_utc(),
        )
    })
    .await
    .map_err(OAuthError::from)?;
    found.map_err(fail)
}
