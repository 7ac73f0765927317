//! The two error shapes keymint answers with, and the policy behind them.
//!
//! - [`ApiError`]: RFC 9457 `application/problem+json` for the admin API,
//!   health and everything that is not an OAuth endpoint. Bad input carries an
//!   `errors: [{field, message}]` member naming every bad field.
//! - [`OAuthError`]: RFC 6749 §5.2 `{"error","error_description"}` for the
//!   token, introspection and revocation endpoints and `/api/v1/token`.
//!
//! Policy: a message tells the caller what it can fix (the field, the bound,
//! the permission) and never echoes a secret or an internal cause. Internal
//! causes are logged where they are converted, inside the request's span, so
//! the log line carries the same request id the response does; the client
//! gets an opaque 500 (or a 503 when the database is away).

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

use crate::db::error::DbError;

pub const PROBLEM_JSON: &str = "application/problem+json";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("bad request: {detail}")]
    BadRequest {
        detail: String,
        errors: Vec<FieldError>,
    },
    /// 401 with an RFC 6750 challenge; `error` is e.g. `invalid_token`.
    #[error("unauthorized: {detail}")]
    Unauthorized {
        detail: String,
        error: Option<&'static str>,
    },
    /// 403 naming the permission that is missing.
    #[error("forbidden: needs {scope}")]
    InsufficientScope { scope: String },
    #[error("forbidden: {0}")]
    Forbidden(String),
    #[error("not found")]
    NotFound,
    #[error("method not allowed")]
    MethodNotAllowed,
    /// 406: the `Accept` header admits none of the media types the
    /// resource has; the detail names them.
    #[error("not acceptable: {0}")]
    NotAcceptable(String),
    /// 501: the request asks for something this server does not do (e.g.
    /// a status list's historical `time`); the detail says what.
    #[error("not implemented: {0}")]
    NotImplemented(String),
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("payload too large (limit {limit} bytes)")]
    PayloadTooLarge { limit: usize },
    #[error("unsupported media type: {0}")]
    UnsupportedMediaType(String),
    #[error("policy violation: {detail}")]
    Unprocessable {
        detail: String,
        errors: Vec<FieldError>,
    },
    #[error("too many requests")]
    TooManyRequests { retry_after_s: u64 },
    #[error("service unavailable")]
    Unavailable,
    /// 503 for a list or search that could not run, or not finish, in its
    /// bounds; the detail says what to change.
    #[error("busy: {0}")]
    Busy(String),
    /// 503: the database was moved to another master key and this server
    /// does not have it yet, so it stores no secret (see `crypto::check`).
    #[error("master key rotated")]
    MasterKeyRotated,
    #[error("internal error")]
    Internal,
}

impl ApiError {
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::BadRequest {
            detail: detail.into(),
            errors: Vec::new(),
        }
    }

    pub fn invalid_fields(errors: Vec<FieldError>) -> Self {
        let detail = match errors.as_slice() {
            [one] => format!("{}: {}", one.field, one.message),
            _ => format!("{} fields are invalid", errors.len()),
        };
        Self::BadRequest { detail, errors }
    }

    /// Logs an internal failure in the current request span and hides it.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "internal error");
        Self::Internal
    }

    fn kind(&self) -> (&'static str, &'static str) {
        match self {
            Self::BadRequest { .. } => ("invalid-request", "Invalid request"),
            Self::Unauthorized { .. } => ("unauthorized", "Unauthorized"),
            Self::InsufficientScope { .. } => ("insufficient-scope", "Forbidden"),
            Self::Forbidden(_) => ("forbidden", "Forbidden"),
            Self::NotFound => ("not-found", "Not found"),
            Self::MethodNotAllowed => ("method-not-allowed", "Method not allowed"),
            Self::NotAcceptable(_) => ("not-acceptable", "Not acceptable"),
            Self::NotImplemented(_) => ("not-implemented", "Not implemented"),
            Self::Conflict(_) => ("conflict", "Conflict"),
            Self::PayloadTooLarge { .. } => ("payload-too-large", "Payload too large"),
            Self::UnsupportedMediaType(_) => ("unsupported-media-type", "Unsupported media type"),
            Self::Unprocessable { .. } => ("policy-violation", "Policy violation"),
            Self::TooManyRequests { .. } => ("rate-limited", "Too many requests"),
            Self::Unavailable => ("unavailable", "Service unavailable"),
            Self::Busy(_) => ("busy", "Service busy"),
            Self::MasterKeyRotated => ("master-key-rotated", "Service unavailable"),
            Self::Internal => ("internal", "Internal error"),
        }
    }

    fn detail(&self) -> String {
        match self {
            Self::BadRequest { detail, .. }
            | Self::Unauthorized { detail, .. }
            | Self::Unprocessable { detail, .. } => detail.clone(),
            Self::InsufficientScope { scope } => format!("this action needs the `{scope}` scope"),
            Self::Forbidden(detail) | Self::Conflict(detail) | Self::Busy(detail) => detail.clone(),
            Self::UnsupportedMediaType(detail)
            | Self::NotAcceptable(detail)
            | Self::NotImplemented(detail) => detail.clone(),
            Self::NotFound => "no such resource".to_owned(),
            Self::MethodNotAllowed => "this method is not allowed on this resource".to_owned(),
            Self::PayloadTooLarge { limit } => {
                format!("the request body is larger than {limit} bytes")
            }
            Self::TooManyRequests { retry_after_s } => {
                format!("rate limit exceeded; retry after {retry_after_s} s")
            }
            Self::Unavailable => "the service cannot answer right now; retry shortly".to_owned(),
            Self::MasterKeyRotated => "the master key was rotated and this server does not hold \
                the new one yet, so it stores no secrets; it takes the new key from its key file \
                within one signing reload interval, or must be restarted with it"
                .to_owned(),
            Self::Internal => {
                "an internal error occurred; the request id is in the logs".to_owned()
            }
        }
    }
}

