//! The README's five-minute path, run as written against a real server
//! (only the port, the binary and the pasted key are substituted).

use crate::client::{access_token_at, admin_token_at, create_key_at};
use crate::helpers::{BIN, Backend, ServerProcess, TestDatabase};

/// A server on a fresh SQLite database whose bootstrap key went to a file,
/// and that key (the README's "paste the key from the first terminal").
async fn server_with_bootstrap_key() -> (TestDatabase, ServerProcess, String) {
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
    (db, server, bootstrap)
}

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

    let (_db, server, bootstrap) = server_with_bootstrap_key().await;
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
    // After the revocation the same token is refused through the status list.
    assert!(stdout.contains("refused after revocation"), "{stdout}");
    assert!(stdout.contains("keymint verify refuses it too"), "{stdout}");
    assert!(
        stderr.contains("refused: the key behind this token is revoked or suspended"),
        "{stderr}"
    );
}

/// The README's Node function (`verify.mjs`, with `jose` from npm) accepts a
/// token, then refuses it once its key is revoked, through the status list.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_node_snippet_checks_the_status_list() {
    let has_node = ["node", "npm"].iter().all(|tool| {
        std::process::Command::new(tool)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    });
    if !has_node {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI must have node and npm"
        );
        eprintln!("skipped: node and npm run the README's Node snippet");
        return;
    }
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let module = block_after(&readme, "<!-- verify.mjs -->");

    let (_db, server, bootstrap) = server_with_bootstrap_key().await;
    let base = server.base_url();
    let http = reqwest::Client::new();
    let admin = admin_token_at(&http, &base, &bootstrap, &base).await;
    let created = create_key_at(
        &http,
        &base,
        &admin,
        serde_json::json!({"name": "node", "scopes": ["orders:read"]}),
    )
    .await;
    let token = access_token_at(&http, &base, created["key"].as_str().unwrap()).await;

    let work = tempfile::tempdir().unwrap();
    let module = module
        .replace("https://auth.example.com", &base)
        .replace("https://orders.example.com", "urn:keymint:tenant:default");
    std::fs::write(work.path().join("verify.mjs"), module).unwrap();
    std::fs::write(
        work.path().join("main.mjs"),
        "import { verify } from './verify.mjs';\n\
         try { const p = await verify(process.argv[2]); console.log('valid', p.sub); }\n\
         catch (e) { console.log('refused:', e.message); process.exit(3); }\n",
    )
    .unwrap();
    let install = tokio::process::Command::new("npm")
        .args([
            "install",
            "--no-audit",
            "--no-fund",
            "--silent",
            "jose@6.2.18",
        ])
        .current_dir(work.path())
        .output()
        .await
        .unwrap();
    assert!(
        install.status.success(),
        "npm install jose: {}",
        String::from_utf8_lossy(&install.stderr)
    );
    let run = async |token: &str| {
        let out = tokio::process::Command::new("node")
            .args(["main.mjs", token])
            .current_dir(work.path())
            .output()
            .await
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let (code, out) = run(&token).await;
    assert_eq!(code, Some(0), "{out}");
    assert!(out.starts_with("valid key:"), "{out}");

    let id = created["id"].as_str().unwrap();
    let revoked = http
        .post(format!("{base}/api/v1/keys/{id}/revoke"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 200);
    let (code, out) = run(&token).await;
    assert_eq!(code, Some(3), "{out}");
    assert!(out.contains("refused: revoked or suspended"), "{out}");
}
