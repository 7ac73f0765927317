//! The HTTP side of the harness, as methods on `TestApp`: token exchanges in
//! every form, admin-API calls with or without `X-Tenant`, key creation, and
//! a downstream service's check of a token. Methods named `*_answer`/`api`
//! return an [`Answer`] instead of asserting, so a suite can compare answers
//! with its own expectations; the rest return the raw response or assert
//! that what must work did.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use reqwest::{Method, RequestBuilder, Response};
use serde_json::{Value, json};

use crate::helpers::TestApp;

pub const EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
pub const API_KEY_TYPE: &str = "urn:keymint:params:token-type:api-key";

/// One exchange form.
#[derive(Debug, Clone, Copy)]
pub enum Form {
    Basic,
    Post,
    Exchange,
    ApiKeyHeader,
    XApiKey,
}

pub const ALL_FORMS: [Form; 5] = [
    Form::Basic,
    Form::Post,
    Form::Exchange,
    Form::ApiKeyHeader,
    Form::XApiKey,
];

/// The reserved scopes, by the short names the powers suites use.
pub mod reserved {
    pub const READ: &str = "admin:keys:read";
    pub const WRITE: &str = "admin:keys:write";
    pub const SELF: &str = "keys:self";
    pub const SETTINGS: &str = "admin:settings";
    pub const TENANTS: &str = "admin:tenants";
    pub const AUDIT: &str = "admin:audit";
    pub const SIGNING: &str = "admin:signing-keys";
    pub const EVENTS: &str = "admin:events";
    pub const INTROSPECT: &str = "tokens:introspect";
}

/// An HTTP Basic `Authorization` value for a key id and secret.
pub fn basic(id: &str, secret: &str) -> String {
    format!("Basic {}", STANDARD.encode(format!("{id}:{secret}")))
}

/// A fresh signed-request nonce.
pub fn nonce() -> String {
    uuid::Uuid::now_v7().simple().to_string()
}

/// The value of one series (its name with labels, as exposed) in a
/// Prometheus text, if present.
pub fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(series))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// A JWT's claims, read without checking the signature.
pub fn claims_unverified(token: &str) -> Value {
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

/// An admin-audience token for `secret` from the server at `node` whose
/// issuer is `issuer` (a replica's, when the servers are not a `TestApp`).
pub async fn admin_token_at(
    http: &reqwest::Client,
    node: &str,
    secret: &str,
    issuer: &str,
) -> String {
    let response = http
        .post(format!("{node}/api/v1/token"))
        .header("X-API-Key", secret)
        .json(&json!({"audience": format!("{issuer}/api")}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "admin token");
    let body: Value = response.json().await.unwrap();
    body["access_token"].as_str().unwrap().to_owned()
}

/// Creates a key through the admin API at `node` (a server that is not a
/// `TestApp`); returns its view with `key`.
pub async fn create_key_at(http: &reqwest::Client, node: &str, admin: &str, body: Value) -> Value {
    let response = http
        .post(format!("{node}/api/v1/keys"))
        .bearer_auth(admin)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201, "create key");
    response.json().await.unwrap()
}

/// Exchanges `secret` at `node`'s `/api/v1/token`; returns the access token.
pub async fn access_token_at(http: &reqwest::Client, node: &str, secret: &str) -> String {
    let response = http
        .post(format!("{node}/api/v1/token"))
        .header("X-API-Key", secret)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "token");
    let body: Value = response.json().await.unwrap();
    body["access_token"].as_str().unwrap().to_owned()
}

/// What an admin-API or token call answered.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub content_type: Option<String>,
    pub www_authenticate: Option<String>,
    /// The JSON body, or `Null` when there was none (204) or it was not JSON.
    pub body: Value,
}

impl Answer {
    /// A 403 carrying the RFC 6750 challenge for a missing permission, in a
    /// problem+json body.
    pub fn is_insufficient_scope(&self) -> bool {
        self.status == 403
            && self.is_problem()
            && self
                .www_authenticate
                .as_deref()
                .is_some_and(|c| c.contains("error=\"insufficient_scope\""))
    }

