//! `POST /oauth/token` (client_credentials, RFC 8693 token exchange) and
//! `POST /api/v1/token` (the one-header form).

use actix_web::{HttpMessage, HttpRequest, HttpResponse, web};

use crate::app::AppState;
use crate::client_ip::client_ip;
use crate::error::{OAuthError, OAuthErrorCode};
use crate::grants::{self, Context, Credential, Grant, TOKEN_EXCHANGE, TokenRequest};
use crate::input::body::{TOKEN_BODY_LIMIT, read_token_body};
use crate::input::form::{self, FormParams};
use crate::input::{api_key, client_credentials, signed, token_exchange};
use crate::telemetry::RequestId;
use crate::tokens::issue::Requested;

const CLIENT_CREDENTIALS: &str = "client_credentials";

fn request_id(req: &HttpRequest) -> Option<String> {
    req.extensions().get::<RequestId>().map(|r| r.0.clone())
}

/// The part of the state the grant services use: they never see the
/// whole of it.
pub fn grant_context(state: &AppState) -> Context<'_> {
    Context {
        pool: &state.pool,
        inline: &state.inline,
        lookups: state.lookups.as_deref(),
        master: &state.master,
        keyring: &state.keyring,
        limiter: &state.limiter,
        usage: &state.usage,
        tokens: &state.settings.tokens,
        statuslist: &state.settings.statuslist,
    }
}

/// A signed request's credential, if the request is signed.
pub fn signed_credential(req: &HttpRequest, body: &[u8]) -> Result<Option<Credential>, OAuthError> {
    if !signed::is_signed(req) {
        return Ok(None);
    }
    signed::parse(req, body)
        .map(|s| Some(Credential::Signed(s)))
        .map_err(OAuthError::from)
}

fn requested(form: &FormParams) -> Requested {
    Requested {
        expires_in: form.get("expires_in").map(str::to_owned),
        scope: form.get("scope").map(str::to_owned),
        audience: form.get("audience").map(str::to_owned),
        resource: form.get("resource").map(str::to_owned),
    }
}

/// The grant named by `grant_type`, with its credentials taken out of the
/// form (so nothing later can echo them).
fn parse_grant(
    req: &HttpRequest,
    form: &mut FormParams,
    signed: Option<Credential>,
) -> Result<Grant, OAuthError> {
    match form.get("grant_type") {
        None => Err(OAuthError::invalid_request("grant_type is required")),
        Some(CLIENT_CREDENTIALS) => {
            let credential = match signed {
                Some(signed) => {
                    if form.contains("client_secret") || form.contains("client_id") {
                        return Err(OAuthError::invalid_request(
                            "a signed request carries no other client credentials",
                        ));
                    }
                    signed
                }
                None => Credential::Secret(client_credentials::credentials(req, form)?),
            };
            Ok(Grant::Client(credential))
        }
        Some(TOKEN_EXCHANGE) => {
            if signed.is_some() {
                return Err(OAuthError::invalid_request(
                    "signed requests are accepted with client_credentials only",
                ));
            }
            Ok(Grant::TokenExchange(token_exchange::parse(req, form)?))
        }
        Some(_) => Err(OAuthError::new(
            OAuthErrorCode::UnsupportedGrantType,
            "supported grant types: client_credentials, urn:ietf:params:oauth:grant-type:token-exchange",
        )),
    }
}

#[utoipa::path(operation_id = "oauthToken", post, path = "/oauth/token", tag = "tokens",
    request_body(content = crate::openapi::schemas::TokenForm, content_type = "application/x-www-form-urlencoded"),
    security((), ("client_basic" = []), ("signed_request" = [])),
    responses(
        (status = 200, description = "A signed `at+jwt`", body = crate::grants::TokenResponse,
            headers(("Cache-Control" = String, description = "no-store"))),
        crate::openapi::schemas::OAuthErrors,
    ))]
pub async fn oauth_token(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, OAuthError> {
    form::reject_query(&req)?;
    if !form::has_media_type(&req, "application/x-www-form-urlencoded") {
        return Err(OAuthError::invalid_request(
            "the body must be application/x-www-form-urlencoded",
        ));
    }
    let body = read_token_body(payload, TOKEN_BODY_LIMIT).await?;
    let mut form = FormParams::parse(&body)?;
    let signed = signed_credential(&req, &body)?;
    drop(body);
    let grant = parse_grant(&req, &mut form, signed)?;
    let request = TokenRequest {
        grant,
        requested: requested(&form),
        client_ip: client_ip(&req, &state.settings.server),
        request_id: request_id(&req),
    };
    let response = grants::issue(grant_context(&state), request).await?;
    Ok(HttpResponse::Ok().json(response))
}

#[utoipa::path(operation_id = "apiKeyToken", post, path = "/api/v1/token", tag = "tokens",
    request_body(content = Option<crate::openapi::schemas::ApiTokenRequest>, content_type = "application/json"),
    security(("api_key_header" = []), ("signed_request" = [])),
    responses(
        (status = 200, description = "A signed `at+jwt`", body = crate::grants::TokenResponse),
        crate::openapi::schemas::OAuthErrors,
    ))]
pub async fn api_token(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, OAuthError> {
    form::reject_query(&req)?;
    let body = read_token_body(payload, TOKEN_BODY_LIMIT).await?;
    let credential = match signed_credential(&req, &body)? {
        Some(signed) => {
            if req.headers().contains_key("x-api-key") {
                return Err(OAuthError::invalid_request(
                    "send exactly one credential: a signature or X-API-Key",
                ));
            }
            signed
        }
        None => Credential::Secret(api_key::credentials(&req)?),
    };
    let request = TokenRequest {
        grant: Grant::Client(credential),
        requested: api_key::requested(&req, &body)?,
        client_ip: client_ip(&req, &state.settings.server),
        request_id: request_id(&req),
    };
    let response = grants::issue(grant_context(&state), request).await?;
    Ok(HttpResponse::Ok().json(response))
}
