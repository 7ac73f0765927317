//! Reading a signed request (advanced keys): the `KM-HMAC-SHA256`
//! headers, well-formed or refused, into the [`SignedRequest`] that
//! [`crate::grants::signed::verify`] checks.

use actix_web::HttpRequest;

use crate::grants::signed::{
    KEY_ID_HEADER, NONCE_HEADER, SCHEME, SignedError, SignedParts, SignedRequest, TIMESTAMP_HEADER,
};

/// Whether the request carries any part of a signature.
pub fn is_signed(req: &HttpRequest) -> bool {
    let headers = req.headers();
    headers.contains_key(KEY_ID_HEADER)
        || headers.contains_key(TIMESTAMP_HEADER)
        || headers.contains_key(NONCE_HEADER)
        || headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split_whitespace().next())
            .is_some_and(|s| s.eq_ignore_ascii_case(SCHEME))
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if text.len() != 64 || !text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    (0..32)
        .map(|i| u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok())
        .collect()
}

fn valid_nonce(nonce: &str) -> bool {
    (16..=64).contains(&nonce.len())
        && nonce
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Step 1: the headers are all there and well-formed.
pub fn parse(req: &HttpRequest, body: &[u8]) -> Result<SignedRequest, SignedError> {
    let headers = req.headers();
    let text = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .ok_or(SignedError::Invalid)
    };
    let key_id = text(KEY_ID_HEADER)?;
    if uuid::Uuid::try_parse(key_id).is_err() {
        return Err(SignedError::Invalid);
    }
    let timestamp = text(TIMESTAMP_HEADER)?;
    if timestamp.is_empty()
        || timestamp.len() > 15
        || !timestamp.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(SignedError::Invalid);
    }
    let timestamp_ms: i64 = timestamp.parse().map_err(|_| SignedError::Invalid)?;
    let nonce = text(NONCE_HEADER)?;
    if !valid_nonce(nonce) {
        return Err(SignedError::Invalid);
    }
    let authorization = text("authorization")?;
    let (scheme, signature) = authorization.split_once(' ').ok_or(SignedError::Invalid)?;
    if !scheme.eq_ignore_ascii_case(SCHEME) {
        return Err(SignedError::Invalid);
    }
    let signature = decode_hex(signature.trim()).ok_or(SignedError::Invalid)?;
    Ok(SignedRequest::new(SignedParts {
        key_id,
        timestamp_ms,
        nonce,
        signature,
        method: req.method().as_str(),
        path: req.path(),
        body,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_signatures_are_64_lowercase() {
        assert!(decode_hex(&"a".repeat(64)).is_some());
        assert!(decode_hex(&"A".repeat(64)).is_none());
        assert!(decode_hex(&"a".repeat(63)).is_none());
        assert!(valid_nonce("abcdefghijklmnop"));
        assert!(!valid_nonce("short"));
        assert!(!valid_nonce("has space in it!!"));
    }
}
