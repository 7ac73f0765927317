//! Downstream verification: `keymint::validator` (the library and its actix
//! extractors) and the `token` / `verify` commands, against running servers.

use std::time::Duration;

use actix_web::{App, HttpResponse, test as actix_test, web};
use chrono::Utc;
use serde_json::Value;

use keymint::tokens::issue::AccessClaims;
use keymint::tokens::signing::{self, KeyRing};
use keymint::validator::{RequiredScopes, Scoped, Token, Verifier, VerifyError};

use crate::client::Form;
use crate::helpers::{Backend, TestApp, run_cli, spawn_app, spawn_app_with};

const AUDIENCE: &str = "urn:keymint:tenant:default";

async fn token_for(app: &TestApp, scopes: &str) -> String {
    let (_, secret) = app.cli_key(&["--name", "svc", "--scopes", scopes]).await;
    let response = app.exchange(Form::ApiKeyHeader, &secret, &[]).await;
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
        status: None,
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
    let (_, admin_secret) = app
        .cli_key(&["--name", "a", "--scopes", "admin:signing-keys"])
        .await;
    let admin = app.admin_token(&admin_secret).await;
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
    let (_, secret) = app
        .cli_key(&["--name", "cli", "--scopes", "orders:read"])
        .await;

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

/// A stand-in for the issuer's JWKS endpoint that a test can break:
/// `/jwks.json` serves `jwks` (`max-age=1`) or 503 while failing; `/moved`
/// redirects off loopback over plain http; `/hop` redirects to
/// `localhost`'s `/jwks.json`.
struct JwksStandIn {
    base: String,
    failing: std::sync::Arc<std::sync::atomic::AtomicBool>,
    served: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    server: actix_web::dev::ServerHandle,
}

impl JwksStandIn {
    async fn start(jwks: String) -> Self {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
        let failing = Arc::new(AtomicBool::new(false));
        let served = Arc::new(AtomicUsize::new(0));
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let (fail, count) = (failing.clone(), served.clone());
        let server = actix_web::HttpServer::new(move || {
            let (fail, count, jwks) = (fail.clone(), count.clone(), jwks.clone());
            App::new()
                .route(
                    "/jwks.json",
                    web::get().to(move || {
                        let (fail, count, jwks) = (fail.clone(), count.clone(), jwks.clone());
                        async move {
                            if fail.load(Ordering::SeqCst) {
                                return HttpResponse::ServiceUnavailable().finish();
                            }
                            count.fetch_add(1, Ordering::SeqCst);
                            HttpResponse::Ok()
                                .insert_header(("Cache-Control", "public, max-age=1"))
                                .content_type("application/json")
                                .body(jwks)
                        }
                    }),
                )
                .route(
                    "/moved",
                    web::get().to(|| async {
                        // TEST-NET-1: never reachable, and never contacted.
                        HttpResponse::Found()
                            .insert_header(("Location", "http://192.0.2.1/jwks.json"))
                            .finish()
                    }),
                )
                .route(
                    "/hop",
                    web::get().to(move || async move {
                        HttpResponse::Found()
                            .insert_header((
                                "Location",
                                format!("http://localhost:{port}/jwks.json"),
                            ))
                            .finish()
                    }),
                )
        })
        .workers(1)
        .disable_signals()
        .listen(listener)
        .unwrap()
        .run();
        let handle = server.handle();
        tokio::spawn(server);
        Self {
            base: format!("http://127.0.0.1:{port}"),
            failing,
            served,
            server: handle,
        }
    }

    fn fail(&self, failing: bool) {
        self.failing
            .store(failing, std::sync::atomic::Ordering::SeqCst);
    }
}

/// Finding 8: while the key-set fetch keeps failing, cached keys are
/// trusted for `max_stale` past their freshness and no longer; tokens are
/// then refused with a clear error until a fetch succeeds again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_keys_are_trusted_only_up_to_max_stale() {
    let app = spawn_app(Backend::Sqlite).await;
    let token = token_for(&app, "a").await;
    let jwks = app
        .get("/.well-known/jwks.json")
        .await
        .text()
        .await
        .unwrap();
    let stand_in = JwksStandIn::start(jwks).await;
    let verifier = Verifier::builder(&app.issuer)
        .audience(AUDIENCE)
        .jwks_uri(format!("{}/jwks.json", stand_in.base))
        .min_refresh(Duration::from_millis(100))
        .max_stale(Duration::from_secs(2))
        .build()
        .unwrap();

    let fetched = std::time::Instant::now();
    verifier.verify(&token).await.expect("fresh keys verify");
    stand_in.fail(true);
    // Stale (max-age=1 has passed) and unrefreshable, but within max_stale.
    tokio::time::sleep(Duration::from_millis(1300)).await;
    verifier
        .verify(&token)
        .await
        .expect("stale keys serve within max_stale");
    // Past freshness + max_stale: refused, saying why.
    tokio::time::sleep(Duration::from_millis(3400).saturating_sub(fetched.elapsed())).await;
    for _ in 0..3 {
        match verifier.verify(&token).await {
            Err(VerifyError::KeysUnavailable(why)) => {
                assert!(why.contains("max_stale"), "{why}")
            }
            other => panic!("a key stale past max_stale was used: {other:?}"),
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    // A successful fetch restores service.
    stand_in.fail(false);
    tokio::time::sleep(Duration::from_millis(150)).await;
    verifier.verify(&token).await.expect("fresh keys again");
    assert!(stand_in.served.load(std::sync::atomic::Ordering::SeqCst) >= 2);
    stand_in.server.stop(false).await;
}

/// Finding 8: plain http off loopback is refused when the verifier is
/// built (the library and `keymint verify`), and a redirect to such a URL
/// is not followed; a redirect that stays on loopback is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_off_loopback_is_refused_and_never_redirected_to() {
    let app = spawn_app(Backend::Sqlite).await;
    let token = token_for(&app, "a").await;

    for issuer in ["http://auth.example.com", "http://10.1.2.3:8080"] {
        let err = Verifier::builder(issuer)
            .audience(AUDIENCE)
            .build()
            .err()
            .unwrap_or_else(|| panic!("{issuer} accepted"));
        assert!(matches!(err, VerifyError::Config(_)), "{err:?}");
        let (code, _, stderr) = run_cli(
            &["verify", &token, "--issuer", issuer, "--audience", AUDIENCE],
            &[],
        )
        .await;
        assert_eq!(code, 2, "{stderr}");
        assert!(stderr.contains("https://"), "{stderr}");
    }
    let (code, _, stderr) = run_cli(
        &[
            "verify",
            &token,
            "--issuer",
            &app.issuer,
            "--jwks-uri",
            "http://keys.example.com/jwks.json",
        ],
        &[],
    )
    .await;
    assert_eq!(code, 2, "an http JWKS URL off loopback: {stderr}");

    let jwks = app
        .get("/.well-known/jwks.json")
        .await
        .text()
        .await
        .unwrap();
    let stand_in = JwksStandIn::start(jwks).await;
    let through = |path: &str| {
        Verifier::builder(&app.issuer)
            .audience(AUDIENCE)
            .jwks_uri(format!("{}{path}", stand_in.base))
            .timeout(Duration::from_secs(2))
            .build()
            .unwrap()
    };
    let started = std::time::Instant::now();
    match through("/moved").verify(&token).await {
        Err(VerifyError::KeysUnavailable(why)) => {
            assert!(why.contains("redirect target"), "{why}")
        }
        other => panic!("a redirect to plain http off loopback was followed: {other:?}"),
    }
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "refused before any connection to the target"
    );
    through("/hop")
        .verify(&token)
        .await
        .expect("a redirect that stays on loopback is followed");
    stand_in.server.stop(false).await;
}
