//! Downstream verification: `keymint::verify` (the library and its actix
//! extractors) and the `token` / `verify` commands, against running servers.

use std::time::Duration;

use actix_web::{App, HttpResponse, test as actix_test, web};
use chrono::Utc;
use serde_json::Value;

use keymint::tokens::issue::AccessClaims;
use keymint::tokens::signing::{self, KeyRing};
use keymint::verify::{RequiredScopes, Scoped, Token, Verifier, VerifyError};

use crate::helpers::{Backend, TestApp, run_cli, spawn_app, spawn_app_with};
use crate::token::{Form, cli_key, exchange};

const AUDIENCE: &str = "urn:keymint:tenant:default";

async fn token_for(app: &TestApp, scopes: &str) -> String {
    let (_, secret) = cli_key(app, &["--name", "svc", "--scopes", scopes]).await;
    let response = exchange(app, Form::ApiKeyHeader, &secret, &[]).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    body["access_token"].as_str().unwrap().to_owned()
}

/// Signs arbitrary claims with the server's own active key, as only the
/// server could: the verifier must refuse them on their claims alone.
fn sign_as_server(app: &TestApp, claims: &AccessClaims) -> String {
    let mut conn = app.db.connect();
    let rows = signing::load_rows(&mut conn).unwrap();
    let settings = app.db.settings("");
    let now = Utc::now();
    let ring = KeyRing::load(
        &rows,
        &app.db.master_key(),
        &settings.signing,
        now.naive_utc(),
    )
    .unwrap();
    ring.signer(now.timestamp()).unwrap().sign(claims).unwrap()
}

fn claims(app: &TestApp, iat: i64, ttl: i64) -> AccessClaims {
    AccessClaims {
        iss: app.issuer.clone(),
        sub: "svc".into(),
        aud: AUDIENCE.into(),
        iat,
        nbf: iat,
        exp: iat + ttl,
        jti: uuid::Uuid::now_v7().to_string(),
        client_id: "k".into(),
        scope: Some("orders:read".into()),
        tid: "default".into(),
        ext: None,
    }
}

