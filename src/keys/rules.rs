//! Field rules for a new key, shared by the admin API and the CLI. Each check
//! returns the field's name and what is wrong, so callers can report every
//! bad field at once.

use chrono::{DateTime, Duration, NaiveDateTime, Utc};

use crate::db::models::Tenant;
use crate::domain::scope;
use crate::error::{ApiError, FieldError};
use crate::tenants::SYSTEM_TENANT;

pub const MAX_NAME: usize = 100;
pub const MAX_DESCRIPTION: usize = 1000;
pub use crate::domain::owner::MAX_OWNER;
pub const MAX_SCOPES: usize = 50;
pub const MAX_AUDIENCES: usize = 20;

/// A 422 naming the field a tenant's policy refuses.
pub fn policy(field: &str, message: impl Into<String>) -> ApiError {
    ApiError::Unprocessable {
        detail: message.into(),
        errors: vec![FieldError::new(field, "violates the tenant's policy")],
    }
}

pub fn name(value: &str) -> Result<(), FieldError> {
    let len = value.chars().count();
    if len == 0 || len > MAX_NAME || value.chars().any(char::is_control) {
        return Err(FieldError::new(
            "name",
            format!("must be 1 to {MAX_NAME} characters, no control characters"),
        ));
    }
    Ok(())
}

pub fn owner(value: &str) -> Result<(), FieldError> {
    crate::domain::owner::check(value).map_err(|message| FieldError::new("owner", message))
}

/// Scopes are valid tokens, at most 50; the system-only ones only in the
/// system tenant.
pub fn scopes(values: &[String], tenant: &Tenant) -> Result<(), FieldError> {
    if values.len() > MAX_SCOPES {
        return Err(FieldError::new("scopes", format!("at most {MAX_SCOPES}")));
    }
    if let Some(bad) = values.iter().find(|s| !scope::is_valid(s)) {
        return Err(FieldError::new(
            "scopes",
            format!(
                "`{}` must match ^[A-Za-z0-9:._/-]{{1,100}}$",
                crate::domain::text::ascii_quote(bad)
            ),
        ));
    }
    if tenant.slug != SYSTEM_TENANT
        && let Some(bad) = values
            .iter()
            .find(|s| *s == scope::ADMIN_TENANTS || *s == scope::ADMIN_SIGNING_KEYS)
    {
        return Err(FieldError::new(
            "scopes",
            format!("`{bad}` exists only in the system tenant `{SYSTEM_TENANT}`"),
        ));
    }
    Ok(())
}

pub fn max_token_ttl(value: i64) -> Result<(), FieldError> {
    if (30..=3600).contains(&value) {
        Ok(())
    } else {
        Err(FieldError::new(
            "max_token_ttl_s",
            "must be from 30 to 3600",
        ))
    }
}

/// How the caller asked for the key to expire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    Unspecified,
    At(DateTime<Utc>),
    In(i64),
    Never,
}

/// Resolves the expiry under the tenant's policy. Without a choice: the
/// tenant's default lifetime, else its maximum, else never.
pub fn expiry(
    choice: Expiry,
    tenant: &Tenant,
    now: NaiveDateTime,
) -> Result<Option<NaiveDateTime>, FieldError> {
    let resolved = match choice {
        Expiry::Unspecified => tenant
            .default_key_lifetime_s
            .or(tenant.max_key_lifetime_s)
            .map(|s| now + Duration::seconds(s)),
        Expiry::At(at) => {
            let at = at.naive_utc();
            if at <= now {
                return Err(FieldError::new("expires_at", "must be in the future"));
            }
            Some(at)
        }
        Expiry::In(seconds) => {
            if seconds <= 0 || seconds > 100 * 365 * 86_400 {
                return Err(FieldError::new(
                    "expires_in_s",
                    "must be a positive number of seconds (at most 100 years)",
                ));
            }
            Some(now + Duration::seconds(seconds))
        }
        Expiry::Never => {
            if tenant.max_key_lifetime_s.is_some() {
                return Err(FieldError::new(
                    "never_expires",
                    "the tenant's policy sets a maximum key lifetime",
                ));
            }
            None
        }
    };
    if let (Some(max), Some(at)) = (tenant.max_key_lifetime_s, resolved)
        && at > now + Duration::seconds(max)
    {
        let field = match choice {
            Expiry::At(_) => "expires_at",
            _ => "expires_in_s",
        };
        return Err(FieldError::new(
            field,
            format!("exceeds the tenant's maximum key lifetime of {max} s"),
        ));
    }
    Ok(resolved)
}
