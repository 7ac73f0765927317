//! The bodies of keymint's fuzz targets, shared by the cargo-fuzz targets
//! (`fuzz/fuzz_targets/*.rs`, as `#[path = "../bodies.rs"] mod bodies;`) and
//! the seed replay test (`tests/fuzz_replay.rs`, as
//! `#[path = "../fuzz/bodies.rs"] mod bodies;`), so `cargo test` runs exactly
//! the checks the fuzzer runs, on the committed seeds in `fuzz/seeds/`.
//!
//! Each body panics when a property fails and otherwise returns whether the
//! input was accepted (a key that parsed, a request that verified, ...): the
//! replay test uses that to make sure the seeds still reach the deep paths.
//!
//! Every key below is a fixture made for fuzzing and used nowhere else.

use std::sync::{Mutex, OnceLock};

use actix_web::HttpRequest;
use actix_web::http::Uri;
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::test::TestRequest;
use base64::Engine;
use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::connection::SimpleConnection;

use keymint::audit::{Actor, Origin};
use keymint::config::{DatabaseSettings, DatabaseTarget, SigningAlg, SigningSettings};
use keymint::crypto::master::{Aad, MasterKey, Purpose};
use keymint::db::{self, AnyConnection, models::SigningKeyRow};
use keymint::domain::text::split_authorization;
use keymint::error::OAuthError;
use keymint::grants::Presented;
use keymint::grants::signed::{self, MAX_SKEW_MS, SignedError};
use keymint::input::form::{FormParams, MAX_PARAMS};
use keymint::input::{api_key, client_credentials, signed as signed_input, token_exchange};
use keymint::keys::secret::{ApiKeySecret, MAX_LEN, is_valid_prefix};
use keymint::keys::{SecurityLevel, store};
use keymint::tokens::issue::AccessClaims;
use keymint::tokens::signing::{self as signing_keys, KeyRing};
use keymint::tokens::verify::{self, VerifyError};

/// The master key the fixtures' secrets are sealed under.
const MASTER_KEY: [u8; 32] = *b"keymint-fuzz-fixture-master-key!";

/// The advanced key `signed_request` verifies against: its id and its whole
/// secret (a real key string, made with `ApiKeySecret::generate`).
pub const SIGNED_KEY_ID: &str = "0193a1b2-c3d4-7e5f-8a6b-7c8d9e0f1a2b";
pub const SIGNED_KEY_SECRET: &str = "km_k3A7NbY6TOUQ8GwS7wgaykHRS4kbfkSJ097jD1";

/// The one ES256 signing key (PKCS#8, made with ring) of `jwt_verify`'s ring.
const ES256_PKCS8_B64: &str = "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg7JxguoAo0tKXPSImkUcKFTdQdYCWCJkYmAs0mQvEMkyhRANCAATukcVXvmt6VDt6KD9/T+7ZcYSL1Jj+8LJlDsGDgIN5JnaGyomUru0828bLEL/d4QtGuuZvlfeR/5WfvpQ75Cls";
pub const ISSUER: &str = "http://127.0.0.1:8080";
pub const AUDIENCE: &str = "urn:keymint:tenant:fuzz";

/// A token genuinely signed by that key (`exp` in 2100): what `jwt_verify`
/// mutates. Also a seed.
pub const VALID_JWT: &str = "eyJ0eXAiOiJhdCtqd3QiLCJhbGciOiJFUzI1NiIsImtpZCI6IlN1UDRkTjZ6UXprc25la3Zpc2lZQU5QT19IN0dpbWxlVU5HUWx4aWpCVmcifQ.eyJpc3MiOiJodHRwOi8vMTI3LjAuMC4xOjgwODAiLCJzdWIiOiJmdXp6LW93bmVyIiwiYXVkIjoidXJuOmtleW1pbnQ6dGVuYW50OmZ1enoiLCJpYXQiOjE3MzI0MDAwMDAsIm5iZiI6MTczMjQwMDAwMCwiZXhwIjo0MTAyNDQ0ODAwLCJqdGkiOiIwMTkzYTFiMi0wMDAwLTcwMDAtODAwMC0wMDAwMDAwMGYwMjIiLCJjbGllbnRfaWQiOiIwMTkzYTFiMi1jM2Q0LTdlNWYtOGE2Yi03YzhkOWUwZjFhMmIiLCJzY29wZSI6InJlYWQgd3JpdGUiLCJ0aWQiOiJmdXp6In0.aNHlG7yF8dVJ-Z31lNVPp9DKmfryjIrrDf5-oh7c73BmbT7C4087svbt-6Tnwi1axLgi58B__V96EPMcJ38rvQ";

