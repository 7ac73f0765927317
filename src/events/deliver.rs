//! The delivery worker: one replica at a time (the `events` lease) takes the
//! due outbox rows, signs each as a SET and pushes it (RFC 8935), then
//! records the outcome. A failed attempt is retried with exponential backoff
//! and jitter until `events.max_attempts`, then marked failed. It runs on the
//! background loop, never on a request: the exchange does not wait for it.

use std::time::{Duration, Instant};

use chrono::Utc;
use futures_util::StreamExt;
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE};

use super::outbound::{Guard, MAX_RESPONSE_BYTES};
use super::store::{self, Attempt};
use super::{expiry, set};
use crate::config::{EventSettings, Settings};
use crate::crypto::master::{Aad, MasterKey, Purpose};
use crate::db::models::{EventStream, OutboxEvent};
use crate::db::{self, DbError, Pool, lease};
use crate::domain::events::SET_MEDIA_TYPE;
use crate::tokens::signing::KeyRing;

/// Deliveries sent per round, all at once: a round lasts at most one
/// `events.timeout_ms`, which the lease outlasts (checked at load).
const BATCH: usize = 16;
/// At most this many of one stream's deliveries per round, so one busy
/// receiver cannot take every slot (a failing one is paused, see
/// `store::pause_stream`); due rows are read four rounds' worth ahead to
/// find the others.
const PER_STREAM: usize = 4;
const LOOK_AHEAD: usize = BATCH * 4;

/// What the worker reads through.
pub struct Sources<'a> {
    pub pool: &'a Pool,
    pub keyring: &'a KeyRing,
    pub master: &'a MasterKey,
}

/// One round's work, for the log.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Round {
    pub delivered: usize,
    pub retried: usize,
    pub failed: usize,
    pub warnings: usize,
    /// The batch was full: more may be due now.
    pub full: bool,
}

/// The outbound side of events: the guard, the client and the settings.
pub struct Outbound {
    guard: Guard,
    client: reqwest::Client,
    settings: EventSettings,
    issuer: String,
    last_scan: std::sync::Mutex<Option<Instant>>,
    /// Set by [`Self::wake`]: a change here queued events.
    woken: tokio::sync::Notify,
}

impl Outbound {
    pub fn new(settings: &Settings) -> Result<Self, String> {
        let guard = Guard::new(settings.events.allowed_networks.clone());
        let client = guard
            .client(Duration::from_millis(settings.events.timeout_ms))
            .map_err(|e| format!("cannot build the events client: {e}"))?;
        Ok(Self {
            guard,
            client,
            settings: settings.events.clone(),
            issuer: settings.tokens.issuer.clone(),
            last_scan: std::sync::Mutex::default(),
            woken: tokio::sync::Notify::new(),
        })
    }

    pub fn guard(&self) -> &Guard {
        &self.guard
    }

    /// Gives up the delivery lease on a graceful stop, so another replica
    /// takes over at its next poll rather than after `events.lease_s`.
    pub async fn release(&self, pool: &Pool, holder: &str) -> Result<(), DbError> {
        let holder = holder.to_owned();
        db::run(pool, move |conn| {
            lease::release(conn, "events", &holder).map_err(DbError::from)
        })
        .await
    }

    /// Tells the worker that events may be due now.
    pub fn wake(&self) {
        self.woken.notify_one();
    }

    /// Waits for the next poll, or less when woken; never less than a few
    /// milliseconds, so a burst of changes is one round, not one each.
    pub async fn idle(&self) {
        let poll = Duration::from_millis(self.settings.poll_interval_ms);
        let floor = Duration::from_millis(10).min(poll);
        tokio::time::sleep(floor).await;
        let _ = tokio::time::timeout(poll - floor, self.woken.notified()).await;
    }

