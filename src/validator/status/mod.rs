//! The status check: a token's entry in the Token Status List it names
//! (draft-ietf-oauth-status-list-20), fetched from the issuer, verified with
//! the issuer's key set and cached per list URI.
//!
//! This module never fetches a URI off the issuer's origin (a token could
//! point anywhere), never holds more than the bounds allow (the response,
//! the decompressed list, the number of lists), and never trusts a cached
//! list past its `exp` or past `status_max_stale` beyond its freshness.
//! `reference` reads the token's claim and judges its entry; `list_token`
//! verifies a fetched list; this module caches and fetches.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use jsonwebtoken::{Algorithm, DecodingKey};
use reqwest::StatusCode;
use reqwest::header::{ACCEPT, ETAG, IF_NONE_MATCH};

use super::error::{StatusListProblem, VerifyError};
use super::policy::{BodyError, MAX_CACHE_CEILING, read_bounded, secure_enough, with_causes};
use crate::domain::status_list::{StatusClaim, StatusList};
use list_token::{ListRules, invalid_list, problem};
use reference::judge;

mod list_token;
mod reference;
#[cfg(test)]
mod tests;

const LIST_MEDIA_TYPE: &str = "application/statuslist+jwt";
/// Largest Status List Token response accepted.
const MAX_LIST_TOKEN_BYTES: usize = 1024 * 1024;
/// Default bound on a decompressed list: 2^22 entries of 8 bits, 2^24 of
/// keymint's 2.
const DEFAULT_MAX_LIST_BYTES: usize = 4 * 1024 * 1024;
/// The largest `max_status_list_bytes` accepted.
const MAX_LIST_BYTES_CEILING: usize = 64 * 1024 * 1024;
/// Without `status_max_stale`, a list may be used this many of its `ttl`s
/// past its freshness while refetches fail.
const STALE_TTLS: u32 = 5;
/// Lists cached at once; past it, lists nobody can use any more are let go.
const MAX_LISTS: usize = 1024;

/// The status settings of a `VerifierBuilder` (its setters are beside
/// the others, in `verifier`).
#[derive(Debug, Clone)]
pub(super) struct StatusOptions {
    pub(super) require: bool,
    pub(super) max_list_bytes: usize,
    pub(super) min_refresh: Duration,
    /// `None`: [`STALE_TTLS`] × the list's ttl.
    pub(super) max_stale: Option<Duration>,
    /// Where lists on the issuer's origin are fetched from, when this
    /// verifier reaches keymint at another address (as `jwks_uri` does for
    /// the key set). The token's URI still names the list (`sub`).
    pub(super) fetch_origin: Option<String>,
}

impl Default for StatusOptions {
    fn default() -> Self {
        Self {
            require: false,
            max_list_bytes: DEFAULT_MAX_LIST_BYTES,
            min_refresh: Duration::from_secs(1),
            max_stale: None,
            fetch_origin: None,
        }
    }
}

/// The lists tokens point at, each cached under its URI.
pub(super) struct StatusLists {
    options: StatusOptions,
    rules: ListRules,
    /// `options.fetch_origin`, parsed and checked.
    fetch_origin: Option<url::Url>,
    issuer: url::Url,
    entries: Mutex<HashMap<String, Arc<Entry>>>,
    fetches: AtomicU64,
}

#[derive(Default)]
struct Entry {
    held: RwLock<Held>,
    /// One fetch of this list at a time; whoever waited reads its outcome.
    fetching: tokio::sync::Mutex<()>,
}

#[derive(Default)]
struct Held {
    list: Option<Cached>,
    /// When the last fetch ended, successful or not.
    attempted_at: Option<Instant>,
    /// Why the last fetch failed, for those that waited on it.
    failure: Option<VerifyError>,
}

struct Cached {
    statuses: Arc<StatusList>,
    etag: Option<String>,
    /// The list's `exp`: past it (and the leeway), never used.
    exp: Option<i64>,
    /// How long a fetch (or a 304) keeps it fresh: its `ttl`, clamped.
    ttl: Duration,
    fresh_until: Instant,
}

enum Fetched {
    New(Cached),
    /// 304: the list held is still the issuer's.
    NotModified,
}

impl StatusLists {
    pub(super) fn new(
        options: StatusOptions,
        issuer: &url::Url,
        leeway_s: i64,
        max_cache: Duration,
    ) -> Result<Self, VerifyError> {
        let config = |m: &str| Err(VerifyError::Config(m.to_owned()));
        if options.max_list_bytes == 0 || options.max_list_bytes > MAX_LIST_BYTES_CEILING {
            return config("max_status_list_bytes must be 1..=64 MiB");
        }
        if options.min_refresh.is_zero() || options.min_refresh > max_cache {
            return config("min_refresh_status must be positive and at most max_cache");
        }
        if options.max_stale.is_some_and(|d| d > MAX_CACHE_CEILING) {
            return config("status_max_stale must be at most 24 h");
        }
        let fetch_origin = match &options.fetch_origin {
            None => None,
            Some(origin) => {
                let parsed = url::Url::parse(origin)
                    .map_err(|e| VerifyError::Config(format!("status_origin: {e}")))?;
                super::policy::secure_enough(&parsed)
                    .map_err(|e| VerifyError::Config(format!("status_origin {e}")))?;
                Some(parsed)
            }
        };
        let rules = ListRules {
            leeway_s,
            max_list_bytes: options.max_list_bytes,
            min_fresh: options.min_refresh,
            max_fresh: max_cache,
        };
        Ok(Self {
            options,
            rules,
            fetch_origin,
            issuer: issuer.clone(),
            entries: Mutex::new(HashMap::new()),
            fetches: AtomicU64::new(0),
        })
    }

