//! Key usage (`last_used_at`, `tokens_issued`) counted in memory and written
//! in batches, so issuing a token never writes to the database.
//!
//! Counts are kept per shard, picked by the key id, so workers recording
//! different keys rarely meet on one lock; a flush swaps each shard out and
//! writes everything in one transaction.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::sync::Mutex;

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::schema::api_keys;
use crate::db::{self, AnyConnection, DbError, Pool};

const SHARDS: usize = 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Pending {
    count: i64,
    last_used: NaiveDateTime,
}

pub struct Usage {
    shards: Vec<Mutex<HashMap<String, Pending>>>,
    hasher: std::collections::hash_map::RandomState,
}

impl Default for Usage {
    fn default() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            hasher: std::collections::hash_map::RandomState::new(),
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
        match shard.get_mut(key_id) {
            Some(p) => {
                p.count += 1;
                p.last_used = p.last_used.max(at);
            }
            None => {
                shard.insert(
                    key_id.to_owned(),
                    Pending {
                        count: 1,
                        last_used: at,
                    },
                );
            }
        }
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

    /// Puts counts back after a failed write, so none are lost.
    fn restore(&self, pending: Vec<(String, Pending)>) {
        for (key_id, p) in pending {
            let mut shard = match self.shard(&key_id).lock() {
                Ok(guard) => guard,
                Err(poisoned) => poisoned.into_inner(),
            };
            let entry = shard.entry(key_id).or_insert(Pending {
                count: 0,
                last_used: p.last_used,
            });
            entry.count += p.count;
            entry.last_used = entry.last_used.max(p.last_used);
        }
    }

    /// Writes what was counted since the last flush. Blocking.
    pub fn flush_blocking(&self, pool: &Pool) -> Result<usize, DbError> {
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
