//! The token hot path, piece by piece: parse + checksum + hash a presented
//! key, sign a JWT through the ring provider, verify one, "verify key + sign
//! JWT" together, and the whole exchange in-process against SQLite (look-up,
//! policy, claims, signature). Run with `cargo bench --bench exchange`.

mod common;

use std::hint::black_box;

use chrono::Utc;
use criterion::{Criterion, criterion_group, criterion_main};
use jsonwebtoken::{Algorithm, Validation};
use keymint::keys::secret::ApiKeySecret;
use keymint::tokens::issue::AccessClaims;

fn claims(now: i64) -> AccessClaims {
    AccessClaims {
        iss: "http://127.0.0.1:8080".into(),
        sub: "svc-billing".into(),
        aud: "urn:keymint:tenant:default".into(),
        iat: now,
        nbf: now,
        exp: now + 900,
        jti: uuid::Uuid::now_v7().to_string(),
        client_id: uuid::Uuid::now_v7().to_string(),
        scope: Some("invoices:read invoices:write".into()),
        tid: "default".into(),
        ext: None,
        status: Some(keymint::domain::status_list::StatusClaim::for_index(
            "http://127.0.0.1:8080",
            12_345,
        )),
    }
}

fn bench(c: &mut Criterion) {
    let common::Fixture {
        settings,
        mut conn,
        ring,
        ..
    } = common::fixture();
    let secret = ApiKeySecret::generate("km", &ring::rand::SystemRandom::new()).expect("secret");
    let presented = secret.expose().to_owned();
    let now_unix = Utc::now().timestamp();
    let signer = ring.signer(now_unix).expect("an active key");

    c.bench_function("key: parse + checksum + sha256", |b| {
        b.iter(|| ApiKeySecret::parse(black_box(&presented)).map(|s| s.hash()))
    });
    c.bench_function("jwt: sign ES256 (ring provider)", |b| {
        let claims = claims(now_unix);
        b.iter(|| signer.sign(black_box(&claims)))
    });
    let token = signer.sign(&claims(now_unix)).expect("token");
    let decoding = ring
        .decoding_key(&signer.kid, Algorithm::ES256)
        .expect("published");
    let mut validation = Validation::new(Algorithm::ES256);
    validation.set_audience(&["urn:keymint:tenant:default"]);
    c.bench_function("jwt: verify ES256", |b| {
        b.iter(|| jsonwebtoken::decode::<AccessClaims>(black_box(&token), &decoding, &validation))
    });
    // The whole exchange against a real SQLite file with 1 000 keys.
    let now_naive = Utc::now().naive_utc();
    keymint::bootstrap::ensure_system_tenant(&mut conn, now_naive).expect("tenant");
    let tenant = keymint::tenants::store::find_by_slug(&mut conn, "default")
        .expect("query")
        .expect("tenant");
    let mut secrets = Vec::new();
    for i in 0..1000 {
        let new = keymint::keys::store::NewKey {
            tenant_id: tenant.id.clone(),
            name: format!("bench-{i}"),
            description: None,
            owner: Some("svc".into()),
            scopes: vec!["read".into()],
            audiences: Vec::new(),
            expires_at: None,
            max_token_ttl_s: None,
            rate_limit_per_s: None,
            ip_allowlist: None,
            claims: None,
            metadata: None,
            security_level: keymint::keys::SecurityLevel::Standard,
            created_by: keymint::audit::Actor::system("bench"),
            parent_key_id: None,
        };
        let (mut row, secret) = keymint::keys::store::prepare(&new, "km", now_naive).expect("key");
        keymint::keys::store::insert(&mut conn, &mut row, &new.created_by, &Default::default())
            .expect("insert");
        secrets.push(secret.expose().to_owned());
    }
    let admin_audience = settings.tokens.admin_audience.clone();
    let issuer = settings.tokens.issuer.clone();
    let mut next = 0usize;
    c.bench_function("whole exchange in-process (SQLite, 1k keys)", |b| {
        b.iter(|| {
            next = (next + 1) % secrets.len();
            let secret = ApiKeySecret::parse(&secrets[next]).expect("valid");
            let found = keymint::keys::store::find_by_secret_hash(&mut conn, &secret.hash())
                .expect("query");
            let candidate = keymint::grants::judge(found, None, now_naive).expect("active key");
            let decision = keymint::tokens::issue::decide(
                &candidate,
                &Default::default(),
                &admin_audience,
                now_naive,
            )
            .expect("allowed");
            let claims = keymint::tokens::issue::claims(&candidate, &decision, &issuer, now_unix);
            signer.sign(&claims)
        })
    });

    c.bench_function("verify key + sign JWT", |b| {
        b.iter(|| {
            let parsed = ApiKeySecret::parse(black_box(&presented)).expect("valid");
            let hash = parsed.hash();
            black_box(hash);
            let signer = ring.signer(now_unix).expect("active");
            signer.sign(&claims(now_unix))
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