    /// One round: takes (or renews) the lease, looks for expiry warnings
    /// when they are due, and delivers what is due. `None` when another
    /// replica holds the lease.
    pub async fn tick(&self, src: Sources<'_>, holder: &str) -> Result<Option<Round>, DbError> {
        let lease_len =
            chrono::Duration::seconds(i64::try_from(self.settings.lease_s).unwrap_or(30));
        let scan = self.scan_due();
        let holder = holder.to_owned();
        let work = db::run(src.pool, move |conn| {
            let now = Utc::now().naive_utc();
            if !lease::take(conn, "events", &holder, now, lease_len)? {
                return Ok::<_, DbError>(None);
            }
            let warnings = if scan { expiry::scan(conn, now)? } else { 0 };
            Ok(Some((warnings, store::due(conn, now, LOOK_AHEAD as i64)?)))
        })
        .await?;
        let Some((warnings, read)) = work else {
            return Ok(None);
        };
        let more = read.len() == LOOK_AHEAD;
        let due = fair_share(read);
        let mut round = Round {
            warnings,
            full: more || due.len() == BATCH,
            ..Round::default()
        };
        let src = &src;
        let outcomes: Vec<(OutboxEvent, Attempt)> = futures_util::stream::iter(due)
            .map(|(event, stream)| async move {
                let attempt = self.attempt(src, &event, &stream).await;
                (event, attempt)
            })
            .buffer_unordered(BATCH)
            .collect()
            .await;
        for (_, attempt) in &outcomes {
            match attempt {
                Attempt::Delivered { .. } => round.delivered += 1,
                Attempt::Retry { .. } => round.retried += 1,
                Attempt::Failed { .. } => round.failed += 1,
            }
        }
        if !outcomes.is_empty() {
            db::run(src.pool, move |conn| {
                let now = Utc::now().naive_utc();
                for (event, attempt) in &outcomes {
                    store::record(conn, &event.id, event.attempts, attempt, now)?;
                }
                for (event, attempt) in &outcomes {
                    match attempt {
                        Attempt::Retry { at, .. } => {
                            store::pause_stream(conn, &event.stream_id, *at)?
                        }
                        Attempt::Delivered { .. } => store::resume_stream(conn, &event.stream_id)?,
                        Attempt::Failed { .. } => {}
                    }
                }
                Ok::<_, DbError>(())
            })
            .await?;
        }
        Ok(Some(round))
    }

    fn scan_due(&self) -> bool {
        let every = Duration::from_secs(self.settings.expiry_scan_s);
        let mut last = self
            .last_scan
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if last.is_some_and(|at| at.elapsed() < every) {
            return false;
        }
        *last = Some(Instant::now());
        true
    }

    /// Signs and pushes one event; what came of it.
    async fn attempt(
        &self,
        src: &Sources<'_>,
        event: &OutboxEvent,
        stream: &EventStream,
    ) -> Attempt {
        let tries = event.attempts + 1;
        let now = Utc::now();
        let Some(signer) = src.keyring.signer(now.timestamp()) else {
            return self.retry(tries, None, "no active signing key".to_owned());
        };
        let claims = set::claims(event, stream, &self.issuer);
        let jwt = match signer.sign_typed(crate::domain::events::SET_TYP, &claims) {
            Ok(jwt) => jwt,
            Err(e) => return self.retry(tries, None, format!("signing failed: {e}")),
        };
        let url = match self.guard.parse(&stream.endpoint) {
            Ok(url) => url,
            Err(why) => {
                return Attempt::Failed {
                    status: None,
                    error: format!("endpoint {why}"),
                };
            }
        };
        if let Err(why) = self.guard.check_addresses(&url).await {
            return self.retry(tries, None, format!("endpoint refused: {why}"));
        }
        let mut request = self
            .client
            .post(url)
            .header(CONTENT_TYPE, SET_MEDIA_TYPE)
            .header(ACCEPT, "application/json")
            .body(jwt);
        if let Some(sealed) = &stream.bearer_secret {
            let aad = secret_aad(stream);
            match src
                .master
                .decrypt(Purpose::EventStreamSecrets, &aad, sealed)
            {
                Ok(secret) => {
                    let secret = String::from_utf8_lossy(&secret).into_owned();
                    request = request.header(AUTHORIZATION, format!("Bearer {secret}"));
                }
                Err(_) => {
                    return self.retry(tries, None, "the bearer secret cannot be decrypted".into());
                }
            }
        }
        let response = match request.send().await {
            Ok(response) => response,
            Err(e) => return self.retry(tries, None, describe(&e)),
        };
        let status = response.status();
        let code = i32::from(status.as_u16());
        let body = read_bounded(response).await;
        if status.is_success() {
            return Attempt::Delivered { status: code };
        }
        let said = summarize(&body);
        // RFC 8935 §2.3: a 400 with an error code is the receiver refusing
        // this SET; sending the same bytes again cannot help. An admin fixes
        // the stream and replays.
        if status == reqwest::StatusCode::BAD_REQUEST && set_error(&body).is_some() {
            return Attempt::Failed {
                status: Some(code),
                error: format!("refused: {said}"),
            };
        }
        self.retry(tries, Some(code), format!("HTTP {code}: {said}"))
    }

