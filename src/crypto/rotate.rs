//! Master-key rotation: every ciphertext re-encrypted under the new key, and
//! the check row replaced, in one transaction. Servers still running with the
//! old key must be restarted with the new one (the check row makes an old-key
//! start fail instead of writing data no one can read).

use diesel::prelude::*;

use super::master::{Aad, MasterKey, MasterKeyError, Purpose};
use crate::db::schema::{api_keys, master_key_check, signing_keys};
use crate::db::{self, AnyConnection};

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
}

#[derive(Debug, Default, Clone, Copy, serde::Serialize)]
pub struct Rotated {
    pub signing_keys: usize,
    pub api_key_secrets: usize,
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

pub fn rotate(
    conn: &mut AnyConnection,
    old: &MasterKey,
    new: &MasterKey,
) -> Result<Rotated, RotateError> {
    if old.id() == new.id() {
        return Err(RotateError::SameKey);
    }
    db::exclusive_transaction(conn, "master_key", |conn| {
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
            let resealed = reseal(old, new, Purpose::SigningKeys, &aad, &sealed)?;
            diesel::update(signing_keys::table.find(&kid))
                .set(signing_keys::private_key_enc.eq(resealed))
                .execute(conn)?;
            done.signing_keys += 1;
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
        }
        let check = new.check_value().map_err(|source| RotateError::Crypto {
            what: "check value".into(),
            source,
        })?;
        diesel::update(master_key_check::table.find(1))
            .set((
                master_key_check::master_key_id.eq(new.id()),
                master_key_check::check_value.eq(check),
            ))
            .execute(conn)?;
        Ok(done)
    })
}
