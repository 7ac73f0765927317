//! Token Status Lists: how large a list token is for 1,000 and 1,000,000
//! keys with 1 % revoked, and what rebuilding one list (65,536 entries)
//! costs: packing its entries, ZLIB at the best level, base64url, ES256.
//! Run with `cargo bench --bench status_list`; the sizes are printed first.

mod common;

use std::hint::black_box;

use chrono::Utc;
use criterion::{Criterion, criterion_group, criterion_main};
use keymint::domain::status_list::{BITS, SHARD_SIZE, Status, StatusList, TOKEN_TYPE, list_uri};
use keymint::tokens::signing::Signer;
use serde_json::json;

/// The non-VALID entries of `keys` keys with one in a hundred revoked,
/// spread as revocations are (a fixed pseudo-random sequence).
fn revoked(keys: u64) -> Vec<u64> {
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let mut picked: Vec<u64> = (0..keys / 100)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state % keys
        })
        .collect();
    picked.sort_unstable();
    picked.dedup();
    picked
}

/// One list: its entries of `invalid` (global indices) set, signed.
fn list_token(signer: &Signer, issuer: &str, list_id: u64, invalid: &[u64], now: i64) -> String {
    let mut list = StatusList::new(BITS, SHARD_SIZE).expect("bits");
    let first = list_id * SHARD_SIZE;
    for &index in invalid.iter().filter(|&&i| i / SHARD_SIZE == list_id) {
        list.set(index - first, Status::Invalid as u8);
    }
    let claims = json!({
        "iss": issuer,
        "sub": list_uri(issuer, list_id),
        "iat": now,
        "exp": now + 86_400,
        "ttl": 30,
        "status_list": {"bits": BITS, "lst": list.encode()},
    });
    signer.sign_typed(TOKEN_TYPE, &claims).expect("signed")
}

fn bench(c: &mut Criterion) {
    let common::Fixture { settings, ring, .. } = common::fixture();
    let now_unix = Utc::now().timestamp();
    let signer = ring.signer(now_unix).expect("an active key");
    let issuer = settings.tokens.issuer.clone();

    for keys in [1_000u64, 1_000_000] {
        let invalid = revoked(keys);
        let lists = keys.div_ceil(SHARD_SIZE);
        let sizes: Vec<usize> = (0..lists)
            .map(|id| list_token(&signer, &issuer, id, &invalid, now_unix).len())
            .collect();
        let total: usize = sizes.iter().sum();
        eprintln!(
            "{keys} keys, {} revoked: {lists} list(s) of {SHARD_SIZE} entries; \
             list token {}..{} bytes, {total} bytes in all",
            invalid.len(),
            sizes.iter().min().unwrap_or(&0),
            sizes.iter().max().unwrap_or(&0),
        );
    }

    let invalid = revoked(1_000_000);
    c.bench_function(
        "status list: rebuild one list (65,536 entries, 1% revoked)",
        |b| b.iter(|| list_token(&signer, &issuer, black_box(3), &invalid, now_unix)),
    );
    let mut full = StatusList::new(BITS, SHARD_SIZE).expect("bits");
    for index in invalid.iter().filter(|&&i| i < SHARD_SIZE) {
        full.set(*index, Status::Invalid as u8);
    }
    c.bench_function("status list: ZLIB + base64url of one list", |b| {
        b.iter(|| black_box(&full).encode())
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
