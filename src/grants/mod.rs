//! Exchanging an API key for a JWT. Each grant file turns its request into
//! [`Presented`] credentials and [`Requested`] parameters; [`exchange`] is the
//! one checklist they share, in this order:
//!
//! 1. parse the secret (format and checksum) — no database work for garbage;
//! 2. one indexed query: key and tenant policy by the secret's hash;
//! 3. the key is the named one, standard, active, within any grace period;
//! 4. the tenant allows exchanges, from this address;
//! 5. TTL, audience and scope rules; a requested audience is registered;
//! 6. sign, count the use in memory.
//!
//! Failures in 1–3 answer identically whatever the cause: which answer
//! depends on the grant ([`Flavor`]).

pub mod client_credentials;
pub mod form;
pub mod signed;
pub mod simple;
pub mod token_exchange;

use std::net::IpAddr;

use chrono::Utc;
use ipnet::IpNet;
use serde::Serialize;
use zeroize::Zeroizing;

use crate::audit::{self, Actor, Origin};
use crate::db::{self, AnyConnection};
use crate::domain::cidr;
use crate::error::{AuthScheme, OAuthError, OAuthErrorCode};
use crate::keys::secret::ApiKeySecret;
use crate::keys::store::{self, Candidate};
use crate::keys::{SecurityLevel, Status};
use crate::startup::AppState;
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

/// Why an authenticated key may not exchange now.
enum Refusal {
    Disabled,
    Address,
}

enum Outcome {
    Unknown,
    BadSignature(signed::SignedError),
    Refused(Refusal),
    Issued(Box<Candidate>, issue::Decision),
    Rejected(OAuthError),
}

/// Finds the active standard key a secret belongs to, or nothing, whatever
/// the reason. `expected_id`, when given, must be the key's id.
pub fn authenticate(
    conn: &mut AnyConnection,
    secret: &ApiKeySecret,
    expected_id: Option<&str>,
    now: chrono::NaiveDateTime,
) -> diesel::QueryResult<Option<Candidate>> {
    let Some(candidate) = store::find_by_secret_hash(conn, &secret.hash())? else {
        return Ok(None);
    };
    let key = &candidate.key;
    let usable = expected_id.is_none_or(|id| id == key.id)
        && key.security_level == SecurityLevel::Standard.as_str()
        && key.status(now) == Status::Active
        && (!candidate.via_previous || key.previous_expires_at.is_some_and(|end| end > now));
    Ok(usable.then_some(candidate))
}

