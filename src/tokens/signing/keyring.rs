//! The in-memory key ring: every key that may sign or must verify, parsed
//! once, swapped whole on reload.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use bytes::Bytes;
use chrono::{Duration, NaiveDateTime};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header};
use serde::Serialize;

use super::error::SigningError;
use super::jwk::{PublicJwk, parse_alg};
use super::schedule::{is_live, secs};
use super::store::aad;
use crate::config::SigningSettings;
use crate::crypto::master::{MasterKey, Purpose};
use crate::db::models::SigningKeyRow;
use crate::tokens::ring_provider;

/// The longest token we issue, plus the validation leeway: how long after its
/// last signature a key must still verify.
pub const MAX_TOKEN_TTL_S: i64 = 3600;
pub const LEEWAY_S: i64 = 5;
pub const TOKEN_TYPE: &str = "at+jwt";

/// A key that can sign, parsed once.
pub struct Signer {
    pub kid: String,
    pub alg: Algorithm,
    encoding: EncodingKey,
    header: Header,
    /// Keeps the parsed pair in `crypto`'s cache, where `sign` finds it,
    /// exactly as long as this signer is in use.
    _parsed: Arc<ring_provider::ParsedKey>,
}

impl Signer {
    /// Signs claims into a compact JWT with `typ: at+jwt` and this `kid`.
    pub fn sign<T: Serialize>(&self, claims: &T) -> Result<String, jsonwebtoken::errors::Error> {
        jsonwebtoken::encode(&self.header, claims, &self.encoding)
    }

    /// Signs claims with this `kid` and another explicit `typ` (RFC 8725
    /// §3.11), e.g. a Token Status List's `statuslist+jwt`, so that no
    /// verifier takes one kind of token for the other.
    pub fn sign_typed<T: Serialize>(
        &self,
        typ: &str,
        claims: &T,
    ) -> Result<String, jsonwebtoken::errors::Error> {
        let mut header = self.header.clone();
        header.typ = Some(typ.to_owned());
        jsonwebtoken::encode(&header, claims, &self.encoding)
    }
}

/// When a signer signs, in unix seconds: from `activates_at` until
/// `retires_at` (exclusive).
struct Slot {
    signer: Arc<Signer>,
    activates_at: i64,
    retires_at: Option<i64>,
}

impl Slot {
    fn signs_at(&self, now_unix: i64) -> bool {
        self.activates_at <= now_unix && self.retires_at.is_none_or(|r| r > now_unix)
    }
}

struct Verifier {
    alg: Algorithm,
    key: DecodingKey,
}

/// What the key ring knows at one moment; replaced whole on reload.
struct Ring {
    /// Live keys with private parts, newest activation first.
    slots: Vec<Slot>,
    verifiers: HashMap<String, Verifier>,
    published: Vec<PublicJwk>,
    /// `published` serialized, swapped in with the keys it lists so the JWKS
    /// never names a key set other than the one signing; cloning it for a
    /// response shares the bytes.
    jwks: Bytes,
}

impl Ring {
    /// This ring without the keys `rows` no longer hold unrevoked, on the
    /// schedule `rows` give the rest: what a replica serves when it cannot
    /// rebuild its ring, so that a revocation (and the promotion that came
    /// with it) still takes effect on it.
    fn without_withdrawn(&self, rows: &[SigningKeyRow]) -> Result<Ring, SigningError> {
        let row_of = |kid: &str| rows.iter().find(|r| r.kid == kid && r.revoked_at.is_none());
        let kept = |kid: &str| row_of(kid).is_some();
        let mut slots: Vec<Slot> = self
            .slots
            .iter()
            .filter_map(|s| {
                let row = row_of(&s.signer.kid)?;
                Some(Slot {
                    signer: s.signer.clone(),
                    activates_at: row.activates_at.and_utc().timestamp(),
                    retires_at: row.retired_at.map(|r| r.and_utc().timestamp()),
                })
            })
            .collect();
        slots.sort_by_key(|s| std::cmp::Reverse(s.activates_at));
        let verifiers = self
            .verifiers
            .iter()
            .filter(|(kid, _)| kept(kid))
            .map(|(kid, v)| {
                let verifier = Verifier {
                    alg: v.alg,
                    key: v.key.clone(),
                };
                (kid.clone(), verifier)
            })
            .collect();
        let published: Vec<PublicJwk> = self
            .published
            .iter()
            .filter(|j| kept(&j.kid))
            .cloned()
            .collect();
        Ok(Ring {
            slots,
            verifiers,
            jwks: jwks_document(&published)?,
            published,
        })
    }
}

fn jwks_document(published: &[PublicJwk]) -> Result<Bytes, SigningError> {
    let jwks = serde_json::to_vec(&serde_json::json!({ "keys": published }))
        .map_err(|_| SigningError::NoKey)?;
    Ok(Bytes::from(jwks))
}

/// The in-memory key ring every request signs and verifies with.
pub struct KeyRing {
    ring: RwLock<Arc<Ring>>,
    jwks_max_age_s: u64,
}

impl KeyRing {
    /// Decrypts and parses every key that may sign or must verify.
    pub fn load(
        rows: &[SigningKeyRow],
        master: &MasterKey,
        settings: &SigningSettings,
        now: NaiveDateTime,
    ) -> Result<Self, SigningError> {
        let ring = build_ring(rows, master, settings.jwks_max_age_s, now, None)?;
        Ok(Self {
            ring: RwLock::new(Arc::new(ring)),
            jwks_max_age_s: settings.jwks_max_age_s,
        })
    }

