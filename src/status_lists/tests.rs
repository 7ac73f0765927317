//! Unit tests of the rebuild: statuses, and which lists are signed again.

use std::cell::RefCell;
use std::time::{Duration, Instant};

use super::build::{ListClaims, Lists, Signing, State, build};
use crate::domain::status_list::{SHARD_SIZE, Status, StatusList};
use crate::keys::store::status_index::NonValid;

const ISSUER: &str = "https://auth.example.com";
const TTL_S: u64 = 30;

/// A signer that records the `sub` of every list it signs and returns the
/// claims as JSON, so tests can read them back.
struct Recorder {
    signed: RefCell<Vec<String>>,
}

impl Recorder {
    fn new() -> Self {
        Self {
            signed: RefCell::new(Vec::new()),
        }
    }

    fn take(&self) -> Vec<String> {
        std::mem::take(&mut self.signed.borrow_mut())
    }

    fn rebuild(
        &self,
        previous: &Lists,
        state: State,
        entries: Option<NonValid>,
        kid: &str,
        now: i64,
    ) -> Lists {
        let sign = |claims: &ListClaims<'_>| {
            self.signed.borrow_mut().push(claims.sub.clone());
            serde_json::to_string(claims).map_err(|e| e.to_string())
        };
        let signing = Signing {
            issuer: ISSUER,
            ttl_s: TTL_S,
            kid,
            now,
            sign: &sign,
        };
        build(
            previous,
            state,
            entries.map(|e| (e, Instant::now())),
            &signing,
        )
        .expect("the lists build")
    }
}

fn state(version: i64, next_idx: i64) -> State {
    State { version, next_idx }
}

fn uri(id: u64) -> String {
    format!("{ISSUER}/statuslists/{id}")
}

const NOW: i64 = 1_800_000_000;

#[test]
fn entries_become_statuses_and_only_changed_lists_are_signed_again() {
    let recorder = Recorder::new();
    // Two lists: 65,536 + 10 keys handed out.
    let keys = SHARD_SIZE as i64 + 10;
    let first = recorder.rebuild(
        &Lists::empty(),
        state(1, keys),
        Some(NonValid {
            invalid: vec![3, SHARD_SIZE as i64 + 2],
            suspended: vec![4],
        }),
        "k1",
        NOW,
    );
    assert_eq!(recorder.take(), [uri(0), uri(1)]);
    assert_eq!(first.tokens.len(), 2);
    let list0 = &first.tokens[0];
    assert_eq!(list0.status(3), Some(Status::Invalid as u8));
    assert_eq!(list0.status(4), Some(Status::Suspended as u8));
    assert_eq!(list0.status(5), Some(Status::Valid as u8));
    // Lists are full size, whatever number of keys they hold yet.
    assert_eq!(list0.status(SHARD_SIZE - 1), Some(Status::Valid as u8));
    assert_eq!(first.tokens[1].status(2), Some(Status::Invalid as u8));

    // The same entries at a new version: nothing to sign, same bytes.
    let same = recorder.rebuild(
        &first,
        state(2, keys),
        Some(NonValid {
            invalid: vec![3, SHARD_SIZE as i64 + 2],
            suspended: vec![4],
        }),
        "k1",
        NOW + 1,
    );
    assert!(recorder.take().is_empty());
    assert_eq!(same.tokens[0].etag(), list0.etag());

    // One more revocation in list 1: only list 1 is signed again.
    let changed = recorder.rebuild(
        &same,
        state(3, keys),
        Some(NonValid {
            invalid: vec![3, SHARD_SIZE as i64 + 2, SHARD_SIZE as i64 + 7],
            suspended: vec![4],
        }),
        "k1",
        NOW + 2,
    );
    assert_eq!(recorder.take(), [uri(1)]);
    assert_eq!(changed.tokens[0].etag(), list0.etag());
    assert_ne!(changed.tokens[1].etag(), first.tokens[1].etag());
    assert_eq!(changed.tokens[1].status(7), Some(Status::Invalid as u8));

    // The tenant switched back on: SUSPENDED becomes VALID, list 0 only.
    let resumed = recorder.rebuild(
        &changed,
        state(4, keys),
        Some(NonValid {
            invalid: vec![3, SHARD_SIZE as i64 + 2, SHARD_SIZE as i64 + 7],
            suspended: vec![],
        }),
        "k1",
        NOW + 3,
    );
    assert_eq!(recorder.take(), [uri(0)]);
    assert_eq!(resumed.tokens[0].status(4), Some(Status::Valid as u8));
}

