//! The prefix every API key secret starts with (`tokens.key_prefix`, e.g.
//! `km`): `^[a-z][a-z0-9]{0,9}$`, so a secret is recognisable in logs and
//! secret scanners and never mistaken for another vendor's.

use std::fmt;

/// A prefix that passed [`KeyPrefix::parse`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyPrefix(String);

/// What the configuration reports for a bad prefix.
pub const RULE: &str = "must match ^[a-z][a-z0-9]{0,9}$";

impl KeyPrefix {
    pub fn parse(prefix: &str) -> Result<Self, &'static str> {
        if is_valid(prefix) {
            Ok(Self(prefix.to_owned()))
        } else {
            Err(RULE)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for KeyPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Whether `prefix` may be a key prefix; for checks on untrusted input
/// that need no value back (parsing a presented secret).
pub fn is_valid(prefix: &str) -> bool {
    let bytes = prefix.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 10
        && bytes[0].is_ascii_lowercase()
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_follow_the_rule() {
        for ok in ["km", "a", "abc123", "abcdefghij"] {
            assert_eq!(KeyPrefix::parse(ok).unwrap().as_str(), ok);
        }
        for bad in ["", "Km", "1km", "k_m", "abcdefghijk", "km-"] {
            assert_eq!(KeyPrefix::parse(bad), Err(RULE), "{bad}");
        }
    }
}
