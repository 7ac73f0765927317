//! Why a token was not accepted, or the verifier could not be built.
//!
//! Two kinds of refusal: the token itself is not acceptable (expired, wrong
//! audience, revoked…; a service answers 401 `invalid_token`), or the
//! issuer's keys or status list cannot be had or trusted right now (503:
//! the token may be fine, a new one would meet the same wall).
//! [`VerifyError::is_token_refused`] tells them apart.

use crate::tokens::verify::VerifyError as CoreError;

#[derive(Debug, Clone, thiserror::Error)]
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
    /// The token's status list entry is INVALID (0x01).
    #[error("invalid token: it has been revoked")]
    Revoked,
    /// The token's status list entry is SUSPENDED (0x02).
    #[error("invalid token: it is suspended")]
    Suspended,
    /// The token's status list entry is neither VALID, INVALID nor
    /// SUSPENDED (reserved or application-specific): not accepted.
    #[error("invalid token: its status is {0:#04x}, which this verifier does not accept")]
    UnknownStatus(u8),
    /// The token's `status_list.idx` lies past the end of its list (the
    /// draft's MUST reject).
    #[error(
        "invalid token: its status index {idx} is past the end of its status list ({len} entries)"
    )]
    StatusIndexOutOfRange { idx: u64, len: u64 },
    /// The token has no `status` claim and the verifier requires one
    /// ([`require_status`](crate::validator::VerifierBuilder::require_status)).
    #[error("invalid token: it has no status claim, and this service requires one")]
    StatusMissing,
    /// The token's `status` claim is malformed or names a list this
    /// verifier will not fetch (another origin than the issuer's).
    #[error("invalid token: {0}")]
    BadStatus(String),
    /// The status list was fetched but cannot be trusted, and no cached
    /// copy can stand in for it.
    #[error("the token's status list is not acceptable: {0}")]
    StatusList(StatusListProblem),
    /// The status list cannot be fetched and no cached copy is usable
    /// (none yet, or past `status_max_stale`, or past its `exp`).
    #[error("the token's status list cannot be fetched: {0}")]
    StatusUnavailable(String),
    #[error("verifier configuration: {0}")]
    Config(String),
}

/// What is wrong with a fetched Status List Token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StatusListProblem {
    #[error("it is signed with a key the issuer does not publish")]
    UnknownKey,
    #[error("its typ is not statuslist+jwt")]
    WrongType,
    #[error("its sub is not the URI it was fetched from")]
    SubjectMismatch,
    #[error("it is larger than {0} bytes")]
    TooLarge(usize),
    #[error("its list decompresses to more than {0} bytes")]
    ListTooLarge(usize),
    #[error("it has expired")]
    Expired,
    /// Bad signature, a missing or malformed claim, `bits` not 1/2/4/8, an
    /// `lst` that does not decode.
    #[error("{0}")]
    Invalid(String),
}

impl VerifyError {
    /// Whether the token itself was refused (a service answers 401
    /// `invalid_token`), rather than the issuer's keys or status list being
    /// unavailable or untrustworthy (503) or the verifier misconfigured.
    pub fn is_token_refused(&self) -> bool {
        match self {
            Self::Invalid(_)
            | Self::UnknownKey
            | Self::Revoked
            | Self::Suspended
            | Self::UnknownStatus(_)
            | Self::StatusIndexOutOfRange { .. }
            | Self::StatusMissing
            | Self::BadStatus(_) => true,
            Self::KeysUnavailable(_)
            | Self::StatusList(_)
            | Self::StatusUnavailable(_)
            | Self::Config(_) => false,
        }
    }
}

impl From<CoreError> for VerifyError {
    fn from(err: CoreError) -> Self {
        match err {
            CoreError::UnknownKey => Self::UnknownKey,
            other => Self::Invalid(other.to_string()),
        }
    }
}
