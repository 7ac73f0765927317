//! Text helpers: quoting what a client sent in a message, and the one
//! spelling of bytes (lowercase hex) and instants (RFC 3339, milliseconds,
//! `Z`) the API and the audit log use.

use chrono::{NaiveDateTime, SecondsFormat};

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

/// Lowercase hex, two digits a byte.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A stored (UTC) instant as the API shows it: `2026-12-06T08:14:22.526Z`.
pub fn timestamp(t: NaiveDateTime) -> String {
    t.and_utc().to_rfc3339_opts(SecondsFormat::Millis, true)
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
