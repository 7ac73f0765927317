//! Reading admin request bodies with a cap of their own, so an oversized
//! body answers as a problem document rather than actix's plain text.

use crate::error::ApiError;
use crate::grants::form::{BodyError, read_capped};

/// Bodies on every route but the token endpoints (which take 8 KiB).
pub const BODY_LIMIT: usize = 64 * 1024;

/// Reads an admin request body up to `limit` bytes; beyond it, a 413
/// problem (actix's own limit would answer in plain text).
pub async fn read_limited(
    payload: actix_web::web::Payload,
    limit: usize,
) -> Result<Vec<u8>, ApiError> {
    match read_capped(payload, limit).await {
        Ok(mut body) => Ok(std::mem::take(&mut *body)),
        Err(BodyError::TooLarge) => Err(ApiError::PayloadTooLarge { limit }),
        Err(BodyError::Unreadable) => Err(ApiError::bad_request("the body could not be read")),
    }
}
