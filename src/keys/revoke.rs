//! Revoking keys, one or many, and deleting them: irreversible, each with
//! the keys it created through `keys:self`, in one transaction.

use chrono::Utc;
use serde::Serialize;

use crate::audit::Origin;
use crate::db;
use crate::db::models::ApiKey;
use crate::domain::status_list::Publication;
use crate::error::ApiError;
use crate::keys::request::{RevokeKey, RevokeKeys};
use crate::keys::service::Deps;
use crate::keys::store::{self, KeyRevocation};
use crate::keys::view::KeyView;
use crate::powers::{KeyAdmin, KeyRevoker, Principal, Refused};
use crate::tenants::store as tenants;

/// `POST /api/v1/keys/{id}/revoke`: irreversible and idempotent.
pub async fn revoke(
    deps: &Deps<'_>,
    principal: &Principal,
    revoker: KeyRevoker,
    id: &str,
    request: RevokeKey,
) -> Result<KeyView, ApiError> {
    let (done, keys) = revoke_ids(
        deps,
        principal,
        revoker,
        vec![id.to_owned()],
        request.reason,
        false,
    )
    .await?;
    match keys.first() {
        Some(key) if done.not_found.is_empty() => Ok(KeyView::of(
            key,
            &principal.tenant.slug,
            &deps.tokens.issuer,
            Utc::now().naive_utc(),
        )),
        _ => Err(ApiError::NotFound),
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct BulkRevoked {
    pub revoked: Vec<String>,
    pub not_found: Vec<String>,
}

/// `POST /api/v1/keys/revoke`: 1..1000 ids in one transaction. Ids the
/// caller cannot see are `not_found`; one it sees but may not change
/// refuses the whole request, and nothing is revoked.
pub async fn revoke_many(
    deps: &Deps<'_>,
    principal: &Principal,
    revoker: KeyRevoker,
    request: RevokeKeys,
) -> Result<BulkRevoked, ApiError> {
    let (done, _) =
        revoke_ids(deps, principal, revoker, request.ids, request.reason, false).await?;
    Ok(done)
}

/// `DELETE /api/v1/keys/{id}`: revokes and leaves a tombstone.
pub async fn delete(
    deps: &Deps<'_>,
    principal: &Principal,
    admin: KeyAdmin,
    id: &str,
) -> Result<(), ApiError> {
    let (done, _) = revoke_ids(
        deps,
        principal,
        KeyRevoker::Admin(admin),
        vec![id.to_owned()],
        None,
        true,
    )
    .await?;
    if done.not_found.is_empty() {
        Ok(())
    } else {
        Err(ApiError::NotFound)
    }
}

/// Revokes (and optionally deletes) keys, with the keys they created
/// through `keys:self`, in one transaction under the tenant lock (so a child
/// being created at the same moment is either refused or revoked too); one
/// audit event per key, all sharing the request id. Returns the rows as
/// they are after the change.
async fn revoke_ids(
    deps: &Deps<'_>,
    principal: &Principal,
    revoker: KeyRevoker,
    ids: Vec<String>,
    reason: Option<String>,
    delete: bool,
) -> Result<(BulkRevoked, Vec<ApiKey>), ApiError> {
    let actor = principal.actor();
    let origin: Origin = principal.origin.clone();
    let now = Utc::now().naive_utc();
    let issuer = deps.tokens.issuer.clone();
    let ttl_s = deps.statuslist.ttl_s;
    db::run(deps.pool, move |conn| {
        let revocation = KeyRevocation {
            reason: reason.as_deref(),
            actor: &actor,
            origin: &origin,
            lists: Publication {
                issuer: &issuer,
                ttl_s,
            },
            now,
        };
        db::write_transaction(conn, |conn| {
            let tenant_id = revoker.tenant_id().to_owned();
            tenants::lock(conn, &tenant_id)?;
            let mut revoked = Vec::new();
            let mut not_found = Vec::new();
            let mut rows = Vec::new();
            for id in ids {
                let key = if uuid::Uuid::try_parse(&id).is_ok() {
                    store::find(conn, &tenant_id, &id)?
                } else {
                    None
                };
                let Some(key) = key else {
                    not_found.push(id);
                    continue;
                };
                match revoker.may_revoke(&key) {
                    Ok(()) => {}
                    Err(Refused::NotVisible) => {
                        not_found.push(id);
                        continue;
                    }
                    Err(refused) => return Err(refused.into()),
                }
                store::revoke_cascade(conn, &tenant_id, &key, &revocation)?;
                if delete {
                    store::tombstone(conn, &tenant_id, &key, &revocation)?;
                } else if let Some(row) = store::find(conn, &tenant_id, &key.id)? {
                    rows.push(row);
                }
                revoked.push(key.id);
            }
            Ok::<_, ApiError>((BulkRevoked { revoked, not_found }, rows))
        })
    })
    .await
}
