//! No admin query starves the exchange, and over-rate requests leave
//! nothing written: the admin API's per-caller rate limit, the time bound
//! on lists and searches, the connections kept apart for them, and the
//! per-key bucket, spent at introspection and revocation too and before a
//! signed request's nonce is written.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use keymint::grants::signed::sign_request;
use reqwest::Response;
use serde_json::{Value, json};

use crate::backend_tests;
use crate::client::Form;
use crate::helpers::{Backend, TestApp, spawn_app_with};

backend_tests!(
    admin_searches_never_starve_the_exchange,
    a_search_past_its_time_bound_answers_503,
    the_admin_api_is_rate_limited_per_calling_key,
    signed_requests_over_the_rate_write_no_nonces,
    introspection_and_revocation_spend_the_callers_bucket,
);

/// Keys written straight into the database (the API would take minutes),
/// in the default tenant. Their names (and owners) are a long run of one
/// character and an `É`, so a search for a near miss makes every row cost
/// the matcher real work.
fn insert_filler_keys(app: &TestApp, count: usize) {
    use keymint::db::schema::tenants;
    let mut conn = app.db.connect();
    let tenant: String = tenants::table
        .filter(tenants::slug.eq("default"))
        .select(tenants::id)
        .first(&mut conn)
        .unwrap();
    let name = format!("{}É", "-".repeat(99));
    let columns = "id, tenant_id, name, owner, start, security_level, scopes, audiences, \
                   created_by, created_at, updated_at, tokens_issued";
    let sql = match app.db.backend {
        Backend::Sqlite => format!(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {count})
             INSERT INTO api_keys ({columns})
             SELECT printf('00000000-0000-7000-8000-%012d', i), '{tenant}', '{name}', '{name}',
                    'km_fill', 'standard', '[]', '[]', 'test',
                    '2026-01-01 00:00:00', '2026-01-01 00:00:00', 0
             FROM n"
        ),
        Backend::Postgres => format!(
            "INSERT INTO api_keys ({columns})
             SELECT '00000000-0000-7000-8000-' || lpad(i::text, 12, '0'), '{tenant}', '{name}',
                    '{name}', 'km_fill', 'standard', '[]', '[]', 'test',
                    '2026-01-01 00:00:00', '2026-01-01 00:00:00', 0
             FROM generate_series(1, {count}) AS i"
        ),
    };
    conn.batch_execute(&sql).unwrap();
    if app.db.backend == Backend::Postgres {
        // As autovacuum soon would after a bulk load: without statistics
        // the planner sorts the whole tenant even for a plain first page.
        conn.batch_execute("ANALYZE api_keys").unwrap();
    }
}

/// A search no filler key matches, but each comes close to at every offset,
/// and which the search indexes cannot narrow: they fold `É` to `é` (or, on
/// PostgreSQL in the C locale, find no trigram in either) while the match
/// rule folds ASCII letters only, so every key is a candidate the rule
/// refuses at full cost. Percent-encoded for the query string.
fn near_miss() -> String {
    format!("{}%C3%A9", "-".repeat(98))
}

