//! Rate limits, per replica (documented as such): a token bucket per key
//! (its `rate_limit_per_s`, or the tenant default; burst ⌈rate⌉) and a guard
//! on failed authentications per client address (`/64` for IPv6), checked
//! before any key lookup so guessing costs the guesser, not the database.
//! The admin API has buckets of its own, per calling key ([`AdminLimiter`]).
//!
//! Memory is bounded whatever the traffic: each map is a set of LRUs with a
//! fixed total capacity, so a long life or a flood of keys or addresses
//! evicts the least recently seen entry instead of growing.
//! - Buckets: at most [`MAX_TRACKED_KEYS`] keys (about 15 MiB when full).
//!   An evicted key starts again with a full bucket, which it would have
//!   had anyway after `burst / rate` seconds idle: eviction forgives a key
//!   at most one burst, and only when about `MAX_TRACKED_KEYS` other keys
//!   (its shard's share of them) were used since its last request.
//! - Failed authentications: at most [`MAX_TRACKED_ADDRESSES`] addresses
//!   (about 10 MiB when full). An evicted address starts a new window.

use std::hash::{BuildHasher, Hasher};
use std::net::IpAddr;
use std::num::NonZeroUsize;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use ipnet::{IpNet, Ipv6Net};
use lru::LruCache;

const SHARDS: usize = 16;
/// At most this many addresses are tracked; the least recently seen go first.
pub const MAX_TRACKED_ADDRESSES: usize = 100_000;
/// At most this many keys have a bucket; the least recently used go first.
pub const MAX_TRACKED_KEYS: usize = 100_000;
const WINDOW: Duration = Duration::from_secs(60);

struct Bucket {
    tokens: f64,
    last: Instant,
}

struct Failures {
    count: u32,
    window_start: Instant,
}

pub struct Limiter {
    /// Sharded so workers taking tokens for different keys rarely meet on
    /// one lock; the shards together hold at most `MAX_TRACKED_KEYS`.
    buckets: Vec<Mutex<LruCache<String, Bucket>>>,
    hasher: std::collections::hash_map::RandomState,
    /// Sharded like the buckets, so checking an address on every exchange
    /// does not make all workers meet on one lock; the shards together hold
    /// at most `MAX_TRACKED_ADDRESSES`.
    failures: Vec<Mutex<LruCache<IpAddr, Failures>>>,
    failed_auth_per_minute: u32,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    }
}

/// IPv6 clients are counted per /64: one host can hold a whole one.
fn address_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => Ipv6Net::new(v6, 64)
            .map(|n| IpAddr::V6(n.trunc().addr()))
            .unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    }
}

/// Unknown-key denials are summarised per address: an IPv4 address, or the
/// /64 an IPv6 address belongs to.
pub fn address_bucket(ip: Option<IpAddr>) -> String {
    match ip {
        Some(IpAddr::V6(v6)) => IpNet::new(IpAddr::V6(v6), 64)
            .map(|n| n.trunc().to_string())
            .unwrap_or_else(|_| v6.to_string()),
        Some(v4) => v4.to_string(),
        None => "unknown".to_owned(),
    }
}

impl Limiter {
    pub fn new(failed_auth_per_minute: u32) -> Self {
        Self::with_capacity(
            failed_auth_per_minute,
            MAX_TRACKED_KEYS,
            MAX_TRACKED_ADDRESSES,
        )
    }

    /// `max_keys` and `max_addresses` are totals over the shards (each shard
    /// holds at least one entry).
    fn with_capacity(failed_auth_per_minute: u32, max_keys: usize, max_addresses: usize) -> Self {
        let per_shard =
            |total: usize| NonZeroUsize::new(total / SHARDS).unwrap_or(NonZeroUsize::MIN);
        Self {
            buckets: (0..SHARDS)
                .map(|_| Mutex::new(LruCache::new(per_shard(max_keys))))
                .collect(),
            hasher: std::collections::hash_map::RandomState::new(),
            failures: (0..SHARDS)
                .map(|_| Mutex::new(LruCache::new(per_shard(max_addresses))))
                .collect(),
            failed_auth_per_minute,
        }
    }

