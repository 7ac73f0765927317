//! `admin.denied`: refused admin-API requests (401/403), summarised per
//! tenant, address and minute. A refusal is only counted in memory; the
//! counts are written in batches, one transaction per flush (on the usage
//! flush interval and at shutdown), so a flood of refusals never costs a
//! database write per request, never waits for a pooled connection, and
//! cannot fill the audit table.
//!
//! Memory is bounded: at most [`MAX_PENDING`] summaries wait for a flush;
//! refusals beyond that are dropped and their number logged at the flush.

use std::net::IpAddr;

use chrono::NaiveDateTime;

use crate::audit::{self, Actor, Origin};
use crate::db::{self, AnyConnection, DbError, Pool};
use crate::limits::address_bucket;
use crate::pending::{Merge, PendingCounts};

/// The most summaries held between two flushes.
pub const MAX_PENDING: usize = 10_000;
/// Routes come from the route table; the cap only guards the fallback.
const MAX_ROUTE_CHARS: usize = 200;

/// What one summary row counts: one tenant (or none), one address bucket,
/// one minute.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct SummaryKey {
    tenant: Option<String>,
    bucket: String,
    minute: i64,
}

/// The first refusal of a summary (its row shows that one) and how many
/// followed.
#[derive(Debug, Clone)]
struct Pending {
    count: i64,
    at: NaiveDateTime,
    origin: Origin,
    details: serde_json::Value,
}

/// One refused request, as the middleware saw it.
pub struct Refusal<'a> {
    pub tenant: Option<&'a str>,
    pub ip: Option<IpAddr>,
    pub request_id: Option<&'a str>,
    pub status: u16,
    pub method: &'a str,
    pub route: &'a str,
}

impl Merge for Pending {
    /// The summary row shows the earliest refusal; the count adds up.
    fn merge(&mut self, other: Self) {
        self.count += other.count;
        if other.at < self.at {
            self.at = other.at;
            self.origin = other.origin;
            self.details = other.details;
        }
    }

    fn weight(&self) -> u64 {
        u64::try_from(self.count).unwrap_or(0)
    }
}

/// Refused admin requests counted in memory until the next flush.
pub struct AdminDenials {
    pending: PendingCounts<SummaryKey, Pending>,
}

impl Default for AdminDenials {
    fn default() -> Self {
        Self {
            pending: PendingCounts::new(MAX_PENDING),
        }
    }
}

impl AdminDenials {
    /// Counts one refusal. Never touches the database.
    pub fn record(&self, refusal: Refusal<'_>, at: NaiveDateTime) {
        let key = SummaryKey {
            tenant: refusal.tenant.map(str::to_owned),
            bucket: address_bucket(refusal.ip),
            minute: at.and_utc().timestamp() / 60,
        };
        let route: String = refusal.route.chars().take(MAX_ROUTE_CHARS).collect();
        let one = Pending {
            count: 1,
            at,
            origin: Origin {
                ip: refusal.ip.map(|ip| ip.to_string()),
                request_id: refusal.request_id.map(str::to_owned),
            },
            details: serde_json::json!({
                "status": refusal.status,
                "method": refusal.method,
                "route": route,
            }),
        };
        self.pending.add(&key, one, || key.clone());
    }

    /// Writes what was counted since the last flush, in one transaction.
    /// Blocking.
    pub fn flush_blocking(&self, pool: &Pool) -> Result<usize, DbError> {
        let dropped = self.pending.take_dropped();
        if dropped > 0 {
            tracing::warn!(
                dropped,
                max = MAX_PENDING,
                "too many distinct admin.denied summaries; refusals not recorded"
            );
        }
        self.pending
            .flush(|pending| db::connection(pool).and_then(|mut conn| write(conn.get(), pending)))
    }

    pub async fn flush(self: &std::sync::Arc<Self>, pool: &Pool) -> Result<usize, DbError> {
        let denials = self.clone();
        let pool = pool.clone();
        tokio::task::spawn_blocking(move || denials.flush_blocking(&pool))
            .await
            .map_err(|e| DbError::Task(e.to_string()))?
    }
}

/// The rows `audit::denied` would have written one refusal at a time, with
/// each summary's count added at once.
fn write(conn: &mut AnyConnection, pending: &[(SummaryKey, Pending)]) -> Result<usize, DbError> {
    db::write_transaction(conn, |conn| {
        let actor = Actor::anonymous();
        for (key, p) in pending {
            audit::denied_many(
                conn,
                audit::Record {
                    tenant_id: key.tenant.as_deref(),
                    action: "admin.denied",
                    actor: &actor,
                    origin: &p.origin,
                    target_type: "address",
                    target_id: &key.bucket,
                    success: false,
                    details: p.details.clone(),
                },
                &format!("{}:{}", key.tenant.as_deref().unwrap_or("-"), key.bucket),
                p.at,
                p.count,
            )?;
        }
        Ok::<_, DbError>(pending.len())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(ip: &str) -> Refusal<'static> {
        Refusal {
            tenant: None,
            ip: ip.parse().ok(),
            request_id: None,
            status: 401,
            method: "GET",
            route: "/api/v1/keys",
        }
    }

    fn at(minute: i64) -> NaiveDateTime {
        chrono::DateTime::from_timestamp(minute * 60 + 7, 0)
            .unwrap()
            .naive_utc()
    }

    #[test]
    fn refusals_are_summarised_per_address_and_minute() {
        let denials = AdminDenials::default();
        for _ in 0..5 {
            denials.record(refusal("192.0.2.1"), at(100));
        }
        denials.record(refusal("192.0.2.1"), at(101));
        // One IPv6 /64 is one address.
        denials.record(refusal("2001:db8::1"), at(100));
        denials.record(refusal("2001:db8::2"), at(100));
        let mut counts: Vec<i64> = denials
            .pending
            .drain()
            .into_iter()
            .map(|(_, p)| p.count)
            .collect();
        counts.sort();
        assert_eq!(counts, [1, 2, 5]);
        assert!(
            denials.pending.drain().is_empty(),
            "a drain empties the summaries"
        );
    }

    #[test]
    fn summaries_are_bounded_and_drops_counted() {
        let denials = AdminDenials::default();
        for i in 0..(MAX_PENDING + 500) {
            let ip = std::net::Ipv4Addr::from(0x0a00_0000 + i as u32).to_string();
            denials.record(refusal(&ip), at(100));
        }
        let held = denials.pending.drain().len();
        assert!(held <= MAX_PENDING, "{held}");
        let dropped = denials.pending.take_dropped();
        assert_eq!(held as u64 + dropped, (MAX_PENDING + 500) as u64);
    }
}
