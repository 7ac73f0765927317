//! Reading request bodies with a cap, into a zeroizing buffer. Admin
//! routes answer an oversized body with a problem document, the token
//! endpoints with an OAuth error: each in its own protocol rather than
//! actix's plain text.

use actix_web::web;
use futures_util::StreamExt;
use zeroize::Zeroizing;

use crate::error::{ApiError, OAuthError};

/// Bodies on every route but the token endpoints.
pub const BODY_LIMIT: usize = 64 * 1024;
/// Bodies of `/oauth/*` and `/api/v1/token`.
pub const TOKEN_BODY_LIMIT: usize = 8 * 1024;

/// Why a body could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyError {
    TooLarge,
    Unreadable,
}

/// Reads a request body up to `limit` bytes into a zeroizing buffer (token
/// endpoint bodies carry secrets). Every route reads its body through this.
pub async fn read_capped(
    mut payload: web::Payload,
    limit: usize,
) -> Result<Zeroizing<Vec<u8>>, BodyError> {
    let mut body = Zeroizing::new(Vec::new());
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|_| BodyError::Unreadable)?;
        if body.len() + chunk.len() > limit {
            return Err(BodyError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Reads an admin request body up to `limit` bytes; beyond it, a 413
/// problem (actix's own limit would answer in plain text).
pub async fn read_limited(payload: web::Payload, limit: usize) -> Result<Vec<u8>, ApiError> {
    match read_capped(payload, limit).await {
        Ok(mut body) => Ok(std::mem::take(&mut *body)),
        Err(BodyError::TooLarge) => Err(ApiError::PayloadTooLarge { limit }),
        Err(BodyError::Unreadable) => Err(ApiError::bad_request("the body could not be read")),
    }
}

/// Reads a token-endpoint body up to `limit` bytes; beyond it, 413 with an
/// OAuth body.
pub async fn read_token_body(
    payload: web::Payload,
    limit: usize,
) -> Result<Zeroizing<Vec<u8>>, OAuthError> {
    read_capped(payload, limit).await.map_err(|e| match e {
        BodyError::TooLarge => OAuthError::payload_too_large(limit),
        BodyError::Unreadable => OAuthError::invalid_request("the body could not be read"),
    })
}
