//! Leak reports in (`POST /api/v1/leaks`), from both sides: the code host
//! whose signed report names a leaked key (the key is revoked or, for a
//! tenant that asked, only reported; once however often the report comes),
//! and an attacker without the host's key, who learns nothing about any
//! token and changes nothing.
//!
//! | who                          | what                                        | expected                                        |
//! |------------------------------|---------------------------------------------|-------------------------------------------------|
//! | host                         | live secret, unknown well-formed, garbage   | 200 true/false/false; key and children revoked  |
//! | host                         | the same report again                       | same answers, still one `key.leaked`            |
//! | attacker                     | bad/foreign/missing/non-base64 signature    | 401, same bytes whatever the body names         |
//! | host, tenant `notify`        | live secret                                 | true_positive, key stays active                 |
//! | host                         | previous secret inside its grace            | true_positive, key revoked                      |
//! | host                         | 1001 / 0 tokens, not JSON, wrong items      | 400                                             |
//! | anyone                       | > 1 MiB                                     | 413                                             |
//! | anyone                       | over `leaks.reports_per_s`                  | 429 with Retry-After                            |
//! | anyone, forged XFF/Forwarded | over the budget, claiming another address   | still 429 (no trusted proxy)                    |
//! | host, stream subscribed      | live secret                                 | a `key-leaked` delivery queued                  |
//! | host, several at once        | keys of two tenants, in both orders         | 200 each (no deadlock)                          |

use std::sync::Arc;

use keymint::keys::secret::ApiKeySecret;
use serde_json::{Value, json};

use crate::backend_tests;
use crate::client::{Form, LeakSender, leak, sha256_hex};
use crate::helpers::{Backend, TestApp, free_port, spawn_app_with};

backend_tests!(
    a_signed_report_revokes_the_leaked_key_once,
    unsigned_reports_learn_nothing_and_change_nothing,
    a_notify_tenant_keeps_its_key_and_hears_of_the_leak,
    a_previous_secret_in_its_grace_is_a_leak_too,
    reports_are_bounded,
    a_leak_queues_a_key_leaked_security_event,
    crossed_reports_do_not_deadlock,
);

const URL: &str = "https://github.com/octo/hello/blob/abc123/config.env";

/// A server that trusts `sender`, with a budget no test reaches unless it
/// means to.
async fn app_trusting(backend: Backend, sender: &LeakSender, extra: &str) -> TestApp {
    spawn_app_with(backend, &format!("{}{extra}", sender.toml(10_000.0))).await
}

/// A well-formed key (format and checksum hold) that no server issued.
fn unknown_key() -> String {
    let rng = ring::rand::SystemRandom::new();
    ApiKeySecret::generate("km", &rng)
        .unwrap()
        .expose()
        .to_owned()
}

/// The `key.leaked` events `admin` sees in `tenant` (its own when `None`).
async fn leaked_events(app: &TestApp, admin: &str, tenant: Option<&str>) -> Vec<Value> {
    let answer = app
        .api(
            "GET",
            "/api/v1/audit-events?action=key.leaked&limit=200",
            admin,
            tenant,
            None,
        )
        .await;
    assert_eq!(answer.status, 200, "{:?}", answer.body);
    answer.body["items"].as_array().unwrap().clone()
}

async fn exchanges(app: &TestApp, secret: &str) -> u16 {
    app.exchange(Form::XApiKey, secret, &[])
        .await
        .status()
        .as_u16()
}

fn secret_of(key: &Value) -> String {
    key["key"].as_str().unwrap().to_owned()
}

fn id_of(key: &Value) -> String {
    key["id"].as_str().unwrap().to_owned()
}