async fn admin_searches_never_starve_the_exchange(backend: Backend) {
    let app = Arc::new(spawn_app_with(backend, "").await);
    // Enough that one search takes a good fraction of a second on each
    // backend (SQLite's LIKE is the slower), short of the 2 s bound.
    let filler = match backend {
        Backend::Sqlite => 10_000,
        Backend::Postgres => 40_000,
    };
    insert_filler_keys(&app, filler);
    let admin = app.admin_token(&app.bootstrap_key).await;
    let reader = app
        .create_key(
            &admin,
            json!({"name": "reader", "scopes": ["admin:keys:read"]}),
        )
        .await;
    let reader = app.admin_token(secret(&reader)).await;
    let client = app
        .create_key(
            &admin,
            json!({"name": "client", "scopes": ["a"], "rate_limit_per_s": 100_000}),
        )
        .await;
    let client = secret(&client).to_owned();

    // 16 read-only callers search without pause while a client exchanges.
    let path = format!("/api/v1/keys?q={}", near_miss());
    let running = Arc::new(AtomicBool::new(true));
    let mut searchers = Vec::new();
    for _ in 0..16 {
        let (app, reader, path, running) =
            (app.clone(), reader.clone(), path.clone(), running.clone());
        searchers.push(tokio::spawn(async move {
            let mut statuses = Vec::new();
            while running.load(Ordering::Relaxed) {
                statuses.push(
                    app.call("GET", &path, &reader, None)
                        .await
                        .status()
                        .as_u16(),
                );
            }
            statuses
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut exchanges = Vec::new();
    let until = Instant::now() + Duration::from_secs(6);
    while Instant::now() < until {
        let started = Instant::now();
        let status = app.exchange(Form::XApiKey, &client, &[]).await.status();
        exchanges.push((status.as_u16(), started.elapsed()));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    running.store(false, Ordering::Relaxed);
    let mut searches: BTreeMap<u16, usize> = BTreeMap::new();
    for searcher in searchers {
        for status in searcher.await.unwrap() {
            *searches.entry(status).or_default() += 1;
        }
    }

    assert!(
        searches.contains_key(&200),
        "the searches ran: {searches:?}"
    );
    assert!(
        searches.keys().all(|s| [200, 503].contains(s)),
        "a search past its bounds is a 503, nothing worse: {searches:?}"
    );
    for (status, took) in &exchanges {
        assert_eq!(*status, 200, "an exchange answered {status} after {took:?}");
        assert!(
            *took < Duration::from_secs(2),
            "an exchange took {took:?} while admins searched ({searches:?})"
        );
    }
}

async fn a_search_past_its_time_bound_answers_503(backend: Backend) {
    let app = spawn_app_with(backend, "[database]\nadmin_query_timeout_ms = 100\n").await;
    let filler = match backend {
        Backend::Sqlite => 20_000,
        Backend::Postgres => 60_000,
    };
    insert_filler_keys(&app, filler);
    let admin = app.admin_token(&app.bootstrap_key).await;

    let started = Instant::now();
    let response = app
        .call(
            "GET",
            &format!("/api/v1/keys?q={}", near_miss()),
            &admin,
            None,
        )
        .await;
    let took = started.elapsed();
    assert_eq!(response.status(), 503);
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    assert!(response.headers().contains_key("retry-after"));
    let problem: Value = response.json().await.unwrap();
    assert!(
        problem["detail"].as_str().unwrap().contains("narrow it"),
        "{problem}"
    );
    assert!(
        took < Duration::from_secs(2),
        "stopped at its bound: {took:?}"
    );

    // A list that finds its page quickly is untouched by the bound, and
    // the connection whose statement was cut short serves it.
    let response = app.call("GET", "/api/v1/keys?limit=5", &admin, None).await;
    assert_eq!(response.status(), 200);
    let page: Value = response.json().await.unwrap();
    assert_eq!(page["items"].as_array().unwrap().len(), 5);
    let response = app
        .call("GET", "/api/v1/audit-events?limit=5", &admin, None)
        .await;
    assert_eq!(response.status(), 200);
}

async fn the_admin_api_is_rate_limited_per_calling_key(backend: Backend) {
    let app = spawn_app_with(backend, "[limits]\nadmin_per_s = 2\n").await;
    let admin = app.admin_token(&app.bootstrap_key).await;
    // The bootstrap key's burst of two makes the two callers.
    let one = app
        .create_key(
            &admin,
            json!({"name": "one", "scopes": ["admin:keys:read"]}),
        )
        .await;
    let two = app
        .create_key(
            &admin,
            json!({"name": "two", "scopes": ["admin:keys:read"]}),
        )
        .await;
    let one_token = app.admin_token(secret(&one)).await;
    let one_again = app.admin_token(secret(&one)).await;
    let two_token = app.admin_token(secret(&two)).await;

    let mut statuses = Vec::new();
    for _ in 0..6 {
        let response = app
            .call("GET", "/api/v1/keys?limit=1", &one_token, None)
            .await;
        statuses.push(response.status().as_u16());
        if response.status() == 429 {
            let retry: u64 = response.headers()["retry-after"]
                .to_str()
                .unwrap()
                .parse()
                .unwrap();
            assert!(retry >= 1);
            assert_eq!(
                response.headers()["content-type"],
                "application/problem+json"
            );
            let problem: Value = response.json().await.unwrap();
            assert_eq!(problem["type"], "urn:keymint:problem:rate-limited");
        }
    }
    assert_eq!(statuses[..2], [200, 200], "a burst of ⌈2⌉: {statuses:?}");
    assert!(statuses[2..].iter().all(|s| *s == 429), "{statuses:?}");
    // The bucket is the key's, whichever of its tokens calls; other keys
    // have their own.
    assert_eq!(
        app.call("GET", "/api/v1/keys?limit=1", &one_again, None)
            .await
            .status(),
        429
    );
    assert_eq!(
        app.call("GET", "/api/v1/keys?limit=1", &two_token, None)
            .await
            .status(),
        200
    );
    // The exchange is not the admin API: its key bucket is another.
    assert_eq!(
        app.exchange(
            Form::XApiKey,
            secret(&one),
            &[("audience", &app.admin_audience)]
        )
        .await
        .status(),
        200
    );
    // The rate refills.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(
        app.call("GET", "/api/v1/keys?limit=1", &one_token, None)
            .await
            .status(),
        200
    );
}

async fn signed_requests_over_the_rate_write_no_nonces(backend: Backend) {
    let app = Arc::new(spawn_app_with(backend, "").await);
    let admin = app.admin_token(&app.bootstrap_key).await;
    let key = app
        .create_key(
            &admin,
            json!({"name": "adv", "security_level": "advanced", "rate_limit_per_s": 2,
               "scopes": ["read", "tokens:introspect"]}),
        )
        .await;
    let id = key["id"].as_str().unwrap().to_owned();
    let secret = secret(&key).to_owned();

    // 2,000 signed requests, every one with a fresh nonce and a good
    // signature, at the token and introspection endpoints.
    let started = Instant::now();
    let mut workers = Vec::new();
    for w in 0..8 {
        let (app, id, secret) = (app.clone(), id.clone(), secret.clone());
        workers.push(tokio::spawn(async move {
            let mut statuses = Vec::new();
            for i in 0..250 {
                let (path, body, content_type) = if (w + i) % 2 == 0 {
                    ("/api/v1/token", "", None)
                } else {
                    (
                        "/oauth/introspect",
                        "token=x",
                        Some("application/x-www-form-urlencoded"),
                    )
                };
                let response = signed(&app, &id, &secret, path, body, content_type).await;
                statuses.push(response.status().as_u16());
            }
            statuses
        }));
    }
    let mut answers: BTreeMap<u16, usize> = BTreeMap::new();
    for worker in workers {
        for status in worker.await.unwrap() {
            *answers.entry(status).or_default() += 1;
        }
    }
    let elapsed = started.elapsed().as_secs_f64();

    // Only requests the bucket admitted wrote a nonce: at most the burst
    // plus the rate over the run.
    let admitted = answers.get(&200).copied().unwrap_or(0);
    let allowed = 2 + (2.0 * elapsed).ceil() as usize;
    assert!(admitted <= allowed, "{answers:?} in {elapsed:.1} s");
    assert_eq!(
        answers.get(&429).copied().unwrap_or(0) + admitted,
        2000,
        "{answers:?}"
    );
    use keymint::db::schema::used_nonces;
    let rows: i64 = used_nonces::table
        .filter(used_nonces::key_id.eq(&id))
        .count()
        .get_result(&mut app.db.connect())
        .unwrap();
    assert_eq!(rows as usize, admitted, "{answers:?}");
}

async fn introspection_and_revocation_spend_the_callers_bucket(backend: Backend) {
    let app = spawn_app_with(backend, "").await;
    let admin = app.admin_token(&app.bootstrap_key).await;
    let inspector = app
        .create_key(
            &admin,
            json!({"name": "inspector", "scopes": ["tokens:introspect"], "rate_limit_per_s": 2}),
        )
        .await;
    let revoker = app
        .create_key(
            &admin,
            json!({"name": "revoker", "scopes": ["a"], "rate_limit_per_s": 2}),
        )
        .await;
    let holder = app
        .create_key(
            &admin,
            json!({"name": "holder", "scopes": ["a"], "rate_limit_per_s": 1}),
        )
        .await;

    let form_post = |path: &'static str, auth: Option<String>, token: String| {
        let app = &app;
        async move {
            let mut request = app.client.post(app.url(path)).form(&[("token", token)]);
            if let Some(auth) = auth {
                request = request.header("Authorization", auth);
            }
            request.send().await.unwrap()
        }
    };
    for (path, caller) in [
        ("/oauth/introspect", &inspector),
        ("/oauth/revoke", &revoker),
    ] {
        let mut statuses = Vec::new();
        for _ in 0..5 {
            let response = form_post(path, Some(basic(caller)), "not-a-token".into()).await;
            statuses.push(response.status().as_u16());
            if response.status() == 429 {
                assert!(response.headers().contains_key("retry-after"));
                let body: Value = response.json().await.unwrap();
                assert_eq!(body["error"], "temporarily_unavailable");
            }
        }
        assert_eq!(statuses[..2], [200, 200], "{path}: {statuses:?}");
        assert!(
            statuses[2..].iter().all(|s| *s == 429),
            "{path}: {statuses:?}"
        );
    }

    // A key revoking itself with its bare secret while over its rate is
    // told to retry, not that it is gone.
    let holder_secret = secret(&holder).to_owned();
    assert_eq!(
        app.exchange(Form::XApiKey, &holder_secret, &[])
            .await
            .status(),
        200
    );
    let response = form_post("/oauth/revoke", None, holder_secret.clone()).await;
    assert_eq!(response.status(), 429);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(
        app.exchange(Form::XApiKey, &holder_secret, &[])
            .await
            .status(),
        200,
        "not revoked"
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let response = form_post("/oauth/revoke", None, holder_secret.clone()).await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        app.exchange(Form::XApiKey, &holder_secret, &[])
            .await
            .status(),
        401,
        "revoked"
    );
}

fn secret(created: &Value) -> &str {
    created["key"].as_str().unwrap()
}

fn basic(created: &Value) -> String {
    crate::client::basic(created["id"].as_str().unwrap(), secret(created))
}

/// A correctly signed POST with a fresh nonce.
async fn signed(
    app: &TestApp,
    key_id: &str,
    secret: &str,
    path: &str,
    body: &'static str,
    content_type: Option<&str>,
) -> Response {
    let nonce = crate::client::nonce();
    let now_ms = chrono::Utc::now().timestamp_millis();
    let headers = sign_request(
        secret,
        key_id,
        now_ms,
        &nonce,
        "POST",
        path,
        body.as_bytes(),
    );
    let mut request = app.client.post(app.url(path)).body(body);
    if let Some(content_type) = content_type {
        request = request.header("Content-Type", content_type);
    }
    for (name, value) in headers {
        request = request.header(name, value);
    }
    request.send().await.unwrap()
}
