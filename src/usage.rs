//! Key usage (`last_used_at`, `tokens_issued`) counted in memory and written
//! in batches, so issuing a token never writes to the database.
//!
//! Counts are kept per shard, picked by the key id, so workers recording
//! different keys rarely meet on one lock; a flush swaps each shard out and
//! writes everything in one transaction.
//!
//! Memory is bounded: at most [`MAX_PENDING_KEYS`] keys (about 12 MiB)
//! wait for a flush. Normally a flush empties the map every
//! `usage.flush_interval_ms`; only while flushes fail (the database is
//! away) do counts pile up, and then a key not yet waiting is not counted
//! once the map is full (keys already waiting still are). The uses lost are
//! logged at the next flush.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::schema::api_keys;
use crate::db::{self, AnyConnection, DbError, Pool};

const SHARDS: usize = 16;
/// The most keys whose counts wait for a flush.
pub const MAX_PENDING_KEYS: usize = 100_000;
const PER_SHARD: usize = MAX_PENDING_KEYS / SHARDS;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Pending {
    count: i64,
    last_used: NaiveDateTime,
}

pub struct Usage {
    shards: Vec<Mutex<HashMap<String, Pending>>>,
    hasher: std::collections::hash_map::RandomState,
    /// Uses not counted because the map was full.
    dropped: AtomicU64,
}

impl Default for Usage {
    fn default() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            hasher: std::collections::hash_map::RandomState::new(),
            dropped: AtomicU64::new(0),
        }
    }
}

impl Usage {
    fn shard(&self, key_id: &str) -> &Mutex<HashMap<String, Pending>> {
        let mut h = self.hasher.build_hasher();
        h.write(key_id.as_bytes());
        &self.shards[(h.finish() as usize) % SHARDS]
    }

    pub fn record(&self, key_id: &str, at: NaiveDateTime) {
        let mut shard = match self.shard(key_id).lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Some(p) = shard.get_mut(key_id) {
            p.count += 1;
            p.last_used = p.last_used.max(at);
        } else if shard.len() < PER_SHARD {
            shard.insert(
                key_id.to_owned(),
                Pending {
                    count: 1,
                    last_used: at,
                },
            );
        } else {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// How many keys have counts waiting for a flush.
    pub fn pending_keys(&self) -> usize {
        self.shards
            .iter()
            .map(|s| match s.lock() {
                Ok(guard) => guard.len(),
                Err(poisoned) => poisoned.into_inner().len(),
            })
            .sum()
    }

    fn drain(&self) -> Vec<(String, Pending)> {
        let mut out = Vec::new();
        for shard in &self.shards {
            let taken = match shard.lock() {
                Ok(mut guard) => std::mem::take(&mut *guard),
                Err(poisoned) => std::mem::take(&mut *poisoned.into_inner()),
            };
            out.extend(taken);
        }
        out
    }

    /// Puts counts back after a failed write, so none are lost while there
    /// is room for them.
    fn restore(&self, pending: Vec<(String, Pending)>) {
        for (key_id, p) in pending {
            let mut shard = match self.shard(&key_id).lock() {
                Ok(guard) => guard,
                Err(poisoned) => poisoned.into_inner(),
            };
            if let Some(entry) = shard.get_mut(&key_id) {
                entry.count += p.count;
                entry.last_used = entry.last_used.max(p.last_used);
            } else if shard.len() < PER_SHARD {
                shard.insert(key_id, p);
            } else {
                let lost = u64::try_from(p.count).unwrap_or(0);
                self.dropped.fetch_add(lost, Ordering::Relaxed);
            }
        }
    }

    /// Writes what was counted since the last flush. Blocking.
    pub fn flush_blocking(&self, pool: &Pool) -> Result<usize, DbError> {
        let dropped = self.dropped.swap(0, Ordering::Relaxed);
        if dropped > 0 {
            tracing::warn!(
                dropped,
                max = MAX_PENDING_KEYS,
                "too many keys waiting for a usage flush; uses not counted"
            );
        }
        let pending = self.drain();
        if pending.is_empty() {
            crate::metrics::usage_flushed();
            return Ok(0);
        }
        let result = db::connection(pool).and_then(|mut conn| write(conn.get(), &pending));
        match &result {
            Ok(_) => crate::metrics::usage_flushed(),
            Err(_) => self.restore(pending),
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
        let pending = usage.drain();
        usage.restore(pending);
        usage.record("key-0", at);
        assert!(usage.pending_keys() <= MAX_PENDING_KEYS);
        assert!(
            usage.dropped.load(Ordering::Relaxed) >= 5_000,
            "losses are counted"
        );
    }

    #[test]
    fn keys_already_waiting_keep_counting_when_full() {
        let usage = Usage::default();
        let at = chrono::Utc::now().naive_utc();
        for i in 0..MAX_PENDING_KEYS + 5_000 {
            usage.record(&format!("key-{i}"), at);
        }
        let waiting = usage
            .shards
            .iter()
            .find_map(|s| s.lock().ok()?.keys().next().cloned())
            .unwrap();
        let before = usage.drain();
        let count = |pending: &[(String, Pending)]| {
            pending
                .iter()
                .find(|(k, _)| *k == waiting)
                .map(|(_, p)| p.count)
        };
        assert_eq!(count(&before), Some(1));
        usage.restore(before);
        usage.record(&waiting, at);
        assert_eq!(count(&usage.drain()), Some(2));
    }
}