#[derive(Serialize)]
struct Problem<'a> {
    #[serde(rename = "type")]
    type_: String,
    title: &'a str,
    status: u16,
    detail: String,
    #[serde(skip_serializing_if = "<[FieldError]>::is_empty")]
    errors: &'a [FieldError],
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::BadRequest { .. } => StatusCode::BAD_REQUEST,
            Self::Unauthorized { .. } => StatusCode::UNAUTHORIZED,
            Self::InsufficientScope { .. } | Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::NotAcceptable(_) => StatusCode::NOT_ACCEPTABLE,
            Self::NotImplemented(_) => StatusCode::NOT_IMPLEMENTED,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Unprocessable { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Self::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable | Self::Busy(_) | Self::MasterKeyRotated => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        let (slug, title) = self.kind();
        let errors: &[FieldError] = match self {
            Self::BadRequest { errors, .. } | Self::Unprocessable { errors, .. } => errors,
            _ => &[],
        };
        let body = Problem {
            type_: format!("urn:keymint:problem:{slug}"),
            title,
            status: status.as_u16(),
            detail: self.detail(),
            errors,
        };
        let mut response = HttpResponse::build(status);
        response.content_type(PROBLEM_JSON);
        match self {
            Self::Unauthorized { error, .. } => {
                let challenge = match error {
                    Some(code) => format!("Bearer realm=\"keymint\", error=\"{code}\""),
                    None => "Bearer realm=\"keymint\"".to_owned(),
                };
                response.insert_header((header::WWW_AUTHENTICATE, challenge));
            }
            Self::InsufficientScope { scope } => {
                response.insert_header((
                    header::WWW_AUTHENTICATE,
                    format!(
                        "Bearer realm=\"keymint\", error=\"insufficient_scope\", scope=\"{scope}\""
                    ),
                ));
            }
            Self::TooManyRequests { retry_after_s } => {
                response.insert_header((header::RETRY_AFTER, retry_after_s.to_string()));
            }
            Self::Unavailable | Self::Busy(_) => {
                response.insert_header((header::RETRY_AFTER, HeaderValue::from_static("1")));
            }
            // The default signing reload interval: when a server re-reads its key file.
            Self::MasterKeyRotated => {
                response.insert_header((header::RETRY_AFTER, HeaderValue::from_static("30")));
            }
            _ => {}
        }
        response.json(body)
    }
}

impl From<DbError> for ApiError {
    fn from(err: DbError) -> Self {
        if let DbError::TimedOut(ms) = err {
            tracing::warn!(
                bound_ms = ms,
                "an admin list or search ran past its time bound"
            );
            return Self::Busy(format!(
                "the search ran longer than its bound of {ms} ms; narrow it with more filters"
            ));
        }
        if let DbError::LaneBusy = err {
            tracing::warn!("no admin list connection came free in time");
            return Self::Busy(
                "other lists and searches are using every connection set apart for them; retry shortly"
                    .to_owned(),
            );
        }
        if err.is_unavailable() {
            tracing::warn!(error = %err, "database unavailable");
            Self::Unavailable
        } else {
            Self::internal(err)
        }
    }
}

impl From<diesel::result::Error> for ApiError {
    fn from(err: diesel::result::Error) -> Self {
        DbError::from(err).into()
    }
}

/// RFC 6749 §5.2 error codes, spelled as the RFCs spell them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OAuthErrorCode {
    InvalidRequest,
    InvalidClient,
    InvalidGrant,
    UnauthorizedClient,
    UnsupportedGrantType,
    InvalidScope,
    InvalidTarget,
    TemporarilyUnavailable,
    ServerError,
}

