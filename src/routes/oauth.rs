//! `POST /oauth/introspect` (RFC 7662) and `POST /oauth/revoke` (RFC 7009).

use actix_web::{HttpMessage, HttpRequest, HttpResponse, web};
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use serde::Serialize;

use crate::app::AppState;
use crate::audit::{self, Actor, Origin};
use crate::auth::{self, Principal, powers};
use crate::client_ip::client_ip;
use crate::db::models::{ApiKey, Tenant};
use crate::db::schema::revoked_tokens;
use crate::db::{self, AnyConnection};
use crate::error::{ApiError, AuthScheme, OAuthError, OAuthErrorCode};
use crate::grants::form::{self, FormParams, TOKEN_BODY_LIMIT};
use crate::grants::{self, Credential, Flavor, Presented, client_credentials};
use crate::input::authorization::split_authorization;
use crate::keys::secret::{ApiKeySecret, SecretHash};
use crate::keys::{Status, store};
use crate::telemetry::RequestId;
use crate::tokens::issue::AccessClaims;
use crate::tokens::verify;

/// Who asked: a key, in its tenant.
struct Caller {
    key: ApiKey,
    tenant: Tenant,
    /// It authenticated with its previous secret, in the rotation grace.
    via_previous: bool,
}

/// The form, and the signed-request credential if the request is signed
/// (it covers the raw body).
async fn read_form(
    req: &HttpRequest,
    payload: web::Payload,
) -> Result<(FormParams, Option<Credential>), OAuthError> {
    form::reject_query(req)?;
    if !form::has_media_type(req, "application/x-www-form-urlencoded") {
        return Err(OAuthError::invalid_request(
            "the body must be application/x-www-form-urlencoded",
        ));
    }
    let body = form::read_body(payload, TOKEN_BODY_LIMIT).await?;
    let signed = crate::routes::token::signed_credential(req, &body)?;
    Ok((FormParams::parse(&body)?, signed))
}

fn origin(req: &HttpRequest, state: &AppState) -> Origin {
    Origin {
        ip: client_ip(req, &state.settings.server).map(|ip| ip.to_string()),
        request_id: req.extensions().get::<RequestId>().map(|r| r.0.clone()),
    }
}

/// A client authenticating with its key id and secret, or a signed
/// request: admitted by the same checks as at the token endpoint.
async fn authenticate_key(
    state: &AppState,
    req: &HttpRequest,
    credential: Credential,
) -> Result<Caller, OAuthError> {
    let ip = client_ip(req, &state.settings.server);
    let request_id = req.extensions().get::<RequestId>().map(|r| r.0.clone());
    let found =
        grants::authenticate_client(state, credential, &Flavor::Client, ip, request_id).await?;
    Ok(Caller {
        via_previous: found.via_previous,
        key: found.key,
        tenant: found.tenant,
    })
}

/// The subset of the claims an introspection answer shows.
#[derive(Serialize)]
struct Active {
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

fn inactive() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({"active": false}))
}

/// Whether a verified token is still good: its key exists, is active and
/// belongs to the token's tenant, and its jti was not revoked.
fn still_valid(
    conn: &mut AnyConnection,
    claims: &AccessClaims,
    tenant_id: &str,
) -> QueryResult<bool> {
    let Some(key) = store::find(conn, tenant_id, &claims.client_id)? else {
        return Ok(false);
    };
    if key.status(Utc::now().naive_utc()) != Status::Active {
        return Ok(false);
    }
    let revoked: bool = diesel::select(diesel::dsl::exists(
        revoked_tokens::table.filter(revoked_tokens::jti.eq(&claims.jti)),
    ))
    .get_result(conn)?;
    Ok(!revoked)
}

#[utoipa::path(operation_id = "introspect", post, path = "/oauth/introspect", tag = "validation",
    request_body(content = crate::openapi::schemas::TokenForm7662, content_type = "application/x-www-form-urlencoded"),
    security(("client_basic" = []), ("signed_request" = []), ("admin_bearer" = [])),
    responses(
        (status = 200, description = "RFC 7662 answer; the caller needs `tokens:introspect`", body = crate::openapi::schemas::Introspection),
        crate::openapi::schemas::OAuthErrors,
    ))]