    fn shard_of(&self, bytes: &[u8]) -> usize {
        let mut h = self.hasher.build_hasher();
        h.write(bytes);
        (h.finish() as usize) % SHARDS
    }

    fn failures_of(&self, ip: IpAddr) -> std::sync::MutexGuard<'_, LruCache<IpAddr, Failures>> {
        let bytes = match ip {
            IpAddr::V4(v4) => v4.octets().to_vec(),
            IpAddr::V6(v6) => v6.octets().to_vec(),
        };
        lock(&self.failures[self.shard_of(&bytes)])
    }

    /// Takes one token from the key's bucket, or says how long to wait.
    pub fn take(&self, key_id: &str, rate_per_s: f64) -> Result<(), u64> {
        let rate = if rate_per_s.is_finite() && rate_per_s > 0.0 {
            rate_per_s
        } else {
            1.0
        };
        let burst = rate.ceil();
        let mut shard = lock(&self.buckets[self.shard_of(key_id.as_bytes())]);
        let now = Instant::now();
        let bucket = shard.get_or_insert_mut_ref(key_id, || Bucket {
            tokens: burst,
            last: now,
        });
        let elapsed = now.duration_since(bucket.last).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * rate).min(burst);
        bucket.last = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            let wait = (1.0 - bucket.tokens) / rate;
            Err(wait.ceil().max(1.0) as u64)
        }
    }

    /// How many keys have a bucket now (at most [`MAX_TRACKED_KEYS`]).
    pub fn tracked_keys(&self) -> usize {
        self.buckets.iter().map(|s| lock(s).len()).sum()
    }

    /// How many addresses have failures counted now (at most
    /// [`MAX_TRACKED_ADDRESSES`]).
    pub fn tracked_addresses(&self) -> usize {
        self.failures.iter().map(|s| lock(s).len()).sum()
    }

    /// Before any key lookup: refuses an address that failed too often in
    /// the current minute.
    pub fn check_address(&self, ip: Option<IpAddr>) -> Result<(), u64> {
        let Some(ip) = ip else { return Ok(()) };
        let key = address_key(ip);
        let mut failures = self.failures_of(key);
        let Some(entry) = failures.get(&key) else {
            return Ok(());
        };
        let age = entry.window_start.elapsed();
        if age < WINDOW && entry.count >= self.failed_auth_per_minute {
            Err((WINDOW - age).as_secs().max(1))
        } else {
            Ok(())
        }
    }

    pub fn record_failure(&self, ip: Option<IpAddr>) {
        let Some(ip) = ip else { return };
        let key = address_key(ip);
        let mut failures = self.failures_of(key);
        let now = Instant::now();
        match failures.get_mut(&key) {
            Some(entry) if entry.window_start.elapsed() < WINDOW => entry.count += 1,
            Some(entry) => {
                entry.count = 1;
                entry.window_start = now;
            }
            None => {
                failures.put(
                    key,
                    Failures {
                        count: 1,
                        window_start: now,
                    },
                );
            }
        }
    }
}

impl Bucket {
    /// Refills for the time since it was last used, then takes one token or
    /// says how many seconds until one is there.
    fn spend(&mut self, rate: f64, now: Instant) -> Result<(), u64> {
        let burst = rate.ceil();
        let elapsed = now.duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate).min(burst);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err(((1.0 - self.tokens) / rate).ceil().max(1.0) as u64)
        }
    }
}

/// At most this many admin callers (keys) are tracked; the least recently
/// seen go first. A bucket left alone for ⌈rate⌉ / rate seconds is full
/// again, so evicting it forgets nothing unless more distinct keys than
/// this call the admin API within that time.
pub const MAX_ADMIN_CALLERS: usize = 10_000;

/// Admin-API requests per calling key (`limits.admin_per_s`, burst
/// ⌈rate⌉), per replica: one key's token, however many requests it sends
/// at once, gets no more than its share of the database. Apart from the
/// exchange's buckets, so administering never spends a key's exchange
/// budget, nor the reverse.
pub struct AdminLimiter {
    rate: f64,
    callers: Mutex<LruCache<String, Bucket>>,
}

