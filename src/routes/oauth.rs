//! `POST /oauth/introspect` (RFC 7662) and `POST /oauth/revoke` (RFC 7009):
//! the form and the caller are read here; [`crate::grants::introspect`] and
//! [`crate::grants::revoke`] decide.

use actix_web::{HttpMessage, HttpRequest, HttpResponse, web};

use crate::app::AppState;
use crate::auth;
use crate::client_ip::client_ip;
use crate::domain::text::split_authorization;
use crate::error::{ApiError, AuthScheme, OAuthError};
use crate::grants::revoke::Asker;
use crate::grants::{Credential, introspect, revoke};
use crate::input::body::{TOKEN_BODY_LIMIT, read_token_body};
use crate::input::client_credentials;
use crate::input::form::{self, FormParams};
use crate::keys::secret::ApiKeySecret;
use crate::powers::Principal;
use crate::routes::token::grant_context;
use crate::telemetry::RequestId;

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
    let body = read_token_body(payload, TOKEN_BODY_LIMIT).await?;
    let signed = crate::routes::token::signed_credential(req, &body)?;
    Ok((FormParams::parse(&body)?, signed))
}

fn request_id(req: &HttpRequest) -> Option<String> {
    req.extensions().get::<RequestId>().map(|r| r.0.clone())
}

fn asker(req: &HttpRequest, state: &AppState) -> Asker {
    Asker {
        ip: client_ip(req, &state.settings.server),
        request_id: request_id(req),
    }
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
    let asker = if let Some(signed) = signed {
        introspect::Asker::Client(signed)
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
        introspect::Asker::Admin {
            may_introspect: principal.may_introspect(),
            home: principal.home,
        }
    } else {
        introspect::Asker::Client(Credential::Secret(client_credentials::credentials(
            &req, &mut form,
        )?))
    };
    let request = introspect::IntrospectRequest {
        asker,
        token: form.take("token"),
        client_ip: client_ip(&req, &state.settings.server),
        request_id: request_id(&req),
    };
    let answer = introspect::introspect(grant_context(&state), request).await?;
    Ok(match answer {
        Some(active) => HttpResponse::Ok().json(active),
        None => HttpResponse::Ok().json(serde_json::json!({"active": false})),
    })
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
    let asker = asker(&req, &state);
    let ctx = grant_context(&state);
    // A bare API-key secret in `token`, with no other credentials, names
    // and authenticates its own key.
    let sent_credentials =
        req.headers().contains_key("authorization") || form.contains("client_secret");
    if !sent_credentials && let Ok(secret) = ApiKeySecret::parse(&token) {
        revoke::by_holder(ctx, &secret, asker).await?;
        return Ok(HttpResponse::Ok().finish());
    }
    let credential = match signed {
        Some(signed) => signed,
        None => Credential::Secret(client_credentials::credentials(&req, &mut form)?),
    };
    revoke::by_client(ctx, credential, &token, asker).await?;
    Ok(HttpResponse::Ok().finish())
}
