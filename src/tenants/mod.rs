//! Tenants and their policy rows.

pub mod audit;
pub mod policy;
pub mod request;
pub mod service;
pub mod store;

/// The system tenant, created at bootstrap; only its keys may hold
/// `admin:tenants` and `admin:signing-keys`.
pub const SYSTEM_TENANT: &str = "default";

pub fn default_audience(slug: &str) -> String {
    crate::domain::audience::tenant_audience(slug)
}

/// `^[a-z0-9][a-z0-9-]{1,39}$`
pub fn is_valid_slug(slug: &str) -> bool {
    let bytes = slug.as_bytes();
    (2..=40).contains(&bytes.len())
        && (bytes[0].is_ascii_lowercase() || bytes[0].is_ascii_digit())
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
}