async fn a_signed_report_revokes_the_leaked_key_once(backend: Backend) {
    let host = LeakSender::new("test-1");
    let app = app_trusting(backend, &host, "").await;
    let admin = app.admin_token(&app.bootstrap_key).await;
    let parent = app
        .create_key(
            &admin,
            json!({"name": "leaky", "owner": "lee", "scopes": ["keys:self", "app:read"]}),
        )
        .await;
    let parent_token = app.admin_token(&secret_of(&parent)).await;
    let child = app
        .create_key(&parent_token, json!({"name": "made through keys:self"}))
        .await;
    let bystander = app.create_key(&admin, json!({"name": "bystander"})).await;
    let leaked = secret_of(&parent);
    let unknown = unknown_key();
    let garbage = "password123";
    let report = json!([
        leak(&leaked, URL),
        {"token": unknown, "type": "keymint_api_key", "url": URL, "source": "commit",
         "a_member_senders_may_add_later": 1},
        leak(garbage, URL),
    ]);

    let answer = host.report(&app, &report).await;

    assert_eq!(answer.status, 200, "{:?}", answer.body);
    let expected = json!([
        {"token_hash": sha256_hex(&leaked), "token_type": "keymint_api_key", "label": "true_positive"},
        {"token_hash": sha256_hex(&unknown), "token_type": "keymint_api_key", "label": "false_positive"},
        {"token_hash": sha256_hex(garbage), "token_type": "keymint_api_key", "label": "false_positive"},
    ]);
    assert_eq!(answer.body, expected);
    // The answer names tokens only by their hash.
    let text = answer.body.to_string();
    assert!(!text.contains(&leaked) && !text.contains(&unknown) && !text.contains(garbage));

    // The key is revoked with the leak as its reason, and with it the key it made.
    let key = app
        .key_as_admin(&admin, None, &id_of(&parent))
        .await
        .unwrap();
    assert_eq!(key["status"], "revoked");
    assert_eq!(
        key["revoked_reason"],
        format!("leaked: reported by content at {URL}")
    );
    assert_eq!(exchanges(&app, &leaked).await, 401);
    let child_view = app
        .key_as_admin(&admin, None, &id_of(&child))
        .await
        .unwrap();
    assert_eq!(
        child_view["status"], "revoked",
        "the cascade reaches children"
    );
    assert_eq!(exchanges(&app, &secret_of(&child)).await, 401);
    assert_eq!(exchanges(&app, &secret_of(&bystander)).await, 200);

    // One key.leaked event, from the system, with where the leak was seen.
    let events = leaked_events(&app, &admin, None).await;
    assert_eq!(events.len(), 1, "{events:?}");
    let event = &events[0];
    assert_eq!(event["target_id"], parent["id"]);
    assert_eq!(event["details"]["url"], URL);
    assert_eq!(event["details"]["source"], "content");
    assert_eq!(event["details"]["token_type"], "keymint_api_key");
    assert_eq!(event["details"]["response"], "revoke");
    assert_eq!(event["details"]["previous_secret"], false);

    // The host sends it again: the same answers, nothing more happens.
    let again = host.report(&app, &report).await;
    assert_eq!(again.status, 200);
    assert_eq!(again.body, expected);
    assert_eq!(leaked_events(&app, &admin, None).await.len(), 1);

    // The same token seen at another URL is another report of it; named
    // twice in one report, it is still one.
    let gist = "https://gist.github.com/x/1";
    let elsewhere = host
        .report(&app, &json!([leak(&leaked, gist), leak(&leaked, gist)]))
        .await;
    assert_eq!(elsewhere.status, 200, "{:?}", elsewhere.body);
    assert_eq!(elsewhere.body[0]["label"], "true_positive");
    assert_eq!(elsewhere.body[1]["label"], "true_positive");
    assert_eq!(leaked_events(&app, &admin, None).await.len(), 2);

    // Nothing the audit log holds contains a reported token.
    let all = app
        .api("GET", "/api/v1/audit-events?limit=200", &admin, None, None)
        .await;
    let text = all.body.to_string();
    for token in [&leaked, &unknown, &garbage.to_owned()] {
        assert!(
            !text.contains(token.as_str()),
            "the audit log holds {token}"
        );
    }
    // Not even the random part (a log may cut the prefix).
    assert!(!text.contains(&leaked[3..]));
}

/// What a report that is not the host's carries instead of its signature.
#[derive(Debug, Clone, Copy)]
enum Forgery {
    AnotherKeyPairUnderTheHostsId,
    TheHostsSignatureOfAnotherBody,
    TheHostsSignatureUnderAnUnknownId,
    NoHeaders,
    NoKeyId,
    NoSignature,
    NotBase64,
    EmptySignature,
    Base64ThatIsNotDer,
}

