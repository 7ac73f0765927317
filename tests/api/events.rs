//! Security events out, as a receiver sees them: a Security Event Token
//! (RFC 8417) pushed (RFC 8935) within seconds of the change, verifiable
//! with the JWKS, never carrying a secret; every event exactly once by `jti`
//! through receiver failures, a crash between commit and delivery, and two
//! replicas; expiry warnings once per threshold; and the receiver-URL guard.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde_json::{Value, json};

use crate::backend_tests;
use crate::client::{keymint_event, verify_set};
use crate::helpers::{Backend, Receiver, ServerProcess, TestDatabase, free_port, spawn_app_with};

/// Fast delivery for tests, and a loopback receiver allowed over http.
const FAST: &str = "[events]\nallowed_networks = [\"127.0.0.0/8\"]\npoll_interval_ms = 100\n\
                    timeout_ms = 2000\nbackoff_base_ms = 100\nbackoff_max_s = 1\nlease_s = 3\n\
                    expiry_scan_s = 1\n";
const AUDIENCE: &str = "https://receiver.example/events";
const SECRET: &str = "receiver-bearer-secret-0123456789";

backend_tests!(
    a_receiver_gets_a_verifiable_set_within_seconds_of_a_revocation,
    a_failing_receiver_gets_every_event_exactly_once,
    nothing_is_lost_when_the_server_dies_before_delivering,
    two_replicas_deliver_each_event_once,
    expiry_warnings_go_out_once_per_threshold,
    the_receiver_url_guard_refuses_private_and_link_local_addresses,
    streams_are_the_tenants_own_and_need_admin_events,
    a_receiver_no_longer_allowed_is_not_called,
    a_graceful_stop_hands_delivery_over_at_once,
    redirects_are_not_followed,
    a_hanging_receiver_does_not_hold_up_the_others,
);

fn jtis(pushes: &[crate::helpers::Received], http_claims: &[Value]) -> Vec<String> {
    assert_eq!(pushes.len(), http_claims.len());
    http_claims
        .iter()
        .map(|c| c["jti"].as_str().unwrap().to_owned())
        .collect()
}

/// The claims of each push, unverified (the tests that verify do so apart).
fn claims_of(pushes: &[crate::helpers::Received]) -> Vec<Value> {
    pushes
        .iter()
        .map(|p| crate::client::claims_unverified(&p.body))
        .collect()
}

fn count_of(claims: &[Value], event: &str) -> usize {
    claims
        .iter()
        .filter(|c| keymint_event(c).0 == event)
        .count()
}

async fn a_receiver_gets_a_verifiable_set_within_seconds_of_a_revocation(backend: Backend) {
    let app = spawn_app_with(backend, FAST).await;
    let receiver = Receiver::start().await;
    let admin = app.admin_token(&app.bootstrap_key).await;
    let stream = app
        .create_stream(
            &admin,
            json!({"endpoint": receiver.url(), "audience": AUDIENCE, "bearer_secret": SECRET}),
        )
        .await;
    assert_eq!(stream["has_bearer_secret"], true);
    assert!(
        !stream.to_string().contains(SECRET),
        "the secret is never shown"
    );
    let created = app
        .create_key(&admin, json!({"name": "svc", "scopes": ["orders:read"]}))
        .await;
    let key_id = created["id"].as_str().unwrap().to_owned();
    let secret = created["key"].as_str().unwrap().to_owned();

    let revoked = app
        .client
        .post(app.url(&format!("/api/v1/keys/{key_id}/revoke")))
        .header("Authorization", format!("Bearer {admin}"))
        .json(&json!({"reason": "compromised laptop"}))
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 200);
    let request_id = revoked.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let at = std::time::Instant::now();
    let pushes = receiver
        .wait_until(Duration::from_secs(10), |got| {
            claims_of(got)
                .iter()
                .any(|c| keymint_event(c).0 == "key-revoked")
        })
        .await;
    assert!(at.elapsed() < Duration::from_secs(10));

    for push in &pushes {
        assert_eq!(
            push.content_type.as_deref(),
            Some("application/secevent+jwt")
        );
        assert_eq!(
            push.authorization.as_deref(),
            Some(&*format!("Bearer {SECRET}"))
        );
        assert!(!push.body.contains(&secret), "never a secret in an event");
    }
    let revocation = pushes
        .iter()
        .find(|p| keymint_event(&crate::client::claims_unverified(&p.body)).0 == "key-revoked")
        .unwrap();
    let claims = verify_set(&app.client, &app.issuer, &revocation.body, AUDIENCE).await;
    assert_eq!(claims["iss"], app.issuer.as_str());
    assert_eq!(claims["aud"], AUDIENCE);
    assert_eq!(
        claims["txn"],
        request_id.as_str(),
        "txn is the change's request id"
    );
    assert!(uuid::Uuid::try_parse(claims["jti"].as_str().unwrap()).is_ok());
    assert!(claims.get("exp").is_none());
    assert_eq!(claims["sub_id"], json!({"format": "opaque", "id": key_id}));
    let (_, event) = keymint_event(&claims);
    assert_eq!(event["key_id"], key_id.as_str());
    assert_eq!(event["tenant"], "default");
    assert_eq!(event["reason"], "compromised laptop");
    let caep =
        &claims["events"]["https://schemas.openid.net/secevent/caep/event-type/credential-change"];
    assert_eq!(caep["change_type"], "revoke", "{claims}");
    assert_eq!(caep["credential_type"], "api-key");
    assert_eq!(caep["reason_admin"]["en"], "compromised laptop");
    let text = claims.to_string();
    for forbidden in ["secret_hash", "secret", "access_token"] {
        assert!(!text.contains(forbidden), "{forbidden} in {text}");
    }

    // The deliveries view shows it delivered, by the same jti.
    let stream_id = stream["id"].as_str().unwrap();
    let deliveries = app
        .api(
            "GET",
            &format!("/api/v1/event-streams/{stream_id}/deliveries"),
            &admin,
            None,
            None,
        )
        .await;
    assert_eq!(deliveries.status, 200);
    let mine = deliveries.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["id"] == claims["jti"])
        .expect("the delivery is listed")
        .clone();
    assert_eq!(mine["state"], "delivered");
    assert_eq!(mine["event"], "urn:keymint:event:key-revoked");
    assert_eq!(mine["last_status"], 202);
}

