//! Strict reading of token-endpoint requests: the media type and
//! `application/x-www-form-urlencoded` parameters (at most 20, none
//! repeated, none in the query string). Values are held in zeroizing strings:
//! some are secrets. The body itself is read, capped, by
//! the HTTP input floor (`input::body`).

use std::collections::BTreeMap;

use actix_web::HttpRequest;
use zeroize::Zeroizing;

use crate::error::OAuthError;

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