impl AdminLimiter {
    pub fn new(rate_per_s: f64) -> Self {
        let rate = if rate_per_s.is_finite() && rate_per_s > 0.0 {
            rate_per_s
        } else {
            1.0
        };
        let capacity = NonZeroUsize::new(MAX_ADMIN_CALLERS).unwrap_or(NonZeroUsize::MIN);
        Self {
            rate,
            callers: Mutex::new(LruCache::new(capacity)),
        }
    }

    /// Takes one token from the calling key's bucket, or says how long to wait.
    pub fn take(&self, key_id: &str) -> Result<(), u64> {
        let now = Instant::now();
        let mut callers = lock(&self.callers);
        if let Some(bucket) = callers.get_mut(key_id) {
            return bucket.spend(self.rate, now);
        }
        let mut bucket = Bucket {
            tokens: self.rate.ceil(),
            last: now,
        };
        let taken = bucket.spend(self.rate, now);
        callers.put(key_id.to_owned(), bucket);
        taken
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_allow_a_burst_then_the_rate() {
        let limiter = Limiter::new(20);
        for _ in 0..3 {
            assert!(limiter.take("k", 2.5).is_ok());
        }
        assert!(limiter.take("k", 2.5).is_err(), "burst is ceil(2.5) = 3");
        assert!(limiter.take("other", 2.5).is_ok(), "keys are independent");
    }

    #[test]
    fn admin_callers_get_a_burst_then_the_rate_and_stay_bounded() {
        let limiter = AdminLimiter::new(2.5);
        for _ in 0..3 {
            assert!(limiter.take("k").is_ok());
        }
        assert_eq!(limiter.take("k"), Err(1), "burst is ceil(2.5) = 3");
        assert!(limiter.take("other").is_ok(), "callers are independent");
        for i in 0..MAX_ADMIN_CALLERS + 10 {
            let _ = limiter.take(&format!("caller-{i}"));
        }
        assert_eq!(lock(&limiter.callers).len(), MAX_ADMIN_CALLERS);
    }

    #[test]
    fn buckets_stay_bounded_under_many_keys() {
        let limiter = Limiter::new(20);
        for i in 0..MAX_TRACKED_KEYS + 5_000 {
            assert!(limiter.take(&format!("key-{i}"), 1.0).is_ok());
        }
        assert!(limiter.tracked_keys() <= MAX_TRACKED_KEYS);
    }

    #[test]
    fn the_least_recently_used_bucket_is_evicted_first() {
        let limiter = Limiter::with_capacity(20, SHARDS * 2, SHARDS);
        assert!(limiter.take("busy", 0.001).is_ok());
        assert!(limiter.take("busy", 0.001).is_err(), "burst is 1");
        for i in 0..10_000 {
            let _ = limiter.take(&format!("key-{i}"), 1.0);
            // Used between every other key: never the least recent.
            assert!(
                limiter.take("busy", 0.001).is_err(),
                "busy kept its empty bucket"
            );
        }
        assert!(limiter.tracked_keys() <= SHARDS * 2);
    }

    #[test]
    fn failures_stay_bounded_under_many_addresses() {
        let limiter = Limiter::with_capacity(3, SHARDS, SHARDS * 4);
        for i in 0..10_000u32 {
            limiter.record_failure(Some(IpAddr::from(i.to_be_bytes())));
        }
        assert!(limiter.tracked_addresses() <= SHARDS * 4);
    }

    #[test]
    fn failures_are_counted_per_address_and_per_64() {
        let limiter = Limiter::new(3);
        let a: IpAddr = "2001:db8::1".parse().unwrap();
        let b: IpAddr = "2001:db8::2".parse().unwrap();
        for _ in 0..3 {
            assert!(limiter.check_address(Some(a)).is_ok());
            limiter.record_failure(Some(a));
        }
        assert!(limiter.check_address(Some(b)).is_err(), "same /64");
        assert!(
            limiter
                .check_address(Some("192.0.2.1".parse().unwrap()))
                .is_ok()
        );
    }
}
