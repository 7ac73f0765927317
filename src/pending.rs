//! Counts kept in memory until the next batch write: key usage and
//! `admin.denied` summaries share this shape.
//!
//! Entries live in shards picked by the key's hash, so threads recording
//! different keys rarely meet on one lock; a flush swaps every shard out at
//! once. Memory is bounded: at most `max` entries wait. Once a shard is
//! full, an entry already waiting still counts, but a new key's weight is
//! dropped and added to a counter the flush logs.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hash};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

const SHARDS: usize = 16;

/// A pending value that absorbs another for the same key.
pub trait Merge {
    fn merge(&mut self, other: Self);
    /// How many events it stands for (what is lost if it is dropped).
    fn weight(&self) -> u64;
}

pub struct PendingCounts<K, V> {
    shards: Vec<Mutex<HashMap<K, V>>>,
    per_shard: usize,
    hasher: RandomState,
    /// Events not counted because their shard was full.
    dropped: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    match m.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    }
}

impl<K: Hash + Eq, V: Merge> PendingCounts<K, V> {
    /// At most `max` entries in all (each shard holds `max / 16`, at least one).
    pub fn new(max: usize) -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            per_shard: (max / SHARDS).max(1),
            hasher: RandomState::new(),
            dropped: AtomicU64::new(0),
        }
    }

    fn shard<Q: Hash + ?Sized>(&self, key: &Q) -> &Mutex<HashMap<K, V>> {
        &self.shards[(self.hasher.hash_one(key) as usize) % SHARDS]
    }

    /// Merges into the entry for `key`, or inserts `fresh()` (built only
    /// then) if there is room, or counts it as dropped.
    pub fn add<Q>(&self, key: &Q, value: V, fresh_key: impl FnOnce() -> K)
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let mut shard = lock(self.shard(key));
        if let Some(existing) = shard.get_mut(key) {
            existing.merge(value);
        } else if shard.len() < self.per_shard {
            shard.insert(fresh_key(), value);
        } else {
            self.dropped.fetch_add(value.weight(), Ordering::Relaxed);
        }
    }

    /// Everything waiting, leaving the shards empty.
    pub fn drain(&self) -> Vec<(K, V)> {
        let mut out = Vec::new();
        for shard in &self.shards {
            out.extend(std::mem::take(&mut *lock(shard)));
        }
        out
    }

    /// Puts entries back after a failed write, so none are lost while there
    /// is room for them.
    pub fn restore(&self, entries: Vec<(K, V)>) {
        for (key, value) in entries {
            let mut shard = lock(self.shard(&key));
            if let Some(existing) = shard.get_mut(&key) {
                existing.merge(value);
            } else if shard.len() < self.per_shard {
                shard.insert(key, value);
            } else {
                self.dropped.fetch_add(value.weight(), Ordering::Relaxed);
            }
        }
    }

    /// Hands everything waiting to `write`; if it fails, the entries are put
    /// back for the next flush. `Ok(0)` without calling `write` when nothing
    /// waits.
    pub fn flush<E>(&self, write: impl FnOnce(&[(K, V)]) -> Result<usize, E>) -> Result<usize, E> {
        let pending = self.drain();
        if pending.is_empty() {
            return Ok(0);
        }
        let result = write(&pending);
        if result.is_err() {
            self.restore(pending);
        }
        result
    }

    /// Events dropped since the last call.
    pub fn take_dropped(&self) -> u64 {
        self.dropped.swap(0, Ordering::Relaxed)
    }

    /// How many entries wait.
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| lock(s).len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Count(u64);

    impl Merge for Count {
        fn merge(&mut self, other: Self) {
            self.0 += other.0;
        }
        fn weight(&self) -> u64 {
            self.0
        }
    }

    #[test]
    fn waiting_entries_keep_counting_and_new_ones_drop_when_full() {
        let pending: PendingCounts<String, Count> = PendingCounts::new(SHARDS);
        for i in 0..1_000 {
            let key = format!("k{i}");
            pending.add(key.as_str(), Count(1), || key.clone());
        }
        let held = pending.len();
        assert!(held <= SHARDS, "{held}");
        assert_eq!(pending.take_dropped(), 1_000 - held as u64);
        let first = pending.drain().pop().unwrap().0;
        pending.restore(vec![(first.clone(), Count(5))]);
        pending.add(first.as_str(), Count(1), || first.clone());
        assert_eq!(pending.drain()[0].1.0, 6);
        assert!(pending.is_empty());
    }
}
