//! What can go wrong with signing keys.

use crate::crypto::check::SealError;
use crate::crypto::master::MasterKeyError;
use crate::db::DbError;

#[derive(Debug, thiserror::Error)]
pub enum SigningError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("signing key {kid}: {reason}")]
    Key { kid: String, reason: String },
    #[error(
        "the next signing key was published {age_s} s ago; it may sign only after {needed_s} s"
    )]
    TooYoung { age_s: i64, needed_s: i64 },
    #[error("no signing key")]
    NoKey,
    #[error("key generation failed")]
    Generate,
    /// A new key's private part could not be sealed (the master key was
    /// rotated under this process).
    #[error(transparent)]
    MasterKey(MasterKeyError),
}

impl From<SealError> for SigningError {
    fn from(e: SealError) -> Self {
        match e {
            SealError::Db(db) => Self::Db(db),
            SealError::MasterKey(key) => Self::MasterKey(key),
        }
    }
}

impl From<diesel::result::Error> for SigningError {
    fn from(e: diesel::result::Error) -> Self {
        Self::Db(e.into())
    }
}
