//! The capability types and the rules inside them (see the module
//! documentation of [`crate::powers`]).

use std::collections::BTreeSet;

use chrono::NaiveDateTime;
use ipnet::IpNet;

use crate::db::models::{ApiKey, Tenant};
use crate::domain::{cidr, scope};
use crate::error::ApiError;
use crate::keys::Status;
use crate::tenants::SYSTEM_TENANT;

/// Who acts, as the powers need it: cloned out of the
/// [`Principal`](super::Principal).
#[derive(Debug, Clone)]
pub(super) struct Caller {
    pub(super) key_id: String,
    pub(super) sub: String,
    /// The token's scopes: the powers of this request.
    pub(super) scopes: BTreeSet<String>,
    /// The tenant it acts in.
    pub(super) tenant_id: String,
}

impl Caller {
    fn owns(&self, key: &ApiKey) -> bool {
        key.owner.as_deref() == Some(self.sub.as_str())
    }

    /// The first reserved scope `key` holds that this caller lacks.
    fn lacks_for(&self, key: &ApiKey) -> Option<String> {
        key.scope_list()
            .into_iter()
            .find(|s| scope::is_reserved(s) && !self.scopes.contains(s))
    }
}

pub(super) fn insufficient(scope: &str) -> ApiError {
    ApiError::InsufficientScope {
        scope: scope.to_owned(),
    }
}

/// Why a caller may not change a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// The caller may not even see it: answered as if it did not exist.
    NotVisible,
    /// The key holds a reserved scope the caller lacks.
    Above(String),
    /// `keys:self` changes only keys it owns.
    NotOwned,
}

impl From<Refused> for ApiError {
    fn from(refused: Refused) -> Self {
        match refused {
            Refused::NotVisible => ApiError::NotFound,
            Refused::Above(scope) => ApiError::Forbidden(format!(
                "the key holds `{scope}`, which you do not; no caller acts above itself"
            )),
            Refused::NotOwned => {
                ApiError::Forbidden("with keys:self, you may change only keys you own".to_owned())
            }
        }
    }
}

/// Reads keys: `admin:keys:read` or `admin:keys:write` read the whole
/// tenant; `keys:self` alone reads the keys it owns.
#[derive(Debug, Clone)]
pub struct KeyReader {
    pub(super) caller: Caller,
    pub(super) everything: bool,
}

impl KeyReader {
    pub fn may_see(&self, key: &ApiKey) -> bool {
        key.tenant_id == self.caller.tenant_id
            && key.deleted_at.is_none()
            && (self.everything || self.caller.owns(key))
    }

    /// The owner every list is narrowed to, whatever the caller asked.
    pub fn forced_owner(&self) -> Option<&str> {
        (!self.everything).then_some(self.caller.sub.as_str())
    }

    pub fn tenant_id(&self) -> &str {
        &self.caller.tenant_id
    }
}

/// `admin:keys:write`: creates keys and changes any key of its tenant that
/// is not above it.
#[derive(Debug, Clone)]
pub struct KeyAdmin {
    pub(super) caller: Caller,
}

impl KeyAdmin {
    /// Whether this caller may change (PATCH, revoke, delete, rotate) `key`.
    pub fn may_change(&self, key: &ApiKey) -> Result<(), Refused> {
        if key.tenant_id != self.caller.tenant_id || key.deleted_at.is_some() {
            return Err(Refused::NotVisible);
        }
        match self.caller.lacks_for(key) {
            Some(scope) => Err(Refused::Above(scope)),
            None => Ok(()),
        }
    }

    pub fn tenant_id(&self) -> &str {
        &self.caller.tenant_id
    }

    /// Reserved scopes granted to a new key must all be held by the caller.
    pub fn may_grant(&self, scopes: &[String]) -> Result<(), ApiError> {
        may_grant(&self.caller, scopes)
    }
}

fn may_grant(caller: &Caller, scopes: &[String]) -> Result<(), ApiError> {
    match scopes
        .iter()
        .find(|s| scope::is_reserved(s) && !caller.scopes.contains(*s))
    {
        Some(s) => Err(insufficient(s)),
        None => Ok(()),
    }
}

/// `keys:self` without `admin:keys:write`: creates keys for itself, inside
/// its own key, and revokes keys it owns.
#[derive(Debug, Clone)]
pub struct SelfService {
    pub(super) caller: Caller,
    /// It also holds `admin:keys:read`: it sees every key, changes only its own.
    pub(super) reads_all: bool,
}