async fn a_failing_receiver_gets_every_event_exactly_once(backend: Backend) {
    let app = spawn_app_with(backend, FAST).await;
    let receiver = Receiver::start().await;
    receiver.fail_next(3, 503);
    let admin = app.admin_token(&app.bootstrap_key).await;
    let stream = app
        .create_stream(
            &admin,
            json!({"endpoint": receiver.url(), "audience": AUDIENCE,
                   "events": ["urn:keymint:event:key-created", "urn:keymint:event:key-revoked"]}),
        )
        .await;
    let mut keys = Vec::new();
    for i in 0..3 {
        let key = app
            .create_key(&admin, json!({"name": format!("k{i}"), "scopes": ["a"]}))
            .await;
        keys.push(key["id"].as_str().unwrap().to_owned());
    }
    let bulk = app
        .api(
            "POST",
            "/api/v1/keys/revoke",
            &admin,
            None,
            Some(json!({"ids": keys})),
        )
        .await;
    assert_eq!(bulk.status, 200);
    // 3 created + 3 revoked; the rotation of nothing else is subscribed.
    let accepted = receiver
        .wait_until(Duration::from_secs(15), |got| got.len() >= 6)
        .await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    let accepted = if receiver.accepted().len() > accepted.len() {
        receiver.accepted()
    } else {
        accepted
    };
    let claims = claims_of(&accepted);
    let ids = jtis(&accepted, &claims);
    let unique: BTreeSet<&String> = ids.iter().collect();
    assert_eq!(unique.len(), 6, "each event exactly once by jti: {ids:?}");
    assert_eq!(ids.len(), 6, "no event accepted twice: {ids:?}");
    assert_eq!(count_of(&claims, "key-created"), 3);
    assert_eq!(count_of(&claims, "key-revoked"), 3);
    let refused = receiver
        .received()
        .iter()
        .filter(|r| r.status == 503)
        .count();
    assert_eq!(refused, 3, "three failures were answered");
    // Every refused push was the same SET again: its jti is among the accepted.
    let all = claims_of(&receiver.received());
    for c in &all {
        assert!(unique.contains(&c["jti"].as_str().unwrap().to_owned()));
    }

    let stream_id = stream["id"].as_str().unwrap();
    let deliveries = app
        .api(
            "GET",
            &format!("/api/v1/event-streams/{stream_id}/deliveries"),
            &admin,
            None,
            None,
        )
        .await;
    let items = deliveries.body["items"].as_array().unwrap();
    assert!(items.iter().all(|d| d["state"] == "delivered"), "{items:?}");
    let attempts: i64 = items.iter().map(|d| d["attempts"].as_i64().unwrap()).sum();
    assert_eq!(attempts, 6 + 3, "three retries in all");
    // Pages follow a sealed cursor bound to the stream and the filter.
    let path = format!("/api/v1/event-streams/{stream_id}/deliveries");
    let first = app
        .api("GET", &format!("{path}?limit=4"), &admin, None, None)
        .await;
    assert_eq!(first.body["items"].as_array().unwrap().len(), 4);
    let cursor = first.str("next_cursor").expect("a next page").to_owned();
    let second = app
        .api(
            "GET",
            &format!("{path}?limit=4&cursor={cursor}"),
            &admin,
            None,
            None,
        )
        .await;
    assert_eq!(second.body["items"].as_array().unwrap().len(), 2);
    assert_eq!(second.body["next_cursor"], Value::Null);
    let paged: BTreeSet<&str> = first.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .chain(second.body["items"].as_array().unwrap())
        .map(|d| d["id"].as_str().unwrap())
        .collect();
    assert_eq!(paged.len(), 6, "every delivery once across pages");
    let refiltered = app
        .api(
            "GET",
            &format!("{path}?limit=4&state=failed&cursor={cursor}"),
            &admin,
            None,
            None,
        )
        .await;
    assert_eq!(refiltered.status, 400, "a cursor is bound to its filter");

    // A receiver that refuses the SET itself (RFC 8935 §2.3) fails it at
    // once; an admin replays it with the same jti.
    let stream_b = app
        .create_stream(&admin, json!({"endpoint": format!("http://127.0.0.1:{}/refusing", free_port()), "audience": AUDIENCE,
                                       "events": ["urn:keymint:event:key-created"]}))
        .await;
    let _ = app
        .create_key(&admin, json!({"name": "late", "scopes": ["a"]}))
        .await;
    let path = format!(
        "/api/v1/event-streams/{}/deliveries",
        stream_b["id"].as_str().unwrap()
    );
    let mut delivery = Value::Null;
    for _ in 0..50 {
        let list = app.api("GET", &path, &admin, None, None).await;
        delivery = list.body["items"][0].clone();
        if delivery["attempts"].as_i64().unwrap_or(0) >= 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        delivery["last_error"].as_str().unwrap().contains("connect"),
        "{delivery}"
    );
    let replay = app
        .api(
            "POST",
            &format!("{path}/{}/replay", delivery["id"].as_str().unwrap()),
            &admin,
            None,
            None,
        )
        .await;
    assert_eq!(replay.status, 202, "{:?}", replay.body);
    assert_eq!(replay.body["id"], delivery["id"]);
    assert_eq!(replay.body["state"], "pending");
    assert_eq!(replay.body["attempts"], 0);
}