    pub(super) fn fetch_count(&self) -> u64 {
        self.fetches.load(Ordering::Relaxed)
    }

    /// Checks the status claim of a token whose signature and claims were
    /// just verified; `key_for(kid, alg)` finds the issuer's keys (the
    /// verifier's cached key set).
    pub(super) async fn check<K, F>(
        &self,
        claim: Option<&StatusClaim>,
        client: &reqwest::Client,
        key_for: &K,
    ) -> Result<(), VerifyError>
    where
        K: Fn(String, Algorithm) -> F,
        F: Future<Output = Result<DecodingKey, VerifyError>>,
    {
        let Some(StatusClaim {
            status_list: reference,
        }) = claim
        else {
            return match self.options.require {
                true => Err(VerifyError::StatusMissing),
                false => Ok(()),
            };
        };
        let uri = self.on_issuer_origin(&reference.uri)?;
        let list = self.list(&reference.uri, uri, client, key_for).await?;
        judge(&list, reference.idx)
    }

    /// The list URI parsed, if it is on the issuer's origin (scheme, host,
    /// port) and carries no credentials: keymint's lists always are, and
    /// anything else would let a token send us anywhere.
    fn on_issuer_origin(&self, uri: &str) -> Result<url::Url, VerifyError> {
        let parsed = url::Url::parse(uri)
            .map_err(|_| VerifyError::BadStatus("its status list URI is not a URL".into()))?;
        let credentials = !parsed.username().is_empty() || parsed.password().is_some();
        if parsed.origin() != self.issuer.origin() || credentials {
            return Err(VerifyError::BadStatus(format!(
                "its status list URI is not on the issuer's origin {}",
                self.issuer.origin().ascii_serialization()
            )));
        }
        let Some(origin) = &self.fetch_origin else {
            return Ok(parsed);
        };
        let mut moved = origin.clone();
        moved.set_path(parsed.path());
        moved.set_query(parsed.query());
        Ok(moved)
    }

    /// The list at `uri`: the cached copy while fresh, else a fetch (one
    /// at a time per list, at most one per `min_refresh_status`); when
    /// that fails, the cached copy within its stale limit.
    async fn list<K, F>(
        &self,
        uri: &str,
        parsed: url::Url,
        client: &reqwest::Client,
        key_for: &K,
    ) -> Result<Arc<StatusList>, VerifyError>
    where
        K: Fn(String, Algorithm) -> F,
        F: Future<Output = Result<DecodingKey, VerifyError>>,
    {
        let entry = self.entry(uri);
        if let Some(list) = self.usable(&read(&entry.held), false) {
            return Ok(list);
        }
        let waited_from = Instant::now();
        let _fetching = entry.fetching.lock().await;
        let etag = {
            let held = read(&entry.held);
            if let Some(list) = self.usable(&held, false) {
                return Ok(list);
            }
            // A fetch ended while we waited, or one did too recently.
            let recent = held
                .attempted_at
                .is_some_and(|at| at >= waited_from || at.elapsed() < self.options.min_refresh);
            if recent {
                return self.fallback(&held, held.failure.clone());
            }
            held.list.as_ref().and_then(|c| c.etag.clone())
        };
        self.fetches.fetch_add(1, Ordering::Relaxed);
        let outcome = self
            .fetch(uri, parsed, etag.as_deref(), client, key_for)
            .await;
        let mut held = write(&entry.held);
        let now = Instant::now();
        held.attempted_at = Some(now);
        match outcome {
            Ok(Fetched::New(cached)) => {
                let list = cached.statuses.clone();
                held.list = Some(cached);
                held.failure = None;
                Ok(list)
            }
            Ok(Fetched::NotModified) => {
                held.failure = None;
                if let Some(cached) = held.list.as_mut() {
                    cached.fresh_until = now + cached.ttl;
                }
                self.fallback(&held, None)
            }
            Err(err) => {
                tracing::warn!(uri, error = %err, "status list fetch failed");
                held.failure = Some(err.clone());
                self.fallback(&held, Some(err))
            }
        }
    }

