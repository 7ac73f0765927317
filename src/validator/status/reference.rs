//! The token's side: its `status.status_list` claim, and what its entry
//! in the list decides.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;

use crate::domain::status_list::{Status, StatusList};
use crate::validator::error::VerifyError;

/// `status.status_list` of a verified token.
pub(super) struct StatusRef {
    pub(super) idx: u64,
    pub(super) uri: String,
}

/// `status.status_list` of a token whose signature was just verified: read
/// from its payload (the claims type knows nothing of it). `None` without
/// a `status` claim; a malformed one, or one without `status_list` (the
/// only mechanism checked here), is refused.
pub(super) fn status_reference(token: &str) -> Result<Option<StatusRef>, VerifyError> {
    let bad = |m: &str| VerifyError::BadStatus(m.to_owned());
    let payload = token
        .split('.')
        .nth(1)
        .and_then(|p| URL_SAFE_NO_PAD.decode(p).ok())
        .ok_or_else(|| bad("its payload cannot be read"))?;
    let claims: serde_json::Map<String, Value> =
        serde_json::from_slice(&payload).map_err(|_| bad("its payload cannot be read"))?;
    let Some(status) = claims.get("status") else {
        return Ok(None);
    };
    let list = status
        .as_object()
        .ok_or_else(|| bad("its status claim is not an object"))?
        .get("status_list")
        .ok_or_else(|| bad("its status claim has no status_list, the one mechanism checked here"))?
        .as_object()
        .ok_or_else(|| bad("its status.status_list is not an object"))?;
    let idx = list
        .get("idx")
        .and_then(Value::as_u64)
        .ok_or_else(|| bad("its status.status_list.idx is not a non-negative integer"))?;
    let uri = list
        .get("uri")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("its status.status_list.uri is not a string"))?;
    Ok(Some(StatusRef {
        idx,
        uri: uri.to_owned(),
    }))
}

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
