//! Strict reading of token-endpoint requests: the media type, the body size,
//! and `application/x-www-form-urlencoded` parameters (at most 20, none
//! repeated, none in the query string). Values are held in zeroizing strings:
//! some are secrets.

use std::collections::BTreeMap;

use actix_web::{HttpRequest, web};
use futures_util::StreamExt;
use zeroize::Zeroizing;

use crate::error::OAuthError;

/// Bodies of `/oauth/*` and `/api/v1/token`.
pub const TOKEN_BODY_LIMIT: usize = 8 * 1024;
pub const MAX_PARAMS: usize = 20;

#[derive(Default)]
pub struct FormParams {
    map: BTreeMap<String, Zeroizing<String>>,
}

impl FormParams {
    /// Parses a form body. An empty value counts as absent (RFC 6749 §3.1).
    pub fn parse(body: &[u8]) -> Result<Self, OAuthError> {
        let mut map = BTreeMap::new();
        let mut seen = 0usize;
        for (name, value) in url::form_urlencoded::parse(body) {
            seen += 1;
            if seen > MAX_PARAMS {
                return Err(OAuthError::invalid_request(format!(
                    "at most {MAX_PARAMS} parameters are accepted"
                )));
            }
            let name = name.into_owned();
            if map.contains_key(&name) {
                return Err(OAuthError::invalid_request(format!(
                    "parameter `{}` is repeated",
                    crate::domain::text::ascii_quote(&name)
                )));
            }
            map.insert(name, Zeroizing::new(value.into_owned()));
        }
        map.retain(|_, v| !v.is_empty());
        Ok(Self { map })
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.map.get(name).map(|v| v.as_str())
    }

    pub fn take(&mut self, name: &str) -> Option<Zeroizing<String>> {
        self.map.remove(name)
    }

    pub fn contains(&self, name: &str) -> bool {
        self.map.contains_key(name)
    }
}

/// Whether the request's media type (parameters such as `charset` aside) is
/// `expected`.
pub fn has_media_type(req: &HttpRequest, expected: &str) -> bool {
    req.headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|essence| essence.trim().eq_ignore_ascii_case(expected))
}

/// No parameters in the query string of a token endpoint: they end up in
/// logs and caches.
pub fn reject_query(req: &HttpRequest) -> Result<(), OAuthError> {
    if req.query_string().is_empty() {
        Ok(())
    } else {
        Err(OAuthError::invalid_request(
            "parameters must be sent in the body, not the query string",
        ))
    }
}

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

/// Reads the body up to `limit` bytes; beyond it, 413 with an OAuth body.
pub async fn read_body(
    payload: web::Payload,
    limit: usize,
) -> Result<Zeroizing<Vec<u8>>, OAuthError> {
    read_capped(payload, limit).await.map_err(|e| match e {
        BodyError::TooLarge => OAuthError::payload_too_large(limit),
        BodyError::Unreadable => OAuthError::invalid_request("the body could not be read"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_and_excess_parameters_are_refused() {
        assert!(FormParams::parse(b"a=1&a=2").is_err());
        let many: Vec<String> = (0..21).map(|i| format!("p{i}=x")).collect();
        assert!(FormParams::parse(many.join("&").as_bytes()).is_err());
        let form = FormParams::parse(b"a=1&b=&c=x%20y").unwrap();
        assert_eq!(form.get("a"), Some("1"));
        assert_eq!(form.get("b"), None);
        assert_eq!(form.get("c"), Some("x y"));
    }
}