fn verifier(app: &TestApp, audience: &str) -> Verifier {
    Verifier::builder(&app.issuer)
        .audience(audience)
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_verifier_accepts_fresh_tokens_and_refuses_the_rest() {
    let app = spawn_app(Backend::Sqlite).await;
    let other = spawn_app(Backend::Sqlite).await;
    let token = token_for(&app, "orders:read,orders:write").await;
    let verifier = verifier(&app, AUDIENCE);

    let claims_ok = verifier
        .verify(&token)
        .await
        .expect("a fresh token verifies");
    assert!(claims_ok.has_scope("orders:read") && claims_ok.has_scope("orders:write"));
    assert!(!claims_ok.has_scope("orders"));
    assert_eq!(claims_ok.iss, app.issuer);

    let now = Utc::now().timestamp();
    // Expired beyond the 5 s leeway, though signed by the real key.
    let expired = sign_as_server(&app, &claims(&app, now - 120, 60));
    assert!(matches!(
        verifier.verify(&expired).await,
        Err(VerifyError::Invalid(_))
    ));
    // Within the leeway it still passes; a zero leeway refuses it.
    let just_expired = sign_as_server(&app, &claims(&app, now - 62, 60));
    assert!(verifier.verify(&just_expired).await.is_ok());
    let strict = Verifier::builder(&app.issuer)
        .audience(AUDIENCE)
        .leeway_s(0)
        .build()
        .unwrap();
    assert!(strict.verify(&just_expired).await.is_err());
    // Not yet valid.
    let future = sign_as_server(&app, &claims(&app, now + 120, 60));
    assert!(verifier.verify(&future).await.is_err());

    // Another service's audience.
    let wrong_audience = self::verifier(&app, "https://orders.example");
    assert!(matches!(
        wrong_audience.verify(&token).await,
        Err(VerifyError::Invalid(_))
    ));

    // Another issuer: its keys are not ours…
    let foreign = token_for(&other, "orders:read").await;
    assert!(matches!(
        verifier.verify(&foreign).await,
        Err(VerifyError::UnknownKey)
    ));
    // …and our key with someone else's `iss` is refused on the claim.
    let mut forged = claims(&app, now, 60);
    forged.iss = other.issuer.clone();
    let forged = sign_as_server(&app, &forged);
    assert!(matches!(
        verifier.verify(&forged).await,
        Err(VerifyError::Invalid(_))
    ));

    // A changed payload breaks the signature; junk is refused, not panicked on.
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    let swap = if parts[1].starts_with("ab") {
        "cd"
    } else {
        "ab"
    };
    parts[1].replace_range(0..2, swap);
    assert!(verifier.verify(&parts.join(".")).await.is_err());
    for junk in ["", "a.b.c", "x", &"a".repeat(40_000)] {
        assert!(verifier.verify(junk).await.is_err());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_key_set_is_cached_by_cache_control_and_refetched_within_a_floor() {
    let app = spawn_app_with(
        Backend::Sqlite,
        "[signing]\njwks_max_age_s = 1\nprepublish_s = 2\nreload_s = 1\n",
    )
    .await;
    let other = spawn_app(Backend::Sqlite).await;
    let token = token_for(&app, "a").await;
    let foreign = token_for(&other, "a").await;

    let verifier = Verifier::builder(&app.issuer)
        .audience(AUDIENCE)
        .min_refresh(Duration::from_millis(300))
        .build()
        .unwrap();
    verifier.verify(&token).await.unwrap();
    verifier.verify(&token).await.unwrap();
    assert_eq!(verifier.fetch_count(), 1, "cached while fresh");

    // An unknown kid refetches once; the floor absorbs a flood of them.
    tokio::time::sleep(Duration::from_millis(350)).await;
    for _ in 0..20 {
        assert!(verifier.verify(&foreign).await.is_err());
    }
    assert_eq!(verifier.fetch_count(), 2, "one refetch per floor");

    // max-age=1 expires: the next verify refetches.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    verifier.verify(&token).await.unwrap();
    assert_eq!(verifier.fetch_count(), 3);

    // The default 300 s max-age of a normal server holds for longer.
    let steady = Verifier::builder(&other.issuer)
        .audience(AUDIENCE)
        .min_refresh(Duration::from_millis(100))
        .build()
        .unwrap();
    steady.verify(&foreign).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1200)).await;
    steady.verify(&foreign).await.unwrap();
    assert_eq!(steady.fetch_count(), 1);

    // A rotation's new key is picked up through the unknown-kid refetch.
    let (_, admin_secret) = cli_key(&app, &["--name", "a", "--scopes", "admin:signing-keys"]).await;
    let admin = crate::keys::admin_token(&app, &admin_secret).await;
    let rotated = app
        .client
        .post(app.url("/api/v1/signing-keys/rotate"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(rotated.status(), 200);
    let rotation: Value = rotated.json().await.unwrap();
    let activates =
        chrono::DateTime::parse_from_rfc3339(rotation["activates_at"].as_str().unwrap())
            .unwrap()
            .timestamp();
    while Utc::now().timestamp() <= activates {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let fresh = token_for(&app, "a").await;
    let kid = jsonwebtoken::decode_header(&fresh).unwrap().kid.unwrap();
    assert_eq!(kid, rotation["activated_kid"].as_str().unwrap());
    verifier
        .verify(&fresh)
        .await
        .expect("the rotated key verifies");
}

struct ReadOrders;
impl RequiredScopes for ReadOrders {
    const SCOPES: &'static [&'static str] = &["orders:read"];
}

async fn orders(token: Scoped<ReadOrders>) -> HttpResponse {
    HttpResponse::Ok().body(token.claims.sub)
}

async fn whoami(token: Token) -> HttpResponse {
    HttpResponse::Ok().body(token.0.client_id)
}

#[actix_web::test]
async fn the_actix_extractors_require_a_valid_token_and_its_scopes() {
    let app = spawn_app(Backend::Sqlite).await;
    let reader = token_for(&app, "orders:read").await;
    let writer = token_for(&app, "orders:write").await;
    let service = actix_test::init_service(
        App::new()
            .app_data(web::Data::new(verifier(&app, AUDIENCE)))
            .route("/orders", web::get().to(orders))
            .route("/whoami", web::get().to(whoami)),
    )
    .await;
    let call = |path: &'static str, token: Option<String>| {
        let mut req = actix_test::TestRequest::get().uri(path);
        if let Some(token) = token {
            req = req.insert_header(("Authorization", format!("Bearer {token}")));
        }
        req.to_request()
    };

    let response = actix_test::call_service(&service, call("/orders", None)).await;
    assert_eq!(response.status(), 401);
    assert_eq!(
        response.headers().get("www-authenticate").unwrap(),
        "Bearer"
    );

    let response = actix_test::call_service(&service, call("/orders", Some("junk".into()))).await;
    assert_eq!(response.status(), 401);
    assert!(
        response
            .headers()
            .get("www-authenticate")
            .unwrap()
            .to_str()
            .unwrap()
            .contains("invalid_token")
    );

    let response = actix_test::call_service(&service, call("/orders", Some(writer.clone()))).await;
    assert_eq!(response.status(), 403);
    assert_eq!(
        response.headers().get("www-authenticate").unwrap(),
        "Bearer error=\"insufficient_scope\", scope=\"orders:read\""
    );

    let response = actix_test::call_service(&service, call("/orders", Some(reader))).await;
    assert_eq!(response.status(), 200);
    let response = actix_test::call_service(&service, call("/whoami", Some(writer))).await;
    assert_eq!(response.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_and_verify_commands_work_for_scripts() {
    let app = spawn_app(Backend::Sqlite).await;
    let other = spawn_app(Backend::Sqlite).await;
    let (_, secret) = cli_key(&app, &["--name", "cli", "--scopes", "orders:read"]).await;

    let (code, stdout, stderr) = run_cli(
        &["token", "--url", &app.address],
        &[("KEYMINT_API_KEY", &secret)],
    )
    .await;
    assert_eq!(code, 0, "{stderr}");
    let token = stdout.trim().to_owned();
    assert_eq!(token.split('.').count(), 3);
    assert!(!stderr.contains(&secret));

    let (code, stdout, _) = run_cli(
        &[
            "token",
            "--url",
            &app.address,
            "--key",
            &secret,
            "--claims",
            "--expires-in",
            "60",
        ],
        &[],
    )
    .await;
    assert_eq!(code, 0);
    let shown: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(shown["header"]["typ"], "at+jwt");
    assert_eq!(
        shown["claims"]["exp"].as_i64().unwrap() - shown["claims"]["iat"].as_i64().unwrap(),
        60
    );

    let (code, _, stderr) =
        run_cli(&["token", "--url", &app.address, "--key", "km_nope"], &[]).await;
    assert_eq!(code, 3, "a refused key exits 3: {stderr}");
    let (code, _, _) = run_cli(
        &["token", "--url", "http://127.0.0.1:9", "--key", &secret],
        &[],
    )
    .await;
    assert_eq!(code, 1, "an unreachable server exits 1");

    let verify = |token: String, issuer: String, audience: Option<&'static str>| async move {
        let mut args = vec!["verify".to_owned(), token, "--issuer".into(), issuer];
        if let Some(audience) = audience {
            args.extend(["--audience".to_owned(), audience.to_owned()]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run_cli(&args, &[]).await
    };
    let (code, stdout, stderr) = verify(token.clone(), app.issuer.clone(), Some(AUDIENCE)).await;
    assert_eq!(code, 0, "{stderr}");
    let claims: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(claims["scope"], "orders:read");

    let (code, _, stderr) = verify(token.clone(), app.issuer.clone(), Some("urn:other")).await;
    assert_eq!(code, 3, "wrong audience: {stderr}");
    let (code, _, _) = verify(token.clone(), other.issuer.clone(), None).await;
    assert_eq!(code, 3, "another issuer");
    let now = Utc::now().timestamp();
    let expired = sign_as_server(&app, &claims_for_cli(&app, now - 120));
    let (code, _, stderr) = verify(expired, app.issuer.clone(), Some(AUDIENCE)).await;
    assert_eq!(code, 3, "expired: {stderr}");
    assert!(stderr.contains("invalid token"), "{stderr}");
    let (code, _, _) = verify(token, "http://127.0.0.1:9".into(), None).await;
    assert_eq!(code, 1, "an unreachable issuer exits 1");
}

fn claims_for_cli(app: &TestApp, iat: i64) -> AccessClaims {
    claims(app, iat, 60)
}
