//! Verifying keymint tokens in a downstream service, offline, against the
//! issuer's JWKS.
//!
//! ```no_run
//! # async fn run() -> Result<(), keymint::verify::VerifyError> {
//! use keymint::verify::Verifier;
//!
//! let verifier = Verifier::builder("https://auth.example.com")
//!     .audience("https://orders.example.com")
//!     .build()?;
//! let claims = verifier.verify("eyJ…").await?;
//! assert!(claims.has_scope("orders:read"));
//! # Ok(()) }
//! ```
//!
//! The key set is cached for as long as its `Cache-Control: max-age` says
//! (bounded to `[min_refresh, max_cache]`). A token naming a key the cache
//! lacks triggers one refetch, but refetches never happen more often than
//! `min_refresh`, so a flood of forged `kid`s cannot turn into a flood of
//! requests to the issuer. When refetches fail, the keys already held keep
//! working for at most `max_stale` (default 1 h) past their freshness, then
//! every token is refused with [`VerifyError::KeysUnavailable`] until a
//! fetch succeeds: whoever can block the fetch cannot keep a withdrawn key
//! trusted for longer than that.
//!
//! The issuer and JWKS URLs must be `https://`, except on loopback hosts
//! (`localhost`, 127.0.0.0/8, `::1`). Redirects are followed at most three
//! times and only to URLs that pass the same rule, never from https to http
//! ([`redirect_policy`]); the URL the key set finally came from is checked
//! again, so a client given through [`VerifierBuilder::client`] cannot
//! downgrade either.
//!
//! Checks: `typ` is `at+jwt`, the algorithm is the one the key was published
//! with (ES256 or EdDSA), the signature, `iss`, `aud`, `exp`/`nbf`/`iat`
//! within the leeway (5 s by default), and `sub` present.
//!
//! For actix-web, [`Token`] and [`Scoped`] are extractors; they find the
//! verifier in `web::Data<Verifier>`.

use std::collections::HashMap;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use actix_web::dev::Payload;
use actix_web::http::{StatusCode, header};
use actix_web::{FromRequest, HttpRequest, HttpResponse, ResponseError, web};
use jsonwebtoken::{Algorithm, DecodingKey};
use serde::Deserialize;

use crate::tokens::issue::AccessClaims;
use crate::tokens::signing::{LEEWAY_S, PublicJwk};
use crate::tokens::verify::{self as core, VerifyError as CoreError};

/// The claims of a verified token.
pub type Claims = AccessClaims;

impl AccessClaims {
    /// The token's scopes (space-separated in `scope`).
    pub fn scopes(&self) -> impl Iterator<Item = &str> {
        self.scope
            .as_deref()
            .unwrap_or("")
            .split(' ')
            .filter(|s| !s.is_empty())
    }

    pub fn has_scope(&self, wanted: &str) -> bool {
        self.scopes().any(|s| s == wanted)
    }
}

/// Largest JWKS document accepted.
const MAX_JWKS_BYTES: usize = 256 * 1024;

/// Redirects followed for one key-set fetch.
const MAX_REDIRECTS: usize = 3;

/// The longest `max_cache` and `max_stale` accepted: limits, not a way to
/// turn them off.
pub const MAX_CACHE_CEILING: Duration = Duration::from_secs(24 * 3600);

#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// The token is not acceptable; the message says why (never the token).
    #[error("invalid token: {0}")]
    Invalid(String),
    /// The token names a key the issuer does not publish (after a refetch).
    #[error("invalid token: its signing key is not published by the issuer")]
    UnknownKey,
    /// The key set could not be fetched and no cached key applies.
    #[error("the issuer's key set cannot be fetched: {0}")]
    KeysUnavailable(String),
    #[error("verifier configuration: {0}")]
    Config(String),
}

impl From<CoreError> for VerifyError {
    fn from(err: CoreError) -> Self {
        match err {
            CoreError::UnknownKey => Self::UnknownKey,
            other => Self::Invalid(other.to_string()),
        }
    }
}