    /// Another try after backoff, or failed when out of attempts.
    fn retry(&self, tries: i32, status: Option<i32>, error: String) -> Attempt {
        if u32::try_from(tries).unwrap_or(u32::MAX) >= self.settings.max_attempts {
            return Attempt::Failed { status, error };
        }
        Attempt::Retry {
            status,
            error,
            at: Utc::now().naive_utc() + backoff(&self.settings, tries),
        }
    }
}

/// The round's deliveries from the due rows (oldest first): at most
/// [`PER_STREAM`] of each stream, one (a probe) of a stream whose pause just
/// ended, at most [`BATCH`] in all.
fn fair_share(read: Vec<(OutboxEvent, EventStream)>) -> Vec<(OutboxEvent, EventStream)> {
    let mut taken: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    read.into_iter()
        .filter(|(event, stream)| {
            let share = if stream.paused_until.is_some() {
                1
            } else {
                PER_STREAM
            };
            let n = taken.entry(event.stream_id.clone()).or_default();
            *n += 1;
            *n <= share
        })
        .take(BATCH)
        .collect()
}

/// Where a stream's bearer secret belongs.
pub fn secret_aad(stream: &EventStream) -> Aad<'_> {
    Aad {
        table: "event_streams",
        row_id: &stream.id,
        tenant: &stream.tenant_id,
    }
}

/// The wait after the `tries`-th failed attempt: base·2^(tries−1), capped,
/// then a random point in its upper half, so receivers coming back are not
/// hit by every replica's backlog at once.
pub fn backoff(settings: &EventSettings, tries: i32) -> chrono::Duration {
    let cap_ms = settings.backoff_max_s.saturating_mul(1000);
    let exp = u32::try_from(tries.saturating_sub(1)).unwrap_or(0).min(40);
    let full = settings
        .backoff_base_ms
        .saturating_mul(1u64 << exp)
        .min(cap_ms);
    let half = full / 2;
    let jitter = if half == 0 {
        0
    } else {
        random_u64() % (half + 1)
    };
    chrono::Duration::milliseconds(i64::try_from(half + jitter).unwrap_or(i64::MAX))
}

fn random_u64() -> u64 {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; 8];
    let _ = ring::rand::SystemRandom::new().fill(&mut bytes);
    u64::from_le_bytes(bytes)
}

/// The first [`MAX_RESPONSE_BYTES`] of the answer; the rest is not read.
async fn read_bounded(mut response: reqwest::Response) -> Vec<u8> {
    let mut out = Vec::new();
    while out.len() < MAX_RESPONSE_BYTES {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                let room = MAX_RESPONSE_BYTES - out.len();
                out.extend_from_slice(&chunk[..chunk.len().min(room)]);
            }
            _ => break,
        }
    }
    out
}

/// RFC 8935's error code, when the body is its error object.
fn set_error(body: &[u8]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    value.get("err")?.as_str().map(str::to_owned)
}

/// What the receiver said, short and printable.
fn summarize(body: &[u8]) -> String {
    let text: String = String::from_utf8_lossy(body)
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(200)
        .collect();
    if text.trim().is_empty() {
        "(no body)".to_owned()
    } else {
        text.trim().to_owned()
    }
}

/// A transport error with its causes (connect refused, timeout, TLS …).
fn describe(error: &reqwest::Error) -> String {
    let mut text = if error.is_timeout() {
        "timed out".to_owned()
    } else if error.is_connect() {
        "could not connect".to_owned()
    } else {
        "request failed".to_owned()
    };
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text.chars().take(300).collect()
}
