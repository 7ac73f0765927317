//! A report's body, read with bounds: a JSON array of at most
//! [`MAX_TOKENS`] objects with string `token`, `type`, `url` and `source`.
//! Members senders may add later are ignored; the four are required.

use serde::Deserialize;

use crate::error::{ApiError, FieldError};

pub const MAX_TOKENS: usize = 1000;
/// The largest report body read.
pub const MAX_BODY: usize = 1024 * 1024;
const MAX_TOKEN_LEN: usize = 512;
const MAX_URL_LEN: usize = 2048;
const MAX_LABEL_LEN: usize = 100;

/// One reported token.
#[derive(Debug, Clone, Deserialize)]
pub struct Reported {
    pub token: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub url: String,
    pub source: String,
}

impl Reported {
    fn check(&self, i: usize, errors: &mut Vec<FieldError>) {
        let mut bound = |name: &str, value: &str, max: usize| {
            if value.len() > max || value.chars().any(char::is_control) {
                errors.push(FieldError::new(
                    format!("[{i}].{name}"),
                    format!("must be at most {max} bytes without control characters"),
                ));
            }
        };
        bound("token", &self.token, MAX_TOKEN_LEN);
        bound("type", &self.kind, MAX_LABEL_LEN);
        bound("url", &self.url, MAX_URL_LEN);
        bound("source", &self.source, MAX_LABEL_LEN);
    }
}

/// The tokens of a report, or a 400 naming what is wrong.
pub fn parse(body: &[u8]) -> Result<Vec<Reported>, ApiError> {
    let items: Vec<serde_json::Value> = serde_json::from_slice(body).map_err(|_| {
        ApiError::bad_request("the report must be a JSON array of {token, type, url, source}")
    })?;
    if items.is_empty() || items.len() > MAX_TOKENS {
        return Err(ApiError::bad_request(format!(
            "a report holds 1 to {MAX_TOKENS} tokens"
        )));
    }
    let mut errors = Vec::new();
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        match serde_json::from_value::<Reported>(item) {
            Ok(reported) => {
                reported.check(i, &mut errors);
                out.push(reported);
            }
            Err(_) => errors.push(FieldError::new(
                format!("[{i}]"),
                "must be an object with string token, type, url and source",
            )),
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(ApiError::invalid_fields(errors))
    }
}
