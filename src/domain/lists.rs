//! The checked lists keys and tenant policies are made of: built only by
//! `parse`, so a request holding one needs no second look.

use crate::domain::text::ascii_quote;
use crate::domain::{audience, cidr, scope};

/// One scope token's syntax, as the error names it.
pub fn scope_syntax(value: &str) -> Result<(), String> {
    if scope::is_valid(value) {
        Ok(())
    } else {
        Err(format!(
            "`{}` must match ^[A-Za-z0-9:._/-]{{1,100}}$",
            ascii_quote(value)
        ))
    }
}

/// A list whose every entry passed `check`; how many it may hold is the
/// caller's bound (it differs per field).
macro_rules! checked_list {
    ($(#[$doc:meta])* $name:ident, $check:path) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Default, PartialEq, Eq)]
        pub struct $name(Vec<String>);

        impl $name {
            /// One entry's syntax, as the error names it.
            pub fn check(value: &str) -> Result<(), String> {
                $check(value)
            }

            pub fn parse(list: Vec<String>) -> Result<Self, String> {
                list.iter().try_for_each(|v| $check(v))?;
                Ok(Self(list))
            }

            pub fn as_slice(&self) -> &[String] {
                &self.0
            }

            pub fn into_vec(self) -> Vec<String> {
                self.0
            }
        }
    };
}

checked_list!(
    /// Scope tokens (`^[A-Za-z0-9:._/-]{1,100}$`).
    Scopes,
    scope_syntax
);
checked_list!(
    /// Audiences: absolute URIs or plain names (see `domain::audience`).
    Audiences,
    audience::check
);
checked_list!(
    /// An IP allow-list: CIDR blocks, host bits clear.
    AllowList,
    cidr::check
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_valid_values_parse() {
        assert!(Scopes::parse(vec!["read:a".into(), "b/c".into()]).is_ok());
        assert!(Scopes::parse(vec!["has space".into()]).is_err());
        assert!(AllowList::parse(vec!["10.0.0.0/8".into(), "2001:db8::/32".into()]).is_ok());
        assert!(AllowList::parse(vec!["not-an-ip".into()]).is_err());
        assert!(Audiences::parse(Vec::new()).is_ok());
    }
}
