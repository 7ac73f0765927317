//! What downstream services read: the JWKS and the RFC 8414 metadata.

use actix_web::http::header::{self, HeaderValue};
use actix_web::web::Bytes;
use actix_web::{HttpResponse, web};
use serde_json::json;

use crate::app::AppState;
use crate::config::Settings;

/// What the well-known routes send besides the JWKS body, built once at
/// start-up: it depends only on the settings, which never change while
/// running. Handed in as app data next to `AppState`.
pub struct WellKnown {
    jwks_cache_control: HeaderValue,
    oauth_metadata: Bytes,
    openid_configuration: Bytes,
}

impl WellKnown {
    pub fn new(settings: &Settings) -> Self {
        let max_age = settings.signing.jwks_max_age_s;
        let mut openid = metadata(settings);
        openid.insert("subject_types_supported".into(), json!(["public"]));
        let alg = match settings.signing.alg {
            crate::config::SigningAlg::ES256 => "ES256",
            crate::config::SigningAlg::EdDSA => "EdDSA",
        };
        openid.insert("id_token_signing_alg_values_supported".into(), json!([alg]));
        Self {
            // Digits and ASCII only, so the fallback is never taken.
            jwks_cache_control: HeaderValue::try_from(format!("public, max-age={max_age}"))
                .unwrap_or_else(|_| HeaderValue::from_static("no-cache")),
            oauth_metadata: serialized(metadata(settings)),
            openid_configuration: serialized(openid),
        }
    }
}

/// Serialized as actix's `.json()` did per request, so the bytes are the same.
fn serialized(map: serde_json::Map<String, serde_json::Value>) -> Bytes {
    Bytes::from(serde_json::Value::Object(map).to_string())
}

fn json_ok(body: Bytes) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .insert_header((header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"))
        .body(body)
}

#[utoipa::path(operation_id = "jwks", get, path = "/.well-known/jwks.json", tag = "validation",
    responses((status = 200, description = "Every key that can have signed a still-valid token, plus the next key",
        body = crate::openapi::schemas::Jwks, headers(("Cache-Control" = String, description = "public, max-age=<signing.jwks_max_age_s>")))))]
pub async fn jwks(state: web::Data<AppState>, known: web::Data<WellKnown>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .insert_header((header::CACHE_CONTROL, known.jwks_cache_control.clone()))
        .insert_header((header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"))
        .body(state.keyring.jwks())
}

fn metadata(settings: &Settings) -> serde_json::Map<String, serde_json::Value> {
    let issuer = &settings.tokens.issuer;
    let auth_methods = json!(["client_secret_basic", "client_secret_post"]);
    let value = json!({
        "issuer": issuer,
        "token_endpoint": format!("{issuer}/oauth/token"),
        "jwks_uri": format!("{issuer}/.well-known/jwks.json"),
        "response_types_supported": [],
        "grant_types_supported": [
            "client_credentials",
            "urn:ietf:params:oauth:grant-type:token-exchange"
        ],
        "token_endpoint_auth_methods_supported": auth_methods,
        "introspection_endpoint": format!("{issuer}/oauth/introspect"),
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic"],
        "revocation_endpoint": format!("{issuer}/oauth/revoke"),
        "revocation_endpoint_auth_methods_supported": auth_methods,
        "status_list_aggregation_endpoint": format!("{issuer}/statuslists"),
    });
    match value {
        serde_json::Value::Object(map) => map,
        _ => serde_json::Map::new(),
    }
}

#[utoipa::path(operation_id = "oauthMetadata", get, path = "/.well-known/oauth-authorization-server", tag = "validation",
    responses((status = 200, description = "RFC 8414 metadata", body = crate::openapi::schemas::Metadata)))]
pub async fn oauth_authorization_server(known: web::Data<WellKnown>) -> HttpResponse {
    json_ok(known.oauth_metadata.clone())
}

#[utoipa::path(operation_id = "openidConfiguration", get, path = "/.well-known/openid-configuration", tag = "validation",
    responses((status = 200, description = "OpenID discovery: the RFC 8414 metadata plus two members", body = crate::openapi::schemas::Metadata)))]
pub async fn openid_configuration(known: web::Data<WellKnown>) -> HttpResponse {
    json_ok(known.openid_configuration.clone())
}