    pub fn is_problem(&self) -> bool {
        self.content_type.as_deref() == Some("application/problem+json")
    }

    pub fn str(&self, member: &str) -> Option<&str> {
        self.body.get(member).and_then(Value::as_str)
    }
}

async fn answer(response: reqwest::Response) -> Answer {
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let status = response.status().as_u16();
    let content_type = header("content-type");
    let www_authenticate = header("www-authenticate");
    let text = response.text().await.unwrap_or_default();
    Answer {
        status,
        content_type,
        www_authenticate,
        body: serde_json::from_str(&text).unwrap_or(Value::Null),
    }
}

impl TestApp {
    /// What the metrics listener answers now.
    pub async fn metrics_text(&self) -> String {
        let url = format!("http://127.0.0.1:{}/metrics", self.metrics_port);
        let response = self.client.get(&url).send().await.unwrap();
        response.text().await.unwrap()
    }

    /// Exchanges `secret` through `form`, with `params` as the form fields or
    /// JSON members the form carries.
    pub async fn exchange(&self, form: Form, secret: &str, params: &[(&str, &str)]) -> Response {
        self.exchange_as(form, None, secret, params).await
    }

    /// Exchanges `secret` through `form`; `key_id` is needed for client_credentials.
    pub async fn exchange_as(
        &self,
        form: Form,
        key_id: Option<&str>,
        secret: &str,
        params: &[(&str, &str)],
    ) -> Response {
        match form {
            Form::Basic | Form::Post | Form::Exchange => {
                let mut fields: Vec<(String, String)> = params
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect();
                let mut request = self.client.post(self.url("/oauth/token"));
                match form {
                    Form::Basic => {
                        fields.push(("grant_type".into(), "client_credentials".into()));
                        let id = key_id.expect("client_credentials needs the key id");
                        request = request.header("Authorization", basic(id, secret));
                    }
                    Form::Post => {
                        fields.push(("grant_type".into(), "client_credentials".into()));
                        fields.push(("client_id".into(), key_id.expect("key id").into()));
                        fields.push(("client_secret".into(), secret.into()));
                    }
                    _ => {
                        fields.push(("grant_type".into(), EXCHANGE.into()));
                        fields.push(("subject_token".into(), secret.into()));
                        fields.push(("subject_token_type".into(), API_KEY_TYPE.into()));
                    }
                }
                request.form(&fields).send().await.unwrap()
            }
            Form::ApiKeyHeader | Form::XApiKey => {
                let mut body = serde_json::Map::new();
                for (k, v) in params {
                    body.insert(k.to_string(), Value::String(v.to_string()));
                }
                let mut request = self.client.post(self.url("/api/v1/token"));
                request = match form {
                    Form::ApiKeyHeader => {
                        request.header("Authorization", format!("ApiKey {secret}"))
                    }
                    _ => request.header("X-API-Key", secret),
                };
                if !body.is_empty() {
                    request = request.json(&body);
                }
                request.send().await.unwrap()
            }
        }
    }

    /// The access token `secret` gets through `X-API-Key`; the exchange must
    /// succeed.
    pub async fn access_token(&self, secret: &str, params: &[(&str, &str)]) -> String {
        let response = self.exchange(Form::XApiKey, secret, params).await;
        assert_eq!(response.status(), 200, "the key exchanges");
        let body: Value = response.json().await.unwrap();
        body["access_token"].as_str().unwrap().to_owned()
    }

