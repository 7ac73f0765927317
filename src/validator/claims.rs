//! The claims a verified token carries, with scope helpers.

use crate::tokens::issue::AccessClaims;

/// The claims of a verified token.
pub type Claims = AccessClaims;

impl AccessClaims {
    /// The token's scopes (space-separated in `scope`).
    pub fn scopes(&self) -> impl Iterator<Item = &str> {
        self.scope
            .as_deref()
            .unwrap_or("")
            .split(' ')
            .filter(|s| !s.is_empty())
    }

    pub fn has_scope(&self, wanted: &str) -> bool {
        self.scopes().any(|s| s == wanted)
    }
}