#[test]
fn stale_signatures_are_renewed_without_reading_entries() {
    let recorder = Recorder::new();
    let first = recorder.rebuild(
        &Lists::empty(),
        state(1, 5),
        Some(NonValid::default()),
        "k1",
        NOW,
    );
    assert_eq!(recorder.take(), [uri(0)]);
    assert!(!first.needs_signing(Some("k1"), NOW + 1, TTL_S));

    // Another key signs now: every list is signed again, statuses kept.
    assert!(first.needs_signing(Some("k2"), NOW + 1, TTL_S));
    let rotated = recorder.rebuild(&first, first.state, None, "k2", NOW + 1);
    assert_eq!(recorder.take(), [uri(0)]);
    assert_eq!(rotated.state, first.state);

    // Half the ttl old: signed again, so `iat + ttl` never lies behind.
    let half = NOW + 1 + (TTL_S / 2) as i64;
    assert!(!rotated.needs_signing(Some("k2"), half - 1, TTL_S));
    assert!(rotated.needs_signing(Some("k2"), half, TTL_S));
    let renewed = recorder.rebuild(&rotated, rotated.state, None, "k2", half);
    assert_eq!(recorder.take(), [uri(0)]);
    assert_eq!(renewed.tokens[0].iat(), half);

    // No key signs at all: nothing can be served as it is.
    assert!(renewed.needs_signing(None, half, TTL_S));
}

#[test]
fn the_signed_claims_follow_the_draft() {
    let recorder = Recorder::new();
    let lists = recorder.rebuild(
        &Lists::empty(),
        state(1, 3),
        Some(NonValid {
            invalid: vec![1],
            suspended: vec![2],
        }),
        "k1",
        NOW,
    );
    let body = lists.tokens[0].body();
    let claims: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(claims["iss"], ISSUER);
    assert_eq!(claims["sub"], uri(0));
    assert_eq!(claims["iat"], NOW);
    assert_eq!(claims["exp"], NOW + 24 * 3600);
    assert_eq!(claims["ttl"], TTL_S);
    assert_eq!(claims["status_list"]["bits"], 2);
    let decoded =
        StatusList::decode(2, claims["status_list"]["lst"].as_str().unwrap(), 1 << 20).unwrap();
    assert_eq!(decoded.len(), SHARD_SIZE);
    assert_eq!(decoded.get(0), Some(0));
    assert_eq!(decoded.get(1), Some(1));
    assert_eq!(decoded.get(2), Some(2));
    let etag = lists.tokens[0].etag();
    assert!(etag.starts_with('"') && etag.ends_with('"') && etag.len() > 2);
}

#[test]
fn lists_serve_reads_they_are_at_least_as_new_as() {
    let recorder = Recorder::new();
    let before = Instant::now();
    let lists = recorder.rebuild(
        &Lists::empty(),
        state(7, 100),
        Some(NonValid::default()),
        "k1",
        NOW,
    );
    let after = Instant::now() + Duration::from_millis(1);
    // Built for that very state.
    assert!(lists.serves(state(7, 100), after));
    // Entries read after a read of another version: they hold its changes.
    assert!(lists.serves(state(6, 100), before));
    // A read that came later and saw another version: not served.
    assert!(!lists.serves(state(8, 100), after));
    // More keys than the lists were built for: their list may be missing.
    assert!(!lists.serves(state(6, 100 + SHARD_SIZE as i64), before));
    assert!(!Lists::empty().serves(state(0, 0), before));
}

#[test]
fn lists_span_the_indices_handed_out_and_audits_cite_the_entry() {
    use crate::domain::status_list::{Publication, list_count};
    assert_eq!(list_count(0), 0);
    assert_eq!(list_count(1), 1);
    assert_eq!(list_count(SHARD_SIZE as i64), 1);
    assert_eq!(list_count(SHARD_SIZE as i64 + 1), 2);
    assert_eq!(list_count(-5), 0);
    let lists = Publication {
        issuer: ISSUER,
        ttl_s: TTL_S,
    };
    assert_eq!(
        lists.entry(Some(SHARD_SIZE as i64 + 3)),
        serde_json::json!({"uri": uri(1), "idx": 3, "visible_within_s": TTL_S})
    );
    assert_eq!(lists.entry(None), serde_json::Value::Null);
}