async fn nothing_is_lost_when_the_server_dies_before_delivering(backend: Backend) {
    let db = TestDatabase::new(backend);
    let receiver_port = free_port();
    let receiver_url = format!("http://127.0.0.1:{receiver_port}/events");
    let fast = [
        ("KEYMINT__EVENTS__ALLOWED_NETWORKS", "[\"127.0.0.0/8\"]"),
        ("KEYMINT__EVENTS__POLL_INTERVAL_MS", "100"),
        ("KEYMINT__EVENTS__BACKOFF_BASE_MS", "100"),
        ("KEYMINT__EVENTS__BACKOFF_MAX_S", "1"),
        ("KEYMINT__EVENTS__TIMEOUT_MS", "1000"),
        ("KEYMINT__EVENTS__LEASE_S", "2"),
    ];
    // First life: the worker looks once at start and then not for a minute,
    // so the change below commits and is never pushed before the kill.
    let mut slow = fast.to_vec();
    slow[1] = ("KEYMINT__EVENTS__POLL_INTERVAL_MS", "60000");
    let server = ServerProcess::start(&db, &slow).await;
    let secret = admin_secret(&db).await;
    let http = reqwest::Client::new();
    let node = server.base_url();
    let admin = crate::client::admin_token_at(&http, &node, &secret, &node).await;
    let stream = post(&http, &node, &admin, "/api/v1/event-streams",
        json!({"endpoint": receiver_url, "audience": AUDIENCE, "events": ["urn:keymint:event:key-revoked"]})).await;
    assert_eq!(stream.0, 201, "{:?}", stream.1);
    let key = crate::client::create_key_at(
        &http,
        &node,
        &admin,
        json!({"name": "doomed", "scopes": ["a"]}),
    )
    .await;
    let id = key["id"].as_str().unwrap();
    let revoked = post(
        &http,
        &node,
        &admin,
        &format!("/api/v1/keys/{id}/revoke"),
        json!({}),
    )
    .await;
    assert_eq!(revoked.0, 200);
    server.signal("KILL");
    server.stop().await;

    let receiver = Receiver::start_on(receiver_port).await;
    assert!(
        receiver.received().is_empty(),
        "nothing was pushed before the crash"
    );
    let server = ServerProcess::start(&db, &fast).await;
    let pushes = receiver
        .wait_until(Duration::from_secs(10), |got| !got.is_empty())
        .await;
    let claims = verify_set(&http, &server.base_url(), &pushes[0].body, AUDIENCE).await;
    let (name, event) = keymint_event(&claims);
    assert_eq!(name, "key-revoked");
    assert_eq!(event["key_id"], id);
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(receiver.accepted().len(), 1, "delivered once");
    server.stop().await;
}

