//! The OpenAPI 3.1 document, generated from the handlers' `#[utoipa::path]`
//! annotations and the response types' `ToSchema` derives.
//!
//! Request bodies are parsed field by field (so every bad field can be
//! named), not deserialized into a struct; the `*Request` types below only
//! describe them, and a unit test keeps their fields equal to the parsers'.//!
//! The document sits on top of the HTTP floor: it names every handler. The
//! types the handlers' annotations name live in `schemas`, below it, so no
//! route imports the assembly.

pub mod schemas;

use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use schemas::{OAuthErrorDoc, ProblemDoc};

/// Security scheme names used by the path annotations.
pub const ADMIN_BEARER: &str = "admin_bearer";
pub const CLIENT_BASIC: &str = "client_basic";
pub const API_KEY_HEADER: &str = "api_key_header";
pub const SIGNED_REQUEST: &str = "signed_request";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "keymint",
        description = "Token-exchange authorization server: long-lived API keys in, short-lived JWTs (RFC 9068) out.\n\n\
Admin routes (`/api/v1/*` except `/api/v1/token`) take `Authorization: Bearer <JWT>` whose audience is the admin audience and answer errors as RFC 9457 `application/problem+json`. \
Token, introspection and revocation endpoints answer errors as RFC 6749 §5.2 JSON.\n\n\
`/api/v1/token` also accepts `Authorization: ApiKey <secret>`; signed (advanced) keys send `X-Keymint-Key-Id`, `X-Keymint-Timestamp`, `X-Keymint-Nonce` and `Authorization: KM-HMAC-SHA256 <hex>`.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    paths(
        crate::routes::health::healthz,
        crate::routes::health::readyz,
        crate::routes::docs::openapi_json,
        crate::routes::docs::index_redirect,
        crate::routes::docs::asset,
        crate::routes::console::index_redirect,
        crate::routes::console::page,
        crate::routes::console::asset,
        crate::routes::wellknown::jwks,
        crate::routes::wellknown::oauth_authorization_server,
        crate::routes::wellknown::openid_configuration,
        crate::routes::status_lists::list,
        crate::routes::status_lists::aggregation,
        crate::routes::token::oauth_token,
        crate::routes::token::api_token,
        crate::routes::oauth::introspect,
        crate::routes::oauth::revoke,
        crate::routes::keys::create,
        crate::routes::keys::list,
        crate::routes::keys::revoke_many,
        crate::routes::keys::get,
        crate::routes::keys::patch,
        crate::routes::keys::delete,
        crate::routes::keys::revoke,
        crate::routes::keys::rotate,
        crate::routes::settings::get,
        crate::routes::settings::patch,
        crate::routes::tenants::create,
        crate::routes::tenants::list,
        crate::routes::tenants::patch,
        crate::routes::audit::list,
        crate::routes::signing_keys::list,
        crate::routes::signing_keys::rotate,
        crate::routes::signing_keys::revoke,
        crate::routes::event_streams::create,
        crate::routes::event_streams::list,
        crate::routes::event_streams::get,
        crate::routes::event_streams::patch,
        crate::routes::event_streams::delete,
        crate::routes::event_streams::deliveries,
        crate::routes::event_streams::replay,
        crate::routes::leaks::report,
    ),
    components(schemas(ProblemDoc, OAuthErrorDoc, crate::error::OAuthErrorCode, crate::error::FieldError,
        schemas::SecurityEventClaims, schemas::SetError)),
    modifiers(&SecuritySchemes),
    tags(
        (name = "tokens", description = "Exchanging an API key for a JWT"),
        (name = "validation", description = "What downstream services use: JWKS, metadata, introspection, revocation"),
        (name = "status", description = "Token Status Lists: every key's status, signed, for offline verifiers"),
        (name = "keys", description = "API keys"),
        (name = "tenants", description = "Tenants, their policy and audit log"),
        (name = "signing-keys", description = "The JWT signing keys (metadata only)"),
        (name = "events", description = "Security events (RFC 8417 SETs) pushed to the tenant's receivers (RFC 8935), and leak reports in"),
        (name = "meta", description = "Health and this documentation"),
    )
)]
pub struct ApiDoc;

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            ADMIN_BEARER,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "An `at+jwt` from keymint whose `aud` is the admin audience",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            CLIENT_BASIC,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Basic)
                    .description(Some(
                        "`key_id:secret`, each form-urlencoded before base64 (RFC 6749 §2.3.1)",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            API_KEY_HEADER,
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "X-API-Key",
                "The API key secret; `Authorization: ApiKey <secret>` is equivalent",
            ))),
        );
        components.add_security_scheme(
            SIGNED_REQUEST,
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "X-Keymint-Key-Id",
                "Advanced keys: with X-Keymint-Timestamp, X-Keymint-Nonce and \
                 `Authorization: KM-HMAC-SHA256 <hex>` (see the README)",
            ))),
        );
    }
}