const FORGERIES: [Forgery; 9] = [
    Forgery::AnotherKeyPairUnderTheHostsId,
    Forgery::TheHostsSignatureOfAnotherBody,
    Forgery::TheHostsSignatureUnderAnUnknownId,
    Forgery::NoHeaders,
    Forgery::NoKeyId,
    Forgery::NoSignature,
    Forgery::NotBase64,
    Forgery::EmptySignature,
    Forgery::Base64ThatIsNotDer,
];

/// The key id and signature headers `forgery` sends with `body`.
fn forge(
    forgery: Forgery,
    host: &LeakSender,
    attacker: &LeakSender,
    body: &[u8],
) -> (Option<String>, Option<String>) {
    let id = Some(host.key_id.clone());
    match forgery {
        Forgery::AnotherKeyPairUnderTheHostsId => (id, Some(attacker.sign(body))),
        Forgery::TheHostsSignatureOfAnotherBody => (id, Some(host.sign(b"[]"))),
        Forgery::TheHostsSignatureUnderAnUnknownId => {
            (Some("test-2".to_owned()), Some(host.sign(body)))
        }
        Forgery::NoHeaders => (None, None),
        Forgery::NoKeyId => (None, Some(host.sign(body))),
        Forgery::NoSignature => (id, None),
        Forgery::NotBase64 => (id, Some("not base64 !!".to_owned())),
        Forgery::EmptySignature => (id, Some(String::new())),
        Forgery::Base64ThatIsNotDer => (id, Some("AAAA".to_owned())),
    }
}

async fn unsigned_reports_learn_nothing_and_change_nothing(backend: Backend) {
    let host = LeakSender::new("test-1");
    let attacker = LeakSender::new("test-1");
    let app = app_trusting(backend, &host, "").await;
    let admin = app.admin_token(&app.bootstrap_key).await;
    let key = app.create_key(&admin, json!({"name": "live"})).await;
    let live = json!([leak(&secret_of(&key), URL)])
        .to_string()
        .into_bytes();
    let dead = json!([leak(&unknown_key(), URL)]).to_string().into_bytes();
    let mut first: Option<(Option<String>, Vec<u8>)> = None;
    for what in FORGERIES {
        for body in [&live, &dead] {
            let (id, signature) = forge(what, &host, &attacker, body);
            let response =
                LeakSender::post(&app, id.as_deref(), signature.as_deref(), body.clone()).await;
            assert_eq!(response.status(), 401, "{what:?}");
            let content_type = response
                .headers()
                .get("content-type")
                .map(|v| v.to_str().unwrap().to_owned());
            let bytes = response.bytes().await.unwrap().to_vec();
            // One answer for every refusal, whatever the body names.
            match &first {
                None => first = Some((content_type, bytes)),
                Some(seen) => assert_eq!(seen, &(content_type, bytes), "{what:?}"),
            }
        }
    }
    let (content_type, bytes) = first.unwrap();
    assert_eq!(content_type.as_deref(), Some("application/problem+json"));
    let text = String::from_utf8(bytes).unwrap();
    assert!(!text.contains(&secret_of(&key)), "{text}");

    // The key lives on and nothing was recorded.
    let view = app.key_as_admin(&admin, None, &id_of(&key)).await.unwrap();
    assert_eq!(view["status"], "active");
    assert_eq!(exchanges(&app, &secret_of(&key)).await, 200);
    assert!(leaked_events(&app, &admin, None).await.is_empty());

    // A server that trusts no sender refuses the host too.
    let closed = spawn_app_with(backend, "").await;
    let answer = host.report_bytes(&closed, live.clone()).await;
    assert_eq!(answer.status, 401);
}