fn now() -> DateTime<Utc> {
    Utc::now()
}

// ---------------------------------------------------------------- key_parser

/// `ApiKeySecret::parse` on any text; a parsed key's accessors must not panic
/// and re-parsing what it exposes must give the same key.
pub fn key_parser(data: &[u8]) -> bool {
    let text = String::from_utf8_lossy(data);
    let Ok(secret) = ApiKeySecret::parse(&text) else {
        return false;
    };
    let exposed = secret.expose();
    assert_eq!(exposed, text, "parse must keep the input as is");
    assert!(exposed.len() <= MAX_LEN);
    let hash = secret.hash();
    let prefix = secret.prefix();
    assert!(
        is_valid_prefix(prefix),
        "parsed a key with prefix {prefix:?}"
    );
    let start = secret.start();
    assert_eq!(start, exposed[..prefix.len() + 5], "start is prefix_ + 4");
    let again = ApiKeySecret::parse(exposed).expect("an exposed key parses again");
    assert!(again.hash() == hash && again.hash().ct_eq(&hash));
    assert_eq!(again.prefix(), prefix);
    assert_eq!(again.start(), start);
    // The secret never prints.
    let shown = format!("{secret} {secret:?} {hash:?}");
    assert!(!shown.contains(&exposed[prefix.len() + 1..]));
    true
}

// ------------------------------------------------------------- token_request

/// Splits `header \n body`; without a newline the whole input is the body and
/// no header is sent.
fn split_header(data: &[u8]) -> (Option<HeaderValue>, &[u8]) {
    match data.iter().position(|&b| b == b'\n') {
        Some(i) => (HeaderValue::from_bytes(&data[..i]).ok(), &data[i + 1..]),
        None => (None, data),
    }
}

fn assert_ascii(err: &OAuthError) {
    assert!(
        err.description.is_ascii(),
        "error descriptions are ASCII: {:?}",
        err.description
    );
}

/// What `exchange`/`authenticate` do first with a presented secret: parse it
/// (format and checksum) before any database work.
fn check_presented(presented: &Presented) -> bool {
    if let Some(id) = &presented.key_id {
        assert_eq!(id.len(), 36, "only a UUID can name a key: {id:?}");
    }
    key_parser(presented.secret.as_bytes())
}

/// The token endpoint's request parsing: the form body (checked against
/// `url::form_urlencoded`), `Authorization` splitting, the Basic / posted /
/// `ApiKey` / `X-API-Key` credentials, token-exchange parameters, and the
/// secret's own parsing.
pub fn token_request(data: &[u8]) -> bool {
    let (header, body) = split_header(data);

    if let Some(text) = header.as_ref().and_then(|v| v.to_str().ok())
        && let Some((scheme, rest)) = split_authorization(text)
    {
        assert!(!scheme.is_empty() && !scheme.contains(' '));
        assert_eq!(rest, rest.trim());
    }

    let pairs: Vec<(String, String)> = url::form_urlencoded::parse(body).into_owned().collect();
    let mut names: Vec<&str> = pairs.iter().map(|(n, _)| n.as_str()).collect();
    names.sort_unstable();
    let unique = names.windows(2).all(|w| w[0] != w[1]);
    let mut form = match FormParams::parse(body) {
        Ok(form) => {
            assert!(pairs.len() <= MAX_PARAMS && unique, "accepted a bad form");
            for (name, value) in &pairs {
                let expected = (!value.is_empty()).then_some(value.as_str());
                assert_eq!(form.get(name), expected, "parameter {name:?}");
                assert_eq!(form.contains(name), expected.is_some());
            }
            form
        }
        Err(err) => {
            assert!(pairs.len() > MAX_PARAMS || !unique, "refused a good form");
            assert_ascii(&err);
            FormParams::default()
        }
    };

    let with_header = |name: &'static str| {
        let mut req = TestRequest::post()
            .uri("/oauth/token")
            .insert_header(("content-type", "application/x-www-form-urlencoded"));
        if let Some(value) = &header {
            req = req.insert_header((HeaderName::from_static(name), value.clone()));
        }
        req.to_http_request()
    };
    let req = with_header("authorization");

    let mut accepted = false;
    let grant_type = form.get("grant_type").map(str::to_owned);
    let presented: Vec<Presented> = match grant_type.as_deref() {
        Some(keymint::grants::TOKEN_EXCHANGE) => match token_exchange::parse(&req, &mut form) {
            Ok(exchange) => std::iter::once(exchange.subject)
                .chain(exchange.client)
                .collect(),
            Err(err) => {
                assert_ascii(&err);
                Vec::new()
            }
        },
        _ => match client_credentials::credentials(&req, &mut form) {
            Ok(presented) => {
                assert!(!form.contains("client_secret"), "the secret is taken");
                vec![presented]
            }
            Err(err) => {
                assert_ascii(&err);
                Vec::new()
            }
        },
    };
    for p in &presented {
        accepted |= check_presented(p);
    }

    // `/api/v1/token`: the same value as `Authorization: ApiKey …` or as
    // `X-API-Key`, and the body as its optional JSON.
    for name in ["authorization", "x-api-key"] {
        match api_key::credentials(&with_header(name)) {
            Ok(p) => accepted |= check_presented(&p),
            Err(err) => assert_ascii(&err),
        }
    }
    let json = TestRequest::post()
        .uri("/api/v1/token")
        .insert_header(("content-type", "application/json"))
        .to_http_request();
    if let Err(err) = api_key::requested(&json, body) {
        assert_ascii(&err);
    }
    accepted
}

