//! The periodic reload every replica runs (and the admin routes after a
//! change): follow a master-key rotation, repair the schedule, rebuild the
//! ring from the rows.

use chrono::Utc;

use super::error::SigningError;
use super::keyring::KeyRing;
use super::schedule::ensure_keys;
use super::store::load_rows;
use crate::config::SigningSettings;
use crate::crypto::check;
use crate::crypto::master::MasterKey;
use crate::db::{self, Pool};

/// Blocking: takes a pooled connection for the whole reload.
pub fn reload(
    pool: &Pool,
    master: &MasterKey,
    settings: &SigningSettings,
    keyring: &KeyRing,
) -> Result<(), SigningError> {
    let mut conn = db::connection(pool)?;
    let now = Utc::now().naive_utc();
    // After `keymint master-key rotate`: take the new key from the key file,
    // or stay behind (no new keys sealed; readiness says so) until it is there.
    let standing = check::follow(conn.get(), master)?;
    // A repair that fails (the database refuses writes) must not keep a
    // revoked key in use here: the ring is rebuilt from the rows either way.
    let ensured = if standing == check::Standing::Behind {
        Ok(Default::default())
    } else {
        ensure_keys(conn.get(), master, settings, now)
    };
    let rows = load_rows(conn.get())?;
    keyring.reload(&rows, master, now)?;
    ensured.map(|_| ())
}