async fn two_replicas_deliver_each_event_once(backend: Backend) {
    let receiver = Receiver::start().await;
    // Both replicas answer for one issuer, B's address, as behind a load
    // balancer.
    let port = free_port();
    let issuer = format!("http://127.0.0.1:{port}");
    let a = spawn_app_with(backend, &format!("{FAST}[tokens]\nissuer = \"{issuer}\"\n")).await;
    let b = ServerProcess::start_bound(
        &a.db,
        &format!("127.0.0.1:{port}"),
        &[],
        &[
            ("KEYMINT__TOKENS__ISSUER", &issuer),
            ("KEYMINT__EVENTS__ALLOWED_NETWORKS", "[\"127.0.0.0/8\"]"),
            ("KEYMINT__EVENTS__POLL_INTERVAL_MS", "100"),
            ("KEYMINT__EVENTS__TIMEOUT_MS", "2000"),
            ("KEYMINT__EVENTS__LEASE_S", "3"),
        ],
    )
    .await;
    let http = reqwest::Client::new();
    let admin = crate::client::admin_token_at(&http, &a.address, &a.bootstrap_key, &issuer).await;
    let stream = post(
        &http,
        &a.address,
        &admin,
        "/api/v1/event-streams",
        json!({"endpoint": receiver.url(), "audience": AUDIENCE,
               "events": ["urn:keymint:event:key-created", "urn:keymint:event:key-revoked"]}),
    )
    .await;
    assert_eq!(stream.0, 201, "{:?}", stream.1);
    let nodes = [a.address.clone(), b.base_url()];
    let mut ids = Vec::new();
    for i in 0..10 {
        let key = crate::client::create_key_at(
            &http,
            &nodes[i % 2],
            &admin,
            json!({"name": format!("r{i}"), "scopes": ["a"]}),
        )
        .await;
        ids.push(key["id"].as_str().unwrap().to_owned());
    }
    for (i, id) in ids.iter().enumerate() {
        let done = post(
            &http,
            &nodes[(i + 1) % 2],
            &admin,
            &format!("/api/v1/keys/{id}/revoke"),
            json!({}),
        )
        .await;
        assert_eq!(done.0, 200);
    }
    receiver
        .wait_until(Duration::from_secs(15), |got| got.len() >= 20)
        .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let accepted = receiver.accepted();
    let claims = claims_of(&accepted);
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for c in &claims {
        *seen
            .entry(c["jti"].as_str().unwrap().to_owned())
            .or_default() += 1;
    }
    assert_eq!(accepted.len(), 20, "20 events, each pushed once: {seen:?}");
    assert!(seen.values().all(|n| *n == 1), "{seen:?}");
    assert_eq!(count_of(&claims, "key-created"), 10);
    assert_eq!(count_of(&claims, "key-revoked"), 10);
    for push in &accepted {
        verify_set(&http, &issuer, &push.body, AUDIENCE).await;
    }
    b.stop().await;
}

async fn expiry_warnings_go_out_once_per_threshold(backend: Backend) {
    let app = spawn_app_with(backend, FAST).await;
    let receiver = Receiver::start().await;
    let admin = app.admin_token(&app.bootstrap_key).await;
    app.set_settings(&admin, None, json!({"expiry_warning_days": [1, 30, 7]}))
        .await;
    let settings = app.api("GET", "/api/v1/settings", &admin, None, None).await;
    assert_eq!(settings.body["expiry_warning_days"], json!([30, 7, 1]));
    app.create_stream(
        &admin,
        json!({"endpoint": receiver.url(), "audience": AUDIENCE, "events": ["urn:keymint:event:key-expiring"]}),
    )
    .await;
    let in_days = |d: f64| {
        (chrono::Utc::now() + chrono::Duration::seconds((d * 86_400.0) as i64))
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    };
    let soon = app
        .create_key(
            &admin,
            json!({"name": "soon", "scopes": ["a"], "expires_at": in_days(2.0)}),
        )
        .await;
    let sooner = app
        .create_key(
            &admin,
            json!({"name": "sooner", "scopes": ["a"], "expires_at": in_days(0.5)}),
        )
        .await;
    let far = app
        .create_key(
            &admin,
            json!({"name": "far", "scopes": ["a"], "expires_at": in_days(40.0)}),
        )
        .await;
    // The bootstrap key, which expires within a day, is warned of too;
    // these tests look at their own keys.
    let ours = [soon["id"].clone(), sooner["id"].clone(), far["id"].clone()];
    let warned = |got: &[crate::helpers::Received]| -> Vec<(Value, i64)> {
        claims_of(got)
            .iter()
            .map(keymint_event)
            .filter(|(_, e)| ours.contains(&e["key_id"]))
            .map(|(_, e)| (e["key_id"].clone(), e["days"].as_i64().unwrap()))
            .collect()
    };
    receiver
        .wait_until(Duration::from_secs(10), |got| warned(got).len() >= 2)
        .await;
    // Several scans later, still two: each (key, threshold) goes out once.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let got = warned(&receiver.accepted());
    assert_eq!(got.len(), 2, "{got:?}");
    assert!(
        got.contains(&(soon["id"].clone(), 7)),
        "the nearest threshold crossed: {got:?}"
    );
    assert!(got.contains(&(sooner["id"].clone(), 1)), "{got:?}");

    // Moving the expiry inside the next threshold warns again, once.
    let id = soon["id"].as_str().unwrap();
    let moved = app
        .api(
            "PATCH",
            &format!("/api/v1/keys/{id}"),
            &admin,
            None,
            Some(json!({"expires_at": in_days(0.25)})),
        )
        .await;
    assert_eq!(moved.status, 200, "{:?}", moved.body);
    receiver
        .wait_until(Duration::from_secs(10), |got| warned(got).len() >= 3)
        .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let got = warned(&receiver.accepted());
    assert_eq!(got.len(), 3, "{got:?}");
    assert_eq!(got[2], (soon["id"].clone(), 1));
    let audit = app
        .api(
            "GET",
            "/api/v1/audit-events?action=key.expiring",
            &admin,
            None,
            None,
        )
        .await;
    let audited: Vec<&Value> = audit.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| ours.contains(&e["target_id"]))
        .collect();
    assert_eq!(audited.len(), 3, "{audited:?}");
}

