//! What downstream services read: the JWKS and the RFC 8414 metadata.

use actix_web::http::header;
use actix_web::{HttpResponse, web};
use serde_json::json;

use crate::app::AppState;

#[utoipa::path(operation_id = "jwks", get, path = "/.well-known/jwks.json", tag = "validation",
    responses((status = 200, description = "Every key that can have signed a still-valid token, plus the next key",
        body = crate::openapi::schemas::Jwks, headers(("Cache-Control" = String, description = "public, max-age=<signing.jwks_max_age_s>")))))]
pub async fn jwks(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .insert_header((
            header::CACHE_CONTROL,
            format!("public, max-age={}", state.settings.signing.jwks_max_age_s),
        ))
        .insert_header((header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"))
        .body(state.keyring.jwks().to_vec())
}

fn metadata(state: &AppState) -> serde_json::Map<String, serde_json::Value> {
    let issuer = &state.settings.tokens.issuer;
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
    });
    match value {
        serde_json::Value::Object(map) => map,
        _ => serde_json::Map::new(),
    }
}

#[utoipa::path(operation_id = "oauthMetadata", get, path = "/.well-known/oauth-authorization-server", tag = "validation",
    responses((status = 200, description = "RFC 8414 metadata", body = crate::openapi::schemas::Metadata)))]
pub async fn oauth_authorization_server(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"))
        .json(metadata(&state))
}

#[utoipa::path(operation_id = "openidConfiguration", get, path = "/.well-known/openid-configuration", tag = "validation",
    responses((status = 200, description = "OpenID discovery: the RFC 8414 metadata plus two members", body = crate::openapi::schemas::Metadata)))]
pub async fn openid_configuration(state: web::Data<AppState>) -> HttpResponse {
    let mut map = metadata(&state);
    map.insert("subject_types_supported".into(), json!(["public"]));
    let alg = match state.settings.signing.alg {
        crate::config::SigningAlg::ES256 => "ES256",
        crate::config::SigningAlg::EdDSA => "EdDSA",
    };
    map.insert("id_token_signing_alg_values_supported".into(), json!([alg]));
    HttpResponse::Ok()
        .insert_header((header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"))
        .json(map)
}
