//! What a grant request presents and how its refusals answer: the shapes
//! each grant file fills in and the checklist consumes.

use serde::Serialize;
use zeroize::Zeroizing;

use crate::error::AuthScheme;
use crate::grants::signed::SignedRequest;

pub const TOKEN_TYPE_API_KEY: &str = "urn:keymint:params:token-type:api-key";
pub const TOKEN_TYPE_ACCESS_TOKEN: &str = "urn:ietf:params:oauth:token-type:access_token";
pub const TOKEN_TYPE_JWT: &str = "urn:ietf:params:oauth:token-type:jwt";
/// RFC 8693's `grant_type`.
pub const TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";

/// A secret as presented, with the key id it claims to be (if any).
pub struct Presented {
    pub key_id: Option<String>,
    pub secret: Zeroizing<String>,
    pub scheme: AuthScheme,
}

/// How the client proves who it is.
pub enum Credential {
    /// The secret itself (standard keys).
    Secret(Presented),
    /// A signed request (advanced keys).
    Signed(SignedRequest),
}

/// How failures answer, per grant.
pub enum Flavor {
    /// `client_credentials` and `/api/v1/token`: 401 `invalid_client`, 400
    /// `unauthorized_client`.
    Client,
    /// RFC 8693: 400 `invalid_request` for both; the client, if it
    /// authenticated, must be the subject's key.
    TokenExchange {
        client_key_id: Option<String>,
        issued_token_type: &'static str,
    },
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TokenResponse {
    pub access_token: String,
    pub token_type: &'static str,
    pub expires_in: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issued_token_type: Option<&'static str>,
}

/// The request's parts: the subject key, the optional client, and how to
/// answer.
pub struct ExchangeRequest {
    pub subject: Presented,
    pub client: Option<Presented>,
    pub issued_token_type: &'static str,
}

impl ExchangeRequest {
    pub fn flavor(&self, client_key_id: Option<String>) -> Flavor {
        Flavor::TokenExchange {
            client_key_id,
            issued_token_type: self.issued_token_type,
        }
    }
}