fn admit(candidate: &Candidate, ip: Option<IpAddr>) -> Result<(), Refusal> {
    let tenant = &candidate.tenant;
    if !tenant.api_keys_enabled {
        return Err(Refusal::Disabled);
    }
    let key_list: Option<Vec<IpNet>> = candidate.key.ip_allowlist.as_deref().map(cidr::parse_list);
    if tenant.require_ip_allowlist && key_list.as_ref().is_none_or(Vec::is_empty) {
        return Err(Refusal::Address);
    }
    let tenant_ranges = cidr::parse_list(&tenant.allowed_ip_ranges);
    if !tenant_ranges.is_empty() && !cidr::admits(&tenant_ranges, ip) {
        return Err(Refusal::Address);
    }
    if let Some(list) = key_list
        && !cidr::admits(&list, ip)
    {
        return Err(Refusal::Address);
    }
    Ok(())
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
    let unknown = |flavor: &Flavor| {
        state.limiter.record_failure(client_ip);
        match flavor {
            Flavor::Client => OAuthError::invalid_client(scheme),
            Flavor::TokenExchange { .. } => OAuthError::invalid_request("subject_token is invalid"),
        }
    };
    state
        .limiter
        .check_address(client_ip)
        .map_err(OAuthError::rate_limited)?;
    let now = Utc::now();
    let now_naive = now.naive_utc();
    let proof = match credential {
        Credential::Secret(presented) => {
            let Ok(secret) = ApiKeySecret::parse(&presented.secret) else {
                return Err(unknown(&flavor));
            };
            Proof::Secret(secret, presented.key_id)
        }
        Credential::Signed(request) => {
            if let Err(err) = request.check_timestamp(now.timestamp_millis()) {
                state.limiter.record_failure(client_ip);
                return Err(OAuthError::bad_signature(err));
            }
            Proof::Signed(request)
        }
    };
    let admin_audience = state.settings.tokens.admin_audience.clone();
    let master = state.master.clone();
    let origin = Origin {
        ip: client_ip.map(|ip| ip.to_string()),
        request_id,
    };
    let outcome = db::run(&state.pool, move |conn| {
        let found = match &proof {
            Proof::Secret(secret, expected_id) => {
                authenticate(conn, secret, expected_id.as_deref(), now_naive)?
            }
            Proof::Signed(request) => match signed::verify(conn, &master, request, now_naive)? {
                Ok(candidate) => Some(candidate),
                Err(err) => return Ok(Outcome::BadSignature(err)),
            },
        };
        let Some(candidate) = found else {
            let bucket = address_bucket(client_ip);
            audit::denied(
                conn,
                audit::Record {
                    tenant_id: None,
                    action: "token.denied",
                    actor: &Actor::anonymous(),
                    origin: &origin,
                    target_type: "address",
                    target_id: &bucket,
                    success: false,
                    details: serde_json::json!({ "reason": "unknown_key" }),
                },
                &format!("unknown:{bucket}"),
                now_naive,
            )?;
            return Ok::<_, OAuthError>(Outcome::Unknown);
        };
        if let Err(refusal) = admit(&candidate, client_ip) {
            let reason = match refusal {
                Refusal::Disabled => "api_keys_disabled",
                Refusal::Address => "address_not_allowed",
            };
            let key = &candidate.key;
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
                    origin: &origin,
                    target_type: "key",
                    target_id: &key.id,
                    success: false,
                    details: serde_json::json!({ "reason": reason }),
                },
                &format!("{}:{reason}", key.id),
                now_naive,
            )?;
            return Ok(Outcome::Refused(refusal));
        }
        let decision = match issue::decide(&candidate, &requested, &admin_audience, now_naive) {
            Ok(decision) => decision,
            Err(err) => return Ok(Outcome::Rejected(err)),
        };
        if decision.check_registered
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
        Outcome::Unknown => return Err(unknown(&flavor)),
        Outcome::BadSignature(err) => {
            state.limiter.record_failure(client_ip);
            return Err(OAuthError::bad_signature(err));
        }
        Outcome::Refused(refusal) => {
            let description = match refusal {
                Refusal::Disabled => "API keys are disabled for this tenant",
                Refusal::Address => "this key may not be used from this address",
            };
            return Err(match flavor {
                Flavor::Client => OAuthError::new(OAuthErrorCode::UnauthorizedClient, description),
                Flavor::TokenExchange { .. } => OAuthError::invalid_request(description),
            });
        }
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

    let rate = candidate
        .key
        .rate_limit_per_s
        .unwrap_or(candidate.tenant.default_rate_limit_per_s);
    state
        .limiter
        .take(&candidate.key.id, rate)
        .map_err(OAuthError::rate_limited)?;

    let now_unix = now.timestamp();
    let signer = state
        .keyring
        .signer(now_unix)
        .ok_or_else(|| OAuthError::server_error("no active signing key"))?;
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

/// Unknown-key denials are summarised per address: an IPv4 address, or the
/// /64 an IPv6 address belongs to.
pub fn address_bucket(ip: Option<IpAddr>) -> String {
    match ip {
        Some(IpAddr::V6(v6)) => IpNet::new(IpAddr::V6(v6), 64)
            .map(|n| n.trunc().to_string())
            .unwrap_or_else(|_| v6.to_string()),
        Some(v4) => v4.to_string(),
        None => "unknown".to_owned(),
    }
}

/// Splits `Authorization` into scheme and credentials; the scheme compares
/// case-insensitively.
pub fn split_authorization(value: &str) -> Option<(&str, &str)> {
    let (scheme, rest) = value.trim().split_once(' ')?;
    Some((scheme, rest.trim()))
}

/// Client authentication outside an exchange (token exchange's optional
/// client, introspection, revocation): a usable key of an enabled tenant,
/// behind the same failed-authentication guard.
pub async fn authenticate_client(
    state: &AppState,
    credential: Credential,
    client_ip: Option<IpAddr>,
) -> Result<Candidate, OAuthError> {
    state
        .limiter
        .check_address(client_ip)
        .map_err(OAuthError::rate_limited)?;
    let refuse = |err: OAuthError| {
        state.limiter.record_failure(client_ip);
        err
    };
    let now = Utc::now();
    let proof = match credential {
        Credential::Secret(presented) => {
            let Ok(secret) = ApiKeySecret::parse(&presented.secret) else {
                return Err(refuse(OAuthError::invalid_client(presented.scheme)));
            };
            Proof::Secret(secret, presented.key_id)
        }
        Credential::Signed(request) => {
            if let Err(err) = request.check_timestamp(now.timestamp_millis()) {
                return Err(refuse(OAuthError::bad_signature(err)));
            }
            Proof::Signed(request)
        }
    };
    let scheme = match &proof {
        Proof::Secret(..) => AuthScheme::Basic,
        Proof::Signed(_) => AuthScheme::Hmac,
    };
    let master = state.master.clone();
    let found = db::run(&state.pool, move |conn| {
        let found = match &proof {
            Proof::Secret(secret, expected) => {
                authenticate(conn, secret, expected.as_deref(), now.naive_utc())?.ok_or(None)
            }
            Proof::Signed(request) => {
                signed::verify(conn, &master, request, now.naive_utc())?.map_err(Some)
            }
        };
        Ok::<_, OAuthError>(found)
    })
    .await?;
    match found {
        Ok(candidate) if candidate.tenant.api_keys_enabled => Ok(candidate),
        Ok(_) | Err(None) => Err(refuse(OAuthError::invalid_client(scheme))),
        Err(Some(err)) => Err(refuse(OAuthError::bad_signature(err))),
    }
}