async fn a_notify_tenant_keeps_its_key_and_hears_of_the_leak(backend: Backend) {
    let host = LeakSender::new("test-1");
    let app = app_trusting(backend, &host, "").await;
    let root = app.admin_token(&app.bootstrap_key).await;
    app.new_tenant(&root, "acme").await;
    app.set_settings(&root, Some("acme"), json!({"leak_response": "notify"}))
        .await;
    let settings = app
        .api("GET", "/api/v1/settings", &root, Some("acme"), None)
        .await;
    assert_eq!(settings.body["leak_response"], "notify");
    let noted = app
        .create_key_in(&root, Some("acme"), json!({"name": "acme key"}))
        .await;
    let revoked = app.create_key(&root, json!({"name": "default key"})).await;

    // One report naming keys of both tenants: each tenant's own response.
    let answer = host
        .report(
            &app,
            &json!([
                leak(&secret_of(&noted), URL),
                leak(&secret_of(&revoked), URL)
            ]),
        )
        .await;

    assert_eq!(answer.status, 200, "{:?}", answer.body);
    assert_eq!(answer.body[0]["label"], "true_positive");
    assert_eq!(answer.body[1]["label"], "true_positive");
    let view = app
        .key_as_admin(&root, Some("acme"), &id_of(&noted))
        .await
        .unwrap();
    assert_eq!(view["status"], "active");
    assert_eq!(view["revoked_reason"], Value::Null);
    assert_eq!(exchanges(&app, &secret_of(&noted)).await, 200);
    let events = leaked_events(&app, &root, Some("acme")).await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["target_id"], noted["id"]);
    assert_eq!(events[0]["tenant"], "acme");
    assert_eq!(events[0]["details"]["response"], "notify");
    assert_eq!(events[0]["details"]["url"], URL);

    let view = app
        .key_as_admin(&root, None, &id_of(&revoked))
        .await
        .unwrap();
    assert_eq!(view["status"], "revoked");
    assert_eq!(exchanges(&app, &secret_of(&revoked)).await, 401);
    let events = leaked_events(&app, &root, None).await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["details"]["response"], "revoke");
}

async fn a_previous_secret_in_its_grace_is_a_leak_too(backend: Backend) {
    let host = LeakSender::new("test-1");
    let app = app_trusting(backend, &host, "").await;
    let admin = app.admin_token(&app.bootstrap_key).await;
    let key = app.create_key(&admin, json!({"name": "rotated"})).await;
    let id = id_of(&key);
    let old = secret_of(&key);
    let rotated = app
        .api(
            "POST",
            &format!("/api/v1/keys/{id}/rotate"),
            &admin,
            None,
            Some(json!({"grace_period_s": 600})),
        )
        .await;
    assert_eq!(rotated.status, 200, "{:?}", rotated.body);
    let new = rotated.str("key").unwrap().to_owned();
    assert_eq!(
        exchanges(&app, &old).await,
        200,
        "the old secret is in its grace"
    );

    let answer = host.report(&app, &json!([leak(&old, URL)])).await;

    assert_eq!(answer.status, 200, "{:?}", answer.body);
    assert_eq!(
        answer.body,
        json!([{"token_hash": sha256_hex(&old), "token_type": "keymint_api_key",
                "label": "true_positive"}])
    );
    let view = app.key_as_admin(&admin, None, &id).await.unwrap();
    assert_eq!(view["status"], "revoked");
    assert_eq!(exchanges(&app, &old).await, 401);
    assert_eq!(exchanges(&app, &new).await, 401, "the whole key is revoked");
    let events = leaked_events(&app, &admin, None).await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["details"]["previous_secret"], true);
    // A repeat records nothing more and answers the same, although
    // revoking forgot the previous secret's hash: the report is on record.
    let again = host.report(&app, &json!([leak(&old, URL)])).await;
    assert_eq!(again.status, 200);
    assert_eq!(again.body, answer.body);
    assert_eq!(leaked_events(&app, &admin, None).await.len(), 1);

    // A previous secret past its grace opens nothing: it is a true
    // positive, recorded, and the key keeps working.
    let other = app
        .create_key(&admin, json!({"name": "rotated-long-ago"}))
        .await;
    let other_id = id_of(&other);
    let stale = secret_of(&other);
    let rotated = app
        .api(
            "POST",
            &format!("/api/v1/keys/{other_id}/rotate"),
            &admin,
            None,
            Some(json!({"grace_period_s": 1})),
        )
        .await;
    assert_eq!(rotated.status, 200, "{:?}", rotated.body);
    let current = rotated.str("key").unwrap().to_owned();
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    assert_eq!(exchanges(&app, &stale).await, 401, "its grace is over");
    let answer = host.report(&app, &json!([leak(&stale, URL)])).await;
    assert_eq!(
        answer.body[0]["label"], "true_positive",
        "{:?}",
        answer.body
    );
    let view = app.key_as_admin(&admin, None, &other_id).await.unwrap();
    assert_eq!(view["status"], "active");
    assert_eq!(exchanges(&app, &current).await, 200);
    let events = leaked_events(&app, &admin, None).await;
    let stale_event = events
        .iter()
        .find(|e| e["target_id"] == other_id.as_str())
        .expect("the stale report is recorded");
    assert_eq!(stale_event["details"]["previous_secret_expired"], true);
}

