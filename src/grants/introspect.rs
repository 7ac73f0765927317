//! RFC 7662 introspection, once the caller is known: whether a token is
//! active, and what the caller may see of it. A token is active only if it
//! verifies, is the caller's tenant's (never the admin API's), its key is
//! still active there and its jti was not revoked; anything else is just
//! inactive, whatever the reason.

use std::net::IpAddr;

use chrono::Utc;
use serde::Serialize;
use zeroize::Zeroizing;

use crate::db::models::Tenant;
use crate::db::{self, AnyConnection};
use crate::error::{OAuthError, OAuthErrorCode};
use crate::grants::context::Context;
use crate::grants::credential::{Credential, Flavor};
use crate::grants::exchange::authenticate_client;
use crate::grants::store as grants_store;
use crate::keys::Status;
use crate::keys::store;
use crate::powers::key_may_introspect;
use crate::tokens::issue::AccessClaims;
use crate::tokens::verify;

/// The subset of the claims an introspection answer shows.
#[derive(Serialize)]
pub struct Active {
    active: bool,
    scope: Option<String>,
    client_id: String,
    sub: String,
    aud: String,
    iss: String,
    exp: i64,
    iat: i64,
    nbf: i64,
    jti: String,
    tid: String,
    token_type: &'static str,
}

impl From<AccessClaims> for Active {
    fn from(claims: AccessClaims) -> Self {
        Self {
            active: true,
            scope: claims.scope,
            client_id: claims.client_id,
            sub: claims.sub,
            aud: claims.aud,
            iss: claims.iss,
            exp: claims.exp,
            iat: claims.iat,
            nbf: claims.nbf,
            jti: claims.jti,
            tid: claims.tid,
            token_type: "Bearer",
        }
    }
}

/// Whether a verified token is still good: its key exists, is active and
/// belongs to the token's tenant, and its jti was not revoked.
fn still_valid(
    conn: &mut AnyConnection,
    claims: &AccessClaims,
    tenant_id: &str,
) -> diesel::QueryResult<bool> {
    let Some(key) = store::find(conn, tenant_id, &claims.client_id)? else {
        return Ok(false);
    };
    if key.status(Utc::now().naive_utc()) != Status::Active {
        return Ok(false);
    }
    Ok(!grants_store::is_revoked(conn, &claims.jti)?)
}

/// Who asks. An admin-token caller was authenticated by the HTTP floor's
/// admin extractor; a client is authenticated here, with the token
/// endpoint's checks (admission included).
pub enum Asker {
    /// A client's key: its secret or a signed request.
    Client(Credential),
    /// An admin-audience token's principal: its home tenant, and whether it
    /// holds `tokens:introspect`.
    Admin { home: Tenant, may_introspect: bool },
}

/// An introspection request: who asks, from where, about which token.
pub struct IntrospectRequest {
    pub asker: Asker,
    /// The token asked about (a bearer credential: zeroized when dropped).
    pub token: Option<Zeroizing<String>>,
    pub client_ip: Option<IpAddr>,
    pub request_id: Option<String>,
}

/// What the asker learns of the token: its claims if active, `None` if not.
pub async fn introspect(
    ctx: Context<'_>,
    request: IntrospectRequest,
) -> Result<Option<Active>, OAuthError> {
    let (tenant, may_introspect) = match request.asker {
        Asker::Admin {
            home,
            may_introspect,
        } => (home, may_introspect),
        Asker::Client(credential) => {
            let found = authenticate_client(
                ctx,
                credential,
                &Flavor::Client,
                request.client_ip,
                request.request_id,
            )
            .await?;
            let may = key_may_introspect(&found.key);
            (found.tenant, may)
        }
    };
    answer(
        ctx,
        &tenant,
        may_introspect,
        request.token.as_ref().map(|t| t.as_str()),
    )
    .await
}

/// What `tenant`'s caller, allowed to introspect or not, learns of `token`.
async fn answer(
    ctx: Context<'_>,
    tenant: &Tenant,
    may_introspect: bool,
    token: Option<&str>,
) -> Result<Option<Active>, OAuthError> {
    if !may_introspect {
        return Err(OAuthError::new(
            OAuthErrorCode::UnauthorizedClient,
            "introspection needs the tokens:introspect scope",
        ));
    }
    let Some(token) = token else {
        return Err(OAuthError::invalid_request("token is required"));
    };
    let settings = ctx.tokens;
    let now = Utc::now().timestamp();
    let Ok(claims) = verify::verify(ctx.keyring, token, &settings.issuer, None, now) else {
        return Ok(None);
    };
    // Admin-API tokens and other tenants' tokens are not the caller's to see.
    if claims.aud == settings.admin_audience || claims.tid != tenant.slug {
        return Ok(None);
    }
    let tenant_id = tenant.id.clone();
    let check = claims.clone();
    let valid = db::run(ctx.pool, move |conn| {
        still_valid(conn, &check, &tenant_id).map_err(OAuthError::from)
    })
    .await?;
    Ok(valid.then(|| Active::from(claims)))
}
