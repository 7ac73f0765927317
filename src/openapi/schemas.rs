//! The types the handlers' `#[utoipa::path]` annotations name: error
//! bodies, the documented shapes of request bodies (parsed field by field,
//! not deserialized; see the parent module) and of documents built by hand.

use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

// ---- error bodies --------------------------------------------------------

/// RFC 9457 problem details, as every admin route answers errors.
#[derive(Serialize, ToSchema)]
#[schema(as = Problem)]
pub struct ProblemDoc {
    /// A URI naming the problem type.
    #[serde(rename = "type")]
    pub type_: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// Every bad field, for 400 and 422.
    pub errors: Option<Vec<crate::error::FieldError>>,
}

/// RFC 6749 §5.2 error, as the token, introspection and revocation
/// endpoints answer.
#[derive(Serialize, ToSchema)]
#[schema(as = OAuthError)]
pub struct OAuthErrorDoc {
    pub error: crate::error::OAuthErrorCode,
    /// Plain ASCII.
    pub error_description: Option<String>,
}

// ---- token endpoints -----------------------------------------------------

/// `POST /oauth/token`, `application/x-www-form-urlencoded`. No parameter
/// may repeat or appear in the query string.
#[derive(Serialize, ToSchema)]
pub struct TokenForm {
    /// `client_credentials` or `urn:ietf:params:oauth:grant-type:token-exchange`.
    pub grant_type: String,
    /// client_credentials: the key id (with `client_secret`), unless Basic is used.
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
    /// Token exchange: the API key secret.
    pub subject_token: Option<String>,
    /// Token exchange: `urn:keymint:params:token-type:api-key`.
    pub subject_token_type: Option<String>,
    /// Token exchange: `urn:ietf:params:oauth:token-type:access_token` or `…:jwt`.
    pub requested_token_type: Option<String>,
    /// Decimal seconds, 30 up to the key's and tenant's maximum.
    pub expires_in: Option<String>,
    /// Space-separated scopes; default: every key scope that fits the audience.
    pub scope: Option<String>,
    /// At most one of `audience` / `resource`.
    pub audience: Option<String>,
    pub resource: Option<String>,
}

/// `POST /api/v1/token`: an optional JSON body.
#[derive(Serialize, ToSchema)]
#[schema(as = ApiTokenRequest)]
pub struct ApiTokenRequest {
    #[schema(minimum = 30, maximum = 3600)]
    pub expires_in: Option<i64>,
    pub scope: Option<String>,
    pub audience: Option<String>,
}

/// `POST /oauth/introspect` and `/oauth/revoke`.
#[derive(Serialize, ToSchema)]
pub struct TokenForm7662 {
    pub token: String,
    /// `access_token` (or, for revocation, the key's own secret).
    pub token_type_hint: Option<String>,
}

/// RFC 7662 answer. Inactive tokens answer exactly `{"active": false}`.
#[derive(Serialize, ToSchema)]
pub struct Introspection {
    pub active: bool,
    pub scope: Option<String>,
    pub client_id: Option<String>,
    pub sub: Option<String>,
    pub aud: Option<String>,
    pub iss: Option<String>,
    pub exp: Option<i64>,
    pub iat: Option<i64>,
    pub nbf: Option<i64>,
    pub jti: Option<String>,
    pub tid: Option<String>,
    pub token_type: Option<String>,
}

/// RFC 7517 key set.
#[derive(Serialize, ToSchema)]
pub struct Jwks {
    pub keys: Vec<crate::tokens::signing::PublicJwk>,
}

/// RFC 8414 metadata (OIDC discovery adds two members).
#[derive(Serialize, ToSchema)]
pub struct Metadata {
    pub issuer: String,
    pub token_endpoint: String,
    pub jwks_uri: String,
    pub response_types_supported: Vec<String>,
    pub grant_types_supported: Vec<String>,
    pub token_endpoint_auth_methods_supported: Vec<String>,
    pub introspection_endpoint: String,
    pub introspection_endpoint_auth_methods_supported: Vec<String>,
    pub revocation_endpoint: String,
    pub revocation_endpoint_auth_methods_supported: Vec<String>,
    /// OpenID discovery only.
    pub subject_types_supported: Option<Vec<String>>,
    /// OpenID discovery only.
    pub id_token_signing_alg_values_supported: Option<Vec<String>>,
    /// `GET /statuslists`: every Token Status List's URI.
    pub status_list_aggregation_endpoint: String,
}

