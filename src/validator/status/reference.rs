//! The token's side: what its entry in the list decides. (The claim itself
//! is decoded with the token's other claims, `AccessClaims::status`.)

use crate::domain::status_list::{Status, StatusList};
use crate::validator::error::VerifyError;

/// The token's fate by its entry (§7): VALID passes, anything else not.
pub(super) fn judge(list: &StatusList, idx: u64) -> Result<(), VerifyError> {
    match list.get(idx) {
        None => Err(VerifyError::StatusIndexOutOfRange {
            idx,
            len: list.len(),
        }),
        Some(v) if v == Status::Valid as u8 => Ok(()),
        Some(v) if v == Status::Invalid as u8 => Err(VerifyError::Revoked),
        Some(v) if v == Status::Suspended as u8 => Err(VerifyError::Suspended),
        Some(other) => Err(VerifyError::UnknownStatus(other)),
    }
}