async fn the_receiver_url_guard_refuses_private_and_link_local_addresses(backend: Backend) {
    // The default configuration: no network is allowed beyond public ones.
    let app = spawn_app_with(backend, "").await;
    let admin = app.admin_token(&app.bootstrap_key).await;
    for endpoint in [
        "http://127.0.0.1:8080/events",
        "https://127.0.0.1/events",
        "https://localhost/events",
        "https://[::1]/events",
        "https://10.0.0.7/events",
        "https://192.168.1.1/events",
        "https://172.16.5.4/events",
        "https://169.254.169.254/latest/meta-data/",
        "https://[fe80::1]/events",
        "https://[fd00:ec2::254]/events",
        "https://[::ffff:10.0.0.1]/events",
        "https://100.64.0.1/events",
        "https://0.0.0.0/events",
        "http://1.1.1.1/events",
        "ftp://1.1.1.1/events",
        "https://user:pass@1.1.1.1/events",
    ] {
        let answer = app
            .api(
                "POST",
                "/api/v1/event-streams",
                &admin,
                None,
                Some(json!({"endpoint": endpoint, "audience": AUDIENCE})),
            )
            .await;
        assert_eq!(answer.status, 422, "{endpoint}: {:?}", answer.body);
        assert_eq!(answer.body["errors"][0]["field"], "endpoint", "{endpoint}");
    }
    let fine = app
        .api("POST", "/api/v1/event-streams", &admin, None,
             Some(json!({"endpoint": "https://1.1.1.1/events", "audience": AUDIENCE, "enabled": false})))
        .await;
    assert_eq!(fine.status, 201, "{:?}", fine.body);
    // Nor may a PATCH move a stream somewhere private.
    let id = fine.body["id"].as_str().unwrap();
    let moved = app
        .api(
            "PATCH",
            &format!("/api/v1/event-streams/{id}"),
            &admin,
            None,
            Some(json!({"endpoint": "https://169.254.169.254/"})),
        )
        .await;
    assert_eq!(moved.status, 422);

    // Allowed networks admit their addresses, over http too, and nothing else.
    let lab = spawn_app_with(backend, "[events]\nallowed_networks = [\"127.0.0.0/8\"]\n").await;
    let admin = lab.admin_token(&lab.bootstrap_key).await;
    let local = lab
        .api(
            "POST",
            "/api/v1/event-streams",
            &admin,
            None,
            Some(json!({"endpoint": "http://127.0.0.1:9/events", "audience": AUDIENCE})),
        )
        .await;
    assert_eq!(local.status, 201, "{:?}", local.body);
    let private = lab
        .api(
            "POST",
            "/api/v1/event-streams",
            &admin,
            None,
            Some(json!({"endpoint": "https://10.0.0.1/events", "audience": AUDIENCE})),
        )
        .await;
    assert_eq!(private.status, 422);
}

