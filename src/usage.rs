//! Key usage (`last_used_at`, `tokens_issued`) counted in memory and written
//! in batches, so issuing a token never writes to the database.
//!
//! Counts wait in a [`PendingCounts`] (sharded by key id, so workers
//! recording different keys rarely meet on one lock); a flush swaps it out
//! and writes everything in one transaction.
//!
//! Memory is bounded: at most [`MAX_PENDING_KEYS`] keys (about 12 MiB)
//! wait for a flush. Normally a flush empties the map every
//! `usage.flush_interval_ms`; only while flushes fail (the database is
//! away) do counts pile up, and then a key not yet waiting is not counted
//! once the map is full (keys already waiting still are). The uses lost are
//! logged at the next flush.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::schema::api_keys;
use crate::db::{self, AnyConnection, DbError, Pool};
use crate::pending::{Merge, PendingCounts};

/// The most keys whose counts wait for a flush.
pub const MAX_PENDING_KEYS: usize = 100_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Pending {
    count: i64,
    last_used: NaiveDateTime,
}

impl Merge for Pending {
    fn merge(&mut self, other: Self) {
        self.count += other.count;
        self.last_used = self.last_used.max(other.last_used);
    }

    fn weight(&self) -> u64 {
        u64::try_from(self.count).unwrap_or(0)
    }
}

pub struct Usage {
    pending: PendingCounts<String, Pending>,
}

impl Default for Usage {
    fn default() -> Self {
        Self {
            pending: PendingCounts::new(MAX_PENDING_KEYS),
        }
    }
}

impl Usage {
    pub fn record(&self, key_id: &str, at: NaiveDateTime) {
        let one = Pending {
            count: 1,
            last_used: at,
        };
        self.pending.add(key_id, one, || key_id.to_owned());
    }

    /// How many keys have counts waiting for a flush.
    pub fn pending_keys(&self) -> usize {
        self.pending.len()
    }

    /// Writes what was counted since the last flush. Blocking.
    pub fn flush_blocking(&self, pool: &Pool) -> Result<usize, DbError> {
        let dropped = self.pending.take_dropped();
        if dropped > 0 {
            tracing::warn!(
                dropped,
                max = MAX_PENDING_KEYS,
                "too many keys waiting for a usage flush; uses not counted"
            );
        }
        let result = self
            .pending
            .flush(|pending| db::connection(pool).and_then(|mut conn| write(conn.get(), pending)));
        if result.is_ok() {
            crate::metrics::usage_flushed();
        }
        result
    }

    pub async fn flush(self: &std::sync::Arc<Self>, pool: &Pool) -> Result<usize, DbError> {
        let usage = self.clone();
        let pool = pool.clone();
        tokio::task::spawn_blocking(move || usage.flush_blocking(&pool))
            .await
            .map_err(|e| DbError::Task(e.to_string()))?
    }
}

fn write(conn: &mut AnyConnection, pending: &[(String, Pending)]) -> Result<usize, DbError> {
    db::write_transaction(conn, |conn| {
        for (key_id, p) in pending {
            diesel::update(api_keys::table.find(key_id))
                .set(api_keys::tokens_issued.eq(api_keys::tokens_issued + p.count))
                .execute(conn)?;
            // Another replica may have recorded a later use already.
            diesel::update(api_keys::table.find(key_id))
                .set(api_keys::last_used_at.eq(p.last_used))
                .filter(
                    api_keys::last_used_at
                        .is_null()
                        .or(api_keys::last_used_at.lt(p.last_used)),
                )
                .execute(conn)?;
        }
        Ok::<_, DbError>(pending.len())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pending_counts_stay_bounded_while_flushes_fail() {
        let usage = Usage::default();
        let at = chrono::Utc::now().naive_utc();
        // No flush succeeds (the database is away): every key used since
        // waits in memory.
        for i in 0..MAX_PENDING_KEYS + 5_000 {
            usage.record(&format!("key-{i}"), at);
        }
        let pending = usage.pending.drain();
        usage.pending.restore(pending);
        usage.record("key-0", at);
        assert!(usage.pending_keys() <= MAX_PENDING_KEYS);
        assert!(usage.pending.take_dropped() >= 5_000, "losses are counted");
    }

    #[test]
    fn keys_already_waiting_keep_counting_when_full() {
        let usage = Usage::default();
        let at = chrono::Utc::now().naive_utc();
        for i in 0..MAX_PENDING_KEYS + 5_000 {
            usage.record(&format!("key-{i}"), at);
        }
        let before = usage.pending.drain();
        let waiting = before[0].0.clone();
        let count = |pending: &[(String, Pending)]| {
            pending
                .iter()
                .find(|(k, _)| *k == waiting)
                .map(|(_, p)| p.count)
        };
        assert_eq!(count(&before), Some(1));
        usage.pending.restore(before);
        usage.record(&waiting, at);
        assert_eq!(count(&usage.pending.drain()), Some(2));
    }
}
