//! Revocation reaches offline verifiers: `keymint::validator` accepts a
//! token, and refuses it within `statuslist.ttl_s` once its key is revoked,
//! reading only the JWKS and the status list (it has no introspection call
//! at all). Other keys' tokens keep passing. With two replicas on one
//! PostgreSQL, a revocation made on one is in the list the other serves.

use std::time::{Duration, Instant};

use keymint::validator::{Verifier, VerifyError};
use serde_json::json;

use crate::backend_tests;
use crate::client::{access_token_at, admin_token_at, create_key_at};
use crate::helpers::{Backend, ServerProcess, free_port, spawn_app_with};

const TTL_S: u64 = 5;
const AUDIENCE: &str = "urn:keymint:tenant:default";

backend_tests!(a_revoked_keys_tokens_are_refused_offline_within_the_ttl);

/// Polls `verify` until it refuses `token` as revoked; returns how long
/// that took, failing past `ttl` and a second of slack.
async fn refused_within(verifier: &Verifier, token: &str) -> Duration {
    let started = Instant::now();
    loop {
        match verifier.verify(token).await {
            Err(VerifyError::Revoked) => return started.elapsed(),
            Ok(_) => {
                assert!(
                    started.elapsed() < Duration::from_secs(TTL_S + 1),
                    "still accepted {:?} after the revocation",
                    started.elapsed()
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(other) => panic!("refused for another reason: {other}"),
        }
    }
}

async fn a_revoked_keys_tokens_are_refused_offline_within_the_ttl(backend: Backend) {
    let app = spawn_app_with(backend, &format!("[statuslist]\nttl_s = {TTL_S}\n")).await;
    let admin = app.admin_token(&app.bootstrap_key).await;
    let revoked = app
        .create_key(&admin, json!({"name": "leaked", "scopes": ["orders:read"]}))
        .await;
    let kept = app
        .create_key(&admin, json!({"name": "kept", "scopes": ["orders:read"]}))
        .await;
    let token = app
        .access_token(revoked["key"].as_str().unwrap(), &[])
        .await;
    let other = app.access_token(kept["key"].as_str().unwrap(), &[]).await;
    let verifier = Verifier::builder(&app.issuer)
        .audience(AUDIENCE)
        .build()
        .unwrap();
    verifier.verify(&token).await.expect("valid before");
    verifier.verify(&other).await.expect("valid before");
    assert_eq!(verifier.status_fetch_count(), 1, "one list holds both");

    let id = revoked["id"].as_str().unwrap();
    let answer = app
        .api(
            "POST",
            &format!("/api/v1/keys/{id}/revoke"),
            &admin,
            None,
            None,
        )
        .await;
    assert_eq!(answer.status, 200);
    let took = refused_within(&verifier, &token).await;
    assert!(took <= Duration::from_secs(TTL_S + 1), "{took:?}");
    verifier.verify(&other).await.expect("another key's token");

    // A fresh verifier refuses at once: the server's list is already exact.
    let fresh = Verifier::builder(&app.issuer)
        .audience(AUDIENCE)
        .build()
        .unwrap();
    assert!(matches!(
        fresh.verify(&token).await,
        Err(VerifyError::Revoked)
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_on_one_replica_is_in_the_others_list() {
    if crate::helpers::postgres_admin_url().is_none() {
        return;
    }
    // Both replicas answer for one issuer, B's address: tokens minted on A
    // name B's status list, and the verifier reads B only.
    let port = free_port();
    let issuer = format!("http://127.0.0.1:{port}");
    let a = spawn_app_with(
        Backend::Postgres,
        &format!("[tokens]\nissuer = \"{issuer}\"\n[statuslist]\nttl_s = {TTL_S}\n"),
    )
    .await;
    let ttl = TTL_S.to_string();
    let b = ServerProcess::start_bound(
        &a.db,
        &format!("127.0.0.1:{port}"),
        &[],
        &[
            ("KEYMINT__TOKENS__ISSUER", &issuer),
            ("KEYMINT__STATUSLIST__TTL_S", &ttl),
        ],
    )
    .await;
    let http = reqwest::Client::new();
    let admin = admin_token_at(&http, &a.address, &a.bootstrap_key, &issuer).await;
    let created = create_key_at(
        &http,
        &a.address,
        &admin,
        json!({"name": "on-a", "scopes": ["orders:read"]}),
    )
    .await;
    let token = access_token_at(&http, &a.address, created["key"].as_str().unwrap()).await;
    let verifier = Verifier::builder(&issuer)
        .audience(AUDIENCE)
        .build()
        .unwrap();
    verifier.verify(&token).await.expect("valid before");

    let id = created["id"].as_str().unwrap();
    let revoked = http
        .post(format!("{}/api/v1/keys/{id}/revoke", a.address))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 200);
    refused_within(&verifier, &token).await;
    b.stop().await;
}
