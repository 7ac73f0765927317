//! Token Status Lists (draft-ietf-oauth-status-list-20), the serving side:
//! every key's entry, 65,536 to a list, signed as `statuslist+jwt` tokens
//! that downstream services fetch and then check tokens against offline.
//!
//! An entry's status: INVALID once its key is revoked or deleted, for good
//! (revocation is irreversible, so nothing makes it VALID again); else
//! SUSPENDED while the key's tenant has `api_keys_enabled` off; else VALID,
//! as is every entry not handed out yet.
//!
//! Replicas agree because every request reads the one `status_list_state`
//! row: a trigger moves its `version` in the transaction of every change
//! that may change a status (whoever makes it: API, CLI, another replica),
//! and `next_idx` moves with each new key. When the row differs from what
//! this replica's lists were built at, they are rebuilt before the answer,
//! so a revocation committed anywhere is in every replica's next answer. A
//! background refresh every [`REFRESH_EVERY`] usually has done it already.
//!
//! A rebuild reads every non-VALID entry in one go, rebuilds each list and
//! re-signs only the lists whose statuses changed or whose signature is
//! stale (see [`build`]). One rebuild runs at a time; a request that needs
//! one while another runs waits for it and uses its result if that result
//! is at least as new as what the request saw.
//!
//! Nothing here reads HTTP: the route negotiates and sets the headers.

mod build;
#[cfg(test)]
mod tests;

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use crate::db::{self, DbError, InlineReads, Pool};
use crate::domain::status_list::{TOKEN_TYPE, list_count, list_uri};
use crate::error::ApiError;
use crate::keys::store::status_index;
use crate::tokens::signing::KeyRing;
use build::{Lists, Signing};

pub use build::{LIST_LIFETIME_S, ListToken, State};

/// How often the background loop brings the lists up to date, so that a
/// request rarely pays for a rebuild.
pub const REFRESH_EVERY: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum StatusListsError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("no signing key is active")]
    NoSigner,
    #[error("signing a status list failed: {0}")]
    Sign(String),
    #[error("the status list rebuild stopped: {0}")]
    Task(String),
}

impl From<StatusListsError> for ApiError {
    fn from(err: StatusListsError) -> Self {
        match err {
            StatusListsError::Db(db) => db.into(),
            StatusListsError::NoSigner => {
                tracing::warn!("a status list cannot be signed: no signing key is active");
                ApiError::Unavailable
            }
            other => ApiError::internal(other),
        }
    }
}

/// A read of the state row and when it had completed: a rebuild whose
/// entries were read after `at` holds everything this read counted.
#[derive(Debug, Clone, Copy)]
struct Seen {
    state: State,
    at: Instant,
}

/// What a request reads through, lent by the HTTP floor.
#[derive(Clone, Copy)]
pub struct Sources<'a> {
    pub pool: &'a Pool,
    /// SQLite: the state row is read on the worker's own connection, as the
    /// token endpoints' lookups are (`db::point_read`).
    pub inline: &'a InlineReads,
    /// Signs the lists, with the key that signs access tokens.
    pub keyring: &'a KeyRing,
}

/// This replica's lists, in memory: for a million keys, 16 lists of 16 KiB
/// of statuses plus their (compressed, much smaller) signed tokens.
pub struct StatusLists {
    issuer: String,
    ttl_s: u64,
    current: RwLock<Arc<Lists>>,
    /// Held while rebuilding: one rebuild at a time.
    rebuilding: tokio::sync::Mutex<()>,
}

impl StatusLists {
    /// Empty until the first refresh or request builds them.
    pub fn new(issuer: &str, ttl_s: u64) -> Self {
        Self {
            issuer: issuer.to_owned(),
            ttl_s,
            current: RwLock::new(Arc::new(Lists::empty())),
            rebuilding: tokio::sync::Mutex::new(()),
        }
    }

    /// The lists' `ttl` (`statuslist.ttl_s`).
    pub fn ttl_s(&self) -> u64 {
        self.ttl_s
    }

