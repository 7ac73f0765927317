//! What the tenant and settings routes ask of the services, already parsed
//! (the HTTP floor reads the JSON and names every bad field); the services
//! never see bytes.

use crate::domain::events::LeakResponse;
use crate::domain::lists::{AllowList, Audiences};

/// A parsed settings patch: `None` leaves a field as it is.
#[derive(Debug, Default, Clone)]
pub struct Changes {
    pub api_keys_enabled: Option<bool>,
    pub default_key_lifetime_s: Option<Option<i64>>,
    pub max_key_lifetime_s: Option<Option<i64>>,
    pub max_keys_per_owner: Option<i64>,
    pub default_token_ttl_s: Option<i64>,
    pub max_token_ttl_s: Option<i64>,
    pub require_ip_allowlist: Option<bool>,
    pub allowed_ip_ranges: Option<AllowList>,
    pub audiences: Option<Audiences>,
    pub default_audience: Option<String>,
    pub default_rate_limit_per_s: Option<f64>,
    /// Distinct, largest first.
    pub expiry_warning_days: Option<Vec<i64>>,
    pub leak_response: Option<LeakResponse>,
}

/// `PATCH /api/v1/settings`: the changes, and whether the caller accepts
/// one that would lock it out.
#[derive(Debug, Default, Clone)]
pub struct SettingsPatch {
    pub changes: Changes,
    pub force: bool,
}

/// `POST /api/v1/tenants`: a valid slug and name.
#[derive(Debug, Clone)]
pub struct NewTenant {
    pub slug: String,
    pub name: String,
}

/// `PATCH /api/v1/tenants/{slug}`: the new name, if one was sent.
#[derive(Debug, Clone)]
pub struct RenameTenant {
    pub name: Option<String>,
}

/// `GET /api/v1/tenants`: a checked page size and where the previous page
/// ended (from a cursor already opened).
#[derive(Debug, Clone)]
pub struct TenantPage {
    pub limit: i64,
    pub after: Option<String>,
}
