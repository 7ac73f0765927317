//! A stand-in issuer for the status tests: a JWKS and Status List Tokens
//! signed with a P-256 key made here, on 127.0.0.1:0, counting what it
//! serves and breakable on demand (down, slow).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::dev::ServerHandle;
use actix_web::http::header;
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use serde_json::{Value, json};

use crate::domain::status_list::StatusList;
use crate::tokens::signing::{PublicJwk, public_jwk};
use crate::validator::{Verifier, VerifierBuilder};

pub const AUDIENCE: &str = "urn:keymint:tenant:default";

/// A P-256 signing key and its JWK (`kid` = RFC 7638 thumbprint).
pub struct TestKey {
    pub jwk: PublicJwk,
    encoding: EncodingKey,
}

impl TestKey {
    pub fn new() -> Self {
        crate::tokens::ring_provider::install();
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
            .unwrap();
        let jwk = public_jwk(Algorithm::ES256, pair.public_key().as_ref()).unwrap();
        Self {
            jwk,
            encoding: EncodingKey::from_ec_der(pkcs8.as_ref()),
        }
    }

    /// A compact JWS of `claims` with this `typ` (none if `None`).
    pub fn sign(&self, typ: Option<&str>, claims: &Value) -> String {
        let mut header = Header::new(Algorithm::ES256);
        header.typ = typ.map(str::to_owned);
        header.kid = Some(self.jwk.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding).unwrap()
    }
}

struct Served {
    body: String,
    etag: String,
}

#[derive(Default)]
struct State {
    jwks: Mutex<Vec<PublicJwk>>,
    lists: Mutex<HashMap<String, Served>>,
    /// Requests per list path, 304s and failures included.
    hits: Mutex<HashMap<String, u64>>,
    not_modified: AtomicU64,
    versions: AtomicU64,
    down: AtomicBool,
    delay_ms: AtomicU64,
}

pub struct Issuer {
    pub base: String,
    pub key: TestKey,
    state: Arc<State>,
    server: ServerHandle,
}

impl Drop for Issuer {
    fn drop(&mut self) {
        // Sends the stop command now; nobody needs to wait for it.
        drop(self.server.stop(false));
    }
}

async fn serve_jwks(state: web::Data<State>) -> HttpResponse {
    let keys = state.jwks.lock().unwrap().clone();
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "public, max-age=300"))
        .json(json!({ "keys": keys }))
}

async fn serve_list(req: HttpRequest, state: web::Data<State>) -> HttpResponse {
    let path = req.path().to_owned();
    *state.hits.lock().unwrap().entry(path.clone()).or_default() += 1;
    let delay = state.delay_ms.load(Ordering::SeqCst);
    if delay > 0 {
        actix_web::rt::time::sleep(Duration::from_millis(delay)).await;
    }
    if state.down.load(Ordering::SeqCst) {
        return HttpResponse::ServiceUnavailable().finish();
    }
    let lists = state.lists.lock().unwrap();
    let Some(served) = lists.get(&path) else {
        return HttpResponse::NotFound().finish();
    };
    let asked = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok());
    if let Some(location) = served.body.strip_prefix("redirect:") {
        return HttpResponse::Found()
            .insert_header((header::LOCATION, location.to_owned()))
            .finish();
    }
    if asked == Some(served.etag.as_str()) {
        state.not_modified.fetch_add(1, Ordering::SeqCst);
        return HttpResponse::NotModified()
            .insert_header((header::ETAG, served.etag.clone()))
            .finish();
    }
    HttpResponse::Ok()
        .content_type("application/statuslist+jwt")
        .insert_header((header::ETAG, served.etag.clone()))
        .insert_header((header::CACHE_CONTROL, "public, max-age=1"))
        .body(served.body.clone())
}

