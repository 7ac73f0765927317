//! Audiences: an absolute URI or a `urn:`, at most 200 characters, no
//! whitespace or control characters. `urn:keymint:` names belong to keymint:
//! a tenant holds only its own `urn:keymint:tenant:<slug>`, and nobody
//! holds the admin audience.

use crate::domain::text::ascii_quote;

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

/// The namespace keymint keeps for itself. URN namespace ids compare
/// case-insensitively (RFC 8141), so `URN:KeyMint:` is the same namespace.
const RESERVED_PREFIX: &str = "urn:keymint:";

/// Whether `tenant_slug`'s tenant may NOT register or use `value` as an
/// audience: the admin audience is global, and every `urn:keymint:` name but
/// the tenant's own `urn:keymint:tenant:<slug>` is keymint's.
pub fn reserved_for(value: &str, admin_audience: &str, tenant_slug: &str) -> bool {
    if value == admin_audience {
        return true;
    }
    let in_namespace = value
        .get(..RESERVED_PREFIX.len())
        .is_some_and(|head| head.eq_ignore_ascii_case(RESERVED_PREFIX));
    in_namespace && value != tenant_audience(tenant_slug)
}

/// A tenant's own audience, `urn:keymint:tenant:<slug>`.
pub fn tenant_audience(slug: &str) -> String {
    format!("{RESERVED_PREFIX}tenant:{slug}")
}

#[cfg(test)]
mod tests {
    use super::*;

    const ADMIN: &str = "https://auth.example/api";

    #[test]
    fn a_tenant_holds_only_its_own_keymint_urn() {
        assert!(!reserved_for("urn:keymint:tenant:acme", ADMIN, "acme"));
        assert!(reserved_for("urn:keymint:tenant:default", ADMIN, "acme"));
        assert!(reserved_for("urn:keymint:tenant:acme:x", ADMIN, "acme"));
        assert!(reserved_for("urn:keymint:anything", ADMIN, "acme"));
        assert!(reserved_for("URN:KeyMint:tenant:acme", ADMIN, "acme"));
        assert!(reserved_for("urn:keymint:", ADMIN, "acme"));
    }

    #[test]
    fn the_admin_audience_is_nobody_s() {
        assert!(reserved_for(ADMIN, ADMIN, "acme"));
        assert!(reserved_for(ADMIN, ADMIN, "default"));
    }

    #[test]
    fn other_audiences_are_free() {
        assert!(!reserved_for("https://api.example.com", ADMIN, "acme"));
        assert!(!reserved_for("urn:example:billing", ADMIN, "acme"));
        assert!(!reserved_for("urn:keymintx:a", ADMIN, "acme"));
        assert!(!reserved_for("https://auth.example/api/v2", ADMIN, "acme"));
        assert!(!reserved_for("urn", ADMIN, "acme"));
    }

    #[test]
    fn audiences_are_uris_or_urns() {
        assert!(is_valid("https://api.example.com"));
        assert!(is_valid("urn:example:billing"));
        assert!(!is_valid("billing"));
        assert!(!is_valid("urn:"));
        assert!(!is_valid("https://a b"));
    }
}