/// What a `keys:self` caller asked for, before the parent bounds it.
#[derive(Debug, Clone)]
pub struct ChildRequest<'a> {
    pub owner: Option<&'a str>,
    pub scopes: &'a [String],
    pub audiences: &'a [String],
    pub has_claims: bool,
    /// `None`: not asked for (inherits the parent's).
    pub ip_allowlist: Option<&'a [String]>,
    /// The expiry the tenant's rules resolved, and whether it was asked for.
    pub expires_at: Option<NaiveDateTime>,
    pub expiry_requested: bool,
    pub max_token_ttl_s: Option<i64>,
    pub rate_limit_per_s: Option<f64>,
}

/// The bounds a child receives: every field set, so that a later change of
/// the tenant's defaults can never widen it beyond its parent.
#[derive(Debug, Clone, PartialEq)]
pub struct ChildBounds {
    pub owner: String,
    pub parent_key_id: String,
    pub ip_allowlist: Option<Vec<String>>,
    pub expires_at: Option<NaiveDateTime>,
    pub max_token_ttl_s: i64,
    pub rate_limit_per_s: f64,
}

fn self_refusal(message: impl Into<String>) -> ApiError {
    ApiError::Forbidden(format!("with keys:self, {}", message.into()))
}

impl SelfService {
    /// Whether this caller may revoke `key`: one it owns and that is not
    /// above it.
    pub fn may_revoke(&self, key: &ApiKey) -> Result<(), Refused> {
        if key.tenant_id != self.caller.tenant_id || key.deleted_at.is_some() {
            return Err(Refused::NotVisible);
        }
        if !self.caller.owns(key) {
            return Err(if self.reads_all {
                Refused::NotOwned
            } else {
                Refused::NotVisible
            });
        }
        match self.caller.lacks_for(key) {
            Some(scope) => Err(Refused::Above(scope)),
            None => Ok(()),
        }
    }

    pub fn tenant_id(&self) -> &str {
        &self.caller.tenant_id
    }

    /// The key the child is made under; read it again inside the
    /// transaction that creates the child, and pass it to [`Self::bound_child`].
    pub fn parent_key_id(&self) -> &str {
        &self.caller.key_id
    }

    /// Checks a child against its parent as it is now (read under the
    /// tenant lock) and the tenant's policy, and fills in what the child
    /// inherits. The parent must still be active: a child created while its
    /// parent is revoked would outlive it.
    pub fn bound_child(
        &self,
        request: &ChildRequest<'_>,
        parent: Option<&ApiKey>,
        tenant: &Tenant,
        now: NaiveDateTime,
    ) -> Result<ChildBounds, ApiError> {
        let parent = parent
            .filter(|p| p.id == self.caller.key_id && p.status(now) == Status::Active)
            .ok_or_else(|| ApiError::Unauthorized {
                detail: "the token's key is revoked or expired".to_owned(),
                error: Some("invalid_token"),
            })?;
        // The owner is the caller's `sub`, also when that is `key:<id>` (a
        // parent without an owner): its children stay countable, listable and
        // revocable by it.
        let owner = self.caller.sub.clone();
        if request.owner.is_some_and(|o| o != owner) {
            return Err(self_refusal("keys can only be created for yourself"));
        }
        let own_scopes = parent.scope_list();
        if let Some(s) = request
            .scopes
            .iter()
            .find(|s| scope::is_reserved(s) || !own_scopes.contains(s))
        {
            return Err(self_refusal(format!(
                "only non-admin scopes your own key holds can be granted; `{s}` is not one"
            )));
        }
        let own_audiences = parent.audience_list();
        if let Some(a) = request
            .audiences
            .iter()
            .find(|a| !own_audiences.contains(a))
        {
            return Err(self_refusal(format!(
                "only audiences your own key holds can be granted; `{}` is not one",
                crate::domain::text::ascii_quote(a)
            )));
        }
        if request.has_claims {
            return Err(insufficient(scope::ADMIN_KEYS_WRITE));
        }

        let rate_cap = parent
            .rate_limit_per_s
            .unwrap_or(tenant.default_rate_limit_per_s)
            .min(tenant.default_rate_limit_per_s);
        let rate_limit_per_s = match request.rate_limit_per_s {
            Some(r) if r > rate_cap => {
                return Err(self_refusal(format!(
                    "rate_limit_per_s may not exceed {rate_cap} (your key's and the tenant default)"
                )));
            }
            Some(r) => r,
            None => rate_cap,
        };

        let parent_ttl = parent
            .max_token_ttl_s
            .unwrap_or(crate::tokens::issue::MAX_TTL_S)
            .min(tenant.max_token_ttl_s);
        let ttl_cap = parent_ttl.min(tenant.default_token_ttl_s);
        let max_token_ttl_s = match request.max_token_ttl_s {
            Some(t) if t > ttl_cap => {
                return Err(self_refusal(format!(
                    "max_token_ttl_s may not exceed {ttl_cap} (your key's and the tenant default)"
                )));
            }
            Some(t) => t,
            None => ttl_cap,
        };

        let expires_at = match (request.expires_at, parent.expires_at) {
            (_, None) => request.expires_at,
            (Some(at), Some(limit)) if at > limit => {
                if request.expiry_requested {
                    return Err(self_refusal("a key may not outlive your own"));
                }
                Some(limit)
            }
            (Some(at), Some(_)) => Some(at),
            (None, Some(limit)) => {
                if request.expiry_requested {
                    // never_expires
                    return Err(self_refusal("a key may not outlive your own"));
                }
                Some(limit)
            }
        };

        let parent_list: Option<Vec<IpNet>> = parent
            .ip_allowlist
            .as_deref()
            .map(cidr::parse_list)
            .filter(|l| !l.is_empty());
        let ip_allowlist = match (request.ip_allowlist, &parent_list) {
            (None, _) => parent
                .ip_allowlist
                .as_deref()
                .and_then(|j| serde_json::from_str(j).ok()),
            (Some(asked), None) => Some(asked.to_vec()),
            (Some(asked), Some(within)) => {
                if asked.is_empty() {
                    return Err(self_refusal(
                        "a key must keep your own key's IP allow-list (or a narrower one)",
                    ));
                }
                for entry in asked {
                    let inside = entry
                        .parse::<IpNet>()
                        .is_ok_and(|net| within.iter().any(|p| p.contains(&net)));
                    if !inside {
                        return Err(ApiError::Forbidden(format!(
                            "with keys:self, `{}` is not within your own key's IP allow-list",
                            crate::domain::text::ascii_quote(entry)
                        )));
                    }
                }
                Some(asked.to_vec())
            }
        };

        Ok(ChildBounds {
            owner,
            parent_key_id: parent.id.clone(),
            ip_allowlist,
            expires_at,
            max_token_ttl_s,
            rate_limit_per_s,
        })
    }
}