pub struct VerifierBuilder {
    issuer: String,
    audience: Option<String>,
    any_audience: bool,
    jwks_uri: Option<String>,
    leeway_s: i64,
    min_refresh: Duration,
    max_cache: Duration,
    max_stale: Duration,
    timeout: Duration,
    client: Option<reqwest::Client>,
}

impl VerifierBuilder {
    /// The audience this service accepts (the token's single `aud`).
    /// Required: a token for another service must not pass here.
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audience = Some(audience.into());
        self
    }

    /// Accept any audience. Only for tools that inspect tokens (the CLI's
    /// `verify` without `--audience`), never for a service.
    pub fn any_audience(mut self) -> Self {
        self.audience = None;
        self.any_audience = true;
        self
    }

    /// Where the key set is; default `<issuer>/.well-known/jwks.json`.
    pub fn jwks_uri(mut self, uri: impl Into<String>) -> Self {
        self.jwks_uri = Some(uri.into());
        self
    }

    /// Clock leeway for `exp`/`nbf`/`iat`, 0..=60 s (default 5).
    pub fn leeway_s(mut self, leeway: i64) -> Self {
        self.leeway_s = leeway;
        self
    }

    /// The least time between two fetches of the key set (default 30 s).
    pub fn min_refresh(mut self, floor: Duration) -> Self {
        self.min_refresh = floor;
        self
    }

    /// The longest a fetched key set is fresh (default 1 h, at most 24 h),
    /// whatever its `max-age`.
    pub fn max_cache(mut self, ceiling: Duration) -> Self {
        self.max_cache = ceiling;
        self
    }

    /// How long past its freshness a key set may still be used while
    /// refetches fail (default 1 h, at most 24 h; zero: never). Past it,
    /// every token is refused until a fetch succeeds.
    pub fn max_stale(mut self, limit: Duration) -> Self {
        self.max_stale = limit;
        self
    }

    /// Timeout of one key-set fetch (default 5 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Use this HTTP client (proxies, extra roots). Build it with
    /// `.redirect(keymint::verify::redirect_policy())`: a client's redirect
    /// policy cannot be changed afterwards. Whatever it follows, a key set
    /// that arrives from a URL failing the https rule, or over http when
    /// the JWKS URL is https, is refused.
    pub fn client(mut self, client: reqwest::Client) -> Self {
        self.client = Some(client);
        self
    }

    pub fn build(self) -> Result<Verifier, VerifyError> {
        crate::tokens::crypto::install();
        let issuer = self.issuer.trim_end_matches('/').to_owned();
        let parsed =
            url::Url::parse(&issuer).map_err(|e| VerifyError::Config(format!("issuer: {e}")))?;
        secure_enough(&parsed).map_err(|e| VerifyError::Config(format!("issuer {e}")))?;
        let jwks_uri = self
            .jwks_uri
            .unwrap_or_else(|| format!("{issuer}/.well-known/jwks.json"));
        let parsed_jwks = url::Url::parse(&jwks_uri)
            .map_err(|e| VerifyError::Config(format!("jwks_uri: {e}")))?;
        secure_enough(&parsed_jwks).map_err(|e| VerifyError::Config(format!("jwks_uri {e}")))?;
        if self.audience.is_none() && !self.any_audience {
            return Err(VerifyError::Config(
                "set the audience this service accepts (or any_audience for tools)".into(),
            ));
        }
        if !(0..=60).contains(&self.leeway_s) {
            return Err(VerifyError::Config("leeway must be 0..=60 s".into()));
        }
        if self.min_refresh > self.max_cache {
            return Err(VerifyError::Config("min_refresh exceeds max_cache".into()));
        }
        if self.max_cache > MAX_CACHE_CEILING || self.max_stale > MAX_CACHE_CEILING {
            return Err(VerifyError::Config(format!(
                "max_cache and max_stale must be at most {} s",
                MAX_CACHE_CEILING.as_secs()
            )));
        }
        let client = match self.client {
            Some(client) => client,
            None => reqwest::Client::builder()
                .timeout(self.timeout)
                .redirect(redirect_policy())
                .build()
                .map_err(|e| VerifyError::Config(e.to_string()))?,
        };
        Ok(Verifier {
            inner: Arc::new(Inner {
                issuer,
                audience: self.audience,
                jwks_https: parsed_jwks.scheme() == "https",
                jwks_uri,
                leeway_s: self.leeway_s,
                min_refresh: self.min_refresh,
                max_cache: self.max_cache,
                max_stale: self.max_stale,
                client,
                cache: RwLock::new(None),
                refresh: tokio::sync::Mutex::new(()),
                fetches: std::sync::atomic::AtomicU64::new(0),
            }),
        })
    }
}