impl Issuer {
    pub async fn start() -> Self {
        let key = TestKey::new();
        let state = Arc::new(State::default());
        state.jwks.lock().unwrap().push(key.jwk.clone());
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let data = web::Data::from(state.clone());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .route("/.well-known/jwks.json", web::get().to(serve_jwks))
                .route("/statuslists/{name}", web::get().to(serve_list))
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
            key,
            state,
            server: handle,
        }
    }

    pub fn verifier(&self) -> VerifierBuilder {
        Verifier::builder(&self.base).audience(AUDIENCE)
    }

    pub fn uri(&self, name: &str) -> String {
        format!("{}/statuslists/{name}", self.base)
    }

    /// An access token of this issuer, with `status` if given.
    pub fn access_token(&self, status: Option<Value>) -> String {
        let now = chrono::Utc::now().timestamp();
        let mut claims = json!({
            "iss": self.base, "sub": "svc", "aud": AUDIENCE,
            "iat": now, "nbf": now, "exp": now + 300,
            "jti": uuid::Uuid::now_v7().to_string(),
            "client_id": "k", "scope": "orders:read", "tid": "default",
        });
        if let Some(status) = status {
            claims["status"] = status;
        }
        self.key.sign(Some("at+jwt"), &claims)
    }

    /// An access token whose status is entry `idx` of list `name`.
    pub fn token_on(&self, name: &str, idx: u64) -> String {
        self.access_token(Some(
            json!({ "status_list": { "idx": idx, "uri": self.uri(name) } }),
        ))
    }

    /// The claims keymint's list `name` would carry.
    pub fn list_claims(&self, name: &str, list: &StatusList, ttl: f64) -> Value {
        let now = chrono::Utc::now().timestamp();
        json!({
            "sub": self.uri(name), "iat": now, "exp": now + 600, "ttl": ttl,
            "status_list": { "bits": list.bits(), "lst": list.encode() },
        })
    }

    /// Serves `list` as `name`, signed as keymint would, with a new ETag.
    pub fn publish_list(&self, name: &str, list: &StatusList, ttl: f64) {
        let claims = self.list_claims(name, list, ttl);
        self.publish(name, self.key.sign(Some("statuslist+jwt"), &claims));
    }

    /// Serves `body` as list `name`, with a new ETag.
    pub fn publish(&self, name: &str, body: String) {
        let version = self.state.versions.fetch_add(1, Ordering::SeqCst);
        let served = Served {
            body,
            etag: format!("\"v{version}\""),
        };
        let path = format!("/statuslists/{name}");
        self.state.lists.lock().unwrap().insert(path, served);
    }

    /// Answers requests for list `name` with a redirect to `location`.
    pub fn redirect(&self, name: &str, location: &str) {
        self.publish(name, format!("redirect:{location}"));
    }

    pub fn publish_key(&self, jwk: PublicJwk) {
        self.state.jwks.lock().unwrap().push(jwk);
    }

    /// Requests for list `name` so far.
    pub fn hits(&self, name: &str) -> u64 {
        let path = format!("/statuslists/{name}");
        self.state
            .hits
            .lock()
            .unwrap()
            .get(&path)
            .copied()
            .unwrap_or(0)
    }

    pub fn not_modified(&self) -> u64 {
        self.state.not_modified.load(Ordering::SeqCst)
    }

    /// Lists answer 503 while down.
    pub fn set_down(&self, down: bool) {
        self.state.down.store(down, Ordering::SeqCst);
    }

    pub fn set_delay(&self, delay: Duration) {
        let ms = u64::try_from(delay.as_millis()).unwrap();
        self.state.delay_ms.store(ms, Ordering::SeqCst);
    }
}

/// keymint's kind of list, 16 entries: 0 VALID, 1 INVALID, 2 SUSPENDED,
/// 3 the reserved 0x03, the rest VALID.
pub fn sample_list() -> StatusList {
    let mut list = StatusList::new(2, 16).unwrap();
    list.set(1, 1);
    list.set(2, 2);
    list.set(3, 3);
    list
}
