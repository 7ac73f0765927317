//! The signing-key schedule: which key signs when, and the changes to it
//! (repair at start and reload, rotation, emergency revoke), each under the
//! `signing` lock and audited.

use chrono::{DateTime, Duration, NaiveDateTime, Utc};
use jsonwebtoken::Algorithm;
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair};
use serde::Serialize;
use zeroize::Zeroizing;

use super::error::SigningError;
use super::jwk::{jwt_algorithm, public_jwk};
use super::store::{self, aad, load_rows};
use crate::audit::{self, Actor, Origin};
use crate::config::SigningSettings;
use crate::crypto::check;
use crate::crypto::master::{MasterKey, Purpose};
use crate::db::models::SigningKeyRow;
use crate::db::{self, AnyConnection};
use crate::tokens::ring_provider;

/// Generates a key pair and its encrypted row, inside the caller's
/// transaction: the private part is sealed only while the database is
/// under `master` (see `crypto::check::seal`).
fn generate_row(
    conn: &mut AnyConnection,
    alg: Algorithm,
    master: &MasterKey,
    now: NaiveDateTime,
    activates_at: NaiveDateTime,
) -> Result<SigningKeyRow, SigningError> {
    new_row(alg, now, activates_at, |kid, pkcs8| {
        Ok(check::seal(
            conn,
            master,
            Purpose::SigningKeys,
            &aad(kid),
            pkcs8,
        )?)
    })
}

/// A fresh key pair's row, its private part sealed by `seal(kid, pkcs8)`.
pub(super) fn new_row(
    alg: Algorithm,
    now: NaiveDateTime,
    activates_at: NaiveDateTime,
    seal: impl FnOnce(&str, &[u8]) -> Result<Vec<u8>, SigningError>,
) -> Result<SigningKeyRow, SigningError> {
    let rng = SystemRandom::new();
    let pkcs8 = Zeroizing::new(
        match alg {
            Algorithm::EdDSA => Ed25519KeyPair::generate_pkcs8(&rng),
            _ => EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng),
        }
        .map_err(|_| SigningError::Generate)?
        .as_ref()
        .to_vec(),
    );
    let parsed =
        ring_provider::ParsedKey::parse(alg, &pkcs8).map_err(|_| SigningError::Generate)?;
    let jwk = public_jwk(alg, parsed.public_key()).ok_or(SigningError::Generate)?;
    let private_key_enc = seal(&jwk.kid, &pkcs8)?;
    Ok(SigningKeyRow {
        kid: jwk.kid.clone(),
        alg: jwk.alg.clone(),
        public_jwk: serde_json::to_string(&jwk).map_err(|_| SigningError::Generate)?,
        private_key_enc,
        created_at: now,
        activates_at,
        retired_at: None,
        revoked_at: None,
    })
}

pub(super) fn secs(s: u64) -> Duration {
    Duration::seconds(i64::try_from(s).unwrap_or(i64::MAX / 1000))
}

/// At start and on every reload: makes sure a key can sign now and a next
/// one is scheduled (see [`settle`]). Runs under the `signing` lock so
/// concurrent replicas repair the schedule once. `Ok(true)` if it changed.
pub fn ensure_keys(
    conn: &mut AnyConnection,
    master: &MasterKey,
    settings: &SigningSettings,
    now: NaiveDateTime,
) -> Result<bool, SigningError> {
    if is_settled(&load_rows(conn)?, now) {
        return Ok(false);
    }
    let actor = Actor::system("system:signing");
    let why = Why {
        actor: &actor,
        origin: &Origin::default(),
        reason: "no key could sign",
    };
    db::exclusive_transaction(conn, "signing", |conn| {
        let changes = settle(conn, master, settings, now, &why)?;
        Ok(changes != Settled::default())
    })
}

/// Unrevoked and not yet retired: signing now or scheduled to.
pub(super) fn is_live(row: &SigningKeyRow, now: NaiveDateTime) -> bool {
    row.revoked_at.is_none() && row.retired_at.is_none_or(|retired| retired > now)
}

/// The key that signs at `now`: of the live keys already activated, the
/// one activated last. A revoked or retired key is never it.
pub fn active_at(rows: &[SigningKeyRow], now: NaiveDateTime) -> Option<&SigningKeyRow> {
    rows.iter()
        .filter(|r| is_live(r, now) && r.activates_at <= now)
        .max_by_key(|r| (r.activates_at, r.created_at))
}