async fn streams_are_the_tenants_own_and_need_admin_events(backend: Backend) {
    let app = spawn_app_with(backend, FAST).await;
    let root = app.admin_token(&app.bootstrap_key).await;
    app.new_tenant(&root, "acme").await;
    let receiver = Receiver::start().await;
    let body = json!({"endpoint": receiver.url(), "audience": AUDIENCE});

    // Who, what, expected answer.
    let everything_else = app
        .create_key(
            &root,
            json!({"name": "no-events", "scopes": [
            "admin:keys:write", "admin:settings", "admin:audit", "admin:tenants", "keys:self"]}),
        )
        .await;
    let without = app
        .admin_token(everything_else["key"].as_str().unwrap())
        .await;
    let events_only = app
        .create_key(&root, json!({"name": "events", "scopes": ["admin:events"]}))
        .await;
    let events_admin = app.admin_token(events_only["key"].as_str().unwrap()).await;
    let acme_admin_key = app
        .create_key_in(
            &root,
            Some("acme"),
            json!({"name": "acme-admin", "scopes": ["admin:events", "admin:keys:write"]}),
        )
        .await;
    let acme = app
        .admin_token(acme_admin_key["key"].as_str().unwrap())
        .await;

    let ours = app.create_stream(&events_admin, body.clone()).await;
    let id = ours["id"].as_str().unwrap();
    let theirs = app.create_stream(&acme, body.clone()).await;
    let their_id = theirs["id"].as_str().unwrap();
    assert_eq!(theirs["tenant"], "acme");

    let cases: Vec<(&str, &str, String, Option<Value>, u16)> = vec![
        (
            &without,
            "POST",
            "/api/v1/event-streams".into(),
            Some(body.clone()),
            403,
        ),
        (&without, "GET", "/api/v1/event-streams".into(), None, 403),
        (
            &without,
            "GET",
            format!("/api/v1/event-streams/{id}"),
            None,
            403,
        ),
        (
            &without,
            "PATCH",
            format!("/api/v1/event-streams/{id}"),
            Some(json!({"enabled": false})),
            403,
        ),
        (
            &without,
            "DELETE",
            format!("/api/v1/event-streams/{id}"),
            None,
            403,
        ),
        (
            &without,
            "GET",
            format!("/api/v1/event-streams/{id}/deliveries"),
            None,
            403,
        ),
        (
            &acme,
            "GET",
            format!("/api/v1/event-streams/{id}"),
            None,
            404,
        ),
        (
            &acme,
            "PATCH",
            format!("/api/v1/event-streams/{id}"),
            Some(json!({"enabled": false})),
            404,
        ),
        (
            &acme,
            "DELETE",
            format!("/api/v1/event-streams/{id}"),
            None,
            404,
        ),
        (
            &acme,
            "GET",
            format!("/api/v1/event-streams/{id}/deliveries"),
            None,
            404,
        ),
        (
            &events_admin,
            "GET",
            format!("/api/v1/event-streams/{their_id}"),
            None,
            404,
        ),
        (
            &events_admin,
            "DELETE",
            format!("/api/v1/event-streams/{their_id}"),
            None,
            404,
        ),
        (
            &events_admin,
            "GET",
            format!("/api/v1/event-streams/{id}"),
            None,
            200,
        ),
        (
            &events_admin,
            "POST",
            "/api/v1/event-streams".into(),
            Some(
                json!({"endpoint": receiver.url(), "audience": AUDIENCE, "events": ["urn:keymint:event:nope"]}),
            ),
            400,
        ),
        (
            &events_admin,
            "POST",
            "/api/v1/event-streams".into(),
            Some(
                json!({"endpoint": receiver.url(), "audience": AUDIENCE, "bearer_secret": "short"}),
            ),
            400,
        ),
        (
            &events_admin,
            "POST",
            "/api/v1/event-streams".into(),
            Some(json!({"audience": AUDIENCE})),
            400,
        ),
    ];
    for (token, method, path, body, expected) in cases {
        let answer = app.api(method, &path, token, None, body.clone()).await;
        assert_eq!(
            answer.status, expected,
            "{method} {path} {body:?}: {:?}",
            answer.body
        );
    }
    // The list shows only the tenant's own.
    let listed = app
        .api("GET", "/api/v1/event-streams", &events_admin, None, None)
        .await;
    let listed_ids: Vec<&str> = listed.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(listed_ids, [id]);

    // A change in acme reaches acme's receiver only, and a PATCH narrows events.
    let patched = app
        .api(
            "PATCH",
            &format!("/api/v1/event-streams/{id}"),
            &events_admin,
            None,
            Some(json!({"events": ["urn:keymint:event:key-revoked"], "bearer_secret": SECRET})),
        )
        .await;
    assert_eq!(patched.status, 200, "{:?}", patched.body);
    assert_eq!(
        patched.body["events"],
        json!(["urn:keymint:event:key-revoked"])
    );
    assert_eq!(patched.body["has_bearer_secret"], true);
    let _ = app
        .create_key_in(&acme, None, json!({"name": "acme-svc", "scopes": ["a"]}))
        .await;
    let pushes = receiver
        .wait_until(Duration::from_secs(10), |got| !got.is_empty())
        .await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    let claims = claims_of(&receiver.accepted());
    assert_eq!(
        claims.len(),
        1,
        "only acme's stream wanted key-created: {claims:?}"
    );
    assert_eq!(claims[0]["aud"], AUDIENCE);
    assert_eq!(keymint_event(&claims[0]).1["tenant"], "acme");
    assert!(
        pushes[0].authorization.is_none(),
        "acme's stream has no secret"
    );

    // The audit log records the stream changes, never the secret.
    let audit = app
        .api("GET", "/api/v1/audit-events", &root, None, None)
        .await;
    let text = audit.body.to_string();
    assert!(text.contains("event_stream.created") && text.contains("event_stream.updated"));
    assert!(!text.contains(SECRET));
    // Deleting it stops the pushes and lists nothing more.
    let gone = app
        .api(
            "DELETE",
            &format!("/api/v1/event-streams/{id}"),
            &events_admin,
            None,
            None,
        )
        .await;
    assert_eq!(gone.status, 204);
    let again = app
        .api(
            "GET",
            &format!("/api/v1/event-streams/{id}"),
            &events_admin,
            None,
            None,
        )
        .await;
    assert_eq!(again.status, 404);
}