pub async fn introspect(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, OAuthError> {
    let (mut form, signed) = read_form(&req, payload).await?;
    // The caller: Basic key_id:secret, a signed request, or a Bearer
    // admin-audience JWT.
    let bearer = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(split_authorization)
        .is_some_and(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"));
    let (tenant, may_introspect) = if let Some(signed) = signed {
        let caller = authenticate_key(&state, &req, signed).await?;
        let may = powers::key_may_introspect(&caller.key);
        (caller.tenant, may)
    } else if bearer {
        let principal: Principal =
            auth::authenticate(req.clone())
                .await
                .map_err(|err| match err {
                    // The admin API's limits (per address, per calling key) hold here too.
                    ApiError::TooManyRequests { retry_after_s } => {
                        OAuthError::rate_limited(retry_after_s)
                    }
                    ApiError::Unavailable => OAuthError::unavailable(1),
                    _ => OAuthError::invalid_client(AuthScheme::Basic),
                })?;
        let may = principal.may_introspect();
        (principal.home, may)
    } else {
        let presented = client_credentials::credentials(&req, &mut form)?;
        let caller = authenticate_key(&state, &req, Credential::Secret(presented)).await?;
        let may = powers::key_may_introspect(&caller.key);
        (caller.tenant, may)
    };
    if !may_introspect {
        return Err(OAuthError::new(
            crate::error::OAuthErrorCode::UnauthorizedClient,
            "introspection needs the tokens:introspect scope",
        ));
    }
    let Some(token) = form.get("token").map(str::to_owned) else {
        return Err(OAuthError::invalid_request("token is required"));
    };
    let settings = &state.settings.tokens;
    let now = Utc::now().timestamp();
    let Ok(claims) = verify::verify(&state.keyring, &token, &settings.issuer, None, now) else {
        return Ok(inactive());
    };
    // Admin-API tokens and other tenants' tokens are not the caller's to see.
    if claims.aud == settings.admin_audience || claims.tid != tenant.slug {
        return Ok(inactive());
    }
    let tenant_id = tenant.id.clone();
    let check = claims.clone();
    let valid = db::run(&state.pool, move |conn| {
        still_valid(conn, &check, &tenant_id).map_err(OAuthError::from)
    })
    .await?;
    if !valid {
        return Ok(inactive());
    }
    Ok(HttpResponse::Ok().json(Active {
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
    }))
}

#[utoipa::path(operation_id = "revokeToken", post, path = "/oauth/revoke", tag = "validation",
    request_body(content = crate::openapi::schemas::TokenForm7662, content_type = "application/x-www-form-urlencoded"),
    security((), ("client_basic" = []), ("signed_request" = [])),
    responses(
        (status = 200, description = "Revoked, or nothing to do (RFC 7009 §2.2)"),
        crate::openapi::schemas::OAuthErrors,
    ))]
