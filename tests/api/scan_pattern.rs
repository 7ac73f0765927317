//! `keymint leaks patterns`: the expression it prints finds every real key
//! in text, whatever surrounds it, and nothing that only looks like one.
//! Checked with `grep -E`, the POSIX engine secret scanners' single-pattern
//! forms follow.

use serde_json::json;

use crate::helpers::{Backend, run_cli, spawn_app};

fn printed(stdout: &str, field: &str) -> String {
    stdout
        .lines()
        .find_map(|line| line.strip_prefix(field))
        .unwrap_or_else(|| panic!("no {field} in {stdout}"))
        .trim()
        .to_owned()
}

async fn grep_count(pattern: &str, text: &str) -> usize {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("scanned.txt");
    std::fs::write(&file, text).unwrap();
    let out = tokio::process::Command::new("grep")
        .args(["-Eo", pattern])
        .arg(&file)
        .output()
        .await
        .unwrap();
    String::from_utf8_lossy(&out.stdout).lines().count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_printed_pattern_finds_real_keys_and_nothing_else() {
    let data = tempfile::tempdir().unwrap();
    let data_dir = data.path().to_string_lossy().into_owned();
    let (code, stdout, stderr) = run_cli(
        &["leaks", "patterns", "--data-dir", &data_dir],
        &[("RUST_LOG", "off")],
    )
    .await;
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(printed(&stdout, "secret format:"), "km_[0-9A-Za-z]{38}");
    let single = printed(&stdout, "one expression (grep -E):");

    // Another prefix is the server's configuration, and the pattern follows.
    let (_, other, _) = run_cli(
        &["leaks", "patterns", "--data-dir", &data_dir],
        &[("RUST_LOG", "off"), ("KEYMINT__TOKENS__KEY_PREFIX", "acme")],
    )
    .await;
    assert_eq!(printed(&other, "secret format:"), "acme_[0-9A-Za-z]{38}");

    let app = spawn_app(Backend::Sqlite).await;
    let admin = app.admin_token(&app.bootstrap_key).await;
    let mut secrets = Vec::new();
    for i in 0..12 {
        let key = app
            .create_key(&admin, json!({"name": format!("k{i}")}))
            .await;
        secrets.push(key["key"].as_str().unwrap().to_owned());
    }
    // Every key is found once, wherever it stands.
    let contexts = [
        "{}",
        "API_KEY={}",
        "\"{}\",",
        "Authorization: ApiKey {}",
        "url?key={}&x=1",
        "'{}'",
    ];
    let text: String = secrets
        .iter()
        .enumerate()
        .map(|(i, s)| contexts[i % contexts.len()].replace("{}", s) + "\n")
        .collect();
    assert_eq!(grep_count(&single, &text).await, secrets.len(), "{text}");

    // Look-alikes are not keys.
    let body = &secrets[0][3..];
    for fake in [
        format!("x_km_{body}"),
        format!("xkm_{body}"),
        format!("km_{}", &body[1..]),
        format!("km_{body}Z"),
        format!("km-{body}"),
        format!("KM_{body}"),
    ] {
        assert_eq!(grep_count(&single, &fake).await, 0, "{fake} matched");
    }
}
