//! Prometheus metrics, served on their own listener (`metrics.bind`), never
//! on the API port. Labels carry routes, statuses, grants and reasons —
//! never key ids, owners, tenants or addresses. Recording is an atomic
//! update on a handle: no lock shared by the workers.
//!
//! The footprint is bounded whatever clients send and whether or not anyone
//! scrapes:
//! - every label takes its value from a fixed set: `route` is a pattern of
//!   the route table or `unmatched`, `method` one of [`METHODS`] or `other`,
//!   `status` a status code keymint answers with; so the number of series is
//!   fixed by the code, not by traffic;
//! - histogram samples wait in the recorder until an upkeep folds them into
//!   their buckets; [`upkeep`] does that every [`UPKEEP_INTERVAL`], so the
//!   samples held are at most one interval's worth, scraped or not.

use std::sync::OnceLock;
use std::time::Duration;

use actix_web::http::Method;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// How often histogram samples are folded into their buckets.
pub const UPKEEP_INTERVAL: Duration = Duration::from_secs(1);

/// The values of the `method` label besides `other`.
pub const METHODS: &[&str] = &["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"];

/// The `route` label of a request no route matched.
pub const UNMATCHED: &str = "unmatched";

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

/// Folds histogram samples into their buckets on a timer, for as long as
/// the server runs. Without it the recorder keeps every sample until a
/// scrape, and nobody may ever scrape.
pub async fn upkeep() {
    let mut tick = tokio::time::interval(UPKEEP_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        handle().run_upkeep();
    }
}

/// The `method` label: a standard method by name, anything else `other`.
pub fn method_label(method: &Method) -> &'static str {
    METHODS
        .iter()
        .find(|m| **m == method.as_str())
        .copied()
        .unwrap_or("other")
}

/// The `route` label: the route table's own pattern for a matched request
/// (`/api/v1/keys/{id}`, never the path), [`UNMATCHED`] otherwise. `routes`
/// is the table as `(method, pattern)` pairs (`startup::ROUTES`).
pub fn route_label(
    pattern: Option<&str>,
    routes: &'static [(&'static str, &'static str)],
) -> &'static str {
    pattern
        .and_then(|p| routes.iter().find(|(_, route)| *route == p))
        .map_or(UNMATCHED, |(_, route)| route)
}

pub fn request(route: &'static str, method: &'static str, status: u16, elapsed: Duration) {
    metrics::counter!(
        "keymint_http_requests_total",
        "route" => route,
        "method" => method,
        "status" => status.to_string(),
    )
    .increment(1);
    metrics::histogram!("keymint_http_request_duration_seconds", "route" => route)
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

/// Where a token endpoint's lookup ran: `inline` on the worker's own
/// SQLite connection, `batched` by a PostgreSQL lookup thread, or on the
/// `pool`.
pub fn point_read(place: &'static str) {
    metrics::counter!("keymint_db_point_reads_total", "where" => place).increment(1);
}

pub fn usage_flushed() {
    metrics::gauge!("keymint_usage_last_flush_timestamp_seconds")
        .set(chrono::Utc::now().timestamp() as f64);
}

/// The database pool's connections at the moment of a scrape.
pub struct PoolGauge {
    pub idle: u32,
    pub in_use: u32,
}

/// The text a scrape returns. Gauges that describe state are set from what
/// the caller read just now (`signing` is the key ring's schedule: when the
/// signing key became active and when the next one activates); counters
/// were recorded as things happened.
pub fn render(pool: PoolGauge, signing: Option<(i64, Option<i64>)>, now: i64) -> String {
    metrics::gauge!("keymint_db_pool_connections", "state" => "idle").set(f64::from(pool.idle));
    metrics::gauge!("keymint_db_pool_connections", "state" => "in_use").set(f64::from(pool.in_use));
    if let Some((active_since, next_at)) = signing {
        metrics::gauge!("keymint_signing_key_age_seconds").set((now - active_since) as f64);
        if let Some(next_at) = next_at {
            metrics::gauge!("keymint_signing_key_next_rotation_seconds")
                .set((next_at - now) as f64);
        }
    }
    let handle = handle();
    handle.run_upkeep();
    handle.render()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_outside_the_fixed_set_are_other() {
        for m in METHODS {
            let method = Method::from_bytes(m.as_bytes()).unwrap();
            assert_eq!(method_label(&method), *m);
        }
        for m in ["TRACE", "CONNECT", "BREW", "get", &"X".repeat(7 * 1024)] {
            let method = Method::from_bytes(m.as_bytes()).unwrap();
            assert_eq!(method_label(&method), "other", "{m:.20}");
        }
    }

    #[test]
    fn routes_are_the_route_tables_patterns_only() {
        const ROUTES: &[(&str, &str)] = &[("get", "/api/v1/keys/{id}"), ("get", "/docs/{file:.*}")];
        assert_eq!(
            route_label(Some("/api/v1/keys/{id}"), ROUTES),
            "/api/v1/keys/{id}"
        );
        assert_eq!(
            route_label(Some("/docs/{file:.*}"), ROUTES),
            "/docs/{file:.*}"
        );
        assert_eq!(route_label(Some("/api/v1/keys/123"), ROUTES), UNMATCHED);
        assert_eq!(route_label(Some("/api/v1"), ROUTES), UNMATCHED);
        assert_eq!(route_label(None, ROUTES), UNMATCHED);
    }
}
