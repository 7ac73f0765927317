//! JSON answers for requests no route takes, and for extractor failures.

use actix_web::error::{JsonPayloadError, PayloadError, QueryPayloadError};
use actix_web::{HttpRequest, HttpResponse, ResponseError};

use crate::error::ApiError;

pub async fn not_found() -> HttpResponse {
    ApiError::NotFound.error_response()
}

pub async fn method_not_allowed() -> HttpResponse {
    ApiError::MethodNotAllowed.error_response()
}

/// Maps a JSON body that cannot be read to a 400/413/415 problem.
pub fn json_error(err: JsonPayloadError, _req: &HttpRequest) -> actix_web::Error {
    let api = match &err {
        JsonPayloadError::OverflowKnownLength { limit, .. }
        | JsonPayloadError::Overflow { limit } => ApiError::PayloadTooLarge { limit: *limit },
        JsonPayloadError::ContentType => {
            ApiError::UnsupportedMediaType("the body must be application/json".to_owned())
        }
        JsonPayloadError::Deserialize(e) => {
            ApiError::bad_request(format!("invalid JSON body: {e}"))
        }
        JsonPayloadError::Payload(PayloadError::Overflow) => ApiError::PayloadTooLarge { limit: 0 },
        other => ApiError::bad_request(format!("the body cannot be read: {other}")),
    };
    api.into()
}

pub fn query_error(err: QueryPayloadError, _req: &HttpRequest) -> actix_web::Error {
    ApiError::bad_request(format!("invalid query string: {err}")).into()
}
