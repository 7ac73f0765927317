//! One token request, whatever its grant: the service both token endpoints
//! call once their input is parsed.

use std::net::IpAddr;

use crate::error::OAuthError;
use crate::grants::context::Context;
use crate::grants::credential::{Credential, ExchangeRequest, Flavor, TokenResponse};
use crate::grants::exchange::{authenticate_client, exchange};
use crate::tokens::issue::Requested;

/// How the key is presented.
pub enum Grant {
    /// `client_credentials`, the one-header form or a signed request: the
    /// credential is the key to exchange.
    Client(Credential),
    /// RFC 8693: the subject key, and a client that must authenticate (and
    /// name the same key) first when it is sent.
    TokenExchange(ExchangeRequest),
}

/// A parsed token request.
pub struct TokenRequest {
    pub grant: Grant,
    pub requested: Requested,
    pub client_ip: Option<IpAddr>,
    pub request_id: Option<String>,
}

/// Authenticates the client when the grant has one apart from the key, then
/// runs the shared checklist ([`exchange()`]).
pub async fn issue(ctx: Context<'_>, request: TokenRequest) -> Result<TokenResponse, OAuthError> {
    let TokenRequest {
        grant,
        requested,
        client_ip,
        request_id,
    } = request;
    match grant {
        Grant::Client(credential) => {
            exchange(
                ctx,
                credential,
                requested,
                Flavor::Client,
                client_ip,
                request_id,
            )
            .await
        }
        Grant::TokenExchange(mut exchange_request) => {
            let client_key_id = match exchange_request.client.take() {
                Some(client) => Some(
                    authenticate_client(
                        ctx,
                        Credential::Secret(client),
                        &exchange_request.flavor(None),
                        client_ip,
                        request_id.clone(),
                    )
                    .await?
                    .key
                    .id,
                ),
                None => None,
            };
            let flavor = exchange_request.flavor(client_key_id);
            exchange(
                ctx,
                Credential::Secret(exchange_request.subject),
                requested,
                flavor,
                client_ip,
                request_id,
            )
            .await
        }
    }
}