/// Verifies keymint access tokens; cheap to clone, share one per process.
#[derive(Clone)]
pub struct Verifier {
    inner: Arc<Inner>,
}

struct Inner {
    issuer: String,
    audience: Option<String>,
    jwks_uri: String,
    /// Whether the key set must keep arriving over https.
    jwks_https: bool,
    leeway_s: i64,
    min_refresh: Duration,
    max_cache: Duration,
    max_stale: Duration,
    client: reqwest::Client,
    cache: RwLock<Option<KeySet>>,
    /// One fetch at a time; waiters then read what it fetched.
    refresh: tokio::sync::Mutex<()>,
    fetches: std::sync::atomic::AtomicU64,
}

struct KeySet {
    keys: HashMap<String, (Algorithm, DecodingKey)>,
    /// When the last fetch was attempted (successful or not).
    attempted_at: Instant,
    /// Until when the keys may be used without refetching.
    fresh_until: Instant,
}

#[derive(Deserialize)]
struct JwksDocument {
    keys: Vec<serde_json::Value>,
}

enum Lookup {
    Found(DecodingKey),
    /// The key is known but published for another algorithm.
    WrongAlg,
    Missing,
    /// The key set is older than its freshness plus `max_stale`.
    TooStale,
}

impl Verifier {
    pub fn builder(issuer: impl Into<String>) -> VerifierBuilder {
        VerifierBuilder {
            issuer: issuer.into(),
            audience: None,
            any_audience: false,
            jwks_uri: None,
            leeway_s: LEEWAY_S,
            min_refresh: Duration::from_secs(30),
            max_cache: Duration::from_secs(3600),
            max_stale: Duration::from_secs(3600),
            timeout: Duration::from_secs(5),
            client: None,
        }
    }

    pub fn issuer(&self) -> &str {
        &self.inner.issuer
    }

