//! The master-key check row: which master key the database is written
//! under. Written once at the first start, verified at every start,
//! switched by `keymint master-key rotate` in the transaction that
//! re-encrypts, and read by every write that encrypts, inside its own
//! transaction, so nothing is ever stored under a key the database has
//! left.
//!
//! A running server that finds the database under another key re-reads its
//! key file and takes the key from it if it is the database's; until then
//! it writes no secret, and readiness says so. This module never logs key
//! bytes, only key ids (which ciphertexts carry in the clear).

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::master::{Aad, ENV_FILE, MasterKey, MasterKeyError, Purpose};
use crate::db::schema::master_key_check;
use crate::db::{self, AnyConnection, DbError};
use crate::error::ApiError;

#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    MasterKey(#[from] MasterKeyError),
}

impl From<diesel::result::Error> for SealError {
    fn from(e: diesel::result::Error) -> Self {
        Self::Db(e.into())
    }
}

/// Where this process's key stands against the database's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    /// The database is under the key this process holds.
    Current,
    /// The database had moved on; the key file held the new key, now in use.
    PickedUp,
    /// The database is under a key this process cannot load.
    Behind,
}

/// The stored id and check value; `None` before the first start.
pub fn stored(conn: &mut AnyConnection) -> QueryResult<Option<(String, Vec<u8>)>> {
    master_key_check::table
        .find(1)
        .select((
            master_key_check::master_key_id,
            master_key_check::check_value,
        ))
        .first(conn)
        .optional()
}

/// [`stored`], read so that a rotation cannot commit until the caller's
/// transaction has: on PostgreSQL a share lock on the row, which the
/// rotation's update of it waits for.
fn stored_for_write(conn: &mut AnyConnection) -> QueryResult<Option<(String, Vec<u8>)>> {
    let query = master_key_check::table.find(1).select((
        master_key_check::master_key_id,
        master_key_check::check_value,
    ));
    match conn {
        AnyConnection::Postgresql(c) => query.for_share().first(c).optional(),
        // SQLite has no row locks: the caller's write transaction holds the
        // database write lock, which a rotation needs too; and a snapshot
        // that a rotation outdated cannot write at all (SQLITE_BUSY_SNAPSHOT).
        AnyConnection::Sqlite(c) => query.first(c).optional(),
    }
}

/// Records `master` as the database's key if the database has none yet,
/// under the `master_key` lock; returns the row as it then is.
pub fn record(
    conn: &mut AnyConnection,
    master: &MasterKey,
    now: NaiveDateTime,
) -> Result<(String, Vec<u8>), SealError> {
    db::exclusive_transaction(conn, "master_key", |conn| {
        // Another process may have recorded its key since the caller looked.
        if let Some(row) = stored(conn)? {
            return Ok(row);
        }
        let id = master.id();
        let check = master.check_value()?;
        diesel::insert_into(master_key_check::table)
            .values((
                master_key_check::id.eq(1),
                master_key_check::master_key_id.eq(&id),
                master_key_check::check_value.eq(&check),
                master_key_check::created_at.eq(now),
            ))
            .execute(conn)?;
        Ok((id, check))
    })
}

/// Compares `master` with the database's key and, when the database moved
/// to another one, takes that key from `master`'s file if the file holds
/// it. Logs a change of standing once, not on every call.
fn adopt(master: &MasterKey, stored_id: &str, check: &[u8]) -> Standing {
    if master.id() == stored_id {
        if master.set_behind(false) {
            tracing::info!(master_key_id = stored_id, "the master key is current again");
        }
        return Standing::Current;
    }
    if let Some(path) = master.file() {
        match MasterKey::from_file(path, ENV_FILE) {
            Ok(candidate) if candidate.verify_check(check).is_ok() => {
                let held = master.id();
                master.replace_with(&candidate);
                master.set_behind(false);
                tracing::warn!(
                    from = %held,
                    to = %stored_id,
                    path = %path.display(),
                    "the database's master key was rotated; took the new key from the key file"
                );
                return Standing::PickedUp;
            }
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "cannot re-read the master key file"),
        }
    }
    if !master.set_behind(true) {
        let error = MasterKeyError::Rotated {
            held: master.id(),
            stored: stored_id.to_owned(),
        };
        tracing::error!(%error, "this server cannot write secrets until it has the new master key");
    }
    Standing::Behind
}

/// The reload loop's look at the check row (one indexed read): follows a
/// rotation, or marks this process behind.
pub fn follow(conn: &mut AnyConnection, master: &MasterKey) -> Result<Standing, DbError> {
    Ok(match stored(conn)? {
        Some((stored_id, check)) => adopt(master, &stored_id, &check),
        None => Standing::Current,
    })
}

/// Encrypts a secret that is about to be stored, inside the caller's
/// transaction: only if the database is under the key used (following a
/// rotation first if the key file allows), else [`MasterKeyError::Rotated`].
/// The one way a stored ciphertext is made.
pub fn seal(
    conn: &mut AnyConnection,
    master: &MasterKey,
    purpose: Purpose,
    aad: &Aad<'_>,
    plaintext: &[u8],
) -> Result<Vec<u8>, SealError> {
    let (stored_id, check) = stored_for_write(conn)?.ok_or(MasterKeyError::NoCheckRow)?;
    adopt(master, &stored_id, &check);
    Ok(master.encrypt_as(&stored_id, purpose, aad, plaintext)?)
}

/// A write refused because of the master key is a 503 that says so; any
/// other key failure is an opaque 500 (logged).
impl From<MasterKeyError> for ApiError {
    fn from(err: MasterKeyError) -> Self {
        match err {
            MasterKeyError::Rotated { .. } => {
                tracing::warn!(error = %err, "write refused");
                ApiError::MasterKeyRotated
            }
            other => ApiError::internal(other),
        }
    }
}

impl From<SealError> for ApiError {
    fn from(err: SealError) -> Self {
        match err {
            SealError::Db(db) => db.into(),
            SealError::MasterKey(key) => key.into(),
        }
    }
}
