//! Prometheus metrics, served on their own listener (`metrics.bind`), never
//! on the API port. Labels carry routes, statuses, grants and reasons —
//! never key ids, owners, tenants or addresses. Recording is an atomic
//! update on a handle: no lock shared by the workers.

use std::sync::OnceLock;
use std::time::Duration;

use actix_web::{HttpResponse, web};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::app::AppState;

/// Latency buckets, in seconds.
const BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// The process-wide recorder, installed once (the server, every test app).
pub fn handle() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let builder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), BUCKETS)
            .unwrap_or_else(|_| PrometheusBuilder::new());
        match builder.install_recorder() {
            Ok(handle) => handle,
            // Another recorder is installed (an embedding application's):
            // keep a private one so rendering still works.
            Err(_) => PrometheusBuilder::new().build_recorder().handle(),
        }
    })
}

pub fn request(route: &str, method: &str, status: u16, elapsed: Duration) {
    let labels = [
        ("route", route.to_owned()),
        ("method", method.to_owned()),
        ("status", status.to_string()),
    ];
    metrics::counter!("keymint_http_requests_total", &labels).increment(1);
    metrics::histogram!("keymint_http_request_duration_seconds", "route" => route.to_owned())
        .record(elapsed.as_secs_f64());
}

pub fn token_issued(grant: &'static str) {
    metrics::counter!("keymint_tokens_issued_total", "grant" => grant).increment(1);
}

pub fn token_refused(reason: &'static str) {
    metrics::counter!("keymint_token_refusals_total", "reason" => reason).increment(1);
}

pub fn pool_wait(elapsed: Duration) {
    metrics::histogram!("keymint_db_pool_wait_seconds").record(elapsed.as_secs_f64());
}

pub fn usage_flushed() {
    metrics::gauge!("keymint_usage_last_flush_timestamp_seconds")
        .set(chrono::Utc::now().timestamp() as f64);
}

/// `GET /metrics` on the metrics listener. Gauges that describe state are
/// read now; counters were recorded as things happened.
pub async fn render(state: web::Data<AppState>) -> HttpResponse {
    let pool = state.pool.state();
    metrics::gauge!("keymint_db_pool_connections", "state" => "idle")
        .set(f64::from(pool.idle_connections));
    metrics::gauge!("keymint_db_pool_connections", "state" => "in_use")
        .set(f64::from(pool.connections - pool.idle_connections));
    let now = chrono::Utc::now().timestamp();
    if let Some((active_since, next_at)) = state.keyring.schedule(now) {
        metrics::gauge!("keymint_signing_key_age_seconds").set((now - active_since) as f64);
        if let Some(next_at) = next_at {
            metrics::gauge!("keymint_signing_key_next_rotation_seconds")
                .set((next_at - now) as f64);
        }
    }
    let handle = handle();
    handle.run_upkeep();
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(handle.render())
}