// ------------------------------------------------------------ signed_request

/// An in-memory SQLite database holding one tenant and the advanced key
/// [`SIGNED_KEY_ID`] whose secret is [`SIGNED_KEY_SECRET`].
struct SignedFixture {
    conn: Mutex<AnyConnection>,
    master: MasterKey,
}

fn signed_fixture() -> &'static SignedFixture {
    static FIXTURE: OnceLock<SignedFixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let settings = DatabaseSettings {
            target: DatabaseTarget::Sqlite(":memory:".into()),
            max_connections: 1,
            connect_timeout_ms: 1000,
            sqlite_busy_timeout_ms: 1000,
            admin_max_connections: 1,
            admin_query_timeout_ms: 1000,
        };
        let mut conn = db::connect(&settings).expect("in-memory database");
        db::migrate(&mut conn).expect("migrations");
        let now = now().naive_utc();
        let tenant =
            keymint::tenants::store::create(&mut conn, "fuzz", "Fuzz", now).expect("tenant");
        let master = MasterKey::from_bytes(MASTER_KEY);
        let new = store::NewKey {
            tenant_id: tenant.id,
            name: "fuzz-signed".to_owned(),
            description: None,
            owner: None,
            scopes: Vec::new(),
            audiences: Vec::new(),
            expires_at: None,
            max_token_ttl_s: None,
            rate_limit_per_s: None,
            ip_allowlist: None,
            claims: None,
            metadata: None,
            security_level: SecurityLevel::Advanced,
            created_by: Actor::anonymous(),
            parent_key_id: None,
        };
        let (mut row, _) = store::prepare(&new, "km", now).expect("key row");
        let secret = ApiKeySecret::parse(SIGNED_KEY_SECRET).expect("fixture secret");
        row.id = SIGNED_KEY_ID.to_owned();
        row.start = secret.start();
        keymint::crypto::check::record(&mut conn, &master, now).expect("check row");
        store::seal_advanced(&mut conn, &mut row, &master, secret.expose()).expect("seal");
        let origin = Origin {
            ip: None,
            request_id: None,
        };
        store::insert(&mut conn, &mut row, &Actor::anonymous(), &origin).expect("insert key");
        SignedFixture {
            conn: Mutex::new(conn),
            master,
        }
    })
}

/// `signed::verify`, then `signed::record_nonce` (as an admitted request
/// goes), against the fixture database; nonces are forgotten afterwards so
/// every input is judged alone.
fn verify_signed(request: &signed::SignedRequest, twice: bool) -> Vec<Result<String, SignedError>> {
    let fixture = signed_fixture();
    let mut conn = fixture.conn.lock().unwrap_or_else(|e| e.into_inner());
    let now = now().naive_utc();
    let mut outcomes = Vec::new();
    for _ in 0..if twice { 2 } else { 1 } {
        let outcome = signed::verify(&mut conn, &fixture.master, request, now)
            .and_then(|verified| match verified {
                Ok(candidate) => signed::record_nonce(&mut conn, request, candidate, now),
                Err(refused) => Ok(Err(refused)),
            })
            .expect("the fixture database answers");
        outcomes.push(
            outcome
                .map(|candidate| candidate.key.id)
                .map_err(|(error, _denial)| error),
        );
    }
    conn.batch_execute("DELETE FROM used_nonces")
        .expect("nonces are cleared");
    outcomes
}

fn signed_test_request(path: &str, headers: &[(HeaderName, HeaderValue)]) -> HttpRequest {
    let mut req = TestRequest::post().uri(path);
    for (name, value) in headers {
        req = req.insert_header((name.clone(), value.clone()));
    }
    req.to_http_request()
}