    /// How many times the key set was fetched (for monitoring and tests).
    pub fn fetch_count(&self) -> u64 {
        self.inner
            .fetches
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Verifies `token` and returns its claims.
    pub async fn verify(&self, token: &str) -> Result<Claims, VerifyError> {
        let (kid, alg) = core::key_of(token)?;
        let key = match self.lookup(&kid, alg, false) {
            Lookup::Found(key) => key,
            Lookup::WrongAlg => return Err(VerifyError::UnknownKey),
            Lookup::Missing | Lookup::TooStale => {
                self.refresh(true).await?;
                match self.lookup(&kid, alg, true) {
                    Lookup::Found(key) => key,
                    Lookup::TooStale => return Err(self.too_stale()),
                    Lookup::WrongAlg | Lookup::Missing => return Err(VerifyError::UnknownKey),
                }
            }
        };
        let now = chrono::Utc::now().timestamp();
        let claims = core::verify_with(
            |_, _| Some(key),
            token,
            &self.inner.issuer,
            self.inner.audience.as_deref(),
            now,
            self.inner.leeway_s,
        )?;
        Ok(claims)
    }

    /// Fetches the key set now unless a fetch happened within `min_refresh`
    /// (the first call, and `verify`, use it; calling it at start-up makes
    /// the first request fast).
    pub async fn prefetch(&self) -> Result<(), VerifyError> {
        self.refresh(false).await
    }

    fn too_stale(&self) -> VerifyError {
        VerifyError::KeysUnavailable(format!(
            "refetches failed for longer than max_stale ({} s) after the cached keys went stale; \
             tokens are refused until a fetch succeeds",
            self.inner.max_stale.as_secs()
        ))
    }

    /// `stale_ok`: whether keys past their freshness may still be used
    /// (never beyond `max_stale`).
    fn lookup(&self, kid: &str, alg: Algorithm, stale_ok: bool) -> Lookup {
        let cache = self.inner.cache.read().unwrap_or_else(|p| p.into_inner());
        let Some(set) = cache.as_ref() else {
            return Lookup::Missing;
        };
        let now = Instant::now();
        if set.fresh_until <= now {
            if !stale_ok {
                return Lookup::Missing;
            }
            let trusted_until = set.fresh_until.checked_add(self.inner.max_stale);
            if trusted_until.is_none_or(|end| end <= now) {
                return Lookup::TooStale;
            }
        }
        match set.keys.get(kid) {
            Some((published, key)) if *published == alg => Lookup::Found(key.clone()),
            Some(_) => Lookup::WrongAlg,
            None => Lookup::Missing,
        }
    }

    /// Refetches the key set unless the last attempt is younger than the
    /// floor. `unknown_kid`: a refetch is wanted even if the set is fresh.
    async fn refresh(&self, unknown_kid: bool) -> Result<(), VerifyError> {
        let started = Instant::now();
        let _guard = self.inner.refresh.lock().await;
        {
            let cache = self.inner.cache.read().unwrap_or_else(|p| p.into_inner());
            if let Some(set) = cache.as_ref() {
                // Someone fetched while we waited, or the floor holds.
                let recent = set.attempted_at >= started
                    || set.attempted_at.elapsed() < self.inner.min_refresh;
                let fresh = set.fresh_until > Instant::now();
                if recent || (fresh && !unknown_kid) {
                    return Ok(());
                }
            }
        }
        self.inner
            .fetches
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        match self.fetch().await {
            Ok((keys, max_age)) => {
                let now = Instant::now();
                let ttl = max_age.clamp(self.inner.min_refresh, self.inner.max_cache);
                *self.inner.cache.write().unwrap_or_else(|p| p.into_inner()) = Some(KeySet {
                    keys,
                    attempted_at: now,
                    fresh_until: now + ttl,
                });
                Ok(())
            }
            Err(err) => {
                let mut cache = self.inner.cache.write().unwrap_or_else(|p| p.into_inner());
                match cache.as_mut() {
                    // Keep serving the keys we have; retry after the floor.
                    Some(set) => {
                        set.attempted_at = Instant::now();
                        tracing::warn!(error = %err, "JWKS refetch failed; keeping cached keys");
                        Ok(())
                    }
                    None => Err(err),
                }
            }
        }
    }

    async fn fetch(
        &self,
    ) -> Result<(HashMap<String, (Algorithm, DecodingKey)>, Duration), VerifyError> {
        let unavailable = |e: &dyn std::fmt::Display| VerifyError::KeysUnavailable(e.to_string());
        // reqwest's own message omits why (a refused redirect, say): add
        // the causes.
        let request_failed = |e: reqwest::Error| {
            let mut message = e.to_string();
            let mut cause = std::error::Error::source(&e);
            while let Some(inner) = cause {
                message.push_str(": ");
                message.push_str(&inner.to_string());
                cause = inner.source();
            }
            VerifyError::KeysUnavailable(message)
        };
        let mut response = self
            .inner
            .client
            .get(&self.inner.jwks_uri)
            .header(header::ACCEPT.as_str(), "application/json")
            .send()
            .await
            .map_err(request_failed)?;
        // Whatever the client followed, the set must come from a URL we
        // would have fetched ourselves.
        let arrived_from = response.url();
        if let Err(e) = secure_enough(arrived_from) {
            return Err(unavailable(&format!(
                "the key set was served from a URL that {e}"
            )));
        }
        if self.inner.jwks_https && arrived_from.scheme() != "https" {
            return Err(unavailable(
                &"the key set was redirected from https to http",
            ));
        }
        if !response.status().is_success() {
            return Err(unavailable(&format!("HTTP {}", response.status())));
        }
        let max_age = response
            .headers()
            .get(header::CACHE_CONTROL.as_str())
            .and_then(|v| v.to_str().ok())
            .map(max_age_of)
            .unwrap_or(Duration::from_secs(300));
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| unavailable(&e))? {
            if body.len() + chunk.len() > MAX_JWKS_BYTES {
                return Err(unavailable(&"the key set is too large"));
            }
            body.extend_from_slice(&chunk);
        }
        let document: JwksDocument =
            serde_json::from_slice(&body).map_err(|e| unavailable(&format!("bad JWKS: {e}")))?;
        let mut keys = HashMap::new();
        for value in document.keys {
            // Keys of other kinds or uses may share the set; skip them.
            let Ok(jwk) = serde_json::from_value::<PublicJwk>(value) else {
                continue;
            };
            if jwk.use_ != "sig" {
                continue;
            }
            if let Some(parsed) = jwk.decoding_key() {
                keys.insert(jwk.kid, parsed);
            }
        }
        Ok((keys, max_age))
    }
}

