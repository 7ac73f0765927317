//! A tenant's policy: reading it, and changing it as one validated,
//! all-or-nothing merge patch with its `settings.updated` event.

use std::collections::BTreeSet;
use std::net::IpAddr;

use chrono::{NaiveDateTime, SecondsFormat, Utc};
use diesel::QueryResult;
use serde::Serialize;

use super::request::{Changes, SettingsPatch};
use super::store;
use crate::audit::{self, Actor, Origin};
use crate::db::models::Tenant;
use crate::db::{self, AnyConnection, Pool};
use crate::domain::events::parse_warning_days;
use crate::domain::lists::Audiences;
use crate::domain::text::ascii_quote;
use crate::domain::{audience, cidr};
use crate::error::{ApiError, FieldError};
use crate::keys::store::live_audience_lists;
use crate::powers::{Principal, SettingsAdmin};

pub const MAX_AUDIENCES: usize = 50;
pub const MAX_RANGES: usize = 100;
pub const MAX_LIFETIME_S: i64 = 100 * 365 * 86_400;

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SettingsView {
    pub tenant: String,
    pub api_keys_enabled: bool,
    pub default_key_lifetime_s: Option<i64>,
    pub max_key_lifetime_s: Option<i64>,
    pub max_keys_per_owner: i64,
    pub default_token_ttl_s: i64,
    pub max_token_ttl_s: i64,
    pub require_ip_allowlist: bool,
    pub allowed_ip_ranges: Vec<String>,
    pub audiences: Vec<String>,
    pub default_audience: String,
    pub default_rate_limit_per_s: f64,
    /// Days before a key's expiry at which one `key-expiring` event is sent.
    pub expiry_warning_days: Vec<i64>,
    /// `revoke` or `notify`: what a leak report matching a key does.
    pub leak_response: String,
    pub updated_at: String,
}

fn ranges(tenant: &Tenant) -> Vec<String> {
    serde_json::from_str(&tenant.allowed_ip_ranges).unwrap_or_default()
}

fn to_view(tenant: &Tenant, audiences: Vec<String>) -> SettingsView {
    SettingsView {
        tenant: tenant.slug.clone(),
        api_keys_enabled: tenant.api_keys_enabled,
        default_key_lifetime_s: tenant.default_key_lifetime_s,
        max_key_lifetime_s: tenant.max_key_lifetime_s,
        max_keys_per_owner: tenant.max_keys_per_owner,
        default_token_ttl_s: tenant.default_token_ttl_s,
        max_token_ttl_s: tenant.max_token_ttl_s,
        require_ip_allowlist: tenant.require_ip_allowlist,
        allowed_ip_ranges: ranges(tenant),
        audiences,
        default_audience: tenant.default_audience.clone(),
        default_rate_limit_per_s: tenant.default_rate_limit_per_s,
        expiry_warning_days: parse_warning_days(&tenant.expiry_warning_days),
        leak_response: tenant.leak_response.clone(),
        updated_at: tenant
            .updated_at
            .and_utc()
            .to_rfc3339_opts(SecondsFormat::Millis, true),
    }
}

/// `GET /api/v1/settings`: the tenant as it is now.
pub async fn view(
    pool: &Pool,
    _power: SettingsAdmin,
    tenant: &Tenant,
) -> Result<SettingsView, ApiError> {
    let tenant = tenant.clone();
    db::run(pool, move |conn| {
        let fresh = store::find_by_id(conn, &tenant.id)?.ok_or(ApiError::NotFound)?;
        let audiences = store::audiences_of(conn, &fresh.id)?;
        Ok(to_view(&fresh, audiences))
    })
    .await
}

