//! Request helpers the attacker's-side suites share, as methods on `TestApp`:
//! tokens for a secret, admin-API calls with or without `X-Tenant`, key
//! creation. They return what came back instead of asserting, so a suite can
//! compare answers with its own expectations.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::TestApp;

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

    /// One admin-API request as `token`, acting in `x_tenant` when given.
    pub async fn api(
        &self,
        method: &str,
        path: &str,
        token: &str,
        x_tenant: Option<&str>,
        body: Option<Value>,
    ) -> Answer {
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
        answer(request.send().await.expect("admin request")).await
    }

    /// Creates a key that must be created: the view plus `key`.
    pub async fn new_key(&self, token: &str, x_tenant: Option<&str>, body: Value) -> Value {
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
