//! Why a token was not accepted, or the verifier could not be built.

use crate::tokens::verify::VerifyError as CoreError;

#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// The token is not acceptable; the message says why (never the token).
    #[error("invalid token: {0}")]
    Invalid(String),
    /// The token names a key the issuer does not publish (after a refetch).
    #[error("invalid token: its signing key is not published by the issuer")]
    UnknownKey,
    /// The key set could not be fetched and no cached key applies.
    #[error("the issuer's key set cannot be fetched: {0}")]
    KeysUnavailable(String),
    #[error("verifier configuration: {0}")]
    Config(String),
}

impl From<CoreError> for VerifyError {
    fn from(err: CoreError) -> Self {
        match err {
            CoreError::UnknownKey => Self::UnknownKey,
            other => Self::Invalid(other.to_string()),
        }
    }
}