impl Changes {
    /// The tenant as it would be, checked as a whole.
    fn apply(&self, current: &Tenant, now: NaiveDateTime) -> Result<Tenant, ApiError> {
        let mut t = current.clone();
        if let Some(v) = self.api_keys_enabled {
            t.api_keys_enabled = v;
        }
        if let Some(v) = self.default_key_lifetime_s {
            t.default_key_lifetime_s = v;
        }
        if let Some(v) = self.max_key_lifetime_s {
            t.max_key_lifetime_s = v;
        }
        if let Some(v) = self.max_keys_per_owner {
            t.max_keys_per_owner = v;
        }
        if let Some(v) = self.default_token_ttl_s {
            t.default_token_ttl_s = v;
        }
        if let Some(v) = self.max_token_ttl_s {
            t.max_token_ttl_s = v;
        }
        if let Some(v) = self.require_ip_allowlist {
            t.require_ip_allowlist = v;
        }
        if let Some(v) = &self.allowed_ip_ranges {
            t.allowed_ip_ranges =
                serde_json::to_string(v.as_slice()).unwrap_or_else(|_| "[]".into());
        }
        if let Some(v) = &self.default_audience {
            t.default_audience = v.clone();
        }
        if let Some(v) = self.default_rate_limit_per_s {
            t.default_rate_limit_per_s = v;
        }
        if let Some(v) = &self.expiry_warning_days {
            t.expiry_warning_days = serde_json::to_string(v).unwrap_or_else(|_| "[]".into());
        }
        if let Some(v) = self.leak_response {
            t.leak_response = v.as_str().to_owned();
        }
        t.updated_at = now;
        let mut errors = Vec::new();
        if t.default_token_ttl_s > t.max_token_ttl_s {
            errors.push(FieldError::new(
                "default_token_ttl_s",
                "must not exceed max_token_ttl_s",
            ));
        }
        if let (Some(d), Some(m)) = (t.default_key_lifetime_s, t.max_key_lifetime_s)
            && d > m
        {
            errors.push(FieldError::new(
                "default_key_lifetime_s",
                "must not exceed max_key_lifetime_s",
            ));
        }
        if errors.is_empty() {
            Ok(t)
        } else {
            Err(ApiError::invalid_fields(errors))
        }
    }

    fn changed_fields(&self) -> Vec<&'static str> {
        let mut out = Vec::new();
        macro_rules! note {
            ($($f:ident),*) => { $( if self.$f.is_some() { out.push(stringify!($f)); } )* };
        }
        note!(
            api_keys_enabled,
            default_key_lifetime_s,
            max_key_lifetime_s,
            max_keys_per_owner,
            default_token_ttl_s,
            max_token_ttl_s,
            require_ip_allowlist,
            allowed_ip_ranges,
            audiences,
            default_audience,
            default_rate_limit_per_s,
            expiry_warning_days,
            leak_response
        );
        out
    }
}

/// Why a change would lock the caller out, if it would.
fn locks_out(
    new: &Tenant,
    caller_allowlist: Option<&str>,
    caller_ip: Option<IpAddr>,
) -> Option<&'static str> {
    if !new.api_keys_enabled {
        return Some("api_keys_enabled=false would refuse your own requests");
    }
    let has_list = caller_allowlist.is_some_and(|j| !cidr::parse_list(j).is_empty());
    if new.require_ip_allowlist && !has_list {
        return Some("require_ip_allowlist would stop your own key, which has no allow-list");
    }
    let ranges = cidr::parse_list(&new.allowed_ip_ranges);
    if !ranges.is_empty() && !cidr::admits(&ranges, caller_ip) {
        return Some("allowed_ip_ranges would exclude your own address");
    }
    None
}

/// One live key's `audiences`, parsed.
enum HeldAudiences {
    List(Vec<String>),
    /// Not a JSON list of strings: assumed to hold every audience, so a
    /// damaged row can only refuse a removal, never let one through.
    Unreadable,
}

impl HeldAudiences {
    fn holds(&self, audience: &str) -> bool {
        match self {
            Self::List(list) => list.iter().any(|a| a == audience),
            Self::Unreadable => true,
        }
    }
}

/// The audience lists of the tenant's keys that are neither revoked nor
/// deleted. Parsed here rather than matched in SQL: a text pattern over JSON
/// is wrong for audiences holding `"` or `\`, and JSON functions differ
/// between the backends.
fn live_key_audiences(
    conn: &mut AnyConnection,
    tenant_id: &str,
) -> QueryResult<Vec<HeldAudiences>> {
    let texts = live_audience_lists(conn, tenant_id)?;
    Ok(texts
        .iter()
        .map(|text| match serde_json::from_str::<Vec<String>>(text) {
            Ok(list) => HeldAudiences::List(list),
            Err(_) => HeldAudiences::Unreadable,
        })
        .collect())
}

/// 422 naming each field that would register an audience keymint keeps
/// for itself (see [`audience::reserved_for`]).
fn refuse_reserved(changes: &Changes, admin_audience: &str, slug: &str) -> Result<(), ApiError> {
    let reserved = |value: &str| audience::reserved_for(value, admin_audience, slug);
    let mut errors = Vec::new();
    let mut named = Vec::new();
    for value in changes.audiences.iter().flat_map(Audiences::as_slice) {
        if reserved(value) {
            named.push(ascii_quote(value));
            errors.push(FieldError::new(
                "audiences",
                format!("`{}` is reserved", ascii_quote(value)),
            ));
        }
    }
    if let Some(value) = &changes.default_audience
        && reserved(value)
    {
        named.push(ascii_quote(value));
        errors.push(FieldError::new(
            "default_audience",
            format!("`{}` is reserved", ascii_quote(value)),
        ));
    }
    if errors.is_empty() {
        return Ok(());
    }
    Err(ApiError::Unprocessable {
        detail: format!(
            "the admin audience and urn:keymint: names other than urn:keymint:tenant:{slug} are reserved: {}",
            named.join(", ")
        ),
        errors,
    })
}

