//! `GET`/`PATCH /api/v1/settings`: the acting tenant's policy. The patch
//! body is read here (every bad field named) into a typed
//! [`SettingsPatch`]; `tenants::policy` applies it.

use actix_web::{HttpRequest, HttpResponse, web};

use crate::app::AppState;
use crate::domain::audience;
use crate::domain::events::{
    LeakResponse, MAX_EXPIRY_WARNING_DAYS, MAX_EXPIRY_WARNINGS, normalize_warning_days,
};
use crate::domain::lists::{AllowList, Audiences};
use crate::error::ApiError;
use crate::input::body::{BODY_LIMIT, read_limited};
use crate::input::json::{Body, is_json};
use crate::powers::Principal;
use crate::routes::keys::parse::checked;
use crate::tenants::policy::{self, MAX_AUDIENCES, MAX_LIFETIME_S, MAX_RANGES};
use crate::tenants::request::{Changes, SettingsPatch};

#[utoipa::path(operation_id = "getSettings", get, path = "/api/v1/settings", tag = "tenants", security(("admin_bearer" = [])),
    responses((status = 200, description = "The acting tenant's policy", body = crate::tenants::policy::SettingsView), crate::openapi::schemas::AdminErrors))]
pub async fn get(
    principal: Principal,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let power = principal.settings_admin()?;
    let view = policy::view(&state.pool, power, &principal.tenant).await?;
    Ok(HttpResponse::Ok().json(view))
}

#[utoipa::path(operation_id = "updateSettings", patch, path = "/api/v1/settings", tag = "tenants", security(("admin_bearer" = [])),
    request_body(content = crate::openapi::schemas::SettingsPatch, content_type = "application/merge-patch+json"),
    responses((status = 200, description = "The new policy", body = crate::tenants::policy::SettingsView), crate::openapi::schemas::AdminErrors))]
pub async fn patch(
    req: HttpRequest,
    principal: Principal,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let body = read_limited(payload, BODY_LIMIT).await?;
    let power = principal.settings_admin()?;
    if !is_json(&req, true) {
        return Err(ApiError::UnsupportedMediaType(
            "the body must be application/merge-patch+json or application/json".to_owned(),
        ));
    }
    let request = parse_patch(&body)?;
    let view = policy::patch(
        &state.pool,
        &state.settings.tokens.admin_audience,
        &principal,
        power,
        request,
    )
    .await?;
    Ok(HttpResponse::Ok().json(view))
}

pub(crate) const FIELDS: &[&str] = &[
    "api_keys_enabled",
    "default_key_lifetime_s",
    "max_key_lifetime_s",
    "max_keys_per_owner",
    "default_token_ttl_s",
    "max_token_ttl_s",
    "require_ip_allowlist",
    "allowed_ip_ranges",
    "audiences",
    "default_audience",
    "default_rate_limit_per_s",
    "expiry_warning_days",
    "leak_response",
    "force",
];

/// Parses a patch body; every bad field is named.
pub fn parse_patch(bytes: &[u8]) -> Result<SettingsPatch, ApiError> {
    let mut body = Body::parse(bytes, FIELDS)?;
    let f = body.boolean("api_keys_enabled");
    let api_keys_enabled = body.not_null("api_keys_enabled", f);
    let default_key_lifetime_s = body
        .integer("default_key_lifetime_s", 60, MAX_LIFETIME_S)
        .nullable();
    let max_key_lifetime_s = body
        .integer("max_key_lifetime_s", 60, MAX_LIFETIME_S)
        .nullable();
    let f = body.integer("max_keys_per_owner", 1, 1000);
    let max_keys_per_owner = body.not_null("max_keys_per_owner", f);
    let f = body.integer("default_token_ttl_s", 30, 3600);
    let default_token_ttl_s = body.not_null("default_token_ttl_s", f);
    let f = body.integer("max_token_ttl_s", 30, 3600);
    let max_token_ttl_s = body.not_null("max_token_ttl_s", f);
    let f = body.boolean("require_ip_allowlist");
    let require_ip_allowlist = body.not_null("require_ip_allowlist", f);
    let f = body.strings("allowed_ip_ranges", MAX_RANGES, AllowList::check);
    let f = checked(&mut body, "allowed_ip_ranges", f, AllowList::parse);
    let allowed_ip_ranges = body.not_null("allowed_ip_ranges", f);
    let f = body.strings("audiences", MAX_AUDIENCES, Audiences::check);
    let f = checked(&mut body, "audiences", f, Audiences::parse);
    let audiences = body.not_null("audiences", f);
    let f = body.string("default_audience", 1, 200);
    let default_audience = body.not_null("default_audience", f);
    if let Some(d) = &default_audience
        && let Err(e) = audience::check(d)
    {
        body.error("default_audience", e);
    }
    let f = body.positive_number("default_rate_limit_per_s", 1_000_000.0);
    let default_rate_limit_per_s = body.not_null("default_rate_limit_per_s", f);
    let f = body.integers(
        "expiry_warning_days",
        MAX_EXPIRY_WARNINGS,
        1,
        MAX_EXPIRY_WARNING_DAYS,
    );
    let expiry_warning_days = body
        .not_null("expiry_warning_days", f)
        .map(|d| normalize_warning_days(&d));
    let f = body.string("leak_response", 1, 10);
    let leak_response = match body.not_null("leak_response", f) {
        Some(text) => {
            let parsed = LeakResponse::parse(&text);
            if parsed.is_none() {
                body.error("leak_response", "must be \"revoke\" or \"notify\"");
            }
            parsed
        }
        None => None,
    };
    let force = body.boolean("force").value().unwrap_or(false);
    body.finish()?;
    Ok(SettingsPatch {
        changes: Changes {
            api_keys_enabled,
            default_key_lifetime_s,
            max_key_lifetime_s,
            max_keys_per_owner,
            default_token_ttl_s,
            max_token_ttl_s,
            require_ip_allowlist,
            allowed_ip_ranges,
            audiences,
            default_audience,
            default_rate_limit_per_s,
            expiry_warning_days,
            leak_response,
        },
        force,
    })
}