/// `GET /statuslists` (draft-ietf-oauth-status-list §9).
#[derive(Serialize, ToSchema)]
pub struct StatusListAggregation {
    /// The URI of every list, `<issuer>/statuslists/<n>`.
    pub status_lists: Vec<String>,
}

#[derive(Serialize, ToSchema)]
pub struct Health {
    /// `ok`, `ready` or `unavailable`.
    pub status: String,
    /// Why the server is not ready.
    pub reason: Option<String>,
}

// ---- admin request bodies ------------------------------------------------

/// `POST /api/v1/keys`. Unknown fields are 400.
#[derive(Serialize, ToSchema)]
pub struct CreateKeyRequest {
    #[schema(min_length = 1, max_length = 100)]
    pub name: String,
    #[schema(max_length = 1000)]
    pub description: Option<String>,
    /// `^[A-Za-z0-9@._:-]{1,200}$`, not starting with `key:`; default the caller's `sub`.
    #[schema(pattern = "^[A-Za-z0-9@._:-]{1,200}$")]
    pub owner: Option<String>,
    /// At most 50, each `^[A-Za-z0-9:._/-]{1,100}$`.
    #[schema(max_items = 50)]
    pub scopes: Option<Vec<String>>,
    /// RFC 3339, in the future. At most one of expires_at / expires_in_s / never_expires.
    pub expires_at: Option<chrono::DateTime<chrono::Utc>>,
    #[schema(minimum = 1)]
    pub expires_in_s: Option<i64>,
    pub never_expires: Option<bool>,
    /// CIDRs with their host bits clear.
    pub ip_allowlist: Option<Vec<String>>,
    /// `standard` (default) or `advanced` (signed requests).
    pub security_level: Option<String>,
    #[schema(minimum = 30, maximum = 3600)]
    pub max_token_ttl_s: Option<i64>,
    pub audiences: Option<Vec<String>>,
    #[schema(exclusive_minimum = 0)]
    pub rate_limit_per_s: Option<f64>,
    /// Custom claims, nested under `ext` in tokens; ≤ 4 KiB; needs `admin:keys:write`.
    pub claims: Option<Object>,
    /// ≤ 4 KiB.
    pub metadata: Option<Object>,
}

