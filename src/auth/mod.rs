//! Authentication of the admin API: `Authorization: Bearer <JWT>` only, a
//! token keymint issued for the admin audience, whose key is re-checked
//! against the database on every request (a revoked key stops at once).
//!
//! Failures answer with RFC 6750 challenges: no credentials → 401
//! `Bearer realm="keymint"`; a bad token → 401 `error="invalid_token"`;
//! a missing permission → 403 `error="insufficient_scope"` naming it.

pub mod denials;

// The principal and its powers are the services' (see `crate::powers`);
// this module only builds one from a request.
use crate::powers::{self, Principal};

use std::collections::BTreeSet;
use std::future::Future;
use std::pin::Pin;

use actix_web::{FromRequest, HttpMessage, HttpRequest, dev::Payload, web};
use chrono::Utc;

use crate::app::AppState;
use crate::audit::Origin;
use crate::client_ip::client_ip;
use crate::db::models::{ApiKey, Tenant};
use crate::db::{self, AnyConnection};
use crate::domain::text::split_authorization;
use crate::error::ApiError;
use crate::grants::store as grants_store;
use crate::keys::Status;
use crate::keys::store as key_store;
use crate::telemetry::RequestId;
use crate::tenants;
use crate::tokens::verify;

fn no_credentials() -> ApiError {
    ApiError::Unauthorized {
        detail: "send Authorization: Bearer <access token for the admin API>".to_owned(),
        error: None,
    }
}

fn invalid_token(detail: &str) -> ApiError {
    ApiError::Unauthorized {
        detail: detail.to_owned(),
        error: Some("invalid_token"),
    }
}

/// The caller's key, its tenant and whether the token's jti was revoked.
fn load_caller(
    conn: &mut AnyConnection,
    key_id: &str,
    jti: &str,
) -> diesel::QueryResult<Option<(ApiKey, Tenant, bool)>> {
    let Some((key, tenant)) = key_store::find_live_with_tenant(conn, key_id)? else {
        return Ok(None);
    };
    let revoked = grants_store::is_revoked(conn, jti)?;
    Ok(Some((key, tenant, revoked)))
}

pub async fn authenticate(req: HttpRequest) -> Result<Principal, ApiError> {
    let state = req
        .app_data::<web::Data<AppState>>()
        .cloned()
        .ok_or_else(|| ApiError::internal("application state missing"))?;
    let ip = client_ip(&req, &state.settings.server);
    state
        .limiter
        .check_address(ip)
        .map_err(|retry_after_s| ApiError::TooManyRequests { retry_after_s })?;
    let result = verify_principal(&req, &state).await;
    // Every refused credential counts, a missing or non-Bearer
    // Authorization included: probing without one must not be free.
    if let Err(ApiError::Unauthorized { .. }) = &result {
        state.limiter.record_failure(ip);
    }
    result
}

async fn verify_principal(req: &HttpRequest, state: &AppState) -> Result<Principal, ApiError> {
    let header = req
        .headers()
        .get("authorization")
        .ok_or_else(no_credentials)?;
    let value = header
        .to_str()
        .map_err(|_| invalid_token("malformed Authorization header"))?;
    let token = match split_authorization(value) {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => token.to_owned(),
        // ApiKey, Basic and the rest never authenticate the admin API.
        _ => return Err(no_credentials()),
    };
    let settings = &state.settings.tokens;
    let now = Utc::now();
    let claims = verify::verify(
        &state.keyring,
        &token,
        &settings.issuer,
        Some(&settings.admin_audience),
        now.timestamp(),
    )
    .map_err(|e| invalid_token(&e.to_string()))?;
    // The verified token names the calling key: an over-rate caller is
    // refused before it costs a query.
    state
        .admin_limiter
        .take(&claims.client_id)
        .map_err(|retry_after_s| ApiError::TooManyRequests { retry_after_s })?;
    let x_tenant = match req.headers().get("x-tenant") {
        Some(v) => Some(
            v.to_str()
                .map_err(|_| ApiError::bad_request("X-Tenant is not a tenant slug"))?
                .to_owned(),
        ),
        None => None,
    };

    let key_id = claims.client_id.clone();
    let jti = claims.jti.clone();
    let loaded = db::run(&state.pool, move |conn| {
        let caller = load_caller(conn, &key_id, &jti)?;
        let acting = match &x_tenant {
            Some(slug) => Some(tenants::store::find_by_slug(conn, slug)?),
            None => None,
        };
        Ok::<_, ApiError>((caller, acting))
    })
    .await?;
    let (caller, acting) = loaded;
    let Some((key, home, jti_revoked)) = caller else {
        return Err(invalid_token("the token's key no longer exists"));
    };
    if jti_revoked {
        return Err(invalid_token("the token was revoked"));
    }
    if key.status(now.naive_utc()) != Status::Active {
        return Err(invalid_token("the token's key is revoked or expired"));
    }
    if home.slug != claims.tid {
        return Err(invalid_token("the token's tenant does not match its key"));
    }
    if !home.api_keys_enabled {
        return Err(invalid_token("API keys are disabled for this tenant"));
    }
    let scopes: BTreeSet<String> = claims
        .scope
        .as_deref()
        .map(|s| s.split(' ').map(str::to_owned).collect())
        .unwrap_or_default();
    let tenant = match acting {
        None => home.clone(),
        Some(found) => {
            if !powers::may_switch_tenant(&home, &scopes) {
                return Err(ApiError::bad_request(
                    "X-Tenant is honoured only for system-tenant callers holding admin:tenants",
                ));
            }
            found.ok_or(ApiError::NotFound)?
        }
    };
    req.extensions_mut()
        .insert(denials::AuthenticatedTenant(tenant.id.clone()));
    let origin = Origin {
        ip: client_ip(req, &state.settings.server).map(|ip| ip.to_string()),
        request_id: req.extensions().get::<RequestId>().map(|r| r.0.clone()),
    };
    Ok(Principal {
        key,
        home,
        tenant,
        sub: claims.sub,
        scopes,
        origin,
    })
}

impl FromRequest for Principal {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        Box::pin(authenticate(req.clone()))
    }
}
