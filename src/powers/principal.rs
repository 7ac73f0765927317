//! Who is calling, as the services see it: built by the admin extractor
//! (`auth`), and the one place its scopes turn into capabilities.

use std::collections::BTreeSet;

use super::capabilities::{
    Auditor, Caller, EventAdmin, KeyAdmin, KeyCreator, KeyReader, KeyRevoker, SelfService,
    SettingsAdmin, SigningKeyAdmin, TenantAdmin, insufficient,
};
use crate::audit::{Actor, Origin};
use crate::db::models::{ApiKey, Tenant};
use crate::domain::scope;
use crate::error::ApiError;
use crate::tenants::SYSTEM_TENANT;

/// Who is calling, with what powers, in which tenant.
#[derive(Debug, Clone)]
pub struct Principal {
    /// The calling key, as it is in the database now.
    pub key: ApiKey,
    /// The tenant the caller's key belongs to.
    pub home: Tenant,
    /// The tenant it acts in (`X-Tenant`, or its own).
    pub tenant: Tenant,
    pub sub: String,
    /// The token's scopes: the powers of this request, which only
    /// [`crate::powers`] reads.
    pub(crate) scopes: BTreeSet<String>,
    pub origin: Origin,
}

impl Principal {
    pub fn actor(&self) -> Actor {
        Actor::key(&self.key.id, &self.sub, &self.home.slug)
    }
}

impl Principal {
    fn holds(&self, scope: &str) -> bool {
        self.scopes.contains(scope)
    }

    fn needs(&self, scope: &str) -> Result<(), ApiError> {
        if self.holds(scope) {
            Ok(())
        } else {
            Err(insufficient(scope))
        }
    }

    /// Reading keys, or 403 naming `admin:keys:read`.
    pub fn key_reader(&self) -> Result<KeyReader, ApiError> {
        let everything = self.holds(scope::ADMIN_KEYS_READ) || self.holds(scope::ADMIN_KEYS_WRITE);
        if !everything && !self.holds(scope::KEYS_SELF) {
            return Err(insufficient(scope::ADMIN_KEYS_READ));
        }
        Ok(KeyReader {
            caller: Caller::of(self),
            everything,
        })
    }

    /// PATCH, delete and rotate: `admin:keys:write` only.
    pub fn key_admin(&self) -> Result<KeyAdmin, ApiError> {
        self.needs(scope::ADMIN_KEYS_WRITE)?;
        Ok(KeyAdmin {
            caller: Caller::of(self),
        })
    }

    fn self_service(&self) -> Option<SelfService> {
        self.holds(scope::KEYS_SELF).then(|| SelfService {
            caller: Caller::of(self),
            reads_all: self.holds(scope::ADMIN_KEYS_READ),
        })
    }

    /// Creating keys: as an admin (`admin:keys:write`), else as `keys:self`.
    pub fn key_creator(&self) -> Result<KeyCreator, ApiError> {
        if let Ok(admin) = self.key_admin() {
            return Ok(KeyCreator::Admin(admin));
        }
        self.self_service()
            .map(KeyCreator::SelfService)
            .ok_or_else(|| insufficient(scope::ADMIN_KEYS_WRITE))
    }

    /// Revoking keys: as an admin, else as `keys:self` (its own keys).
    pub fn key_revoker(&self) -> Result<KeyRevoker, ApiError> {
        if let Ok(admin) = self.key_admin() {
            return Ok(KeyRevoker::Admin(admin));
        }
        self.self_service()
            .map(KeyRevoker::SelfService)
            .ok_or_else(|| insufficient(scope::ADMIN_KEYS_WRITE))
    }

    pub fn settings_admin(&self) -> Result<SettingsAdmin, ApiError> {
        self.needs(scope::ADMIN_SETTINGS)?;
        Ok(SettingsAdmin(()))
    }

    pub fn auditor(&self) -> Result<Auditor, ApiError> {
        self.needs(scope::ADMIN_AUDIT)?;
        Ok(Auditor(()))
    }

    pub fn event_admin(&self) -> Result<EventAdmin, ApiError> {
        self.needs(scope::ADMIN_EVENTS)?;
        Ok(EventAdmin(()))
    }

    pub fn signing_key_admin(&self) -> Result<SigningKeyAdmin, ApiError> {
        self.needs_in_system_tenant(scope::ADMIN_SIGNING_KEYS)?;
        Ok(SigningKeyAdmin(()))
    }

    pub fn tenant_admin(&self) -> Result<TenantAdmin, ApiError> {
        self.needs_in_system_tenant(scope::ADMIN_TENANTS)?;
        Ok(TenantAdmin(()))
    }

    /// Introspection through a Bearer admin token: `tokens:introspect`.
    pub fn may_introspect(&self) -> bool {
        self.holds(scope::TOKENS_INTROSPECT)
    }

    /// `admin:tenants` and `admin:signing-keys` exist only in the system
    /// tenant; held anywhere else they grant nothing.
    fn needs_in_system_tenant(&self, scope: &str) -> Result<(), ApiError> {
        if self.home.slug == SYSTEM_TENANT {
            self.needs(scope)
        } else {
            Err(insufficient(scope))
        }
    }
}

impl Caller {
    /// The caller as the capabilities carry it into the blocking task.
    pub(super) fn of(principal: &Principal) -> Self {
        Self {
            key_id: principal.key.id.clone(),
            sub: principal.sub.clone(),
            scopes: principal.scopes.clone(),
            tenant_id: principal.tenant.id.clone(),
        }
    }
}
