//! Rotating a key's secret under the same id, with a grace period for the
//! previous one.

use chrono::Utc;
use serde::Serialize;

use crate::audit;
use crate::db;
use crate::error::ApiError;
use crate::keys::SecurityLevel;
use crate::keys::request::RotateKey;
use crate::keys::service::{Deps, key_for_change};
use crate::keys::store;
use crate::keys::view::KeyView;
use crate::powers::{KeyAdmin, Principal};

/// The rotate response: the view, the new secret (shown this once) and until
/// when the previous secret still works.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RotatedKey {
    #[serde(flatten)]
    pub view: KeyView,
    pub key: String,
}

/// `POST /api/v1/keys/{id}/rotate`: a new secret under the same id; the
/// previous one works until the grace period ends (never past the key's own
/// expiry). Rotating again kills the previous secret at once.
///
/// The key is read inside the writing transaction, after the lock, and the
/// update only applies to the secret that read saw: two concurrent
/// rotations act as if one ran after the other, never reviving a secret
/// the first one killed.
pub async fn rotate(
    deps: &Deps<'_>,
    principal: &Principal,
    admin: KeyAdmin,
    id: &str,
    request: RotateKey,
) -> Result<RotatedKey, ApiError> {
    let grace = request.grace_period_s;
    let now = Utc::now().naive_utc();
    let actor = principal.actor();
    let origin = principal.origin.clone();
    let prefix = deps.tokens.key_prefix.clone();
    let master = deps.master.clone();
    let id = id.to_owned();
    let (updated, secret) = db::run(deps.pool, move |conn| {
        db::write_transaction(conn, |conn| {
            let (tenant, key) = key_for_change(conn, &admin, &id)?;
            let status = key.status(now);
            if status != crate::keys::Status::Active {
                return Err(ApiError::Conflict(format!(
                    "the key is {}; only active keys rotate",
                    status.as_str()
                )));
            }
            let secret = crate::keys::secret::ApiKeySecret::generate(
                &prefix,
                &ring::rand::SystemRandom::new(),
            )
            .map_err(ApiError::internal)?;
            let advanced = key.security_level == SecurityLevel::Advanced.as_str();
            let previous_until = (grace > 0).then(|| {
                let end = now + chrono::Duration::seconds(grace);
                key.expires_at.map_or(end, |exp| end.min(exp))
            });
            let changes = store::SecretChange {
                start: secret.start(),
                secret_hash: (!advanced).then(|| secret.hash().as_bytes().to_vec()),
                previous_secret_hash: previous_until.and(key.secret_hash.clone()),
                secret_enc: if advanced {
                    Some(
                        store::encrypt_secret(conn, &master, &key, secret.expose())?,
                    )
                } else {
                    None
                },
                previous_secret_enc: previous_until.and(key.secret_enc.clone()),
                previous_expires_at: previous_until,
                updated_at: now,
            };
            let n = store::swap_secret(conn, &key, &changes)?;
            if n == 0 {
                return Err(ApiError::Conflict(
                    "the key changed while rotating; try again".into(),
                ));
            }
            audit::write(
                conn,
                audit::Record {
                    tenant_id: Some(&tenant.id),
                    action: "key.rotated",
                    actor: &actor,
                    origin: &origin,
                    target_type: "key",
                    target_id: &key.id,
                    success: true,
                    details: serde_json::json!({
                        "grace_period_s": grace,
                        "previous_expires_at": changes.previous_expires_at.map(|t| t.and_utc().to_rfc3339()),
                    }),
                },
                now,
            )?;
            let updated = store::find(conn, &tenant.id, &key.id)?.ok_or(ApiError::NotFound)?;
            Ok((updated, secret))
        })
    })
    .await?;
    Ok(RotatedKey {
        view: KeyView::of(&updated, &principal.tenant.slug, &deps.tokens.issuer, now),
        key: secret.expose().to_owned(),
    })
}