/// The document as served at `/openapi.json`: the API, and under
/// `webhooks` (OpenAPI 3.1) what keymint sends to event receivers, which
/// utoipa has no derive for.
pub fn document_json() -> Vec<u8> {
    let mut doc = serde_json::to_value(ApiDoc::openapi()).unwrap_or_default();
    if let Some(map) = doc.as_object_mut() {
        map.insert("webhooks".into(), webhooks());
    }
    serde_json::to_vec(&doc).unwrap_or_default()
}

fn webhooks() -> serde_json::Value {
    serde_json::json!({
        "securityEvent": {
            "post": {
                "operationId": "pushSecurityEvent",
                "tags": ["events"],
                "summary": "A Security Event Token pushed to a registered receiver (RFC 8935)",
                "description": "keymint POSTs one SET per event to each enabled stream that wants it, \
    with `Authorization: Bearer <bearer_secret>` when the stream has one. The body is a compact JWS \
    (`typ: secevent+jwt`, signed with a key in `/.well-known/jwks.json`) whose payload is \
    `SecurityEventClaims`. Any 2xx acknowledges it (RFC 8935 says 202); other answers and transport \
    failures are retried with backoff; a 400 with an RFC 8935 error fails the delivery at once. \
    Receivers de-duplicate on `jti`.",
                "requestBody": {
                    "required": true,
                    "content": {
                        "application/secevent+jwt": {
                            "schema": {
                                "type": "string",
                                "description": "Compact JWS; payload: SecurityEventClaims",
                                "contentMediaType": "application/jwt",
                                "contentSchema": {"$ref": "#/components/schemas/SecurityEventClaims"}
                            }
                        }
                    }
                },
                "responses": {
                    "202": {"description": "Accepted"},
                    "400": {
                        "description": "The SET is refused; not retried",
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/SetError"}}}
                    }
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn properties(schema: &str) -> Vec<String> {
        let doc = serde_json::to_value(ApiDoc::openapi()).unwrap();
        let mut names: Vec<String> = doc["components"]["schemas"][schema]["properties"]
            .as_object()
            .unwrap_or_else(|| panic!("{schema} is not in the document"))
            .keys()
            .cloned()
            .collect();
        names.sort();
        names
    }

    fn sorted(fields: &[&str]) -> Vec<String> {
        let mut v: Vec<String> = fields.iter().map(|f| (*f).to_owned()).collect();
        v.sort();
        v
    }

    #[test]
    fn request_schemas_match_the_parsers() {
        assert_eq!(
            properties("CreateKeyRequest"),
            sorted(crate::routes::keys::parse::CREATE_FIELDS)
        );
        assert_eq!(
            properties("PatchKeyRequest"),
            sorted(crate::routes::keys::parse::PATCH_FIELDS)
        );
        assert_eq!(
            properties("SettingsPatch"),
            sorted(crate::routes::settings::FIELDS)
        );
        for schema in ["CreateEventStreamRequest", "PatchEventStreamRequest"] {
            assert_eq!(
                properties(schema),
                sorted(crate::routes::event_streams::FIELDS)
            );
        }
    }
}
