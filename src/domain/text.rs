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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_input_is_plain_ascii() {
        assert_eq!(ascii_quote("a\u{e9}\n"), "a??");
    }
}
