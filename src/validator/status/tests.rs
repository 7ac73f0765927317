//! The status check against a stand-in issuer: what each entry decides,
//! hostile lists and claims, caching, revalidation, single flight and
//! outages.

use std::time::{Duration, Instant};

use actix_web::ResponseError;
use actix_web::http::StatusCode;
use serde_json::json;

use crate::domain::status_list::StatusList;
use crate::validator::*;

mod issuer;

use issuer::{Issuer, TestKey, sample_list};

const MIB: usize = 1024 * 1024;

/// A list served under a name, and the refusal it must meet.
type Case = (&'static str, String, fn(&VerifyError) -> bool);

fn short(issuer: &Issuer) -> Verifier {
    issuer
        .verifier()
        .min_refresh_status(Duration::from_millis(100))
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_status_decides_and_one_fetch_serves_them_all() {
    let issuer = Issuer::start().await;
    issuer.publish_list("1", &sample_list(), 60.0);
    let verifier = issuer.verifier().build().unwrap();

    let claims = verifier.verify(&issuer.token_on("1", 0)).await;
    assert!(claims.expect("VALID passes").has_scope("orders:read"));
    let outcome = |idx| {
        let (verifier, token) = (verifier.clone(), issuer.token_on("1", idx));
        async move { verifier.verify(&token).await.unwrap_err() }
    };
    assert!(matches!(outcome(1).await, VerifyError::Revoked));
    assert!(matches!(outcome(2).await, VerifyError::Suspended));
    let err = outcome(3).await;
    assert!(matches!(err, VerifyError::UnknownStatus(3)), "{err}");
    let err = outcome(16).await;
    assert!(
        matches!(err, VerifyError::StatusIndexOutOfRange { idx: 16, len: 16 }),
        "{err}"
    );
    assert!(err.to_string().contains("past the end"), "{err}");
    assert_eq!(issuer.hits("1"), 1, "one fetch within the ttl");
    assert_eq!(verifier.status_fetch_count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_without_status_pass_unless_it_is_required() {
    let issuer = Issuer::start().await;
    let token = issuer.access_token(None);
    let lenient = issuer.verifier().build().unwrap();
    lenient
        .verify(&token)
        .await
        .expect("no status claim: older token");
    let strict = issuer.verifier().require_status(true).build().unwrap();
    let err = strict.verify(&token).await.unwrap_err();
    assert!(matches!(err, VerifyError::StatusMissing), "{err}");
    assert!(err.to_string().contains("no status claim"), "{err}");
    // A token that has one passes the strict verifier too.
    issuer.publish_list("1", &sample_list(), 60.0);
    strict.verify(&issuer.token_on("1", 0)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_or_foreign_status_claims_are_refused_without_a_fetch() {
    let issuer = Issuer::start().await;
    issuer.publish_list("1", &sample_list(), 60.0);
    let verifier = issuer.verifier().build().unwrap();
    let port = issuer.base.rsplit(':').next().unwrap().to_owned();
    let with_uri = |uri: &str| json!({ "status_list": { "idx": 0, "uri": uri } });
    let refused = [
        json!("revoked"),
        json!(null),
        json!({}),
        json!({ "status_list": "1" }),
        json!({ "status_list": { "idx": -1, "uri": issuer.uri("1") } }),
        json!({ "status_list": { "idx": "0", "uri": issuer.uri("1") } }),
        json!({ "status_list": { "idx": 0.5, "uri": issuer.uri("1") } }),
        json!({ "status_list": { "uri": issuer.uri("1") } }),
        json!({ "status_list": { "idx": 0 } }),
        with_uri("not a url"),
        // The same server under another name is another origin.
        with_uri(&format!("http://localhost:{port}/statuslists/1")),
        with_uri("http://127.0.0.1:9/statuslists/1"),
        with_uri("https://evil.example/statuslists/1"),
        with_uri("http://169.254.169.254/latest/meta-data/"),
        with_uri(&format!("http://user:pw@127.0.0.1:{port}/statuslists/1")),
    ];
    for status in refused {
        let err = verifier
            .verify(&issuer.access_token(Some(status.clone())))
            .await
            .unwrap_err();
        // A claim of the wrong shape fails to decode with the token's own
        // claims (`Invalid`); a well-formed one pointing nowhere safe is
        // `BadStatus`. Either way: refused, and nothing fetched.
        assert!(
            matches!(err, VerifyError::BadStatus(_) | VerifyError::Invalid(_)),
            "{status}: {err}"
        );
        assert!(err.is_token_refused(), "{status}");
    }
    let foreign = issuer.access_token(Some(with_uri("https://evil.example/x")));
    let err = verifier.verify(&foreign).await.unwrap_err();
    assert!(err.to_string().contains("issuer's origin"), "{err}");
    assert_eq!(issuer.hits("1"), 0, "nothing was fetched");
    assert_eq!(verifier.status_fetch_count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_lists_are_refused_each_with_its_reason() {
    use StatusListProblem as P;
    let issuer = Issuer::start().await;
    let list = sample_list();
    let signed = |typ: Option<&str>, claims: &serde_json::Value| issuer.key.sign(typ, claims);
    let typ = Some("statuslist+jwt");
    let stranger = TestKey::new();
    let claims_of = |name: &str| issuer.list_claims(name, &list, 60.0);
    let edited = |name: &str, edit: &dyn Fn(&mut serde_json::Value)| {
        let mut claims = claims_of(name);
        edit(&mut claims);
        claims
    };
    let now = chrono::Utc::now().timestamp();
    let bomb = StatusList::new(8, 64 << 20).unwrap().encode();
    let good = signed(typ, &claims_of("tampered"));
    let mut parts: Vec<&str> = good.split('.').collect();
    let other_payload = signed(typ, &edited("tampered", &|c| c["ttl"] = json!(3600)));
    parts[1] = other_payload.split('.').nth(1).unwrap();
    let tampered = parts.join(".");
    let cases: Vec<Case> = vec![
        (
            "foreign-key",
            stranger.sign(typ, &claims_of("foreign-key")),
            |e| matches!(e, VerifyError::StatusList(P::UnknownKey)),
        ),
        (
            "typ-at",
            signed(Some("at+jwt"), &claims_of("typ-at")),
            |e| matches!(e, VerifyError::StatusList(P::WrongType)),
        ),
        ("typ-jwt", signed(Some("JWT"), &claims_of("typ-jwt")), |e| {
            matches!(e, VerifyError::StatusList(P::WrongType))
        }),
        ("typ-none", signed(None, &claims_of("typ-none")), |e| {
            matches!(e, VerifyError::StatusList(P::WrongType))
        }),
        ("sub", signed(typ, &claims_of("another")), |e| {
            matches!(e, VerifyError::StatusList(P::SubjectMismatch))
        }),
        (
            "bomb",
            signed(
                typ,
                &edited("bomb", &|c| {
                    c["status_list"] = json!({ "bits": 8, "lst": bomb });
                }),
            ),
            |e| matches!(e, VerifyError::StatusList(P::ListTooLarge(n)) if *n == 4 * MIB),
        ),
        (
            "huge",
            "x".repeat(MIB + 1),
            |e| matches!(e, VerifyError::StatusList(P::TooLarge(n)) if *n == MIB),
        ),
        (
            "expired",
            signed(typ, &edited("expired", &|c| c["exp"] = json!(now - 60))),
            |e| matches!(e, VerifyError::StatusList(P::Expired)),
        ),
        (
            "bits",
            signed(
                typ,
                &edited("bits", &|c| c["status_list"]["bits"] = json!(3)),
            ),
            |e| matches!(e, VerifyError::StatusList(P::Invalid(m)) if m.contains("bits")),
        ),
        (
            "lst",
            signed(
                typ,
                &edited("lst", &|c| c["status_list"]["lst"] = json!("eJ!")),
            ),
            |e| matches!(e, VerifyError::StatusList(P::Invalid(m)) if m.contains("base64url")),
        ),
        (
            "no-iat",
            signed(
                typ,
                &edited("no-iat", &|c| {
                    drop(c.as_object_mut().unwrap().remove("iat"))
                }),
            ),
            |e| matches!(e, VerifyError::StatusList(P::Invalid(m)) if m.contains("iat")),
        ),
        (
            "future",
            signed(typ, &edited("future", &|c| c["iat"] = json!(now + 120))),
            |e| matches!(e, VerifyError::StatusList(P::Invalid(m)) if m.contains("future")),
        ),
        (
            "ttl",
            signed(typ, &edited("ttl", &|c| c["ttl"] = json!(0))),
            |e| matches!(e, VerifyError::StatusList(P::Invalid(m)) if m.contains("ttl")),
        ),
        ("tampered", tampered, |e| {
            matches!(e, VerifyError::StatusList(P::Invalid(_)))
        }),
    ];
    let verifier = issuer.verifier().build().unwrap();
    for (name, body, expected) in cases {
        issuer.publish(name, body);
        let err = verifier
            .verify(&issuer.token_on(name, 0))
            .await
            .unwrap_err();
        assert!(expected(&err), "{name}: {err}");
        assert!(
            !err.is_token_refused(),
            "{name}: the list's fault, not the token's"
        );
    }
    let err = verifier
        .verify(&issuer.token_on("missing", 0))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, VerifyError::StatusUnavailable(m) if m.contains("404")),
        "{err}"
    );
    // Redirects follow the key set's rule: never off loopback over http.
    issuer.redirect("moved", "http://192.0.2.1/statuslists/1");
    let err = verifier
        .verify(&issuer.token_on("moved", 0))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, VerifyError::StatusUnavailable(m) if m.contains("https://")),
        "{err}"
    );
    issuer.publish_list("target", &list, 60.0);
    issuer.redirect("hop", &issuer.uri("target"));
    let err = verifier
        .verify(&issuer.token_on("hop", 0))
        .await
        .unwrap_err();
    assert!(
        matches!(err, VerifyError::StatusList(P::SubjectMismatch)),
        "{err}"
    );
    // The stranger's kid asked for no second key-set fetch within the floor.
    assert_eq!(verifier.fetch_count(), 1);

    // A tighter bound refuses even keymint's small list (4 bytes).
    let tight = issuer.verifier().max_status_list_bytes(2).build().unwrap();
    issuer.publish_list("small", &list, 60.0);
    let err = tight
        .verify(&issuer.token_on("small", 0))
        .await
        .unwrap_err();
    assert!(
        matches!(err, VerifyError::StatusList(P::ListTooLarge(2))),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_list_signed_by_a_newly_published_key_is_found_by_a_refetch() {
    let issuer = Issuer::start().await;
    issuer.publish_list("1", &sample_list(), 60.0);
    let verifier = issuer
        .verifier()
        .min_refresh(Duration::ZERO)
        .build()
        .unwrap();
    verifier.verify(&issuer.token_on("1", 0)).await.unwrap();
    assert_eq!(verifier.fetch_count(), 1);

    let next = TestKey::new();
    issuer.publish_key(next.jwk.clone());
    let claims = issuer.list_claims("2", &sample_list(), 60.0);
    issuer.publish("2", next.sign(Some("statuslist+jwt"), &claims));
    verifier.verify(&issuer.token_on("2", 0)).await.unwrap();
    assert_eq!(
        verifier.fetch_count(),
        2,
        "the unknown kid refetched the keys"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_list_is_cached_for_its_ttl_then_revalidated_with_its_etag() {
    let issuer = Issuer::start().await;
    let mut list = sample_list();
    issuer.publish_list("1", &list, 0.3);
    let verifier = short(&issuer);
    let token = issuer.token_on("1", 0);
    for _ in 0..3 {
        verifier.verify(&token).await.unwrap();
    }
    assert_eq!(issuer.hits("1"), 1, "within the ttl, no refetch");

    tokio::time::sleep(Duration::from_millis(400)).await;
    verifier.verify(&token).await.unwrap();
    assert_eq!(issuer.hits("1"), 2, "past the ttl, a refetch");
    assert_eq!(issuer.not_modified(), 1, "answered 304 to If-None-Match");
    // The 304 made the held list fresh again: a new list is not seen yet.
    list.set(0, 1);
    issuer.publish_list("1", &list, 0.3);
    verifier.verify(&token).await.unwrap();
    assert_eq!(issuer.hits("1"), 2);

    tokio::time::sleep(Duration::from_millis(400)).await;
    let err = verifier.verify(&token).await.unwrap_err();
    assert!(matches!(err, VerifyError::Revoked), "{err}");
    assert_eq!((issuer.hits("1"), issuer.not_modified()), (3, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_verifications_wait_for_one_fetch() {
    let issuer = Issuer::start().await;
    issuer.publish_list("1", &sample_list(), 60.0);
    issuer.set_delay(Duration::from_millis(300));
    let verifier = issuer.verifier().build().unwrap();
    verifier.prefetch().await.unwrap();
    let verifications: Vec<_> = (0..16)
        .map(|i| {
            let (verifier, token) = (verifier.clone(), issuer.token_on("1", i % 2));
            tokio::spawn(async move { verifier.verify(&token).await })
        })
        .collect();
    for (i, verification) in verifications.into_iter().enumerate() {
        let outcome = verification.await.unwrap();
        match i % 2 {
            0 => assert!(outcome.is_ok(), "{i}"),
            _ => assert!(matches!(outcome, Err(VerifyError::Revoked)), "{i}"),
        }
    }
    assert_eq!(issuer.hits("1"), 1);
    assert_eq!(verifier.status_fetch_count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cached_list_outlives_an_outage_by_five_ttls_and_no_more() {
    let issuer = Issuer::start().await;
    issuer.publish_list("1", &sample_list(), 0.4);
    let verifier = short(&issuer);
    let token = issuer.token_on("1", 0);
    verifier.verify(&token).await.unwrap();
    let fetched = Instant::now();
    issuer.set_down(true);

    // Fresh until +0.4 s, then trusted while refetches fail until +2.4 s.
    let at = |ms| tokio::time::sleep_until((fetched + Duration::from_millis(ms)).into());
    at(600).await;
    verifier
        .verify(&token)
        .await
        .expect("stale, within 5 × ttl");
    let err = verifier.verify(&issuer.token_on("1", 1)).await.unwrap_err();
    assert!(
        matches!(err, VerifyError::Revoked),
        "the cached list still decides"
    );
    at(1600).await;
    verifier
        .verify(&token)
        .await
        .expect("stale, within 5 × ttl");
    let during = issuer.hits("1");
    assert!(
        (2..=4).contains(&during),
        "refetches held to the floor: {during}"
    );
    at(2800).await;
    let err = verifier.verify(&token).await.unwrap_err();
    assert!(
        matches!(&err, VerifyError::StatusUnavailable(m) if m.contains("503")),
        "{err}"
    );
    assert!(!err.is_token_refused());

    issuer.set_down(false);
    tokio::time::sleep(Duration::from_millis(150)).await;
    verifier
        .verify(&token)
        .await
        .expect("back once a fetch succeeds");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_new_list_counts_as_an_outage_and_max_stale_bounds_it() {
    let issuer = Issuer::start().await;
    let mut list = sample_list();
    issuer.publish_list("1", &list, 0.2);
    let verifier = short(&issuer);
    let never_stale = issuer
        .verifier()
        .min_refresh_status(Duration::from_millis(100))
        .status_max_stale(Duration::ZERO)
        .build()
        .unwrap();
    let token = issuer.token_on("1", 0);
    verifier.verify(&token).await.unwrap();
    never_stale.verify(&token).await.unwrap();

    // A refetch brings a list that revokes the token but fails the checks.
    list.set(0, 1);
    let claims = issuer.list_claims("1", &list, 0.2);
    issuer.publish("1", issuer.key.sign(Some("at+jwt"), &claims));
    tokio::time::sleep(Duration::from_millis(300)).await;
    verifier
        .verify(&token)
        .await
        .expect("the cached list stands in for an invalid one");
    let err = never_stale.verify(&token).await.unwrap_err();
    assert!(
        matches!(&err, VerifyError::StatusUnavailable(m) if m.contains("statuslist+jwt")),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_cached_list_an_outage_refuses_and_retries_at_the_floor() {
    let issuer = Issuer::start().await;
    issuer.publish_list("1", &sample_list(), 60.0);
    issuer.set_down(true);
    let verifier = issuer.verifier().build().unwrap();
    let token = issuer.token_on("1", 0);
    for _ in 0..3 {
        let err = verifier.verify(&token).await.unwrap_err();
        assert!(
            matches!(&err, VerifyError::StatusUnavailable(m) if m.contains("503")),
            "{err}"
        );
    }
    assert_eq!(issuer.hits("1"), 1, "one attempt per min_refresh_status");
}

#[test]
fn extractors_answer_401_for_the_token_and_503_for_the_list() {
    let refused = [
        VerifyError::Revoked,
        VerifyError::Suspended,
        VerifyError::UnknownStatus(3),
        VerifyError::StatusIndexOutOfRange { idx: 9, len: 8 },
        VerifyError::StatusMissing,
        VerifyError::BadStatus("x".into()),
    ];
    for err in refused {
        let rejection = Rejection::Invalid(err);
        assert_eq!(
            rejection.status_code(),
            StatusCode::UNAUTHORIZED,
            "{rejection}"
        );
        let response = rejection.error_response();
        let challenge = response.headers().get("www-authenticate").unwrap();
        assert!(challenge.to_str().unwrap().contains("invalid_token"));
    }
    for err in [
        VerifyError::StatusUnavailable("down".into()),
        VerifyError::StatusList(StatusListProblem::WrongType),
    ] {
        let rejection = Rejection::Invalid(err);
        assert_eq!(rejection.status_code(), StatusCode::SERVICE_UNAVAILABLE);
    }
}

#[test]
fn the_status_settings_are_bounded() {
    let build = |b: VerifierBuilder| b.build().err().map(|e| e.to_string());
    let base = || Verifier::builder("https://auth.example.com").audience("a");
    assert!(build(base().max_status_list_bytes(0)).is_some());
    assert!(build(base().max_status_list_bytes(65 * MIB)).is_some());
    assert!(build(base().min_refresh_status(Duration::ZERO)).is_some());
    let over = base()
        .max_cache(Duration::from_secs(60))
        .min_refresh_status(Duration::from_secs(61));
    assert!(build(over).is_some());
    let day = Duration::from_secs(24 * 3600);
    assert!(build(base().status_max_stale(day + Duration::from_secs(1))).is_some());
    assert!(build(base().status_max_stale(day).require_status(true)).is_none());
}
