//! Logging set-up and the request-id middleware.
//!
//! Logs go to stderr (stdout is reserved for what a command prints, such as
//! a new key's secret). Every request runs inside a span that carries its
//! request id, so every line logged while serving it has the id the response
//! echoes in `X-Request-Id`. Spans never record headers, bodies or query
//! strings: those may hold secrets.

use std::io::IsTerminal;
use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{Error, HttpMessage};
use tracing::Instrument;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::FmtSpan;

use crate::config::LogFormat;

pub const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// Installs the global subscriber. `RUST_LOG`, when set, wins over `level`.
/// Safe to call twice (tests): the second call is ignored.
pub fn init(format: LogFormat, level: &str) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_span_events(FmtSpan::NONE);
    let _ = match format {
        LogFormat::Human => builder.with_target(false).try_init(),
        LogFormat::Json => builder
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
    };
}

/// The id of the request being served; handlers read it for audit records.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// Accepts a caller's `X-Request-Id` when it is short and plain, so ids can be
/// followed across services; otherwise makes one.
fn request_id_for(req: &ServiceRequest) -> String {
    req.headers()
        .get(&REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            (1..=64).contains(&v.len())
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        })
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::now_v7().to_string())
}

/// Wraps every request: assigns its id, runs it in a span, logs one line
/// when it ends, and echoes the id in the response.
/// `draining` is the replica's state when the request arrived; `routes` the
/// route table, whose patterns are the only `route` labels.
pub async fn request_span(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
    draining: bool,
    routes: &'static [(&'static str, &'static str)],
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let request_id = request_id_for(&req);
    // Labels from fixed sets only: whatever a client sends as method or
    // path must not become a new metric series.
    let route = crate::metrics::route_label(req.match_pattern().as_deref(), routes);
    let method = crate::metrics::method_label(req.method());
    req.extensions_mut().insert(RequestId(request_id.clone()));
    let span = tracing::info_span!(
        "request",
        request_id = %request_id,
        method = %req.method(),
        path = %req.path(),
    );
    let started = Instant::now();
    let result = next.call(req).instrument(span.clone()).await;
    let elapsed = started.elapsed();
    let elapsed_ms = elapsed.as_secs_f64() * 1000.0;
    let _entered = span.enter();
    match result {
        Ok(mut response) => {
            let status = response.status().as_u16();
            crate::metrics::request(route, method, status, elapsed);
            if let Ok(value) = HeaderValue::from_str(&request_id) {
                response.headers_mut().insert(REQUEST_ID_HEADER, value);
            }
            // While draining, clients open new connections (which a load
            // balancer sends elsewhere) instead of reusing this one.
            if draining {
                response
                    .response_mut()
                    .head_mut()
                    .set_connection_type(actix_web::http::ConnectionType::Close);
            }
            if status >= 500 {
                tracing::warn!(status, elapsed_ms, "request failed");
            } else {
                tracing::info!(status, elapsed_ms, "request served");
            }
            Ok(response)
        }
        Err(err) => {
            tracing::warn!(elapsed_ms, error = %err, "request failed");
            Err(err)
        }
    }
}