pub async fn revoke(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, OAuthError> {
    let (mut form, signed) = read_form(&req, payload).await?;
    let Some(token) = form.take("token") else {
        return Err(OAuthError::invalid_request("token is required"));
    };
    let origin = origin(&req, &state);
    let now = Utc::now();

    // A bare API-key secret in `token`, with no other credentials, names and
    // authenticates its own key. Only the current secret revokes the key: a
    // rotated-out secret still in its grace may get tokens, not end the key
    // its successor now holds.
    let sent_credentials =
        req.headers().contains_key("authorization") || form.contains("client_secret");
    if !sent_credentials && let Ok(secret) = ApiKeySecret::parse(&token) {
        let presented = Presented {
            key_id: None,
            secret: zeroize::Zeroizing::new(secret.expose().to_owned()),
            scheme: AuthScheme::Basic,
        };
        match authenticate_key(&state, &req, Credential::Secret(presented)).await {
            Ok(caller) if !caller.via_previous => {
                revoke_key(&state, &caller, &origin, now.naive_utc()).await?;
            }
            // Over the key's rate, or the database away: the key was not
            // revoked, and its holder must not be told otherwise.
            Err(err) if err.code == OAuthErrorCode::TemporarilyUnavailable => return Err(err),
            _ => {}
        }
        return Ok(HttpResponse::Ok().finish());
    }

    let credential = match signed {
        Some(signed) => signed,
        None => Credential::Secret(client_credentials::credentials(&req, &mut form)?),
    };
    let caller = authenticate_key(&state, &req, credential).await?;
    if let Ok(secret) = ApiKeySecret::parse(&token) {
        let is_current = caller
            .key
            .secret_hash
            .as_deref()
            .and_then(SecretHash::from_slice)
            .is_some_and(|current| current.ct_eq(&secret.hash()));
        if is_current {
            revoke_key(&state, &caller, &origin, now.naive_utc()).await?;
        }
        return Ok(HttpResponse::Ok().finish());
    }
    let settings = &state.settings.tokens;
    let Ok(claims) = verify::verify(
        &state.keyring,
        &token,
        &settings.issuer,
        None,
        now.timestamp(),
    ) else {
        return Ok(HttpResponse::Ok().finish());
    };
    if claims.client_id != caller.key.id {
        return Ok(HttpResponse::Ok().finish());
    }
    let actor = Actor::key(&caller.key.id, &claims.sub, &caller.tenant.slug);
    let tenant_id = caller.tenant.id.clone();
    let key_id = caller.key.id.clone();
    let expires_at = DateTime::from_timestamp(claims.exp, 0)
        .map(|t| t.naive_utc())
        .unwrap_or_else(|| now.naive_utc());
    db::run(&state.pool, move |conn| {
        let written = db::write_transaction(conn, |conn| {
            let already: bool = diesel::select(diesel::dsl::exists(
                revoked_tokens::table.filter(revoked_tokens::jti.eq(&claims.jti)),
            ))
            .get_result(conn)?;
            if !already {
                diesel::insert_into(revoked_tokens::table)
                    .values((
                        revoked_tokens::jti.eq(&claims.jti),
                        revoked_tokens::tenant_id.eq(&tenant_id),
                        revoked_tokens::key_id.eq(&key_id),
                        revoked_tokens::expires_at.eq(expires_at),
                        revoked_tokens::revoked_at.eq(now.naive_utc()),
                    ))
                    .execute(conn)?;
                audit::write(
                    conn,
                    audit::Record {
                        tenant_id: Some(&tenant_id),
                        action: "token.revoked",
                        actor: &actor,
                        origin: &origin,
                        target_type: "token",
                        target_id: &claims.jti,
                        success: true,
                        details: serde_json::json!({ "exp": claims.exp }),
                    },
                    now.naive_utc(),
                )?;
            }
            Ok::<_, diesel::result::Error>(())
        });
        match written {
            // A concurrent revocation of the same token won the insert.
            Err(diesel::result::Error::DatabaseError(
                diesel::result::DatabaseErrorKind::UniqueViolation,
                _,
            )) => Ok(()),
            other => other.map_err(OAuthError::from),
        }
    })
    .await?;
    Ok(HttpResponse::Ok().finish())
}

async fn revoke_key(
    state: &AppState,
    caller: &Caller,
    origin: &Origin,
    now: chrono::NaiveDateTime,
) -> Result<(), OAuthError> {
    let actor = Actor::key(
        &caller.key.id,
        caller.key.owner.as_deref().unwrap_or_default(),
        &caller.tenant.slug,
    );
    let tenant_id = caller.tenant.id.clone();
    let key_id = caller.key.id.clone();
    let origin = origin.clone();
    db::run(&state.pool, move |conn| {
        store::revoke(
            conn,
            &tenant_id,
            &key_id,
            Some("revoked by its holder (RFC 7009)"),
            &actor,
            &origin,
            now,
        )
        .map_err(OAuthError::from)
    })
    .await?;
    Ok(())
}
