//! `POST /api/v1/leaks`: leak reports from code hosts' secret scanning.
//! No Bearer token: the sender's ECDSA signature over the body
//! (`Github-Public-Key-Identifier`, `Github-Public-Key-Signature`, the
//! headers the partner program sends) is the authentication, checked
//! before the body is parsed.

use actix_web::{HttpMessage, HttpRequest, HttpResponse, web};

use crate::app::AppState;
use crate::audit::Origin;
use crate::client_ip::client_ip;
use crate::domain::status_list::Publication;
use crate::error::ApiError;
use crate::input::body::read_limited;
use crate::leaks::{self, Deps};
use crate::telemetry::RequestId;

pub const KEY_ID_HEADER: &str = "Github-Public-Key-Identifier";
pub const SIGNATURE_HEADER: &str = "Github-Public-Key-Signature";

fn header<'a>(req: &'a HttpRequest, name: &str) -> Option<&'a str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

#[utoipa::path(operation_id = "reportLeaks", post, path = "/api/v1/leaks", tag = "events",
    params(
        ("Github-Public-Key-Identifier" = String, Header, description = "Which configured sender key signed the body"),
        ("Github-Public-Key-Signature" = String, Header, description = "Base64 DER ECDSA P-256 SHA-256 signature over the raw body"),
    ),
    request_body(content = Vec<crate::openapi::schemas::LeakReport>, content_type = "application/json",
        description = "1 to 1000 reported tokens"),
    responses(
        (status = 200, description = "One verdict per token, in order", body = Vec<crate::leaks::Verdict>),
        (status = 400, description = "Not a report", body = crate::openapi::schemas::ProblemDoc, content_type = "application/problem+json"),
        (status = 401, description = "Not signed by a configured sender key; nothing was read", body = crate::openapi::schemas::ProblemDoc, content_type = "application/problem+json"),
        (status = 413, description = "Larger than 1 MiB", body = crate::openapi::schemas::ProblemDoc, content_type = "application/problem+json"),
        (status = 429, description = "Too many reports from this address", body = crate::openapi::schemas::ProblemDoc, content_type = "application/problem+json"),
    ))]
pub async fn report(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let ip = client_ip(&req, &state.settings.server);
    state.leaks.admit(ip)?;
    let body = read_limited(payload, leaks::MAX_BODY).await?;
    state.leaks.verify(
        header(&req, KEY_ID_HEADER),
        header(&req, SIGNATURE_HEADER),
        &body,
    )?;
    let reported = leaks::parse(&body)?;
    let origin = Origin {
        ip: ip.map(|ip| ip.to_string()),
        request_id: req.extensions().get::<RequestId>().map(|r| r.0.clone()),
    };
    let deps = Deps {
        pool: &state.pool,
        lists: Publication {
            issuer: &state.settings.tokens.issuer,
            ttl_s: state.settings.statuslist.ttl_s,
        },
    };
    let verdicts = leaks::answer(&deps, reported, origin).await?;
    Ok(HttpResponse::Ok().json(verdicts))
}
