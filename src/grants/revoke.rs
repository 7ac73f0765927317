//! RFC 7009 revocation. A client revokes its own tokens, or its key by
//! presenting the key's current secret as the token; a bare API-key secret
//! with no other credentials revokes the key it belongs to. Whatever the
//! token turns out to be, the answer is the same 200: only a failed client
//! authentication (or the database away) says otherwise.

use std::net::IpAddr;

use chrono::{DateTime, NaiveDateTime, Utc};

use crate::audit::{Actor, Origin};
use crate::db;
use crate::domain::status_list::Publication;
use crate::error::{AuthScheme, OAuthError, OAuthErrorCode};
use crate::grants::context::Context;
use crate::grants::credential::{Credential, Flavor, Presented};
use crate::grants::exchange::authenticate_client;
use crate::grants::store::{self as grants_store, Revocation};
use crate::keys::secret::{ApiKeySecret, SecretHash};
use crate::keys::store::{self, Candidate, KeyRevocation};
use crate::tokens::verify;

/// Who asked, as the request told it.
pub struct Asker {
    pub ip: Option<IpAddr>,
    pub request_id: Option<String>,
}

impl Asker {
    fn origin(&self) -> Origin {
        Origin {
            ip: self.ip.map(|ip| ip.to_string()),
            request_id: self.request_id.clone(),
        }
    }
}

/// A bare API-key secret in `token`, with no other credentials: it names
/// and authenticates its own key. Only the current secret revokes the key:
/// a rotated-out secret still in its grace may get tokens, not end the key
/// its successor now holds.
pub async fn by_holder(
    ctx: Context<'_>,
    secret: &ApiKeySecret,
    asker: Asker,
) -> Result<(), OAuthError> {
    let now = Utc::now();
    let origin = asker.origin();
    let presented = Presented {
        key_id: None,
        secret: zeroize::Zeroizing::new(secret.expose().to_owned()),
        scheme: AuthScheme::Basic,
    };
    let credential = Credential::Secret(presented);
    match authenticate_client(ctx, credential, &Flavor::Client, asker.ip, asker.request_id).await {
        Ok(caller) if !caller.via_previous => {
            revoke_key(ctx, &caller, &origin, now.naive_utc()).await
        }
        // Over the key's rate, or the database away: the key was not
        // revoked, and its holder must not be told otherwise.
        Err(err) if err.code == OAuthErrorCode::TemporarilyUnavailable => Err(err),
        _ => Ok(()),
    }
}

/// A client, authenticated by `credential`, revoking `token`: its key's
/// current secret revokes the key, one of its key's tokens is denied until
/// it expires; anything else changes nothing.
pub async fn by_client(
    ctx: Context<'_>,
    credential: Credential,
    token: &str,
    asker: Asker,
) -> Result<(), OAuthError> {
    let now = Utc::now();
    let origin = asker.origin();
    let caller =
        authenticate_client(ctx, credential, &Flavor::Client, asker.ip, asker.request_id).await?;
    if let Ok(secret) = ApiKeySecret::parse(token) {
        let is_current = caller
            .key
            .secret_hash
            .as_deref()
            .and_then(SecretHash::from_slice)
            .is_some_and(|current| current.ct_eq(&secret.hash()));
        if is_current {
            revoke_key(ctx, &caller, &origin, now.naive_utc()).await?;
        }
        return Ok(());
    }
    let settings = ctx.tokens;
    let Ok(claims) = verify::verify(ctx.keyring, token, &settings.issuer, None, now.timestamp())
    else {
        return Ok(());
    };
    if claims.client_id != caller.key.id {
        return Ok(());
    }
    let actor = Actor::key(&caller.key.id, &claims.sub, &caller.tenant.slug);
    let tenant_id = caller.tenant.id.clone();
    let key_id = caller.key.id.clone();
    let expires_at = DateTime::from_timestamp(claims.exp, 0)
        .map(|t| t.naive_utc())
        .unwrap_or_else(|| now.naive_utc());
    db::run(ctx.pool, move |conn| {
        let revocation = Revocation {
            jti: &claims.jti,
            tenant_id: &tenant_id,
            key_id: &key_id,
            exp: claims.exp,
            expires_at,
        };
        grants_store::revoke_token(conn, &revocation, &actor, &origin, now.naive_utc())
            .map_err(OAuthError::from)
    })
    .await
}

async fn revoke_key(
    ctx: Context<'_>,
    caller: &Candidate,
    origin: &Origin,
    now: NaiveDateTime,
) -> Result<(), OAuthError> {
    let actor = Actor::key(
        &caller.key.id,
        caller.key.owner.as_deref().unwrap_or_default(),
        &caller.tenant.slug,
    );
    let tenant_id = caller.tenant.id.clone();
    let key_id = caller.key.id.clone();
    let origin = origin.clone();
    let issuer = ctx.tokens.issuer.clone();
    let ttl_s = ctx.statuslist.ttl_s;
    db::run(ctx.pool, move |conn| {
        let revocation = KeyRevocation {
            reason: Some("revoked by its holder (RFC 7009)"),
            actor: &actor,
            origin: &origin,
            lists: Publication {
                issuer: &issuer,
                ttl_s,
            },
            now,
        };
        store::revoke(conn, &tenant_id, &key_id, &revocation).map_err(OAuthError::from)
    })
    .await?;
    Ok(())
}
