//! `grant_type=urn:ietf:params:oauth:grant-type:token-exchange` (RFC 8693):
//! the API key is the `subject_token`. Client authentication is optional;
//! when sent it must authenticate, and name the same key. No delegation.

use actix_web::HttpRequest;

use crate::error::{AuthScheme, OAuthError};
use crate::grants::client_credentials;
use crate::grants::credential::{
    Flavor, Presented, TOKEN_TYPE_ACCESS_TOKEN, TOKEN_TYPE_API_KEY, TOKEN_TYPE_JWT,
};
use crate::grants::form::FormParams;

pub const GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";

/// The request's parts: the subject key, the optional client, and how to
/// answer.
pub struct ExchangeRequest {
    pub subject: Presented,
    pub client: Option<Presented>,
    pub issued_token_type: &'static str,
}

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

impl ExchangeRequest {
    pub fn flavor(&self, client_key_id: Option<String>) -> Flavor {
        Flavor::TokenExchange {
            client_key_id,
            issued_token_type: self.issued_token_type,
        }
    }
}