/// The live keys in the order they sign, each paired with the `retired_at`
/// it should have: the activation of the key after it (none for the last).
pub(super) fn handovers(
    rows: &[SigningKeyRow],
    now: NaiveDateTime,
) -> Vec<(&SigningKeyRow, Option<NaiveDateTime>)> {
    let mut live: Vec<&SigningKeyRow> = rows.iter().filter(|r| is_live(r, now)).collect();
    live.sort_by_key(|r| (r.activates_at, r.created_at));
    (0..live.len())
        .map(|i| (live[i], live.get(i + 1).map(|n| n.activates_at)))
        .collect()
}

/// Whether [`settle`] would change nothing.
pub(super) fn is_settled(rows: &[SigningKeyRow], now: NaiveDateTime) -> bool {
    let chain = handovers(rows, now);
    chain.iter().any(|(r, _)| r.activates_at <= now)
        && chain.iter().any(|(r, _)| r.activates_at > now)
        && chain.iter().all(|(r, wanted)| r.retired_at == *wanted)
}

/// Who a settling is done for, for the audit of a key it activates.
pub struct Why<'a> {
    pub actor: &'a Actor,
    pub origin: &'a Origin,
    pub reason: &'static str,
}

/// What [`settle`] did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Settled {
    /// The key made to sign at once because nothing else could.
    pub activated: Option<String>,
    /// A new next key.
    pub created_next: Option<String>,
    /// Keys whose hand-over time moved (a successor was revoked, or a
    /// successor appeared).
    pub rescheduled: Vec<String>,
}

/// Inside a transaction holding the `signing` lock: when nothing can sign
/// now, the earliest scheduled key is promoted (or, with none, a key is
/// generated) to sign at once; a next key is created if none is scheduled;
/// and every live key's `retired_at` becomes its successor's activation.
/// So revoking a successor before it activates cancels its predecessor's
/// retirement instead of leaving nobody to sign at the switch time.
pub fn settle(
    conn: &mut AnyConnection,
    master: &MasterKey,
    settings: &SigningSettings,
    now: NaiveDateTime,
    why: &Why<'_>,
) -> Result<Settled, SigningError> {
    let alg = jwt_algorithm(settings.alg);
    let mut settled = Settled::default();
    let rows = load_rows(conn)?;
    // A database's first key is not an incident worth an audit event.
    let first_key = rows.is_empty();
    if active_at(&rows, now).is_none() {
        let scheduled = rows
            .iter()
            .filter(|r| is_live(r, now) && r.activates_at > now)
            .min_by_key(|r| (r.activates_at, r.created_at));
        let kid = match scheduled {
            Some(next) => {
                store::set_activates_at(conn, &next.kid, now)?;
                next.kid.clone()
            }
            None => {
                // Nothing could have been signed by a key that does not
                // exist yet, so it may sign at once.
                let row = generate_row(conn, alg, master, now, now)?;
                store::insert(conn, &row)?;
                row.kid
            }
        };
        settled.activated = Some(kid);
    }
    let rows = load_rows(conn)?;
    if !rows.iter().any(|r| is_live(r, now) && r.activates_at > now) {
        let row = generate_row(
            conn,
            alg,
            master,
            now,
            now + secs(settings.rotation_interval_s),
        )?;
        store::insert(conn, &row)?;
        settled.created_next = Some(row.kid);
    }
    let rows = load_rows(conn)?;
    for (row, wanted) in handovers(&rows, now) {
        if row.retired_at != wanted {
            store::set_retired_at(conn, &row.kid, wanted)?;
            settled.rescheduled.push(row.kid.clone());
        }
    }
    if let Some(activated) = settled.activated.as_ref().filter(|_| !first_key) {
        audit::write(
            conn,
            audit::Record {
                tenant_id: None,
                action: "signing_key.activated",
                actor: why.actor,
                origin: why.origin,
                target_type: "signing_key",
                target_id: activated,
                success: true,
                details: serde_json::json!({
                    "reason": why.reason,
                    "next": settled.created_next,
                }),
            },
            now,
        )?;
    }
    Ok(settled)
}

/// What a rotation did.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Rotation {
    pub activated_kid: String,
    pub activates_at: DateTime<Utc>,
    pub retired_kid: Option<String>,
    pub next_kid: String,
}

