//! Audiences: an absolute URI or a `urn:`, at most 200 characters, no
//! whitespace or control characters.

use crate::tokens::issue::ascii_quote;

pub fn is_valid(value: &str) -> bool {
    if value.is_empty()
        || value.len() > 200
        || value.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return false;
    }
    match value.strip_prefix("urn:") {
        Some(rest) => !rest.is_empty(),
        None => url::Url::parse(value).is_ok(),
    }
}

/// The same check, with a message naming the value.
pub fn check(value: &str) -> Result<(), String> {
    if is_valid(value) {
        Ok(())
    } else {
        Err(format!(
            "`{}` must be an absolute URI or a urn:",
            ascii_quote(value)
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audiences_are_uris_or_urns() {
        assert!(is_valid("https://api.example.com"));
        assert!(is_valid("urn:example:billing"));
        assert!(!is_valid("billing"));
        assert!(!is_valid("urn:"));
        assert!(!is_valid("https://a b"));
    }
}