/// `PATCH /api/v1/keys/{id}`: a JSON merge patch; `null` clears a field.
#[derive(Serialize, ToSchema)]
pub struct PatchKeyRequest {
    #[schema(min_length = 1, max_length = 100)]
    pub name: Option<String>,
    pub description: Option<String>,
    pub ip_allowlist: Option<Vec<String>>,
    pub metadata: Option<Object>,
    pub claims: Option<Object>,
    /// Only ever shortened.
    pub expires_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// `POST /api/v1/keys/{id}/revoke`.
#[derive(Serialize, ToSchema)]
pub struct RevokeKeyRequest {
    pub reason: Option<String>,
}

/// `POST /api/v1/keys/revoke`.
#[derive(Serialize, ToSchema)]
pub struct RevokeManyRequest {
    #[schema(min_items = 1, max_items = 1000)]
    pub ids: Vec<String>,
    pub reason: Option<String>,
}

/// `POST /api/v1/keys/{id}/rotate`.
#[derive(Serialize, ToSchema)]
pub struct RotateKeyRequest {
    /// How long the previous secret keeps working (0..604800).
    #[schema(minimum = 0, maximum = 604800)]
    pub grace_period_s: i64,
}

/// `PATCH /api/v1/settings`: a merge patch validated as a whole.
#[derive(Serialize, ToSchema)]
pub struct SettingsPatch {
    pub api_keys_enabled: Option<bool>,
    pub default_key_lifetime_s: Option<i64>,
    pub max_key_lifetime_s: Option<i64>,
    #[schema(minimum = 1, maximum = 1000)]
    pub max_keys_per_owner: Option<i64>,
    #[schema(minimum = 30, maximum = 3600)]
    pub default_token_ttl_s: Option<i64>,
    #[schema(minimum = 30, maximum = 3600)]
    pub max_token_ttl_s: Option<i64>,
    pub require_ip_allowlist: Option<bool>,
    pub allowed_ip_ranges: Option<Vec<String>>,
    pub audiences: Option<Vec<String>>,
    pub default_audience: Option<String>,
    pub default_rate_limit_per_s: Option<f64>,
    /// Days before a key's expiry at which one `key-expiring` event is sent
    /// (at most 10, each 1..3650).
    #[schema(max_items = 10)]
    pub expiry_warning_days: Option<Vec<i64>>,
    /// What a leak report matching a key does: `revoke` (default) or `notify`.
    #[schema(pattern = "^(revoke|notify)$")]
    pub leak_response: Option<String>,
    /// Apply even if the change locks the caller out.
    pub force: Option<bool>,
}

/// `POST /api/v1/event-streams`.
#[derive(Serialize, ToSchema)]
pub struct CreateEventStreamRequest {
    /// The receiver: `https` on a public address (or, within
    /// `events.allowed_networks`, `http` too). Checked again after DNS at
    /// every delivery; redirects are not followed.
    #[schema(max_length = 2048)]
    pub endpoint: String,
    /// The `aud` of every SET sent to it.
    #[schema(min_length = 1, max_length = 200)]
    pub audience: String,
    /// `urn:keymint:event:…` URIs; absent or `null`: every event.
    pub events: Option<Vec<String>>,
    /// Default `true`.
    pub enabled: Option<bool>,
    /// Sent as `Authorization: Bearer …`; stored encrypted, never shown.
    #[schema(min_length = 16, max_length = 512)]
    pub bearer_secret: Option<String>,
}

/// `PATCH /api/v1/event-streams/{id}`: a merge patch; `events: null` means
/// every event, `bearer_secret: null` removes the secret.
#[derive(Serialize, ToSchema)]
pub struct PatchEventStreamRequest {
    #[schema(max_length = 2048)]
    pub endpoint: Option<String>,
    #[schema(min_length = 1, max_length = 200)]
    pub audience: Option<String>,
    pub events: Option<Vec<String>>,
    pub enabled: Option<bool>,
    #[schema(min_length = 16, max_length = 512)]
    pub bearer_secret: Option<String>,
}

/// One reported token of `POST /api/v1/leaks` (the secret-scanning partner
/// format).
#[derive(Serialize, ToSchema)]
pub struct LeakReport {
    #[schema(max_length = 512)]
    pub token: String,
    /// The sender's name for the token's kind.
    #[serde(rename = "type")]
    #[schema(max_length = 100)]
    pub kind: String,
    /// Where it was found.
    #[schema(max_length = 2048)]
    pub url: String,
    /// e.g. `content`, `commit`, `issue`.
    #[schema(max_length = 100)]
    pub source: String,
}

/// The payload of a Security Event Token (RFC 8417) keymint pushes to a
/// receiver: a compact JWS with `typ: secevent+jwt`, signed with a key of
/// the JWKS.
#[derive(Serialize, ToSchema)]
pub struct SecurityEventClaims {
    /// keymint's issuer.
    pub iss: String,
    /// The stream's `audience`.
    pub aud: String,
    pub iat: i64,
    /// Unique per event and stream; the same on every retry and replay.
    pub jti: String,
    /// The request id of the change (`X-Request-Id`), when it came from one.
    pub txn: Option<String>,
    /// The subject (RFC 9493): `{"format": "opaque", "id": <key id, kid or tenant>}`.
    #[schema(value_type = Object)]
    pub sub_id: Value,
    /// One `urn:keymint:event:<name>` member (with `key_id` or `kid`,
    /// `tenant`, `event_timestamp`, `initiating_entity` and the change's
    /// details) and, for key created/revoked/rotated/deleted, CAEP's
    /// `https://schemas.openid.net/secevent/caep/event-type/credential-change`.
    #[schema(value_type = Object)]
    pub events: Value,
}

/// A receiver's refusal of a SET (RFC 8935 §2.3).
#[derive(Serialize, ToSchema)]
pub struct SetError {
    /// e.g. `invalid_request`, `invalid_key`, `invalid_audience`.
    pub err: String,
    pub description: Option<String>,
}

/// `POST /api/v1/tenants`.
#[derive(Serialize, ToSchema)]
pub struct CreateTenantRequest {
    #[schema(pattern = "^[a-z0-9][a-z0-9-]{1,39}$")]
    pub slug: String,
    #[schema(min_length = 1, max_length = 100)]
    pub name: String,
}

/// `PATCH /api/v1/tenants/{slug}`.
#[derive(Serialize, ToSchema)]
pub struct PatchTenantRequest {
    #[schema(min_length = 1, max_length = 100)]
    pub name: Option<String>,
}

/// A JSON object (custom claims, metadata).
pub type Object = serde_json::Map<String, Value>;

/// The problem answers any admin route may give.
#[derive(utoipa::IntoResponses)]
pub enum AdminErrors {
    /// Bad input; `errors` names every bad field (unknown fields included).
    #[response(status = 400, content_type = "application/problem+json")]
    BadRequest(ProblemDoc),
    /// No, or a bad, Bearer token (`WWW-Authenticate: Bearer …`).
    #[response(status = 401, content_type = "application/problem+json")]
    Unauthorized(ProblemDoc),
    /// The token lacks the permission (`error="insufficient_scope"`).
    #[response(status = 403, content_type = "application/problem+json")]
    Forbidden(ProblemDoc),
    /// No such resource, or one the caller may not see.
    #[response(status = 404, content_type = "application/problem+json")]
    NotFound(ProblemDoc),
    /// The resource's state forbids the change.
    #[response(status = 409, content_type = "application/problem+json")]
    Conflict(ProblemDoc),
    /// The body is larger than 64 KiB.
    #[response(status = 413, content_type = "application/problem+json")]
    TooLarge(ProblemDoc),
    /// The body is not JSON.
    #[response(status = 415, content_type = "application/problem+json")]
    UnsupportedMediaType(ProblemDoc),
    /// A tenant policy forbids it.
    #[response(status = 422, content_type = "application/problem+json")]
    PolicyViolation(ProblemDoc),
    /// Rate limited; see `Retry-After`.
    #[response(status = 429, content_type = "application/problem+json")]
    TooManyRequests(ProblemDoc),
    /// The database cannot answer right now, or a list or search could not
    /// run or finish within its bounds (narrow it, or retry); see `Retry-After`.
    #[response(status = 503, content_type = "application/problem+json")]
    Unavailable(ProblemDoc),
}

/// The RFC 6749 §5.2 answers of the token, introspection and revocation
/// endpoints.
#[derive(utoipa::IntoResponses)]
pub enum OAuthErrors {
    /// `invalid_request`, `invalid_scope`, `invalid_target`, `unauthorized_client`, `unsupported_grant_type`.
    #[response(status = 400)]
    BadRequest(OAuthErrorDoc),
    /// `invalid_client`, with `WWW-Authenticate` for the scheme used.
    #[response(status = 401)]
    InvalidClient(OAuthErrorDoc),
    /// The body is larger than 8 KiB.
    #[response(status = 413)]
    TooLarge(OAuthErrorDoc),
    /// `temporarily_unavailable`, with `Retry-After`.
    #[response(status = 429)]
    TooManyRequests(OAuthErrorDoc),
    /// `temporarily_unavailable`: the database cannot answer right now.
    #[response(status = 503)]
    Unavailable(OAuthErrorDoc),
}