/// Whether keys may be fetched from (or trusted for) `url`: https, or plain
/// http to a loopback host. `Err` completes "… {e}" in a message.
fn secure_enough(url: &url::Url) -> Result<(), String> {
    match url.scheme() {
        "https" => Ok(()),
        "http" if crate::config::is_loopback_host(url) => Ok(()),
        "http" => {
            Err("must use https:// (plain http only for localhost, 127.0.0.0/8 and ::1)".to_owned())
        }
        other => Err(format!("has an unsupported scheme `{other}`")),
    }
}

/// Whether a key-set fetch that went through `previous` may follow a
/// redirect to `next`: at most [`MAX_REDIRECTS`], each target https (or
/// http on loopback), and never to http once https was used.
fn redirect_allowed(previous: &[url::Url], next: &url::Url) -> Result<(), String> {
    if previous.len() >= MAX_REDIRECTS {
        return Err(format!("more than {MAX_REDIRECTS} redirects"));
    }
    secure_enough(next).map_err(|e| format!("a redirect target {e}"))?;
    if next.scheme() != "https" && previous.iter().any(|u| u.scheme() == "https") {
        return Err("a redirect from https to http".to_owned());
    }
    Ok(())
}

/// The redirect policy of the verifier's own HTTP client (see
/// [`redirect_allowed`]); use it for a client passed to
/// [`VerifierBuilder::client`].
pub fn redirect_policy() -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(|attempt| {
        match redirect_allowed(attempt.previous(), attempt.url()) {
            Ok(()) => attempt.follow(),
            Err(refused) => attempt.error(refused),
        }
    })
}

/// `max-age` from a Cache-Control value; `no-store`/`no-cache` count as 0
/// (the floor then applies).
fn max_age_of(value: &str) -> Duration {
    let mut age = None;
    for directive in value.split(',').map(str::trim) {
        let lower = directive.to_ascii_lowercase();
        if lower == "no-store" || lower == "no-cache" {
            return Duration::ZERO;
        }
        if let Some(seconds) = lower.strip_prefix("max-age=") {
            age = seconds.trim_matches('"').parse::<u64>().ok();
        }
    }
    Duration::from_secs(age.unwrap_or(300))
}