    /// List `list_id` as it stands now, or `None` when no key has an entry
    /// in it (yet).
    pub async fn token(
        &self,
        sources: Sources<'_>,
        list_id: u64,
    ) -> Result<Option<Arc<ListToken>>, StatusListsError> {
        let seen = read_state(sources).await?;
        if list_id >= list_count(seen.state.next_idx) {
            return Ok(None);
        }
        let lists = self.up_to(sources, seen).await?;
        Ok(usize::try_from(list_id)
            .ok()
            .and_then(|id| lists.tokens.get(id).cloned()))
    }

    /// The URI of every list there is (the aggregation of §9).
    pub async fn uris(&self, sources: Sources<'_>) -> Result<Vec<String>, StatusListsError> {
        let seen = read_state(sources).await?;
        Ok((0..list_count(seen.state.next_idx))
            .map(|id| list_uri(&self.issuer, id))
            .collect())
    }

    /// The background refresh: brings the lists up to the database and
    /// re-signs the stale ones.
    pub async fn refresh(&self, sources: Sources<'_>) -> Result<(), StatusListsError> {
        let state = db::run(sources.pool, |conn| {
            status_index::state(conn).map_err(DbError::from)
        })
        .await?;
        let seen = Seen {
            state: State {
                version: state.0,
                next_idx: state.1,
            },
            at: Instant::now(),
        };
        self.up_to(sources, seen).await.map(drop)
    }

    fn snapshot(&self) -> Arc<Lists> {
        match self.current.read() {
            Ok(lists) => lists.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn keep(&self, lists: Arc<Lists>) {
        match self.current.write() {
            Ok(mut slot) => *slot = lists,
            Err(poisoned) => *poisoned.into_inner() = lists,
        }
    }

    /// Lists at least as new as `seen`, every one signed by the active key
    /// and fresh enough: the current ones, or a rebuild.
    async fn up_to(
        &self,
        sources: Sources<'_>,
        seen: Seen,
    ) -> Result<Arc<Lists>, StatusListsError> {
        let ready = |lists: &Lists| {
            let now = unix_now();
            let signer = sources.keyring.signer(now);
            lists.serves(seen.state, seen.at)
                && !lists.needs_signing(signer.as_ref().map(|s| s.kid.as_str()), now, self.ttl_s)
        };
        let current = self.snapshot();
        if ready(&current) {
            return Ok(current);
        }
        let _turn = self.rebuilding.lock().await;
        // Whoever held the turn may have built what this request needs.
        let current = self.snapshot();
        if ready(&current) {
            return Ok(current);
        }
        let entries = if current.serves(seen.state, seen.at) {
            // Only signatures are stale: the statuses stand.
            None
        } else {
            let read_at = Instant::now();
            let entries = db::run(sources.pool, |conn| {
                status_index::non_valid(conn).map_err(DbError::from)
            })
            .await?;
            Some((entries, read_at))
        };
        let now = unix_now();
        let signer = sources
            .keyring
            .signer(now)
            .ok_or(StatusListsError::NoSigner)?;
        let issuer = self.issuer.clone();
        let ttl_s = self.ttl_s;
        let state = if entries.is_some() {
            seen.state
        } else {
            current.state
        };
        let built = tokio::task::spawn_blocking(move || {
            let sign = |claims: &build::ListClaims<'_>| {
                signer
                    .sign_typed(TOKEN_TYPE, claims)
                    .map_err(|e| e.to_string())
            };
            let signing = Signing {
                issuer: &issuer,
                ttl_s,
                kid: &signer.kid,
                now,
                sign: &sign,
            };
            build::build(&current, state, entries, &signing)
        })
        .await
        .map_err(|e| StatusListsError::Task(e.to_string()))?
        .map_err(StatusListsError::Sign)?;
        let built = Arc::new(built);
        self.keep(built.clone());
        Ok(built)
    }
}

/// The state row, read where the token endpoints read: inline on SQLite,
/// else on the pool. One indexed row: cheap enough for every request.
async fn read_state(sources: Sources<'_>) -> Result<Seen, StatusListsError> {
    let (version, next_idx) = db::point_read(sources.pool, sources.inline, |conn| {
        status_index::state(conn).map_err(DbError::from)
    })
    .await?;
    Ok(Seen {
        state: State { version, next_idx },
        at: Instant::now(),
    })
}

fn unix_now() -> i64 {
    chrono::Utc::now().timestamp()
}