/// The signature a client holding [`SIGNED_KEY_SECRET`] sends for these parts.
fn expected_signature(request: &signed::SignedRequest, path: &str, body: &[u8]) -> String {
    signed::sign_request(
        SIGNED_KEY_SECRET,
        &request.key_id,
        request.timestamp_ms,
        &request.nonce,
        "POST",
        path,
        body,
    )
    .into_iter()
    .find(|(name, _)| *name == "Authorization")
    .and_then(|(_, value)| value.split_once(' ').map(|(_, sig)| sig.to_owned()))
    .expect("sign_request sends Authorization")
}

fn check_timestamps(request: &signed::SignedRequest) {
    let ts = request.timestamp_ms;
    assert!((0..1_000_000_000_000_000).contains(&ts), "timestamp {ts}");
    for skew in [0, MAX_SKEW_MS, -MAX_SKEW_MS] {
        assert_eq!(request.check_timestamp(ts + skew), Ok(()));
    }
    for skew in [MAX_SKEW_MS + 1, -MAX_SKEW_MS - 1] {
        assert_eq!(request.check_timestamp(ts + skew), Err(SignedError::Stale));
    }
    let _ = request.check_timestamp(now().timestamp_millis());
}

/// FNV-1a, to derive a nonce from the input.
fn fnv(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Input: up to five lines — `X-Keymint-Key-Id`, `X-Keymint-Timestamp`,
/// `X-Keymint-Nonce`, `Authorization`, the request path — then the body. A
/// missing line is a missing header. The request is parsed, its timestamp
/// window checked, and it is verified against the fixture key; it must
/// verify exactly when it carries the fixture key's id and the signature
/// [`signed::sign_request`] makes for it. Then a round trip: what
/// `sign_request` makes for this path and body must verify, once.
pub fn signed_request(data: &[u8]) -> bool {
    let mut parts = data.splitn(6, |&b| b == b'\n');
    let mut headers = Vec::new();
    for name in [
        signed::KEY_ID_HEADER,
        signed::TIMESTAMP_HEADER,
        signed::NONCE_HEADER,
        "authorization",
    ] {
        if let Some(line) = parts.next()
            && let Ok(value) = HeaderValue::from_bytes(line)
        {
            headers.push((HeaderName::from_static(name), value));
        }
    }
    let uri: Uri = parts
        .next()
        .and_then(|line| std::str::from_utf8(line).ok())
        .filter(|p| p.starts_with('/'))
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| Uri::from_static("/oauth/token"));
    let body = parts.next().unwrap_or_default();
    let path_and_query = uri.path_and_query().map_or("/", |p| p.as_str());

    let req = signed_test_request(path_and_query, &headers);
    let mut accepted = false;
    match signed_input::parse(&req, body) {
        Err(err) => assert_eq!(err, SignedError::Invalid, "parse says only Invalid"),
        Ok(request) => {
            assert!(signed_input::is_signed(&req));
            check_timestamps(&request);
            let presented = req
                .headers()
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().split_once(' '))
                .map(|(_, sig)| sig.trim().to_owned())
                .unwrap_or_default();
            let genuine = request.key_id == SIGNED_KEY_ID
                && presented == expected_signature(&request, req.path(), body);
            let outcomes = verify_signed(&request, genuine);
            if genuine {
                assert_eq!(outcomes[0], Ok(SIGNED_KEY_ID.to_owned()));
                assert_eq!(outcomes[1], Err(SignedError::Reused), "a nonce counts once");
                accepted = true;
            } else {
                assert_eq!(outcomes[0], Err(SignedError::Invalid));
            }
        }
    }

    // Round trip through the client-side signer.
    let now_ms = now().timestamp_millis();
    let nonce = format!("fuzz-{:016x}", fnv(data));
    let method = if data.len().is_multiple_of(2) {
        "POST"
    } else {
        "post"
    };
    let sent = signed::sign_request(
        SIGNED_KEY_SECRET,
        SIGNED_KEY_ID,
        now_ms,
        &nonce,
        method,
        uri.path(),
        body,
    );
    let sent: Vec<(HeaderName, HeaderValue)> = sent
        .into_iter()
        .map(|(name, value)| {
            (
                HeaderName::from_bytes(name.as_bytes()).expect("header name"),
                HeaderValue::from_str(&value).expect("header value"),
            )
        })
        .collect();
    let req = signed_test_request(path_and_query, &sent);
    assert!(signed_input::is_signed(&req));
    let request = signed_input::parse(&req, body).expect("a signed request parses");
    assert_eq!(request.check_timestamp(now_ms), Ok(()));
    let outcomes = verify_signed(&request, true);
    assert_eq!(
        outcomes[0],
        Ok(SIGNED_KEY_ID.to_owned()),
        "sign_request output verifies"
    );
    assert_eq!(outcomes[1], Err(SignedError::Reused));
    // The signature covers the body.
    let mut other = body.to_vec();
    other.push(b'x');
    let request = signed_input::parse(&req, &other).expect("parses");
    assert_eq!(verify_signed(&request, false)[0], Err(SignedError::Invalid));
    accepted
}