// ---- actix-web -----------------------------------------------------------

/// Why an extractor refused the request; answers RFC 6750 challenges.
#[derive(Debug, thiserror::Error)]
pub enum Rejection {
    #[error("no bearer token")]
    Missing,
    #[error("{0}")]
    Invalid(VerifyError),
    #[error("the token lacks the `{0}` scope")]
    InsufficientScope(String),
    #[error("the verifier is not configured (web::Data<Verifier>)")]
    NotConfigured,
}

impl ResponseError for Rejection {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::Missing | Self::Invalid(VerifyError::Invalid(_) | VerifyError::UnknownKey) => {
                StatusCode::UNAUTHORIZED
            }
            Self::Invalid(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::InsufficientScope(_) => StatusCode::FORBIDDEN,
            Self::NotConfigured => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let challenge = match self {
            Self::Missing => Some("Bearer".to_owned()),
            Self::Invalid(VerifyError::Invalid(_) | VerifyError::UnknownKey) => {
                Some("Bearer error=\"invalid_token\"".to_owned())
            }
            Self::InsufficientScope(scope) => Some(format!(
                "Bearer error=\"insufficient_scope\", scope=\"{scope}\""
            )),
            _ => None,
        };
        let mut response = HttpResponse::build(self.status_code());
        if let Some(challenge) = challenge {
            response.insert_header((header::WWW_AUTHENTICATE, challenge));
        }
        response.json(serde_json::json!({ "error": self.to_string() }))
    }
}

fn bearer(req: &HttpRequest) -> Option<&str> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

async fn verify_request(req: HttpRequest) -> Result<Claims, Rejection> {
    let verifier = req
        .app_data::<web::Data<Verifier>>()
        .ok_or(Rejection::NotConfigured)?
        .clone();
    let token = bearer(&req).ok_or(Rejection::Missing)?;
    verifier.verify(token).await.map_err(Rejection::Invalid)
}

/// A request's verified bearer token (any scope).
pub struct Token(pub Claims);

impl FromRequest for Token {
    type Error = Rejection;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Rejection>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move { verify_request(req).await.map(Token) })
    }
}

/// The scopes a [`Scoped`] extractor requires, all of them.
///
/// ```
/// struct ReadOrders;
/// impl keymint::verify::RequiredScopes for ReadOrders {
///     const SCOPES: &'static [&'static str] = &["orders:read"];
/// }
/// // async fn list(token: keymint::verify::Scoped<ReadOrders>) -> … { … }
/// ```
pub trait RequiredScopes {
    const SCOPES: &'static [&'static str];
}

/// A verified bearer token holding every scope of `S`; otherwise the
/// request is refused with 401 or 403 and an RFC 6750 challenge.
pub struct Scoped<S: RequiredScopes> {
    pub claims: Claims,
    _scopes: PhantomData<S>,
}