async fn reports_are_bounded(backend: Backend) {
    let host = LeakSender::new("test-1");
    let app = app_trusting(backend, &host, "").await;
    let admin = app.admin_token(&app.bootstrap_key).await;
    let key = app.create_key(&admin, json!({"name": "live"})).await;
    let live = leak(&secret_of(&key), URL);

    let too_many = Value::Array(vec![live.clone(); 1001]);
    let long_token = "k".repeat(513);
    for (what, body, status) in [
        ("1001 tokens", too_many.to_string(), 400),
        ("no tokens", "[]".to_owned(), 400),
        ("not JSON", "token=km_x".to_owned(), 400),
        ("an object", live.to_string(), 400),
        (
            "an item without a url",
            json!([{"token": "x", "type": "t", "source": "s"}]).to_string(),
            400,
        ),
        (
            "a member that is not a string",
            json!([{"token": 1, "type": "t", "url": "u", "source": "s"}]).to_string(),
            400,
        ),
        (
            "a token over 512 bytes",
            json!([leak(&long_token, URL)]).to_string(),
            400,
        ),
        (
            "a url with a control character",
            json!([leak("x", "https://a\u{7}b")]).to_string(),
            400,
        ),
    ] {
        let answer = host.report_bytes(&app, body.into_bytes()).await;
        assert_eq!(answer.status, status, "{what}: {:?}", answer.body);
        assert!(answer.is_problem(), "{what}");
    }
    // A refused report changes nothing, even when it names a live key.
    assert_eq!(exchanges(&app, &secret_of(&key)).await, 200);
    assert!(leaked_events(&app, &admin, None).await.is_empty());

    // A body over 1 MiB is not read, signed or not.
    let mut huge = json!([{"token": "x", "type": "t", "url": URL, "source": "s"}]).to_string();
    huge.push_str(&" ".repeat(1024 * 1024));
    let answer = host.report_bytes(&app, huge.clone().into_bytes()).await;
    assert_eq!(answer.status, 413);
    let response = LeakSender::post(&app, None, None, huge.into_bytes()).await;
    assert_eq!(response.status(), 413);
    // Exactly 1 MiB is read.
    let mut full = json!([leak("x", URL)]).to_string();
    full.push_str(&" ".repeat(1024 * 1024 - full.len()));
    assert_eq!(full.len(), 1024 * 1024);
    let answer = host.report_bytes(&app, full.into_bytes()).await;
    assert_eq!(answer.status, 200, "{:?}", answer.body);

    // Over the per-address budget: 429 and when to come back, signed or not.
    let strict = spawn_app_with(backend, &host.toml(1.0)).await;
    let body = json!([leak("x", URL)]);
    assert_eq!(host.report(&strict, &body).await.status, 200);
    let signature = host.sign(body.to_string().as_bytes());
    let response = LeakSender::post(
        &strict,
        Some(&host.key_id),
        Some(&signature),
        body.to_string().into_bytes(),
    )
    .await;
    assert_eq!(response.status(), 429);
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=2).contains(&retry_after), "{retry_after}");
    let response = LeakSender::post(&strict, None, None, b"[]".to_vec()).await;
    assert_eq!(response.status(), 429);
    // A forged client address from a peer that is no trusted proxy buys
    // no new budget.
    for (name, value) in [
        ("X-Forwarded-For", "203.0.113.9"),
        ("Forwarded", "for=203.0.113.9"),
    ] {
        let response = strict
            .client
            .post(strict.url("/api/v1/leaks"))
            .header(name, value)
            .header("Content-Type", "application/json")
            .body("[]")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 429, "{name}");
    }
}

