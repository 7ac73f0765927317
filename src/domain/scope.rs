//! Scopes: case-sensitive tokens `^[A-Za-z0-9:._/-]{1,100}$`. A few are
//! reserved: they grant powers over keymint itself and appear only in tokens
//! for the admin audience.

use std::collections::BTreeSet;

pub const ADMIN_KEYS_READ: &str = "admin:keys:read";
pub const ADMIN_KEYS_WRITE: &str = "admin:keys:write";
pub const ADMIN_SETTINGS: &str = "admin:settings";
pub const ADMIN_AUDIT: &str = "admin:audit";
pub const ADMIN_SIGNING_KEYS: &str = "admin:signing-keys";
pub const ADMIN_TENANTS: &str = "admin:tenants";
/// Registers and manages the tenant's security-event receivers.
pub const ADMIN_EVENTS: &str = "admin:events";
pub const KEYS_SELF: &str = "keys:self";
pub const TOKENS_INTROSPECT: &str = "tokens:introspect";

pub const RESERVED: [&str; 9] = [
    ADMIN_KEYS_READ,
    ADMIN_KEYS_WRITE,
    ADMIN_SETTINGS,
    ADMIN_AUDIT,
    ADMIN_SIGNING_KEYS,
    ADMIN_TENANTS,
    ADMIN_EVENTS,
    KEYS_SELF,
    TOKENS_INTROSPECT,
];

pub const MAX_SCOPE_LEN: usize = 100;

pub fn is_reserved(scope: &str) -> bool {
    RESERVED.contains(&scope)
}

pub fn is_valid(scope: &str) -> bool {
    (1..=MAX_SCOPE_LEN).contains(&scope.len())
        && scope
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b':' | b'.' | b'_' | b'/' | b'-'))
}

/// Splits an OAuth `scope` parameter on single spaces. `Err` names the first
/// token that is empty or malformed.
pub fn parse_request(scope: &str) -> Result<BTreeSet<String>, String> {
    let mut set = BTreeSet::new();
    for token in scope.split(' ') {
        if !is_valid(token) {
            return Err(token.to_owned());
        }
        set.insert(token.to_owned());
    }
    Ok(set)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_scopes_split_on_single_spaces() {
        let set = parse_request("b a b").unwrap();
        assert_eq!(set.into_iter().collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(parse_request("a  b").unwrap_err(), "");
        assert_eq!(parse_request("").unwrap_err(), "");
        assert_eq!(parse_request("a b*c").unwrap_err(), "b*c");
        assert!(parse_request(&"x".repeat(101)).is_err());
    }

    #[test]
    fn reserved_scopes_are_exactly_the_listed_ones() {
        assert!(is_reserved("admin:keys:write"));
        assert!(!is_reserved("admin:keys"));
        assert!(!is_reserved("Admin:keys:write"));
    }
}