impl<S: RequiredScopes> FromRequest for Scoped<S> {
    type Error = Rejection;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Rejection>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let claims = verify_request(req).await?;
            if let Some(missing) = S::SCOPES.iter().find(|s| !claims.has_scope(s)) {
                return Err(Rejection::InsufficientScope((*missing).to_owned()));
            }
            Ok(Scoped {
                claims,
                _scopes: PhantomData,
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_age_is_read_from_cache_control() {
        assert_eq!(max_age_of("public, max-age=120"), Duration::from_secs(120));
        assert_eq!(max_age_of("Max-Age=7"), Duration::from_secs(7));
        assert_eq!(max_age_of("no-store"), Duration::ZERO);
        assert_eq!(max_age_of("public"), Duration::from_secs(300));
        assert_eq!(max_age_of("max-age=x"), Duration::from_secs(300));
    }

    #[test]
    fn builder_refuses_bad_configuration() {
        assert!(Verifier::builder("ftp://x").audience("a").build().is_err());
        assert!(
            Verifier::builder("https://x")
                .audience("a")
                .leeway_s(61)
                .build()
                .is_err()
        );
        assert!(
            Verifier::builder("not a url")
                .audience("a")
                .build()
                .is_err()
        );
        assert!(
            Verifier::builder("https://x").build().is_err(),
            "audience is required"
        );
        assert!(
            Verifier::builder("https://x")
                .any_audience()
                .build()
                .is_ok()
        );
        assert!(Verifier::builder("https://x").audience("a").build().is_ok());
        assert!(
            Verifier::builder("https://x")
                .audience("a")
                .max_stale(MAX_CACHE_CEILING + Duration::from_secs(1))
                .build()
                .is_err()
        );
    }

    #[test]
    fn plain_http_is_refused_except_on_loopback_hosts() {
        let build = |issuer: &str| Verifier::builder(issuer).audience("a").build();
        for refused in [
            "http://auth.example.com",
            "http://10.0.0.1:8080",
            "http://[fe80::1]",
            "http://localhost.example.com",
            "http://128.0.0.1",
        ] {
            let err = build(refused)
                .err()
                .unwrap_or_else(|| panic!("{refused} accepted"));
            assert!(err.to_string().contains("https://"), "{refused}: {err}");
        }
        for accepted in [
            "https://auth.example.com",
            "http://localhost:8080",
            "http://LOCALHOST",
            "http://127.0.0.1:8080",
            "http://127.9.9.9",
            "http://[::1]:8080",
        ] {
            assert!(build(accepted).is_ok(), "{accepted}");
        }
        // The JWKS URL is held to the same rule, whatever the issuer.
        let err = Verifier::builder("https://auth.example.com")
            .audience("a")
            .jwks_uri("http://keys.example.com/jwks.json")
            .build()
            .err()
            .expect("an http JWKS URL off loopback is refused");
        assert!(err.to_string().contains("jwks_uri"), "{err}");
        assert!(
            Verifier::builder("https://auth.example.com")
                .audience("a")
                .jwks_uri("http://127.0.0.1:9/jwks.json")
                .build()
                .is_ok()
        );
    }

    /// The redirect rule, checked directly: an https test server is out of
    /// reach here (no TLS server in the dependencies), so https → http is
    /// shown on the decision the client's policy calls; tests/api/verify.rs
    /// shows the policy is wired in with a real redirect off loopback.
    #[test]
    fn redirects_never_go_to_a_weaker_scheme() {
        let url = |u: &str| url::Url::parse(u).unwrap();
        let https = url("https://auth.example.com/.well-known/jwks.json");
        let loopback = url("http://127.0.0.1:8080/jwks.json");
        assert!(
            redirect_allowed(
                std::slice::from_ref(&https),
                &url("https://cdn.example.com/k")
            )
            .is_ok()
        );
        let err = redirect_allowed(std::slice::from_ref(&https), &loopback).unwrap_err();
        assert!(err.contains("https to http"), "{err}");
        let err = redirect_allowed(
            std::slice::from_ref(&https),
            &url("http://cdn.example.com/k"),
        )
        .unwrap_err();
        assert!(err.contains("https://"), "{err}");
        assert!(
            redirect_allowed(
                std::slice::from_ref(&loopback),
                &url("http://localhost:9/k")
            )
            .is_ok()
        );
        assert!(
            redirect_allowed(
                std::slice::from_ref(&loopback),
                &url("https://auth.example.com/k")
            )
            .is_ok()
        );
        assert!(
            redirect_allowed(
                std::slice::from_ref(&loopback),
                &url("http://auth.example.com/k")
            )
            .is_err()
        );
        assert!(
            redirect_allowed(std::slice::from_ref(&loopback), &url("file:///etc/passwd")).is_err()
        );
        let three = [https.clone(), https.clone(), https.clone()];
        assert!(redirect_allowed(&three, &https).is_err(), "at most three");
    }
}