impl OAuthErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidRequest => "invalid_request",
            Self::InvalidClient => "invalid_client",
            Self::InvalidGrant => "invalid_grant",
            Self::UnauthorizedClient => "unauthorized_client",
            Self::UnsupportedGrantType => "unsupported_grant_type",
            Self::InvalidScope => "invalid_scope",
            Self::InvalidTarget => "invalid_target",
            Self::TemporarilyUnavailable => "temporarily_unavailable",
            Self::ServerError => "server_error",
        }
    }
}

/// How a client authenticated, for the `WWW-Authenticate` challenge of a 401.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthScheme {
    Basic,
    ApiKey,
    Hmac,
    /// Credentials in the form body: RFC 6749 still wants a challenge; Basic
    /// is the scheme a client may retry with.
    Post,
}

impl AuthScheme {
    fn challenge(self) -> &'static str {
        match self {
            Self::Basic | Self::Post => "Basic realm=\"keymint\"",
            Self::ApiKey => "ApiKey realm=\"keymint\"",
            Self::Hmac => "KM-HMAC-SHA256 realm=\"keymint\"",
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{code:?}: {description}")]
pub struct OAuthError {
    pub code: OAuthErrorCode,
    /// Plain ASCII; never contains a secret.
    pub description: String,
    /// Set for `invalid_client`: which challenge to send.
    pub scheme: Option<AuthScheme>,
    pub retry_after_s: Option<u64>,
    status: StatusCode,
}

impl OAuthError {
    pub fn new(code: OAuthErrorCode, description: impl Into<String>) -> Self {
        let status = match code {
            OAuthErrorCode::InvalidClient => StatusCode::UNAUTHORIZED,
            OAuthErrorCode::TemporarilyUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            OAuthErrorCode::ServerError => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::BAD_REQUEST,
        };
        Self {
            code,
            description: description.into(),
            scheme: None,
            retry_after_s: None,
            status,
        }
    }

    pub fn invalid_request(description: impl Into<String>) -> Self {
        Self::new(OAuthErrorCode::InvalidRequest, description)
    }

    /// The one answer for every client-authentication failure, whatever the cause.
    pub fn invalid_client(scheme: AuthScheme) -> Self {
        Self {
            scheme: Some(scheme),
            ..Self::new(
                OAuthErrorCode::InvalidClient,
                "client authentication failed",
            )
        }
    }

    /// 401 for a signed request. The caller chooses `description` (see
    /// `grants::signed`, which builds it), so this module needs no knowledge
    /// of what a signature failure may reveal.
    pub fn bad_signature(description: impl Into<String>) -> Self {
        Self {
            scheme: Some(AuthScheme::Hmac),
            ..Self::new(OAuthErrorCode::InvalidClient, description)
        }
    }

    /// 503: the database (or another dependency) is away.
    pub fn unavailable(retry_after_s: u64) -> Self {
        Self {
            retry_after_s: Some(retry_after_s),
            ..Self::new(
                OAuthErrorCode::TemporarilyUnavailable,
                "the service cannot answer right now; retry shortly",
            )
        }
    }

    /// 413 with an OAuth body.
    pub fn payload_too_large(limit: usize) -> Self {
        Self {
            status: StatusCode::PAYLOAD_TOO_LARGE,
            ..Self::invalid_request(format!("the body is larger than {limit} bytes"))
        }
    }

    /// 429: a rate limit answered.
    pub fn rate_limited(retry_after_s: u64) -> Self {
        Self {
            retry_after_s: Some(retry_after_s),
            status: StatusCode::TOO_MANY_REQUESTS,
            ..Self::new(
                OAuthErrorCode::TemporarilyUnavailable,
                "rate limit exceeded",
            )
        }
    }

    pub fn server_error(cause: impl std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "internal error");
        Self::new(
            OAuthErrorCode::ServerError,
            "an internal error occurred; the request id is in the logs",
        )
    }
}

#[derive(Serialize)]
struct OAuthErrorBody<'a> {
    error: OAuthErrorCode,
    error_description: &'a str,
}

impl ResponseError for OAuthError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status_code());
        response.insert_header((header::CACHE_CONTROL, "no-store"));
        response.insert_header((header::PRAGMA, "no-cache"));
        if let Some(scheme) = self.scheme {
            response.insert_header((header::WWW_AUTHENTICATE, scheme.challenge()));
        }
        if let Some(seconds) = self.retry_after_s {
            response.insert_header((header::RETRY_AFTER, seconds.to_string()));
        }
        response.json(OAuthErrorBody {
            error: self.code,
            error_description: &self.description,
        })
    }
}

impl From<DbError> for OAuthError {
    fn from(err: DbError) -> Self {
        if err.is_unavailable() {
            tracing::warn!(error = %err, "database unavailable");
            Self::unavailable(1)
        } else {
            Self::server_error(err)
        }
    }
}

impl From<diesel::result::Error> for OAuthError {
    fn from(err: diesel::result::Error) -> Self {
        DbError::from(err).into()
    }
}