async fn a_leak_queues_a_key_leaked_security_event(backend: Backend) {
    let host = LeakSender::new("test-1");
    let app = app_trusting(
        backend,
        &host,
        "[events]\nallowed_networks = [\"127.0.0.0/8\"]\n",
    )
    .await;
    let admin = app.admin_token(&app.bootstrap_key).await;
    // Nobody listens there: the delivery stays queued (or fails), which is
    // all this test reads.
    let stream = app
        .api(
            "POST",
            "/api/v1/event-streams",
            &admin,
            None,
            Some(json!({
                "endpoint": format!("http://127.0.0.1:{}/", free_port()),
                "audience": "https://receiver.example",
                "events": ["urn:keymint:event:key-leaked"],
            })),
        )
        .await;
    assert_eq!(stream.status, 201, "{:?}", stream.body);
    let stream_id = stream.str("id").unwrap().to_owned();
    let key = app.create_key(&admin, json!({"name": "leaky"})).await;

    let answer = host
        .report(&app, &json!([leak(&secret_of(&key), URL)]))
        .await;
    assert_eq!(answer.status, 200);
    // A repeat queues nothing more.
    host.report(&app, &json!([leak(&secret_of(&key), URL)]))
        .await;

    let deliveries = app
        .api(
            "GET",
            &format!("/api/v1/event-streams/{stream_id}/deliveries"),
            &admin,
            None,
            None,
        )
        .await;
    assert_eq!(deliveries.status, 200, "{:?}", deliveries.body);
    let items = deliveries.body["items"].as_array().unwrap();
    // The stream subscribes to key-leaked only: the revocation is not sent.
    assert_eq!(items.len(), 1, "{items:?}");
    assert_eq!(items[0]["event"], "urn:keymint:event:key-leaked");
    assert!(
        ["pending", "failed"].contains(&items[0]["state"].as_str().unwrap()),
        "{items:?}"
    );
    assert!(!deliveries.body.to_string().contains(&secret_of(&key)));
}

async fn crossed_reports_do_not_deadlock(backend: Backend) {
    let host = Arc::new(LeakSender::new("test-1"));
    let app = Arc::new(app_trusting(backend, &host, "").await);
    let root = app.admin_token(&app.bootstrap_key).await;
    app.new_tenant(&root, "acme").await;
    // Notify keeps the keys live, so every round finds both again.
    for tenant in [None, Some("acme")] {
        app.set_settings(&root, tenant, json!({"leak_response": "notify"}))
            .await;
    }
    let x = app.create_key(&root, json!({"name": "x"})).await;
    let y = app
        .create_key_in(&root, Some("acme"), json!({"name": "y"}))
        .await;
    // Reports naming keys of two tenants in both orders, at once: each
    // would hold one tenant and wait for the other's, unless both are
    // taken in one order.
    for round in 0..10 {
        let mut tasks = Vec::new();
        for i in 0..4 {
            let (a, b) = if i % 2 == 0 { (&x, &y) } else { (&y, &x) };
            let url = format!("{URL}?round={round}&report={i}");
            let body = json!([leak(&secret_of(a), &url), leak(&secret_of(b), &url)]);
            let (app, host) = (app.clone(), host.clone());
            tasks.push(tokio::spawn(async move { host.report(&app, &body).await }));
        }
        for task in tasks {
            let answer = task.await.unwrap();
            assert_eq!(answer.status, 200, "round {round}: {:?}", answer.body);
        }
    }
    assert_eq!(leaked_events(&app, &root, None).await.len(), 40);
    assert_eq!(leaked_events(&app, &root, Some("acme")).await.len(), 40);
}
