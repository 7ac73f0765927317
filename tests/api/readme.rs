//! The README's five-minute path, run as written against a real server
//! (only the port, the binary and the pasted key are substituted).

use crate::helpers::{BIN, Backend, ServerProcess, TestDatabase};

fn block_after(readme: &str, marker: &str) -> String {
    let rest = readme
        .split(marker)
        .nth(1)
        .unwrap_or_else(|| panic!("README has no {marker}"));
    let fence_start = rest.find("```").unwrap();
    let after_fence = &rest[fence_start..];
    let body_start = after_fence.find('\n').unwrap() + 1;
    let body = &after_fence[body_start..];
    body[..body.find("```").unwrap()].to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_five_minute_path_works_as_written() {
    let has_pyjwt = std::process::Command::new("python3")
        .args(["-c", "import jwt, cryptography"])
        .status()
        .is_ok_and(|s| s.success());
    if !has_pyjwt {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI must install pyjwt[crypto]"
        );
        eprintln!("skipped: pip install 'pyjwt[crypto]' to run the README path");
        return;
    }
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let script = block_after(&readme, "<!-- five-minutes -->");
    let verify_py = block_after(&readme, "<!-- verify.py -->");

    let db = TestDatabase::new(Backend::Sqlite);
    let bootstrap_file = db.dir.path().join("bootstrap.key");
    let server = ServerProcess::start(
        &db,
        &[(
            "KEYMINT_BOOTSTRAP_KEY_FILE",
            &bootstrap_file.to_string_lossy(),
        )],
    )
    .await;
    let bootstrap = std::fs::read_to_string(&bootstrap_file)
        .unwrap()
        .trim()
        .to_owned();
    let base = format!("http://127.0.0.1:{}", server.port);

    let substitute = |text: &str| text.replace("http://127.0.0.1:8080", &base);
    let script = substitute(&script)
        .replace("cargo run -q --release --", BIN)
        .replace("km_…", &bootstrap);
    assert!(script.contains(&bootstrap), "the paste placeholder is km_…");
    let work = tempfile::tempdir().unwrap();
    std::fs::write(work.path().join("verify.py"), substitute(&verify_py)).unwrap();
    let output = tokio::process::Command::new("bash")
        .args(["-euo", "pipefail", "-c", &script])
        .current_dir(work.path())
        // `keymint token` defaults to http://127.0.0.1:8080; this server's port differs.
        .env("KEYMINT_URL", &base)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the README path failed:\n{stdout}\n{stderr}"
    );
    assert!(
        stdout.contains("\"scope\": \"orders:read\""),
        "keymint verify printed the claims: {stdout}"
    );
    assert!(
        stdout.contains("valid token for key:") && stdout.contains("with scope orders:read"),
        "{stdout}"
    );
}