/// Promotes `next` and creates a new `next`, under the `signing` lock. The
/// promoted key activates `reload_s` from now, so every replica, reloading
/// at least that often, switches at the same instant.
pub fn rotate(
    conn: &mut AnyConnection,
    master: &MasterKey,
    settings: &SigningSettings,
    now: NaiveDateTime,
    actor: &Actor,
    origin: &Origin,
) -> Result<Rotation, SigningError> {
    ensure_keys(conn, master, settings, now)?;
    db::exclusive_transaction(conn, "signing", |conn| {
        let rows = load_rows(conn)?;
        let next = rows
            .iter()
            .filter(|r| is_live(r, now) && r.activates_at > now)
            .min_by_key(|r| (r.activates_at, r.created_at))
            .ok_or(SigningError::NoKey)?;
        let age_s = (now - next.created_at).num_seconds();
        let needed_s = i64::try_from(settings.prepublish_s).unwrap_or(i64::MAX);
        if age_s < needed_s {
            return Err(SigningError::TooYoung { age_s, needed_s });
        }
        let switch_at = now + secs(settings.reload_s);
        let current = active_at(&rows, now);
        store::set_activates_at(conn, &next.kid, switch_at)?;
        if let Some(current) = current {
            store::set_retired_at(conn, &current.kid, Some(switch_at))?;
        }
        let alg = jwt_algorithm(settings.alg);
        let new_next = generate_row(
            conn,
            alg,
            master,
            now,
            switch_at + secs(settings.rotation_interval_s),
        )?;
        store::insert(conn, &new_next)?;
        // The promoted key now hands over to the new next one.
        let why = Why {
            actor,
            origin,
            reason: "rotation",
        };
        settle(conn, master, settings, now, &why)?;
        audit::write(
            conn,
            audit::Record {
                tenant_id: None,
                action: "signing_key.rotated",
                actor,
                origin,
                target_type: "signing_key",
                target_id: &next.kid,
                success: true,
                details: serde_json::json!({
                    "activates_at": switch_at.and_utc().to_rfc3339(),
                    "retired": current.map(|c| c.kid.clone()),
                    "next": new_next.kid,
                }),
            },
            now,
        )?;
        Ok(Rotation {
            activated_kid: next.kid.clone(),
            activates_at: switch_at.and_utc(),
            retired_kid: current.map(|c| c.kid.clone()),
            next_kid: new_next.kid,
        })
    })
}

/// Where a key is in its lifecycle now.
pub fn state_of(row: &SigningKeyRow, rows: &[SigningKeyRow], now: NaiveDateTime) -> &'static str {
    if row.revoked_at.is_some() {
        return "revoked";
    }
    if row.activates_at > now {
        return "next";
    }
    match active_at(rows, now) {
        Some(active) if active.kid == row.kid => "active",
        _ => "retired",
    }
}

/// Emergency revoke: the key leaves the JWKS and its tokens stop
/// verifying. If it was signing, the next key signs from now on (and a new
/// next is made); if it was about to take over, its predecessor keeps
/// signing until the key after it activates. Idempotent. `None` when there
/// is no such key.
pub fn revoke(
    conn: &mut AnyConnection,
    master: &MasterKey,
    settings: &SigningSettings,
    kid: &str,
    now: NaiveDateTime,
    actor: &Actor,
    origin: &Origin,
) -> Result<Option<SigningKeyRow>, SigningError> {
    db::exclusive_transaction(conn, "signing", |conn| {
        let rows = load_rows(conn)?;
        let Some(row) = rows.iter().find(|r| r.kid == kid) else {
            return Ok(None);
        };
        if row.revoked_at.is_some() {
            return Ok(Some(row.clone()));
        }
        let state = state_of(row, &rows, now);
        let retired_at = row.retired_at.filter(|r| *r <= now).unwrap_or(now);
        store::mark_revoked(conn, kid, now, retired_at)?;
        let why = Why {
            actor,
            origin,
            reason: "emergency revoke",
        };
        let settled = settle(conn, master, settings, now, &why)?;
        audit::write(
            conn,
            audit::Record {
                tenant_id: None,
                action: "signing_key.revoked",
                actor,
                origin,
                target_type: "signing_key",
                target_id: kid,
                success: true,
                details: serde_json::json!({
                    "was_active": state == "active",
                    "state": state,
                    "activated": settled.activated,
                    "rescheduled": settled.rescheduled,
                }),
            },
            now,
        )?;
        let updated = load_rows(conn)?.into_iter().find(|r| r.kid == kid);
        Ok(updated)
    })
}