/// Who may create a key, and under which rules.
#[derive(Debug, Clone)]
pub enum KeyCreator {
    Admin(KeyAdmin),
    SelfService(SelfService),
}

/// Who may revoke a key (single or bulk).
#[derive(Debug, Clone)]
pub enum KeyRevoker {
    Admin(KeyAdmin),
    SelfService(SelfService),
}

impl KeyRevoker {
    pub fn may_revoke(&self, key: &ApiKey) -> Result<(), Refused> {
        match self {
            Self::Admin(admin) => admin.may_change(key),
            Self::SelfService(own) => own.may_revoke(key),
        }
    }

    pub fn tenant_id(&self) -> &str {
        match self {
            Self::Admin(admin) => admin.tenant_id(),
            Self::SelfService(own) => own.tenant_id(),
        }
    }
}

/// `admin:settings` over the acting tenant.
#[derive(Debug, Clone, Copy)]
pub struct SettingsAdmin(pub(super) ());

/// `admin:audit` over the acting tenant.
#[derive(Debug, Clone, Copy)]
pub struct Auditor(pub(super) ());

/// `admin:events` over the acting tenant: its event receivers and their
/// deliveries.
#[derive(Debug, Clone, Copy)]
pub struct EventAdmin(pub(super) ());

/// `admin:signing-keys`, held in the system tenant.
#[derive(Debug, Clone, Copy)]
pub struct SigningKeyAdmin(pub(super) ());

/// `admin:tenants`, held in the system tenant.
#[derive(Debug, Clone, Copy)]
pub struct TenantAdmin(pub(super) ());

/// Whether a client authenticating with `key` (Basic or a signed request)
/// may introspect: its key holds `tokens:introspect`.
pub fn key_may_introspect(key: &ApiKey) -> bool {
    key.scope_list()
        .iter()
        .any(|s| s == scope::TOKENS_INTROSPECT)
}

/// Whether a principal of `home` holding `scopes` may act in another tenant
/// through `X-Tenant`.
pub fn may_switch_tenant(home: &Tenant, scopes: &BTreeSet<String>) -> bool {
    home.slug == SYSTEM_TENANT && scopes.contains(scope::ADMIN_TENANTS)
}