    /// The cached list if it may still be used (`stale_ok`: within its
    /// stale limit), never past its `exp`.
    fn usable(&self, held: &Held, stale_ok: bool) -> Option<Arc<StatusList>> {
        let cached = held.list.as_ref()?;
        if self.expired(cached) {
            return None;
        }
        let until = match stale_ok {
            true => cached.fresh_until.checked_add(self.stale_limit(cached))?,
            false => cached.fresh_until,
        };
        (Instant::now() < until).then(|| cached.statuses.clone())
    }

    fn expired(&self, cached: &Cached) -> bool {
        let now = chrono::Utc::now().timestamp();
        cached
            .exp
            .is_some_and(|exp| exp.saturating_add(self.rules.leeway_s) < now)
    }

    fn stale_limit(&self, cached: &Cached) -> Duration {
        self.options
            .max_stale
            .unwrap_or_else(|| cached.ttl.saturating_mul(STALE_TTLS))
    }

    /// What to answer when no fresh list could be had: the cached one
    /// within its limits, else why not.
    fn fallback(
        &self,
        held: &Held,
        failure: Option<VerifyError>,
    ) -> Result<Arc<StatusList>, VerifyError> {
        if let Some(list) = self.usable(held, true) {
            return Ok(list);
        }
        let Some(cached) = held.list.as_ref() else {
            return Err(failure.unwrap_or_else(|| {
                VerifyError::StatusUnavailable("no copy has been fetched yet".into())
            }));
        };
        let why = failure.map_or_else(String::new, |f| format!(" ({f})"));
        let message = match self.expired(cached) {
            true => format!("the cached list has expired and no newer one was had{why}"),
            false => format!(
                "refetches failed for more than {} s after the cached list went stale{why}",
                self.stale_limit(cached).as_secs_f64()
            ),
        };
        Err(VerifyError::StatusUnavailable(message))
    }

    /// The cache slot of `uri`, made if new; when [`MAX_LISTS`] are held,
    /// those nobody is reading and nothing could be served from go first.
    fn entry(&self, uri: &str) -> Arc<Entry> {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(entry) = entries.get(uri) {
            return entry.clone();
        }
        if entries.len() >= MAX_LISTS {
            entries.retain(|_, e| {
                Arc::strong_count(e) > 1 || self.usable(&read(&e.held), true).is_some()
            });
            if entries.len() >= MAX_LISTS {
                entries.retain(|_, e| Arc::strong_count(e) > 1);
            }
        }
        let entry = Arc::new(Entry::default());
        entries.insert(uri.to_owned(), entry.clone());
        entry
    }

    async fn fetch<K, F>(
        &self,
        uri: &str,
        parsed: url::Url,
        etag: Option<&str>,
        client: &reqwest::Client,
        key_for: &K,
    ) -> Result<Fetched, VerifyError>
    where
        K: Fn(String, Algorithm) -> F,
        F: Future<Output = Result<DecodingKey, VerifyError>>,
    {
        let unavailable = VerifyError::StatusUnavailable;
        let mut request = client.get(parsed).header(ACCEPT, LIST_MEDIA_TYPE);
        if let Some(etag) = etag {
            request = request.header(IF_NONE_MATCH, etag);
        }
        let response = request
            .send()
            .await
            .map_err(|e| unavailable(with_causes(&e)))?;
        // Whatever the client followed, the list must come from a URL we
        // would have fetched ourselves, as the key set must.
        let arrived_from = response.url();
        if let Err(e) = secure_enough(arrived_from) {
            return Err(unavailable(format!(
                "the list was served from a URL that {e}"
            )));
        }
        if self.issuer.scheme() == "https" && arrived_from.scheme() != "https" {
            return Err(unavailable(
                "the list was redirected from https to http".into(),
            ));
        }
        if response.status() == StatusCode::NOT_MODIFIED && etag.is_some() {
            return Ok(Fetched::NotModified);
        }
        if !response.status().is_success() {
            return Err(unavailable(format!("HTTP {}", response.status())));
        }
        let new_etag = response
            .headers()
            .get(ETAG)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = read_bounded(response, MAX_LIST_TOKEN_BYTES)
            .await
            .map_err(|e| match e {
                BodyError::TooLarge => problem(StatusListProblem::TooLarge(MAX_LIST_TOKEN_BYTES)),
                BodyError::Failed(message) => unavailable(message),
            })?;
        let text = std::str::from_utf8(&body)
            .map_err(|_| invalid_list("it is not a compact JWS"))?
            .trim();
        let list = list_token::verify(text, uri, &self.rules, key_for).await?;
        Ok(Fetched::New(Cached {
            statuses: Arc::new(list.statuses),
            etag: new_etag,
            exp: list.exp,
            ttl: list.ttl,
            fresh_until: Instant::now() + list.ttl,
        }))
    }
}

fn read(lock: &RwLock<Held>) -> std::sync::RwLockReadGuard<'_, Held> {
    lock.read().unwrap_or_else(|p| p.into_inner())
}

fn write(lock: &RwLock<Held>) -> std::sync::RwLockWriteGuard<'_, Held> {
    lock.write().unwrap_or_else(|p| p.into_inner())
}
