//! A key's owner: who the key acts for (a user, a service, a team), chosen
//! by the admin or defaulted to the creator's `sub`.

pub const MAX_OWNER: usize = 200;

/// `^[A-Za-z0-9@._:-]{1,200}$`, not starting with `key:` (which names a
/// key's own subject).
pub fn check(value: &str) -> Result<(), String> {
    let ok = (1..=MAX_OWNER).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'@' | b'.' | b'_' | b':' | b'-'))
        && !value.starts_with("key:");
    if ok {
        Ok(())
    } else {
        Err(format!(
            "must match ^[A-Za-z0-9@._:-]{{1,{MAX_OWNER}}}$ and not start with `key:`"
        ))
    }
}

/// An owner that passed [`check`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner(String);

impl Owner {
    pub fn parse(value: String) -> Result<Self, String> {
        check(&value)?;
        Ok(Self(value))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owners_are_plain_names_never_key_subjects() {
        assert!(Owner::parse("alice@example.com".into()).is_ok());
        assert!(Owner::parse("svc:billing-2".into()).is_ok());
        assert!(Owner::parse("key:someone".into()).is_err());
        assert!(Owner::parse(String::new()).is_err());
        assert!(Owner::parse("has space".into()).is_err());
        assert!(Owner::parse("a".repeat(MAX_OWNER + 1)).is_err());
    }
}
