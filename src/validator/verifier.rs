//! The verifier: its builder, the cached key set and the checks.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use actix_web::http::header;
use jsonwebtoken::{Algorithm, DecodingKey};
use serde::Deserialize;

use super::claims::Claims;
use super::error::VerifyError;
use super::policy::{
    BodyError, MAX_CACHE_CEILING, max_age_of, read_bounded, redirect_policy, secure_enough,
    with_causes,
};
use super::status::{StatusLists, StatusOptions};
use crate::tokens::signing::{LEEWAY_S, PublicJwk};
use crate::tokens::verify as core;

/// Largest JWKS document accepted.
const MAX_JWKS_BYTES: usize = 256 * 1024;

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
    /// The status-list settings, checked by `status` at build.
    pub(super) status: StatusOptions,
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
    /// whatever its `max-age`; likewise a status list, whatever its `ttl`.
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
    /// `.redirect(keymint::validator::redirect_policy())`: a client's redirect
    /// policy cannot be changed afterwards. Whatever it follows, a key set
    /// that arrives from a URL failing the https rule, or over http when
    /// the JWKS URL is https, is refused.
    pub fn client(mut self, client: reqwest::Client) -> Self {
        self.client = Some(client);
        self
    }

    /// Refuse tokens that carry no `status` claim (default `false`: tokens
    /// issued before status lists have none). A token that has one is
    /// always checked.
    pub fn require_status(mut self, required: bool) -> Self {
        self.status.require = required;
        self
    }

    /// The most a status list may decompress to (default 4 MiB, at most
    /// 64 MiB); a larger one is refused, whatever its compressed size.
    pub fn max_status_list_bytes(mut self, max: usize) -> Self {
        self.status.max_list_bytes = max;
        self
    }

    /// The shortest time a fetched status list stays fresh whatever its
    /// `ttl`, and the least time between two fetches of one list (default
    /// 1 s, positive, at most `max_cache`, which is the longest).
    pub fn min_refresh_status(mut self, floor: Duration) -> Self {
        self.status.min_refresh = floor;
        self
    }

    /// How long past its freshness a status list may still be used while
    /// refetches fail or bring invalid lists (default 5 × that list's
    /// `ttl`, at most 24 h; zero: never). Past it, tokens on that list are
    /// refused with [`VerifyError::StatusUnavailable`].
    pub fn status_max_stale(mut self, limit: Duration) -> Self {
        self.status.max_stale = Some(limit);
        self
    }

    /// Fetch status lists from this origin (e.g. `http://keymint.internal:8080`)
    /// instead of the issuer's, when this service reaches keymint at another
    /// address, as [`jwks_uri`](Self::jwks_uri) does for the key set. Tokens
    /// must still name lists on the issuer's origin, and a list must still
    /// say (`sub`) that it is the one the token names. Same https rule as
    /// the issuer.
    pub fn status_origin(mut self, origin: impl Into<String>) -> Self {
        self.status.fetch_origin = Some(origin.into());
        self
    }

    pub fn build(self) -> Result<Verifier, VerifyError> {
        crate::tokens::ring_provider::install();
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
        let status = StatusLists::new(self.status, &parsed, self.leeway_s, self.max_cache)?;
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
                status,
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
    /// The status lists tokens point at, cached per URI.
    status: StatusLists,
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
            status: StatusOptions::default(),
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

    /// How many times status list tokens were fetched, over every list
    /// (for monitoring and tests).
    pub fn status_fetch_count(&self) -> u64 {
        self.inner.status.fetch_count()
    }

    /// Verifies `token` and returns its claims: the token itself first,
    /// then, only if it passes, its entry in the status list it names.
    pub async fn verify(&self, token: &str) -> Result<Claims, VerifyError> {
        let (kid, alg) = core::key_of(token)?;
        let key = self.key_for(&kid, alg).await?;
        let now = chrono::Utc::now().timestamp();
        let claims = core::verify_with(
            |_, _| Some(key),
            token,
            &self.inner.issuer,
            self.inner.audience.as_deref(),
            now,
            self.inner.leeway_s,
        )?;
        let key_for = |kid: String, alg| async move { self.key_for(&kid, alg).await };
        self.inner
            .status
            .check(claims.status.as_ref(), &self.inner.client, &key_for)
            .await?;
        Ok(claims)
    }

    /// The published key `kid` if it was published for `alg`; a key the
    /// cache lacks triggers a refetch (never within `min_refresh` of the
    /// last one). Access tokens and status list tokens both go through it.
    pub(super) async fn key_for(
        &self,
        kid: &str,
        alg: Algorithm,
    ) -> Result<DecodingKey, VerifyError> {
        match self.lookup(kid, alg, false) {
            Lookup::Found(key) => Ok(key),
            Lookup::WrongAlg => Err(VerifyError::UnknownKey),
            Lookup::Missing | Lookup::TooStale => {
                self.refresh(true).await?;
                match self.lookup(kid, alg, true) {
                    Lookup::Found(key) => Ok(key),
                    Lookup::TooStale => Err(self.too_stale()),
                    Lookup::WrongAlg | Lookup::Missing => Err(VerifyError::UnknownKey),
                }
            }
        }
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
        let request_failed = |e: reqwest::Error| VerifyError::KeysUnavailable(with_causes(&e));
        let response = self
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
        let body = read_bounded(response, MAX_JWKS_BYTES)
            .await
            .map_err(|e| match e {
                BodyError::TooLarge => unavailable(&"the key set is too large"),
                BodyError::Failed(message) => unavailable(&message),
            })?;
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
