//! `/openapi.json` documents every route, validates as OpenAPI 3.1, and the
//! `/docs` page is served from the binary.

use std::collections::BTreeSet;
use std::process::Command;

use serde_json::Value;

use crate::helpers::{Backend, spawn_app};

/// actix's `{file:.*}` is OpenAPI's `{file}`.
fn template(path: &str) -> String {
    let mut out = String::new();
    let mut in_param = false;
    let mut skipping = false;
    for c in path.chars() {
        match c {
            '{' => {
                in_param = true;
                out.push(c);
            }
            ':' if in_param => skipping = true,
            '}' => {
                in_param = false;
                skipping = false;
                out.push(c);
            }
            _ if skipping => {}
            _ => out.push(c),
        }
    }
    out
}

#[tokio::test]
async fn the_document_covers_every_route_and_nothing_else() {
    let app = spawn_app(Backend::Sqlite).await;
    let response = app.get("/openapi.json").await;
    assert_eq!(response.status(), 200);
    let doc: Value = response.json().await.unwrap();
    assert_eq!(doc["openapi"], "3.1.0");

    let routes: BTreeSet<(String, String)> = keymint::startup::ROUTES
        .iter()
        .map(|(method, path)| (method.to_string(), template(path)))
        .collect();
    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            if ["get", "post", "put", "patch", "delete"].contains(&method.as_str()) {
                documented.insert((method.clone(), path.clone()));
            }
        }
    }
    let undocumented: Vec<_> = routes.difference(&documented).collect();
    assert!(
        undocumented.is_empty(),
        "routes missing from the document: {undocumented:?}"
    );
    let phantom: Vec<_> = documented.difference(&routes).collect();
    assert!(phantom.is_empty(), "documented but not routed: {phantom:?}");

    // Every operation names its responses and, on admin routes, Bearer.
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            assert!(
                op["operationId"].is_string(),
                "{method} {path} has no operationId"
            );
            assert!(!op["responses"].as_object().unwrap().is_empty());
            if path.starts_with("/api/v1/") && path != "/api/v1/token" {
                if path == "/api/v1/leaks" {
                    // A code host's signature over the body, not a Bearer token.
                    assert_eq!(op["security"], Value::Null, "{method} {path}");
                } else {
                    assert_eq!(op["security"][0]["admin_bearer"], Value::Array(vec![]));
                }
                assert!(
                    op["responses"]["401"].is_object(),
                    "{method} {path}: no 401"
                );
            }
        }
    }
}

/// The CLI prints the same document the server serves.
#[tokio::test]
async fn the_cli_prints_the_served_document() {
    let app = spawn_app(Backend::Sqlite).await;
    let served: Value = app.get("/openapi.json").await.json().await.unwrap();
    let (code, stdout, _) = crate::helpers::run_cli(&["openapi"], &[]).await;
    assert_eq!(code, 0);
    let printed: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(printed, served);
}

/// `openapi-spec-validator` (PyPI). Under `CI=true` it must be installed
/// (`.ci/run` installs it); elsewhere the test says it skipped.
#[tokio::test]
async fn the_document_passes_an_openapi_3_1_validator() {
    let app = spawn_app(Backend::Sqlite).await;
    let body = app.get("/openapi.json").await.bytes().await.unwrap();
    let file = app.db.dir.path().join("openapi.json");
    std::fs::write(&file, &body).unwrap();
    let run = Command::new("python3")
        .args(["-m", "openapi_spec_validator"])
        .arg(&file)
        .output()
        .expect("python3 runs");
    let stderr = String::from_utf8_lossy(&run.stderr);
    if stderr.contains("No module named") {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI must install openapi-spec-validator"
        );
        eprintln!("skipped: pip install openapi-spec-validator to run this test");
        return;
    }
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(run.status.success(), "validator refused: {stdout} {stderr}");
    assert!(stdout.contains("OK"), "{stdout}");
}

#[tokio::test]
async fn the_docs_page_and_its_assets_come_from_the_binary() {
    let app = spawn_app(Backend::Sqlite).await;
    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let response = no_redirects.get(app.url("/docs")).send().await.unwrap();
    assert_eq!(response.status(), 308);
    assert_eq!(response.headers()["location"], "/docs/");

    let page = app.get("/docs/").await;
    assert_eq!(page.status(), 200);
    assert!(
        page.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let html = page.text().await.unwrap();
    assert!(
        !html.contains("http://") && !html.contains("https://unpkg"),
        "no external assets"
    );
    // Every script and stylesheet the page names is served here.
    let mut assets = Vec::new();
    for attr in ["src=\"", "href=\""] {
        for part in html.split(attr).skip(1) {
            let name = part.split('"').next().unwrap();
            assets.push(name.trim_start_matches("./").to_owned());
        }
    }
    assert!(assets.iter().any(|a| a.ends_with(".js")), "{assets:?}");
    assert!(assets.iter().any(|a| a.ends_with(".css")), "{assets:?}");
    for asset in &assets {
        let response = app.get(&format!("/docs/{asset}")).await;
        assert_eq!(response.status(), 200, "{asset}");
        assert!(!response.bytes().await.unwrap().is_empty(), "{asset}");
    }
    let init = app
        .get("/docs/swagger-initializer.js")
        .await
        .text()
        .await
        .unwrap();
    assert!(
        init.contains("/openapi.json"),
        "the page loads our document"
    );

    let missing = app.get("/docs/no-such-file.js").await;
    assert_eq!(missing.status(), 404);
}