    /// The id client_credentials names for `secret`, read from the
    /// `client_id` of a token the API key form issues.
    pub async fn key_id_of(&self, secret: &str) -> String {
        let response = self.exchange(Form::ApiKeyHeader, secret, &[]).await;
        assert_eq!(response.status(), 200, "the key exchanges");
        let body: Value = response.json().await.unwrap();
        claims_unverified(body["access_token"].as_str().unwrap())["client_id"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// Verifies a token as a downstream service would: JWKS over HTTP, `kid`,
    /// `alg`, `typ`, `iss`, `aud`, `exp`.
    pub async fn verify(&self, token: &str, audience: &str) -> Value {
        keymint::tokens::ring_provider::install();
        let jwks: JwkSet = self
            .get("/.well-known/jwks.json")
            .await
            .json()
            .await
            .unwrap();
        let header = jsonwebtoken::decode_header(token).unwrap();
        assert_eq!(header.typ.as_deref(), Some("at+jwt"));
        assert_eq!(header.alg, Algorithm::ES256);
        let kid = header.kid.expect("kid");
        let jwk = jwks.find(&kid).expect("the token's kid is published");
        let key = DecodingKey::from_jwk(jwk).unwrap();
        let mut validation = Validation::new(Algorithm::ES256);
        validation.leeway = 0;
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&[audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub", "nbf", "iat"]);
        jsonwebtoken::decode::<Value>(token, &key, &validation)
            .expect("the token verifies")
            .claims
    }

    /// `POST /api/v1/token` with `X-API-Key`; `body` holds `audience`,
    /// `scope`, `expires_in` as wanted (`Null` sends no body).
    pub async fn token_answer(&self, secret: &str, body: Value) -> Answer {
        let mut request = self
            .client
            .post(self.url("/api/v1/token"))
            .header("X-API-Key", secret);
        if !body.is_null() {
            request = request.json(&body);
        }
        answer(request.send().await.expect("token request")).await
    }

    /// An admin-audience token for `secret`, if the key may have one.
    pub async fn try_admin_token(&self, secret: &str) -> Option<String> {
        let answer = self
            .token_answer(secret, json!({"audience": self.admin_audience}))
            .await;
        (answer.status == 200)
            .then(|| answer.str("access_token").map(str::to_owned))
            .flatten()
    }

    /// An admin-audience token for `secret`; the key must be able to have one.
    pub async fn admin_token(&self, secret: &str) -> String {
        match self.try_admin_token(secret).await {
            Some(token) => token,
            None => panic!("no admin token for a key that should have one"),
        }
    }

    fn admin_request(
        &self,
        method: &str,
        path: &str,
        token: &str,
        x_tenant: Option<&str>,
        body: Option<Value>,
    ) -> RequestBuilder {
        let method = Method::from_bytes(method.as_bytes()).expect("an HTTP method");
        let mut request = self
            .client
            .request(method, self.url(path))
            .header("Authorization", format!("Bearer {token}"));
        if let Some(slug) = x_tenant {
            request = request.header("X-Tenant", slug);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        request
    }

    /// One admin-API request as `token`.
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> Response {
        self.admin_request(method, path, token, None, body)
            .send()
            .await
            .unwrap()
    }

    /// One admin-API request as `token`, acting in `tenant` through `X-Tenant`.
    pub async fn call_in_tenant(
        &self,
        method: &str,
        path: &str,
        token: &str,
        tenant: &str,
        body: Option<Value>,
    ) -> Response {
        self.admin_request(method, path, token, Some(tenant), body)
            .send()
            .await
            .unwrap()
    }

    /// One admin-API request as `token`, acting in `x_tenant` when given.
    pub async fn api(
        &self,
        method: &str,
        path: &str,
        token: &str,
        x_tenant: Option<&str>,
        body: Option<Value>,
    ) -> Answer {
        let request = self.admin_request(method, path, token, x_tenant, body);
        answer(request.send().await.expect("admin request")).await
    }

    /// `PATCH /api/v1/settings` as a JSON merge patch, answered as it comes.
    pub async fn patch_settings(&self, token: &str, body: Value) -> Response {
        self.client
            .patch(self.url("/api/v1/settings"))
            .header("Authorization", format!("Bearer {token}"))
            .header("Content-Type", "application/merge-patch+json")
            .body(body.to_string())
            .send()
            .await
            .unwrap()
    }

    /// Creates a key that must be created: the view plus `key`.
    pub async fn create_key(&self, token: &str, body: Value) -> Value {
        self.create_key_in(token, None, body).await
    }

    /// Creates a key, acting in `x_tenant` when given, that must be created:
    /// the view plus `key`.
    pub async fn create_key_in(&self, token: &str, x_tenant: Option<&str>, body: Value) -> Value {
        let answer = self
            .api("POST", "/api/v1/keys", token, x_tenant, Some(body.clone()))
            .await;
        assert_eq!(answer.status, 201, "creating {body}: {:?}", answer.body);
        answer.body
    }

    /// Every key `token` lists (following cursors), or the refusal.
    pub async fn list_all(
        &self,
        token: &str,
        x_tenant: Option<&str>,
    ) -> Result<Vec<Value>, Answer> {
        let mut items = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let path = match &cursor {
                Some(c) => format!("/api/v1/keys?limit=200&cursor={c}"),
                None => "/api/v1/keys?limit=200".to_owned(),
            };
            let page = self.api("GET", &path, token, x_tenant, None).await;
            if page.status != 200 {
                return Err(page);
            }
            if let Some(found) = page.body["items"].as_array() {
                items.extend(found.iter().cloned());
            }
            match page.str("next_cursor") {
                Some(next) => cursor = Some(next.to_owned()),
                None => return Ok(items),
            }
        }
    }

    /// A key as the bootstrap admin sees it (`None`: not found).
    pub async fn key_as_admin(&self, root: &str, tenant: Option<&str>, id: &str) -> Option<Value> {
        let answer = self
            .api("GET", &format!("/api/v1/keys/{id}"), root, tenant, None)
            .await;
        match answer.status {
            200 => Some(answer.body),
            404 => None,
            other => panic!(
                "the bootstrap admin reads key {id}: {other} {:?}",
                answer.body
            ),
        }
    }

    /// Creates tenant `slug` as `root`.
    pub async fn new_tenant(&self, root: &str, slug: &str) {
        let answer = self
            .api(
                "POST",
                "/api/v1/tenants",
                root,
                None,
                Some(json!({"slug": slug, "name": slug})),
            )
            .await;
        assert_eq!(
            answer.status, 201,
            "creating tenant {slug}: {:?}",
            answer.body
        );
    }

    /// `PATCH /api/v1/settings` that must succeed.
    pub async fn set_settings(&self, root: &str, x_tenant: Option<&str>, patch: Value) {
        let answer = self
            .api(
                "PATCH",
                "/api/v1/settings",
                root,
                x_tenant,
                Some(patch.clone()),
            )
            .await;
        assert_eq!(answer.status, 200, "settings {patch}: {:?}", answer.body);
    }
}

/// A Security Event Token as a receiver checks it (RFC 8417 §2, RFC 8935
/// §2): signature by a key in `issuer`'s JWKS, `typ: secevent+jwt`, `iss`,
/// `aud`; SETs carry no `exp`. The claims.
pub async fn verify_set(
    http: &reqwest::Client,
    issuer: &str,
    token: &str,
    audience: &str,
) -> Value {
    keymint::tokens::ring_provider::install();
    let jwks: JwkSet = http
        .get(format!("{issuer}/.well-known/jwks.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let header = jsonwebtoken::decode_header(token).unwrap();
    assert_eq!(header.typ.as_deref(), Some("secevent+jwt"));
    let kid = header.kid.expect("kid");
    let jwk = jwks.find(&kid).expect("the SET's kid is published");
    let key = DecodingKey::from_jwk(jwk).unwrap();
    let mut validation = Validation::new(header.alg);
    validation.set_issuer(&[issuer]);
    validation.set_audience(&[audience]);
    validation.set_required_spec_claims(&["iss", "aud", "iat", "jti"]);
    validation.validate_exp = false;
    jsonwebtoken::decode::<Value>(token, &key, &validation)
        .expect("the SET verifies")
        .claims
}

/// The keymint event of a SET's claims: (its short name, its member).
pub fn keymint_event(claims: &Value) -> (String, Value) {
    let events = claims["events"].as_object().expect("events");
    events
        .iter()
        .find_map(|(uri, body)| {
            uri.strip_prefix("urn:keymint:event:")
                .map(|name| (name.to_owned(), body.clone()))
        })
        .expect("a urn:keymint:event: member")
}

impl TestApp {
    /// Registers an event stream that must be registered: its view.
    pub async fn create_stream(&self, token: &str, body: Value) -> Value {
        let answer = self
            .api(
                "POST",
                "/api/v1/event-streams",
                token,
                None,
                Some(body.clone()),
            )
            .await;
        assert_eq!(answer.status, 201, "registering {body}: {:?}", answer.body);
        answer.body
    }
}
/// A code host's secret-scanning sender: its own ECDSA P-256 key pair,
/// published to the server as `leaks.sender_keys`, and signed leak reports
/// (`POST /api/v1/leaks`) as the partner program sends them.
pub struct LeakSender {
    pub key_id: String,
    pair: ring::signature::EcdsaKeyPair,
    rng: ring::rand::SystemRandom,
}

impl LeakSender {
    pub fn new(key_id: &str) -> Self {
        use ring::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair};
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref(), &rng)
            .unwrap();
        Self {
            key_id: key_id.to_owned(),
            pair,
            rng,
        }
    }

    /// The public key as code hosts publish it: PEM SubjectPublicKeyInfo.
    pub fn pem(&self) -> String {
        use ring::signature::KeyPair;
        let der = keymint::domain::sender_key::SenderKey::spki_der(self.pair.public_key().as_ref());
        let b64 = STANDARD.encode(der);
        let lines: Vec<&str> = b64
            .as_bytes()
            .chunks(64)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect();
        format!(
            "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
            lines.join("\n")
        )
    }

    /// The `[leaks]` table that trusts this sender, `reports_per_s` as
    /// given, laid out as the README shows it.
    pub fn toml(&self, reports_per_s: f64) -> String {
        format!(
            "[leaks]\nsender_keys = [\n  {{ key_identifier = \"{}\", key = \"\"\"{}\"\"\" }},\n]\n\
             reports_per_s = {reports_per_s:?}\n",
            self.key_id,
            self.pem().trim_end()
        )
    }

    /// Base64 (standard) of the DER signature over `body`.
    pub fn sign(&self, body: &[u8]) -> String {
        STANDARD.encode(self.pair.sign(&self.rng, body).unwrap())
    }

    /// A report of `body` with whatever headers are given, as raw bytes.
    pub async fn post(
        app: &TestApp,
        key_id: Option<&str>,
        signature: Option<&str>,
        body: Vec<u8>,
    ) -> Response {
        let mut request = app
            .client
            .post(app.url("/api/v1/leaks"))
            .header("Content-Type", "application/json");
        if let Some(id) = key_id {
            request = request.header("Github-Public-Key-Identifier", id);
        }
        if let Some(signature) = signature {
            request = request.header("Github-Public-Key-Signature", signature);
        }
        request.body(body).send().await.expect("leak report")
    }

    /// `body` signed by this sender, answered as it comes.
    pub async fn report_bytes(&self, app: &TestApp, body: Vec<u8>) -> Answer {
        let signature = self.sign(&body);
        answer(Self::post(app, Some(&self.key_id), Some(&signature), body).await).await
    }

    /// A signed report of `items` (a JSON array of {token, type, url, source}).
    pub async fn report(&self, app: &TestApp, items: &Value) -> Answer {
        self.report_bytes(app, items.to_string().into_bytes()).await
    }
}

/// One reported token in the partner format.
pub fn leak(token: &str, url: &str) -> Value {
    json!({"token": token, "type": "keymint_api_key", "url": url, "source": "content"})
}

/// Hex SHA-256, as a report's answer names tokens.
pub fn sha256_hex(text: &str) -> String {
    ring::digest::digest(&ring::digest::SHA256, text.as_bytes())
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