/// The guard runs again at delivery, after DNS: a receiver registered while
/// its network was allowed is not called once it no longer is, whether
/// named by address or by a name that resolves there.
async fn a_receiver_no_longer_allowed_is_not_called(backend: Backend) {
    let db = TestDatabase::new(backend);
    let receiver = Receiver::start().await;
    let allowed = [
        (
            "KEYMINT__EVENTS__ALLOWED_NETWORKS",
            "[\"127.0.0.0/8\", \"::1/128\"]",
        ),
        ("KEYMINT__EVENTS__POLL_INTERVAL_MS", "60000"),
        ("KEYMINT__EVENTS__TIMEOUT_MS", "1000"),
        ("KEYMINT__EVENTS__LEASE_S", "2"),
    ];
    let server = ServerProcess::start(&db, &allowed).await;
    let secret = admin_secret(&db).await;
    let http = reqwest::Client::new();
    let node = server.base_url();
    let admin = crate::client::admin_token_at(&http, &node, &secret, &node).await;
    let mut streams = Vec::new();
    for endpoint in [
        receiver.url(),
        format!("http://localhost:{}/events", receiver.port),
    ] {
        let made = post(&http, &node, &admin, "/api/v1/event-streams",
            json!({"endpoint": endpoint, "audience": AUDIENCE, "events": ["urn:keymint:event:key-created"]})).await;
        assert_eq!(made.0, 201, "{endpoint}: {:?}", made.1);
        streams.push(made.1["id"].as_str().unwrap().to_owned());
    }
    let _ =
        crate::client::create_key_at(&http, &node, &admin, json!({"name": "k", "scopes": ["a"]}))
            .await;
    server.stop().await;

    // The same database, served without the allowance.
    let strict = ServerProcess::start(&db, &[("KEYMINT__EVENTS__POLL_INTERVAL_MS", "100")]).await;
    // The first server's lease runs out within 2 s.
    let node = strict.base_url();
    let admin = crate::client::admin_token_at(&http, &node, &secret, &node).await;
    for id in &streams {
        let path = format!("{node}/api/v1/event-streams/{id}/deliveries");
        let mut last = Value::Null;
        for _ in 0..100 {
            last = http
                .get(&path)
                .bearer_auth(&admin)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            if last["items"][0]["attempts"].as_i64().unwrap_or(0) >= 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let delivery = &last["items"][0];
        assert_eq!(delivery["state"], "pending", "{delivery}");
        let error = delivery["last_error"].as_str().unwrap_or_default();
        assert!(
            error.contains("not a public address") || error.contains("no address events may reach"),
            "{delivery}"
        );
    }
    assert!(
        receiver.received().is_empty(),
        "the receiver was never called"
    );
    strict.stop().await;
}

/// A replica that stops gracefully gives up the delivery lease: the next
/// one delivers at once, not `events.lease_s` (30 s here) later.
async fn a_graceful_stop_hands_delivery_over_at_once(backend: Backend) {
    let db = TestDatabase::new(backend);
    let receiver = Receiver::start().await;
    let env = [
        ("KEYMINT__EVENTS__ALLOWED_NETWORKS", "[\"127.0.0.0/8\"]"),
        ("KEYMINT__EVENTS__POLL_INTERVAL_MS", "100"),
    ];
    let mut first = ServerProcess::start(&db, &env).await;
    let secret = admin_secret(&db).await;
    let http = reqwest::Client::new();
    let node = first.base_url();
    let admin = crate::client::admin_token_at(&http, &node, &secret, &node).await;
    let made = post(&http, &node, &admin, "/api/v1/event-streams",
        json!({"endpoint": receiver.url(), "audience": AUDIENCE, "events": ["urn:keymint:event:key-created"]})).await;
    assert_eq!(made.0, 201, "{:?}", made.1);
    // It holds the lease: it delivers its own event.
    let _ = crate::client::create_key_at(
        &http,
        &node,
        &admin,
        json!({"name": "one", "scopes": ["a"]}),
    )
    .await;
    receiver
        .wait_until(Duration::from_secs(10), |got| got.len() == 1)
        .await;
    first.signal("TERM");
    let _ = first.child.wait().await;

    let second = ServerProcess::start(&db, &env).await;
    let node = second.base_url();
    let admin = crate::client::admin_token_at(&http, &node, &secret, &node).await;
    let _ = crate::client::create_key_at(
        &http,
        &node,
        &admin,
        json!({"name": "two", "scopes": ["a"]}),
    )
    .await;
    receiver
        .wait_until(Duration::from_secs(10), |got| got.len() == 2)
        .await;
    second.stop().await;
}

/// A key with the powers these tests use, made with the CLI before any
/// server hands out a bootstrap key.
async fn admin_secret(db: &TestDatabase) -> String {
    let (code, stdout, stderr) = crate::helpers::run_cli_on(
        db,
        &[
            "keys",
            "create",
            "--name",
            "ops",
            "--scopes",
            "admin:keys:write,admin:events",
        ],
    )
    .await;
    assert_eq!(code, 0, "{stderr}");
    stdout.trim().to_owned()
}

async fn post(
    http: &reqwest::Client,
    node: &str,
    token: &str,
    path: &str,
    body: Value,
) -> (u16, Value) {
    let response = http
        .post(format!("{node}{path}"))
        .header("Authorization", format!("Bearer {token}"))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// A receiver's redirect is an answer, not a place to go: the push is
/// retried at the registered URL and the redirect's target never called.
async fn redirects_are_not_followed(backend: Backend) {
    let app = spawn_app_with(backend, FAST).await;
    let receiver = Receiver::start().await;
    let elsewhere = Receiver::start().await;
    receiver.redirect_next(1, &elsewhere.url());
    let admin = app.admin_token(&app.bootstrap_key).await;
    app.create_stream(
        &admin,
        json!({"endpoint": receiver.url(), "audience": AUDIENCE, "events": ["urn:keymint:event:key-created"]}),
    )
    .await;
    let _ = app
        .create_key(&admin, json!({"name": "k", "scopes": ["a"]}))
        .await;
    receiver
        .wait_until(Duration::from_secs(10), |got| got.len() == 1)
        .await;
    let statuses: Vec<u16> = receiver.received().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [307, 202], "retried at the registered URL");
    assert!(
        elsewhere.received().is_empty(),
        "the redirect was not followed"
    );
}

/// A receiver that hangs does not hold up the others: after its first
/// timeout its deliveries wait out their backoff together, one probe at a
/// time, while a healthy stream's flow on.
async fn a_hanging_receiver_does_not_hold_up_the_others(backend: Backend) {
    let app = spawn_app_with(
        backend,
        "[events]\nallowed_networks = [\"127.0.0.0/8\"]\npoll_interval_ms = 100\n\
         timeout_ms = 1500\nbackoff_base_ms = 20000\nbackoff_max_s = 60\nlease_s = 5\n",
    )
    .await;
    let (dead_port, _hole) = crate::helpers::black_hole().await;
    let live = Receiver::start().await;
    let admin = app.admin_token(&app.bootstrap_key).await;
    let events = json!(["urn:keymint:event:key-created"]);
    app.create_stream(
        &admin,
        json!({"endpoint": format!("http://127.0.0.1:{dead_port}/hangs"), "audience": AUDIENCE, "events": events}),
    )
    .await;
    app.create_stream(
        &admin,
        json!({"endpoint": live.url(), "audience": AUDIENCE, "events": events}),
    )
    .await;
    let started = std::time::Instant::now();
    for i in 0..40 {
        let _ = app
            .create_key(&admin, json!({"name": format!("k{i}"), "scopes": ["a"]}))
            .await;
    }
    // Without the pause every 1.5 s round would spend slots on the hanging
    // receiver: the live stream's 40 would wait round after round.
    live.wait_until(Duration::from_secs(20), |got| got.len() >= 40)
        .await;
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(5),
        "the healthy stream waited {took:?}"
    );
    let streams = app
        .api("GET", "/api/v1/event-streams", &admin, None, None)
        .await;
    let dead = &streams.body["items"][0];
    assert!(dead["pending"].as_i64().unwrap() >= 39, "{dead}");
    assert!(dead["paused_until"].is_string(), "{dead}");
    assert!(streams.body["items"][1]["paused_until"].is_null());
}
