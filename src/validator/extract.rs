//! actix-web extractors: [`Token`] and [`Scoped`] find the verifier in
//! `web::Data<Verifier>`.

use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::http::{StatusCode, header};
use actix_web::{FromRequest, HttpRequest, HttpResponse, ResponseError, web};

use super::claims::Claims;
use super::error::VerifyError;
use super::verifier::Verifier;

/// Why an extractor refused the request; answers RFC 6750 challenges.
#[derive(Debug, thiserror::Error)]
pub enum Rejection {
    #[error("no bearer token")]
    Missing,
    #[error("{0}")]
    Invalid(VerifyError),
    #[error("the token lacks the `{0}` scope")]
    InsufficientScope(String),
    #[error("the verifier is not configured (web::Data<Verifier>)")]
    NotConfigured,
}

impl ResponseError for Rejection {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::Missing => StatusCode::UNAUTHORIZED,
            // Revoked, suspended, a bad status claim: the token's fault.
            Self::Invalid(err) if err.is_token_refused() => StatusCode::UNAUTHORIZED,
            // Keys or status list out of reach: a new token would not help.
            Self::Invalid(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::InsufficientScope(_) => StatusCode::FORBIDDEN,
            Self::NotConfigured => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let challenge = match self {
            Self::Missing => Some("Bearer".to_owned()),
            Self::Invalid(err) if err.is_token_refused() => {
                Some("Bearer error=\"invalid_token\"".to_owned())
            }
            Self::InsufficientScope(scope) => Some(format!(
                "Bearer error=\"insufficient_scope\", scope=\"{scope}\""
            )),
            _ => None,
        };
        let mut response = HttpResponse::build(self.status_code());
        if let Some(challenge) = challenge {
            response.insert_header((header::WWW_AUTHENTICATE, challenge));
        }
        response.json(serde_json::json!({ "error": self.to_string() }))
    }
}

fn bearer(req: &HttpRequest) -> Option<&str> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

async fn verify_request(req: HttpRequest) -> Result<Claims, Rejection> {
    let verifier = req
        .app_data::<web::Data<Verifier>>()
        .ok_or(Rejection::NotConfigured)?
        .clone();
    let token = bearer(&req).ok_or(Rejection::Missing)?;
    verifier.verify(token).await.map_err(Rejection::Invalid)
}

/// A request's verified bearer token (any scope).
pub struct Token(pub Claims);

impl FromRequest for Token {
    type Error = Rejection;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Rejection>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move { verify_request(req).await.map(Token) })
    }
}

/// The scopes a [`Scoped`] extractor requires, all of them.
///
/// ```
/// struct ReadOrders;
/// impl keymint::validator::RequiredScopes for ReadOrders {
///     const SCOPES: &'static [&'static str] = &["orders:read"];
/// }
/// // async fn list(token: keymint::validator::Scoped<ReadOrders>) -> … { … }
/// ```
pub trait RequiredScopes {
    const SCOPES: &'static [&'static str];
}

/// A verified bearer token holding every scope of `S`; otherwise the
/// request is refused with 401 or 403 and an RFC 6750 challenge.
pub struct Scoped<S: RequiredScopes> {
    pub claims: Claims,
    _scopes: PhantomData<S>,
}

impl<S: RequiredScopes> FromRequest for Scoped<S> {
    type Error = Rejection;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Rejection>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let claims = verify_request(req).await?;
            if let Some(missing) = S::SCOPES.iter().find(|s| !claims.has_scope(s)) {
                return Err(Rejection::InsufficientScope((*missing).to_owned()));
            }
            Ok(Scoped {
                claims,
                _scopes: PhantomData,
            })
        })
    }
}
