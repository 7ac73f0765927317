//! Master-key rotation: every ciphertext re-encrypted under the new key, and
//! the check row switched, in one transaction: a rotation killed at any
//! point leaves the database wholly under the old key, one that committed
//! leaves it wholly under the new one.
//!
//! Servers running meanwhile never write under the old key afterwards
//! (`crypto::check::seal`): they take the new key from their key file or
//! refuse to store secrets until they are given it.

use diesel::prelude::*;

use super::master::{Aad, MasterKey, MasterKeyError, Purpose};
use crate::db::schema::{api_keys, event_streams, locks, master_key_check, signing_keys};
use crate::db::{self, AnyConnection};

/// Test-only (debug builds): stop at a point of the rotation and wait to be
/// killed. `0` is right after the check row switched, `N` after N rows were
/// re-encrypted, `commit` just before the commit.
pub const PAUSE_ENV: &str = "KEYMINT_TEST_PAUSE_MASTER_ROTATE";

#[derive(Debug, thiserror::Error)]
pub enum RotateError {
    #[error(transparent)]
    Db(#[from] diesel::result::Error),
    #[error("{what}: {source}")]
    Crypto {
        what: String,
        source: MasterKeyError,
    },
    #[error("the new master key is the current one")]
    SameKey,
    #[error(
        "the database is no longer under the old master key (another rotation?); nothing changed"
    )]
    Moved,
}

#[derive(Debug, Default, Clone, Copy, serde::Serialize)]
pub struct Rotated {
    pub signing_keys: usize,
    pub api_key_secrets: usize,
    pub event_stream_secrets: usize,
}

fn reseal(
    old: &MasterKey,
    new: &MasterKey,
    purpose: Purpose,
    aad: &Aad<'_>,
    sealed: &[u8],
) -> Result<Vec<u8>, RotateError> {
    let what = || format!("{} {}", aad.table, aad.row_id);
    let plain = old
        .decrypt(purpose, aad, sealed)
        .map_err(|source| RotateError::Crypto {
            what: what(),
            source,
        })?;
    new.encrypt(purpose, aad, &plain)
        .map_err(|source| RotateError::Crypto {
            what: what(),
            source,
        })
}

#[cfg(debug_assertions)]
fn pause_at(point: &str) {
    if std::env::var(PAUSE_ENV).is_ok_and(|v| v == point) {
        eprintln!("master-key rotate: paused at {point}");
        loop {
            std::thread::sleep(std::time::Duration::from_secs(3600));
        }
    }
}

#[cfg(not(debug_assertions))]
fn pause_at(_point: &str) {}

pub fn rotate(
    conn: &mut AnyConnection,
    old: &MasterKey,
    new: &MasterKey,
) -> Result<Rotated, RotateError> {
    if old.id() == new.id() {
        return Err(RotateError::SameKey);
    }
    let crypto = |what: &str| {
        let what = what.to_owned();
        move |source| RotateError::Crypto { what, source }
    };
    let check = new.check_value().map_err(crypto("check value"))?;
    db::exclusive_transaction(conn, "master_key", |conn| {
        // Signing-key writes first take the `signing` lock and then read the
        // check row; taking the same order here means a rotation never waits
        // for one of them while it waits for the rotation.
        diesel::update(locks::table.filter(locks::name.eq("signing")))
            .set(locks::holder.eq(locks::holder))
            .execute(conn)?;
        // The check row before any ciphertext: on PostgreSQL this waits for
        // every write sealing a secret under the old key (they hold the row
        // FOR SHARE) and makes every later one see the new id, so the rows
        // read below include all the old key ever sealed.
        let switched = diesel::update(
            master_key_check::table
                .find(1)
                .filter(master_key_check::master_key_id.eq(old.id())),
        )
        .set((
            master_key_check::master_key_id.eq(new.id()),
            master_key_check::check_value.eq(&check),
        ))
        .execute(conn)?;
        if switched != 1 {
            return Err(RotateError::Moved);
        }
        pause_at("0");
        let mut resealed = 0usize;
        let mut done = Rotated::default();
        let rows: Vec<(String, Vec<u8>)> = signing_keys::table
            .select((signing_keys::kid, signing_keys::private_key_enc))
            .load(conn)?;
        for (kid, sealed) in rows {
            let aad = Aad {
                table: "signing_keys",
                row_id: &kid,
                tenant: "",
            };
            let resealed_key = reseal(old, new, Purpose::SigningKeys, &aad, &sealed)?;
            diesel::update(signing_keys::table.find(&kid))
                .set(signing_keys::private_key_enc.eq(resealed_key))
                .execute(conn)?;
            done.signing_keys += 1;
            resealed += 1;
            pause_at(&resealed.to_string());
        }
        type SecretRow = (String, String, Option<Vec<u8>>, Option<Vec<u8>>);
        let rows: Vec<SecretRow> = api_keys::table
            .filter(
                api_keys::secret_enc
                    .is_not_null()
                    .or(api_keys::previous_secret_enc.is_not_null()),
            )
            .select((
                api_keys::id,
                api_keys::tenant_id,
                api_keys::secret_enc,
                api_keys::previous_secret_enc,
            ))
            .load(conn)?;
        for (id, tenant_id, current, previous) in rows {
            let aad = Aad {
                table: "api_keys",
                row_id: &id,
                tenant: &tenant_id,
            };
            let current = current
                .map(|s| reseal(old, new, Purpose::ApiKeySecrets, &aad, &s))
                .transpose()?;
            let previous = previous
                .map(|s| reseal(old, new, Purpose::ApiKeySecrets, &aad, &s))
                .transpose()?;
            diesel::update(api_keys::table.find(&id))
                .set((
                    api_keys::secret_enc.eq(current),
                    api_keys::previous_secret_enc.eq(previous),
                ))
                .execute(conn)?;
            done.api_key_secrets += 1;
            resealed += 1;
            pause_at(&resealed.to_string());
        }
        let rows: Vec<(String, String, Option<Vec<u8>>)> = event_streams::table
            .filter(event_streams::bearer_secret.is_not_null())
            .select((
                event_streams::id,
                event_streams::tenant_id,
                event_streams::bearer_secret,
            ))
            .load(conn)?;
        for (id, tenant_id, sealed) in rows {
            let Some(sealed) = sealed else { continue };
            let aad = Aad {
                table: "event_streams",
                row_id: &id,
                tenant: &tenant_id,
            };
            let resealed_secret = reseal(old, new, Purpose::EventStreamSecrets, &aad, &sealed)?;
            diesel::update(event_streams::table.find(&id))
                .set(event_streams::bearer_secret.eq(Some(resealed_secret)))
                .execute(conn)?;
            done.event_stream_secrets += 1;
            resealed += 1;
            pause_at(&resealed.to_string());
        }
        pause_at("commit");
        Ok(done)
    })
}