/// Applies a patch in one transaction: the tenant row, its audiences and
/// the audit event, or nothing. `admin_audience` is `tokens.admin_audience`,
/// which no tenant may register.
#[allow(clippy::too_many_arguments)]
pub fn apply(
    conn: &mut AnyConnection,
    tenant_id: &str,
    changes: &Changes,
    admin_audience: &str,
    actor: &Actor,
    origin: &Origin,
    guard: impl FnOnce(&Tenant) -> Result<(), ApiError>,
    now: NaiveDateTime,
) -> Result<(Tenant, Vec<String>), ApiError> {
    db::write_transaction(conn, |conn| {
        store::lock(conn, tenant_id)?;
        let current = store::find_by_id(conn, tenant_id)?.ok_or(ApiError::NotFound)?;
        let new = changes.apply(&current, now)?;
        refuse_reserved(changes, admin_audience, &current.slug)?;
        guard(&new)?;
        let mut wanted: BTreeSet<String> = match &changes.audiences {
            Some(list) => list.as_slice().iter().cloned().collect(),
            None => store::audiences_of(conn, tenant_id)?.into_iter().collect(),
        };
        // The default audience is always registered.
        wanted.insert(new.default_audience.clone());
        let existing: BTreeSet<String> =
            store::audiences_of(conn, tenant_id)?.into_iter().collect();
        let gone: Vec<&String> = existing.difference(&wanted).collect();
        let held = if gone.is_empty() {
            Vec::new()
        } else {
            live_key_audiences(conn, tenant_id)?
        };
        for gone in gone {
            let in_use = held.iter().filter(|list| list.holds(gone)).count();
            if in_use > 0 {
                return Err(ApiError::Unprocessable {
                    detail: format!(
                        "audience `{}` is held by {in_use} live key(s)",
                        ascii_quote(gone)
                    ),
                    errors: vec![FieldError::new(
                        "audiences",
                        "an audience in use cannot be removed",
                    )],
                });
            }
            store::remove_audience(conn, gone)?;
        }
        for added in wanted.difference(&existing) {
            if store::audience_owner(conn, added)?.is_some() {
                return Err(ApiError::Conflict(format!(
                    "audience `{}` is registered to another tenant",
                    ascii_quote(added)
                )));
            }
            store::add_audience(conn, tenant_id, added, now)?;
        }
        store::update(conn, &new)?;
        audit::write(
            conn,
            audit::Record {
                tenant_id: Some(tenant_id),
                action: "settings.updated",
                actor,
                origin,
                target_type: "tenant",
                target_id: tenant_id,
                success: true,
                // `api_keys_enabled` only when it flipped: that is what sends
                // a tenant-api-keys-enabled/-disabled event.
                details: if new.api_keys_enabled == current.api_keys_enabled {
                    serde_json::json!({ "fields": changes.changed_fields() })
                } else {
                    serde_json::json!({
                        "fields": changes.changed_fields(),
                        "api_keys_enabled": new.api_keys_enabled,
                    })
                },
            },
            now,
        )?;
        Ok((new, wanted.into_iter().collect()))
    })
}

/// `PATCH /api/v1/settings`.
pub async fn patch(
    pool: &Pool,
    admin_audience: &str,
    principal: &Principal,
    _power: SettingsAdmin,
    patch: SettingsPatch,
) -> Result<SettingsView, ApiError> {
    let SettingsPatch { changes, force } = patch;
    let tenant_id = principal.tenant.id.clone();
    let own_tenant = principal.tenant.id == principal.home.id;
    let caller_allowlist = principal.key.ip_allowlist.clone();
    let caller_ip: Option<IpAddr> = principal
        .origin
        .ip
        .as_deref()
        .and_then(|ip| ip.parse().ok());
    let actor = principal.actor();
    let origin = principal.origin.clone();
    let admin_audience = admin_audience.to_owned();
    let now = Utc::now().naive_utc();
    db::run(pool, move |conn| {
        let guard = |new: &Tenant| {
            if own_tenant
                && !force
                && let Some(why) = locks_out(new, caller_allowlist.as_deref(), caller_ip)
            {
                return Err(ApiError::Unprocessable {
                    detail: format!("{why}; send \"force\": true to apply it anyway"),
                    errors: vec![FieldError::new(
                        "force",
                        "required for a change that locks you out",
                    )],
                });
            }
            Ok(())
        };
        let (tenant, audiences) = apply(
            conn,
            &tenant_id,
            &changes,
            &admin_audience,
            &actor,
            &origin,
            guard,
            now,
        )?;
        Ok(to_view(&tenant, audiences))
    })
    .await
}
