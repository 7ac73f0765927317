//! Building the lists from the non-VALID entries, and deciding which list
//! tokens to sign again. No I/O: the signature is handed in.
//!
//! A list token is signed again when its statuses changed, when the key
//! that signed it no longer signs (rotation, revocation), or once it is half
//! its `ttl` old. The last keeps `iat` recent: a verifier that refetches at
//! `iat + ttl` (the draft's §13.7 alternative to `ttl` from the fetch) would
//! otherwise refetch on every check once a quiet list's `iat` is older than
//! `ttl`, and one with an `iat` freshness policy would refuse it. That costs
//! one signature per list per half `ttl`; `exp` (a day after `iat`) is never
//! near.

use std::sync::Arc;
use std::time::Instant;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use serde::Serialize;

use crate::domain::status_list::{BITS, SHARD_SIZE, Status, StatusList, list_count, list_uri};
use crate::keys::store::status_index::NonValid;

/// A list token's lifetime (`exp - iat`). It is signed again long before;
/// `exp` bounds how long a verifier may go on using a list it can no longer
/// refresh.
pub const LIST_LIFETIME_S: i64 = 24 * 3600;

/// The state row as one read saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct State {
    pub version: i64,
    pub next_idx: i64,
}

/// The claims of a Status List Token (§5.1).
#[derive(Debug, Serialize)]
pub(super) struct ListClaims<'a> {
    pub iss: &'a str,
    /// The list's URI, exactly as tokens name it in `status.status_list.uri`.
    pub sub: String,
    pub iat: i64,
    pub exp: i64,
    pub ttl: u64,
    pub status_list: ListBody,
}

#[derive(Debug, Serialize)]
pub(super) struct ListBody {
    pub bits: u8,
    pub lst: String,
}

/// One signed list, ready to send.
pub struct ListToken {
    jwt: Bytes,
    etag: String,
    statuses: StatusList,
    kid: String,
    iat: i64,
    exp: i64,
}

impl ListToken {
    /// The compact JWS, shared rather than copied.
    pub fn body(&self) -> Bytes {
        self.jwt.clone()
    }

    /// A strong entity tag, quoted: a hash of the token's bytes.
    pub fn etag(&self) -> &str {
        &self.etag
    }

    /// The status of entry `idx`, if the list has it.
    pub fn status(&self, idx: u64) -> Option<u8> {
        self.statuses.get(idx)
    }

    pub fn iat(&self) -> i64 {
        self.iat
    }

    /// Whether this token must be signed again before it is served: `kid`
    /// is the key that signs now (`None`: none does).
    fn stale(&self, kid: Option<&str>, now: i64, ttl_s: u64) -> bool {
        let resign_after = i64::try_from(ttl_s / 2).unwrap_or(i64::MAX).max(1);
        kid != Some(self.kid.as_str())
            || now - self.iat >= resign_after
            || now - self.iat >= (self.exp - self.iat) / 2
            // A clock that went back: sign again rather than serve an `iat`
            // from the future.
            || now < self.iat
    }
}

/// Every list of one build, by list id.
pub(super) struct Lists {
    /// The state row the statuses were built for.
    pub state: State,
    /// When the entries behind the statuses were read (`None`: never).
    pub entries_at: Option<Instant>,
    pub tokens: Vec<Arc<ListToken>>,
}

impl Lists {
    pub fn empty() -> Self {
        Self {
            state: State {
                version: i64::MIN,
                next_idx: -1,
            },
            entries_at: None,
            tokens: Vec::new(),
        }
    }

    /// Whether these statuses hold every change a read of `state`, done by
    /// `at`, counted: built for that very state, or from entries read after
    /// it and covering as many keys.
    pub fn serves(&self, state: State, at: Instant) -> bool {
        self.state == state
            || (self.entries_at.is_some_and(|read| read >= at)
                && self.state.next_idx >= state.next_idx)
    }

    pub fn needs_signing(&self, kid: Option<&str>, now: i64, ttl_s: u64) -> bool {
        self.tokens.iter().any(|t| t.stale(kid, now, ttl_s))
    }
}

/// What signing a list takes.
pub(super) struct Signing<'a> {
    pub issuer: &'a str,
    pub ttl_s: u64,
    /// The key `sign` signs with.
    pub kid: &'a str,
    pub now: i64,
    pub sign: &'a dyn Fn(&ListClaims<'_>) -> Result<String, String>,
}

/// The lists for `state`: from `entries` (read at the instant given) when
/// statuses may have changed, else the statuses `previous` holds. A list
/// whose statuses equal the previous token's, and whose token is not stale,
/// keeps that token.
pub(super) fn build(
    previous: &Lists,
    state: State,
    entries: Option<(NonValid, Instant)>,
    signing: &Signing<'_>,
) -> Result<Lists, String> {
    let (statuses, entries_at) = match &entries {
        Some((entries, at)) => (fill(list_count(state.next_idx), entries)?, Some(*at)),
        None => (
            previous.tokens.iter().map(|t| t.statuses.clone()).collect(),
            previous.entries_at,
        ),
    };
    let mut tokens = Vec::with_capacity(statuses.len());
    for (id, list) in (0u64..).zip(statuses) {
        let kept = usize::try_from(id)
            .ok()
            .and_then(|i| previous.tokens.get(i))
            .filter(|t| {
                t.statuses == list && !t.stale(Some(signing.kid), signing.now, signing.ttl_s)
            });
        tokens.push(match kept {
            Some(token) => token.clone(),
            None => Arc::new(sign(id, list, signing)?),
        });
    }
    Ok(Lists {
        state,
        entries_at,
        tokens,
    })
}

/// `count` full lists, every entry VALID but those `entries` name.
fn fill(count: u64, entries: &NonValid) -> Result<Vec<StatusList>, String> {
    let mut lists = (0..count)
        .map(|_| StatusList::new(BITS, SHARD_SIZE).map_err(|e| e.to_string()))
        .collect::<Result<Vec<_>, _>>()?;
    // INVALID last: it wins, though no key is in both.
    let marks = [
        (&entries.suspended, Status::Suspended),
        (&entries.invalid, Status::Invalid),
    ];
    for (indices, status) in marks {
        for &index in indices {
            let Ok(index) = u64::try_from(index) else {
                continue;
            };
            // A key made after the state was read may lie past the last
            // list: the next read sees its `next_idx` and builds that list.
            let list = usize::try_from(index / SHARD_SIZE)
                .ok()
                .and_then(|id| lists.get_mut(id));
            if let Some(list) = list {
                list.set(index % SHARD_SIZE, status as u8);
            }
        }
    }
    Ok(lists)
}

fn sign(id: u64, statuses: StatusList, signing: &Signing<'_>) -> Result<ListToken, String> {
    let iat = signing.now;
    let exp = iat + LIST_LIFETIME_S;
    let claims = ListClaims {
        iss: signing.issuer,
        sub: list_uri(signing.issuer, id),
        iat,
        exp,
        ttl: signing.ttl_s,
        status_list: ListBody {
            bits: statuses.bits(),
            lst: statuses.encode(),
        },
    };
    let jwt = (signing.sign)(&claims)?;
    let digest = ring::digest::digest(&ring::digest::SHA256, jwt.as_bytes());
    let etag = format!("\"{}\"", URL_SAFE_NO_PAD.encode(&digest.as_ref()[..16]));
    Ok(ListToken {
        jwt: Bytes::from(jwt),
        etag,
        statuses,
        kid: signing.kid.to_owned(),
        iat,
        exp,
    })
}
