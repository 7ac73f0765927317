//! Steps 2–3 and 5 of the checklist for a presented secret: the key it
//! belongs to, whether that key may be used now, and whether its tenant
//! admits it from this address.

use std::net::IpAddr;

use ipnet::IpNet;

use crate::domain::cidr;
use crate::grants::refusal::{Denial, Reason, lifecycle_refusal};
use crate::keys::SecurityLevel;
use crate::keys::store::Candidate;

/// Whether the key a secret's lookup found (`None`: no key) is an active
/// standard key that may be used now, or why not. `expected_id`, when
/// given, must be the key's id.
pub fn judge(
    found: Option<Candidate>,
    expected_id: Option<&str>,
    now: chrono::NaiveDateTime,
) -> Result<Candidate, Denial> {
    let Some(candidate) = found else {
        return Err(Denial::Unknown);
    };
    match unusable(&candidate, expected_id, now) {
        None => Ok(candidate),
        Some(reason) => Err(Denial::Key(Box::new(candidate), reason)),
    }
}

/// Why a key found by its secret may not be used now, if it may not.
fn unusable(
    candidate: &Candidate,
    expected_id: Option<&str>,
    now: chrono::NaiveDateTime,
) -> Option<Reason> {
    let key = &candidate.key;
    if let Some(reason) = lifecycle_refusal(key, now) {
        return Some(reason);
    }
    if candidate.via_previous && key.previous_expires_at.is_none_or(|end| end <= now) {
        return Some(Reason::GracePeriodOver);
    }
    if key.security_level != SecurityLevel::Standard.as_str() {
        return Some(Reason::WrongSecurityLevel);
    }
    if expected_id.is_some_and(|id| id != key.id) {
        return Some(Reason::ClientIdMismatch);
    }
    None
}

/// Whether an authenticated key may be used from `ip` now: the tenant's
/// switch, `require_ip_allowlist`, the tenant's ranges and the key's list.
/// Every route that authenticates a client applies it.
pub fn admit(candidate: &Candidate, ip: Option<IpAddr>) -> Result<(), Reason> {
    let tenant = &candidate.tenant;
    if !tenant.api_keys_enabled {
        return Err(Reason::ApiKeysDisabled);
    }
    let key_list: Option<Vec<IpNet>> = candidate.key.ip_allowlist.as_deref().map(cidr::parse_list);
    if tenant.require_ip_allowlist && key_list.as_ref().is_none_or(Vec::is_empty) {
        return Err(Reason::AddressNotAllowed);
    }
    let tenant_ranges = cidr::parse_list(&tenant.allowed_ip_ranges);
    if !tenant_ranges.is_empty() && !cidr::admits(&tenant_ranges, ip) {
        return Err(Reason::AddressNotAllowed);
    }
    if let Some(list) = key_list
        && !cidr::admits(&list, ip)
    {
        return Err(Reason::AddressNotAllowed);
    }
    Ok(())
}