// ---------------------------------------------------------------- jwt_verify

struct JwtFixture {
    ring: KeyRing,
    kid: String,
}

fn epoch(secs: i64) -> NaiveDateTime {
    DateTime::from_timestamp(secs, 0).expect("time").naive_utc()
}

/// A key ring with the one fixture ES256 key, built without a database.
fn jwt_fixture() -> &'static JwtFixture {
    static FIXTURE: OnceLock<JwtFixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        keymint::tokens::ring_provider::install();
        let pkcs8 = base64::engine::general_purpose::STANDARD
            .decode(ES256_PKCS8_B64)
            .expect("fixture PKCS#8");
        let alg = jsonwebtoken::Algorithm::ES256;
        let parsed =
            keymint::tokens::ring_provider::ParsedKey::parse(alg, &pkcs8).expect("ES256 key");
        let jwk = signing_keys::public_jwk(alg, parsed.public_key()).expect("JWK");
        let master = MasterKey::from_bytes(MASTER_KEY);
        let aad = Aad {
            table: "signing_keys",
            row_id: &jwk.kid,
            tenant: "",
        };
        let row = SigningKeyRow {
            kid: jwk.kid.clone(),
            alg: jwk.alg.clone(),
            public_jwk: serde_json::to_string(&jwk).expect("JWK JSON"),
            private_key_enc: master
                .encrypt(Purpose::SigningKeys, &aad, &pkcs8)
                .expect("seal"),
            created_at: epoch(1_700_000_000),
            activates_at: epoch(1_700_000_000),
            retired_at: None,
            revoked_at: None,
        };
        let settings = SigningSettings {
            alg: SigningAlg::ES256,
            jwks_max_age_s: 300,
            prepublish_s: 0,
            reload_s: 60,
            rotation_interval_s: 86_400,
        };
        let ring = KeyRing::load(&[row], &master, &settings, now().naive_utc()).expect("key ring");
        JwtFixture { ring, kid: jwk.kid }
    })
}

fn verify_token(token: &str) -> Result<AccessClaims, VerifyError> {
    verify::verify(
        &jwt_fixture().ring,
        token,
        ISSUER,
        Some(AUDIENCE),
        now().timestamp(),
    )
}

/// `verify` on the input as a token, then on [`VALID_JWT`] changed by the
/// input: each 3-byte group `lo hi x` XORs `x` into the byte at `hi:lo`
/// (mod length), and 1–2 left-over bytes cut that many + the first of them
/// characters off the end. Any change must be refused; no change must pass.
pub fn jwt_verify(data: &[u8]) -> bool {
    let fixture = jwt_fixture();
    let mut accepted = false;
    if let Ok(token) = std::str::from_utf8(data) {
        for audience in [Some(AUDIENCE), None] {
            let result = verify::verify(&fixture.ring, token, ISSUER, audience, now().timestamp());
            if let Ok(claims) = result {
                assert_eq!(claims.iss, ISSUER);
                if let Some(audience) = audience {
                    assert_eq!(claims.aud, audience);
                }
                let (kid, _) = verify::key_of(token).expect("a verified token has a key");
                assert_eq!(kid, fixture.kid);
                accepted = true;
            }
        }
    }

    let original = VALID_JWT.as_bytes();
    let mut mutated = original.to_vec();
    let groups = data.chunks_exact(3);
    let rest = groups.remainder();
    for group in groups {
        let at = usize::from(u16::from_le_bytes([group[0], group[1]])) % mutated.len();
        mutated[at] ^= group[2];
    }
    if let Some(&cut) = rest.first() {
        let cut = (usize::from(cut) + rest.len()).min(mutated.len());
        mutated.truncate(mutated.len() - cut);
    }
    let result = std::str::from_utf8(&mutated).map(verify_token);
    if mutated == original {
        assert!(
            matches!(result, Ok(Ok(_))),
            "the genuine token verifies: {result:?}"
        );
    } else if let Ok(Ok(claims)) = result {
        panic!(
            "a changed token verified: {:?} -> {claims:?}",
            String::from_utf8_lossy(&mutated)
        );
    }
    accepted
}
