//! `POST /api/v1/token`: the one-header form. The key comes in
//! `Authorization: ApiKey <secret>` or `X-API-Key: <secret>` (exactly one),
//! and an optional JSON body `{"expires_in","scope","audience"}` asks for
//! less than the defaults. Same rules and errors as `/oauth/token`.

use actix_web::HttpRequest;
use serde::Deserialize;
use zeroize::Zeroizing;

use crate::domain::text::split_authorization;
use crate::error::{AuthScheme, OAuthError};
use crate::grants::Presented;
use crate::input::form::has_media_type;
use crate::tokens::issue::Requested;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Body {
    expires_in: Option<serde_json::Value>,
    scope: Option<String>,
    audience: Option<String>,
}

pub fn credentials(req: &HttpRequest) -> Result<Presented, OAuthError> {
    let headers = req.headers();
    let authorization = headers.get("authorization");
    let api_key = headers.get("x-api-key");
    if authorization.is_some() && api_key.is_some() {
        return Err(OAuthError::invalid_request(
            "send exactly one credential: Authorization or X-API-Key",
        ));
    }
    let unknown = || OAuthError::invalid_client(AuthScheme::ApiKey);
    let secret = match (authorization, api_key) {
        (Some(value), None) => {
            let value = value.to_str().map_err(|_| unknown())?;
            match split_authorization(value) {
                Some((scheme, secret)) if scheme.eq_ignore_ascii_case("apikey") => secret,
                _ => return Err(unknown()),
            }
        }
        (None, Some(value)) => value.to_str().map_err(|_| unknown())?.trim(),
        _ => return Err(unknown()),
    };
    Ok(Presented {
        key_id: None,
        secret: Zeroizing::new(secret.to_owned()),
        scheme: AuthScheme::ApiKey,
    })
}

/// The optional JSON body.
pub fn requested(req: &HttpRequest, body: &[u8]) -> Result<Requested, OAuthError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Requested::default());
    }
    if !has_media_type(req, "application/json") {
        return Err(OAuthError::invalid_request(
            "the body must be application/json",
        ));
    }
    let body: Body = serde_json::from_slice(body).map_err(|e| {
        OAuthError::invalid_request(format!(
            "invalid JSON body: {}",
            crate::domain::text::ascii_quote(&e.to_string())
        ))
    })?;
    let expires_in = match body.expires_in {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::Number(n)) => Some(n.to_string()),
        Some(serde_json::Value::String(s)) => Some(s),
        Some(_) => {
            return Err(OAuthError::invalid_request(
                "expires_in must be a whole number of seconds",
            ));
        }
    };
    Ok(Requested {
        expires_in,
        scope: body.scope,
        audience: body.audience,
        resource: None,
    })
}
