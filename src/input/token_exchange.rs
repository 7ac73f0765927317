//! `grant_type=urn:ietf:params:oauth:grant-type:token-exchange` (RFC 8693):
//! the API key is the `subject_token`. Client authentication is optional;
//! when sent it must authenticate, and name the same key. No delegation.

use actix_web::HttpRequest;

use crate::error::{AuthScheme, OAuthError};
use crate::grants::{
    ExchangeRequest, Presented, TOKEN_TYPE_ACCESS_TOKEN, TOKEN_TYPE_API_KEY, TOKEN_TYPE_JWT,
};
use crate::input::client_credentials;
use crate::input::form::FormParams;

pub fn parse(req: &HttpRequest, form: &mut FormParams) -> Result<ExchangeRequest, OAuthError> {
    if form.contains("actor_token") || form.contains("actor_token_type") {
        return Err(OAuthError::invalid_request(
            "actor_token is not supported (no delegation)",
        ));
    }
    let issued_token_type = match form.get("requested_token_type") {
        None | Some(TOKEN_TYPE_ACCESS_TOKEN) => TOKEN_TYPE_ACCESS_TOKEN,
        Some(TOKEN_TYPE_JWT) => TOKEN_TYPE_JWT,
        Some(_) => {
            return Err(OAuthError::invalid_request(
                "requested_token_type must be urn:ietf:params:oauth:token-type:access_token or urn:ietf:params:oauth:token-type:jwt",
            ));
        }
    };
    match form.get("subject_token_type") {
        Some(TOKEN_TYPE_API_KEY) => {}
        Some(_) => {
            return Err(OAuthError::invalid_request(format!(
                "subject_token_type must be {TOKEN_TYPE_API_KEY}"
            )));
        }
        None => {
            return Err(OAuthError::invalid_request(
                "subject_token_type is required",
            ));
        }
    }
    let Some(subject) = form.take("subject_token") else {
        return Err(OAuthError::invalid_request("subject_token is required"));
    };
    let client = client_credentials::optional_credentials(req, form)?;
    Ok(ExchangeRequest {
        subject: Presented {
            key_id: None,
            secret: subject,
            // Not used to answer: subject failures are `invalid_request`.
            scheme: AuthScheme::Basic,
        },
        client,
        issued_token_type,
    })
}