    /// Rebuilds the ring from fresh rows; keys already parsed are reused,
    /// keys that no longer sign (retired, revoked) are let go. When the
    /// rows cannot be built into a ring (a key fails to decrypt), the
    /// current ring is kept minus every key the rows revoke or no longer
    /// hold, and the error is returned.
    pub fn reload(
        &self,
        rows: &[SigningKeyRow],
        master: &MasterKey,
        now: NaiveDateTime,
    ) -> Result<(), SigningError> {
        let current = self.snapshot();
        let (built, outcome) =
            match build_ring(rows, master, self.jwks_max_age_s, now, Some(&current)) {
                Ok(built) => (built, Ok(())),
                Err(err) => (current.without_withdrawn(rows)?, Err(err)),
            };
        if let Ok(mut slot) = self.ring.write() {
            *slot = Arc::new(built);
        }
        // With the old ring gone (a request still signing with it keeps its
        // key until the next reload), its dropped keys leave the cache.
        drop(current);
        ring_provider::forget_unused();
        outcome
    }

    fn snapshot(&self) -> Arc<Ring> {
        match self.ring.read() {
            Ok(ring) => ring.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// The key that signs now: the newest activated one not yet retired.
    pub fn signer(&self, now_unix: i64) -> Option<Arc<Signer>> {
        self.snapshot()
            .slots
            .iter()
            .find(|s| s.signs_at(now_unix))
            .map(|s| s.signer.clone())
    }

    /// When the signing key became active, and when the next one activates.
    pub fn schedule(&self, now_unix: i64) -> Option<(i64, Option<i64>)> {
        let ring = self.snapshot();
        let active = ring.slots.iter().find(|s| s.signs_at(now_unix))?;
        let next = ring
            .slots
            .iter()
            .filter(|s| s.activates_at > now_unix)
            .map(|s| s.activates_at)
            .min();
        Some((active.activates_at, next))
    }

    /// The serialized JWKS, ready to send: a shared handle, not a copy.
    pub fn jwks(&self) -> Bytes {
        self.snapshot().jwks.clone()
    }

    /// The published key for `kid`, if its algorithm is `alg`.
    pub fn decoding_key(&self, kid: &str, alg: Algorithm) -> Option<DecodingKey> {
        let ring = self.snapshot();
        let verifier = ring.verifiers.get(kid)?;
        (verifier.alg == alg).then(|| verifier.key.clone())
    }
}

fn build_ring(
    rows: &[SigningKeyRow],
    master: &MasterKey,
    jwks_max_age_s: u64,
    now: NaiveDateTime,
    previous: Option<&Ring>,
) -> Result<Ring, SigningError> {
    let publish_after_retirement =
        Duration::seconds(MAX_TOKEN_TTL_S + LEEWAY_S) + secs(jwks_max_age_s);
    let mut slots = Vec::new();
    let mut verifiers = HashMap::new();
    let mut published = Vec::new();
    for row in rows {
        if row.revoked_at.is_some() {
            continue;
        }
        let still_published = row
            .retired_at
            .is_none_or(|retired| retired + publish_after_retirement > now);
        if !still_published {
            continue;
        }
        let key_error = |reason: &str| SigningError::Key {
            kid: row.kid.clone(),
            reason: reason.to_owned(),
        };
        let alg = parse_alg(&row.alg).ok_or_else(|| key_error("unknown algorithm"))?;
        let jwk: PublicJwk =
            serde_json::from_str(&row.public_jwk).map_err(|_| key_error("bad public JWK"))?;
        let decoding = match jwk.decoding_key() {
            Some((published, key)) if published == alg => key,
            _ => return Err(key_error("bad public JWK")),
        };
        verifiers.insert(row.kid.clone(), Verifier { alg, key: decoding });
        published.push(jwk);
        if !is_live(row, now) {
            continue;
        }
        let reused = previous.and_then(|p| p.slots.iter().find(|s| s.signer.kid == row.kid));
        let signer = match reused {
            Some(s) => s.signer.clone(),
            None => {
                let pkcs8 = master
                    .decrypt(Purpose::SigningKeys, &aad(&row.kid), &row.private_key_enc)
                    .map_err(|e| key_error(&e.to_string()))?;
                let parsed = ring_provider::register(alg, &pkcs8)
                    .map_err(|_| key_error("unparsable key"))?;
                let encoding = match alg {
                    Algorithm::EdDSA => EncodingKey::from_ed_der(&pkcs8),
                    _ => EncodingKey::from_ec_der(&pkcs8),
                };
                let mut header = Header::new(alg);
                header.typ = Some(TOKEN_TYPE.to_owned());
                header.kid = Some(row.kid.clone());
                Arc::new(Signer {
                    kid: row.kid.clone(),
                    alg,
                    encoding,
                    header,
                    _parsed: parsed,
                })
            }
        };
        slots.push(Slot {
            signer,
            activates_at: row.activates_at.and_utc().timestamp(),
            retires_at: row.retired_at.map(|r| r.and_utc().timestamp()),
        });
    }
    slots.sort_by_key(|s| std::cmp::Reverse(s.activates_at));
    Ok(Ring {
        slots,
        verifiers,
        jwks: jwks_document(&published)?,
        published,
    })
}
