//! The shared checklist of an exchange (see the module above for its
//! steps) and client authentication outside one: both authenticate and
//! admit a key the same way, behind the same failed-authentication guard,
//! and audit a refusal alike.

use std::net::IpAddr;
use std::sync::Arc;

use chrono::Utc;

use crate::audit::{self, Actor, Origin};
use crate::db::{self, AnyConnection, DbError};
use crate::error::{AuthScheme, OAuthError, OAuthErrorCode};
use crate::grants::authenticate::{admit, judge};
use crate::grants::context::Context;
use crate::grants::credential::{Credential, Flavor, TokenResponse};
use crate::grants::refusal::{Denial, Reason};
use crate::grants::signed;
use crate::keys::secret::{ApiKeySecret, SecretHash};
use crate::keys::store::{self as key_store, Candidate};
use crate::limits::{Limiter, address_bucket};
use crate::tenants;
use crate::tokens::issue::{self, Requested};

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

/// Step 6 for an admitted key: what the token will hold, with the
/// audience's registration re-checked at every issue, for a key's default
/// audience too (the tenant may have given it up since the key was made).
/// A secret's lookup read the registrations with the key; a signed
/// request's asks the database.
async fn decide(
    ctx: Context<'_>,
    candidate: &Candidate,
    requested: &Requested,
    now: chrono::NaiveDateTime,
) -> Result<issue::Decision, OAuthError> {
    let admin_audience = &ctx.tokens.admin_audience;
    let decision = issue::decide(candidate, requested, admin_audience, now)?;
    if decision.audience == *admin_audience {
        return Ok(decision);
    }
    let registered = match candidate.registers(&decision.audience) {
        Some(known) => known,
        None => {
            let (tenant, audience) = (candidate.tenant.id.clone(), decision.audience.clone());
            db::point_read(ctx.pool, ctx.inline, move |conn| {
                Ok(tenants::store::has_audience(conn, &tenant, &audience)?)
            })
            .await?
        }
    };
    if !registered {
        return Err(OAuthError::new(
            OAuthErrorCode::InvalidTarget,
            "the audience is not registered for this tenant",
        ));
    }
    Ok(decision)
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

/// The key a secret belongs to, by its hash: inline on SQLite, batched
/// per worker on PostgreSQL, on the pool when either cannot take it now.
async fn lookup(ctx: Context<'_>, hash: SecretHash) -> Result<Option<Candidate>, DbError> {
    let hash = match ctx.lookups {
        Some(lookups) => match lookups.find(hash).await {
            Ok(found) => {
                crate::metrics::point_read("batched");
                return found;
            }
            Err(hash) => hash,
        },
        None => hash,
    };
    db::point_read(ctx.pool, ctx.inline, move |conn| {
        Ok(key_store::find_by_secret_hash(conn, &hash)?)
    })
    .await
}

/// Steps 2–3, reading only: the key the proof names, usable now, or the
/// failure and the denial to record.
async fn find(
    ctx: Context<'_>,
    proof: &Proof,
    now: chrono::NaiveDateTime,
) -> Result<Result<Candidate, (Failure, Denial)>, DbError> {
    match proof {
        Proof::Secret(secret, expected_id) => {
            let found = lookup(ctx, secret.hash()).await?;
            Ok(judge(found, expected_id.as_deref(), now).map_err(|d| (Failure::Unknown, d)))
        }
        Proof::Signed(request) => {
            let (master, request) = (ctx.master.clone(), request.clone());
            db::point_read(ctx.pool, ctx.inline, move |conn| {
                Ok(signed::verify(conn, &master, &request, now)?
                    .map_err(|(error, denial)| (Failure::BadSignature(error), denial)))
            })
            .await
        }
    }
}

/// Steps 4–5 for what [`find`] found: within its rate (when `bucket` is
/// given), admitted, and for a signed request its nonce recorded; or the
/// failure, audited (a request over its rate is not: it is not a refusal of
/// the key). Only a refusal or a nonce writes, on the pool.
async fn settle(
    ctx: Context<'_>,
    found: Result<Candidate, (Failure, Denial)>,
    proof: &Proof,
    bucket: Option<&Limiter>,
    client_ip: Option<IpAddr>,
    origin: &Origin,
    now: chrono::NaiveDateTime,
) -> Result<Result<Candidate, Failure>, DbError> {
    let record = |denial: Denial| {
        let origin = origin.clone();
        db::run(ctx.pool, move |conn| {
            record_denial(conn, &denial, client_ip, &origin, now).map_err(DbError::from)
        })
    };
    let candidate = match found {
        Ok(candidate) => candidate,
        Err((failure, denial)) => {
            record(denial).await?;
            return Ok(Err(failure));
        }
    };
    if let Some(limiter) = bucket
        && let Err(retry_after_s) = spend(limiter, &candidate)
    {
        return Ok(Err(Failure::RateLimited(retry_after_s)));
    }
    if let Err(reason) = admit(&candidate, client_ip) {
        record(Denial::Key(Box::new(candidate), reason)).await?;
        return Ok(Err(Failure::Refused(reason)));
    }
    let Proof::Signed(request) = proof else {
        return Ok(Ok(candidate));
    };
    let request = request.clone();
    let origin = origin.clone();
    db::run(ctx.pool, move |conn| {
        match signed::record_nonce(conn, &request, candidate, now)? {
            Ok(candidate) => Ok(Ok(candidate)),
            Err((error, denial)) => {
                record_denial(conn, &denial, client_ip, &origin, now)?;
                Ok(Err(Failure::BadSignature(error)))
            }
        }
    })
    .await
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
    ctx: Context<'_>,
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
    let result = checklist(ctx, credential, requested, flavor, client_ip, request_id).await;
    match &result {
        Ok(_) => crate::metrics::token_issued(grant),
        Err(err) => crate::metrics::token_refused(err.code.as_str()),
    }
    result
}

/// Authenticate, admit, decide, sign.
async fn checklist(
    ctx: Context<'_>,
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
            ctx.limiter.record_failure(client_ip);
        }
        flavor.answer(failure, scheme)
    };
    ctx.limiter
        .check_address(client_ip)
        .map_err(OAuthError::rate_limited)?;
    let now = Utc::now();
    let now_naive = now.naive_utc();
    let proof = match Proof::check(credential, now.timestamp_millis()) {
        Ok(proof) => proof,
        Err(failure) => return Err(fail(failure)),
    };
    let origin = Origin {
        ip: client_ip.map(|ip| ip.to_string()),
        request_id,
    };
    let found = find(ctx, &proof, now_naive).await?;
    let settled = settle(
        ctx,
        found,
        &proof,
        Some(ctx.limiter),
        client_ip,
        &origin,
        now_naive,
    )
    .await?;
    let candidate = settled.map_err(fail)?;
    let decision = decide(ctx, &candidate, &requested, now_naive).await?;
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
    let signer = ctx.keyring.signer(now_unix).ok_or_else(|| {
        // /readyz says the same; the reload loop repairs it.
        tracing::error!("no signing key can sign");
        OAuthError::unavailable(1)
    })?;
    let claims = issue::claims(&candidate, &decision, &ctx.tokens.issuer, now_unix);
    let access_token = signer.sign(&claims).map_err(OAuthError::server_error)?;
    ctx.usage.record(&candidate.key.id, now_naive);

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
    /// Shared with the nonce's write, after the lookup.
    Signed(Arc<signed::SignedRequest>),
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
                Ok(()) => Ok(Proof::Signed(Arc::new(request))),
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
    ctx: Context<'_>,
    credential: Credential,
    flavor: &Flavor,
    client_ip: Option<IpAddr>,
    request_id: Option<String>,
) -> Result<Candidate, OAuthError> {
    ctx.limiter
        .check_address(client_ip)
        .map_err(OAuthError::rate_limited)?;
    let scheme = match &credential {
        Credential::Secret(p) => p.scheme,
        Credential::Signed(_) => AuthScheme::Hmac,
    };
    let fail = |failure: Failure| {
        if failure.is_bad_credential() {
            ctx.limiter.record_failure(client_ip);
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
        Flavor::Client => Some(ctx.limiter.clone()),
        Flavor::TokenExchange { .. } => None,
    };
    let now = Utc::now();
    let proof = match Proof::check(credential, now.timestamp_millis()) {
        Ok(proof) => proof,
        Err(failure) => return Err(fail(failure)),
    };
    let origin = Origin {
        ip: client_ip.map(|ip| ip.to_string()),
        request_id,
    };
    let now = now.naive_utc();
    let found = find(ctx, &proof, now).await.map_err(OAuthError::from)?;
    let settled = settle(
        ctx,
        found,
        &proof,
        bucket.as_deref(),
        client_ip,
        &origin,
        now,
    )
    .await
    .map_err(OAuthError::from)?;
    settled.map_err(fail)
}
