//! Text helpers for messages that quote what a client sent.

/// Makes `s` safe to quote in an `error_description`: printable ASCII, short.
pub fn ascii_quote(s: &str) -> String {
    s.chars()
        .take(100)
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '?'
            }
        })
        .collect()
}

/// Splits an `Authorization` header value into scheme and credentials (the
/// scheme compares case-insensitively, so it is returned as sent). Shared by
/// the admin extractor and client authentication at the token endpoints.
pub fn split_authorization(value: &str) -> Option<(&str, &str)> {
    let (scheme, rest) = value.trim().split_once(' ')?;
    Some((scheme, rest.trim()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_input_is_plain_ascii() {
        assert_eq!(ascii_quote("a\u{e9}\n"), "a??");
    }
}
