//! Replays the committed fuzz seeds (`fuzz/seeds/<target>/`) through the very
//! bodies the cargo-fuzz targets run (`fuzz/bodies.rs`), so every `cargo test`
//! checks the same properties on them. The fuzzer itself never runs here.

use std::path::{Path, PathBuf};

#[path = "../fuzz/bodies.rs"]
mod bodies;

/// Every file of a target's seed directory, in name order; there must be some.
fn seeds(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/seeds")
        .join(target);
    let entries = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("seed directory {} is missing: {e}", dir.display()));
    let mut files: Vec<PathBuf> = entries
        .map(|entry| entry.expect("readable seed directory").path())
        .filter(|path| path.is_file())
        .collect();
    files.sort();
    assert!(
        !files.is_empty(),
        "seed directory {} is empty",
        dir.display()
    );
    files
        .into_iter()
        .map(|path| {
            let data = std::fs::read(&path)
                .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
            (path, data)
        })
        .collect()
}

/// Runs every seed; at least one must be accepted (a valid key, a verified
/// request or token), or the seeds no longer reach the interesting paths.
fn replay(target: &str, body: fn(&[u8]) -> bool) {
    let mut accepted = 0;
    for (path, data) in seeds(target) {
        eprintln!("replaying {}", path.display());
        let verdict = body(&data);
        eprintln!("  {}", if verdict { "accepted" } else { "refused" });
        accepted += usize::from(verdict);
    }
    assert!(accepted > 0, "no seed of {target} is accepted");
}

#[test]
fn key_parser_seeds() {
    replay("key_parser", bodies::key_parser);
}

#[test]
fn token_request_seeds() {
    replay("token_request", bodies::token_request);
}

#[test]
fn signed_request_seeds() {
    replay("signed_request", bodies::signed_request);
}

#[test]
fn jwt_verify_seeds() {
    replay("jwt_verify", bodies::jwt_verify);
}
