//! Secrets never reach the logs, even at trace level (which includes debug).

use base64::Engine;
use serde_json::{Value, json};

use crate::helpers::{Backend, ServerProcess, TestDatabase};

#[tokio::test]
async fn a_whole_flow_logged_at_trace_level_shows_no_secret() {
    let db = TestDatabase::new(Backend::Sqlite);
    let bootstrap_file = db.dir.path().join("bootstrap.key");
    let bootstrap_path = bootstrap_file.to_string_lossy().into_owned();
    let server = ServerProcess::start(
        &db,
        &[
            ("RUST_LOG", "trace"),
            ("KEYMINT_BOOTSTRAP_KEY_FILE", &bootstrap_path),
        ],
    )
    .await;
    let base = format!("http://127.0.0.1:{}", server.port);
    let client = reqwest::Client::new();
    let bootstrap = std::fs::read_to_string(&bootstrap_file)
        .unwrap()
        .trim()
        .to_owned();
    let mut secrets = vec![bootstrap.clone()];

    // Bootstrap → admin token → create → exchange (all forms) → rotate →
    // introspect → revoke.
    let token_for = |secret: String, audience: Option<String>| {
        let client = client.clone();
        let base = base.clone();
        async move {
            let mut body = serde_json::Map::new();
            if let Some(aud) = audience {
                body.insert("audience".into(), Value::String(aud));
            }
            let response = client
                .post(format!("{base}/api/v1/token"))
                .header("Authorization", format!("ApiKey {secret}"))
                .json(&Value::Object(body))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 200);
            let body: Value = response.json().await.unwrap();
            body["access_token"].as_str().unwrap().to_owned()
        }
    };
    let admin = token_for(bootstrap.clone(), None).await;
    let mut tokens = vec![admin.clone()];
    let created: Value = client
        .post(format!("{base}/api/v1/keys"))
        .bearer_auth(&admin)
        .json(&json!({"name": "svc", "scopes": ["read", "tokens:introspect"], "claims": {"tier": "gold"}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = created["id"].as_str().unwrap().to_owned();
    let secret = created["key"].as_str().unwrap().to_owned();
    secrets.push(secret.clone());
    tokens.push(token_for(secret.clone(), None).await);
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"));
    let response = client
        .post(format!("{base}/oauth/token"))
        .header("Authorization", format!("Basic {basic}"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    tokens.push(body["access_token"].as_str().unwrap().to_owned());
    let rotated: Value = client
        .post(format!("{base}/api/v1/keys/{id}/rotate"))
        .bearer_auth(&admin)
        .json(&json!({"grace_period_s": 60}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let new_secret = rotated["key"].as_str().unwrap().to_owned();
    secrets.push(new_secret.clone());
    let response = client
        .post(format!("{base}/oauth/introspect"))
        .header("Authorization", format!("Basic {basic}"))
        .form(&[("token", tokens[1].as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    // A failed attempt with a secret-looking value must not be logged either.
    let response = client
        .post(format!("{base}/api/v1/token"))
        .header("X-API-Key", format!("{}x", new_secret))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let response = client
        .post(format!("{base}/oauth/revoke"))
        .form(&[("token", new_secret.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;

    let master = std::fs::read_to_string(db.master_key_file())
        .unwrap()
        .trim()
        .to_owned();
    let logs = server.stderr.lock().unwrap().join("\n");
    assert!(
        logs.contains("request served"),
        "request logs are there: {logs}"
    );
    for secret in &secrets {
        // The random part alone must not appear either.
        assert!(
            !logs.contains(&secret[3..35]),
            "an API key secret is in the logs"
        );
    }
    for token in &tokens {
        let signature = token.rsplit('.').next().unwrap();
        assert!(!logs.contains(signature), "a JWT is in the logs");
    }
    assert!(!logs.contains(&master), "the master key is in the logs");
    assert!(
        !logs.contains(&basic),
        "an Authorization value is in the logs"
    );
    server.stop().await;
}
