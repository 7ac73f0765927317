//! The `Authorization` header, split the same way for the admin API and
//! for client authentication at the token endpoints.

/// Splits `Authorization` into scheme and credentials; the scheme compares
/// case-insensitively.
pub fn split_authorization(value: &str) -> Option<(&str, &str)> {
    let (scheme, rest) = value.trim().split_once(' ')?;
    Some((scheme, rest.trim()))
}
