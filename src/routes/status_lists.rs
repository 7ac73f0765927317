//! `GET /statuslists/{id}`: a Token Status List as a signed
//! `application/statuslist+jwt` (draft-ietf-oauth-status-list-20 §8), and
//! `GET /statuslists`, the list of lists (§9). Public, like the JWKS: a
//! list holds statuses by index only, and CORS is open so browser
//! verifiers can fetch it (§8.1 SHOULD).

use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::json;

use crate::app::AppState;
use crate::domain::status_list::MEDIA_TYPE;
use crate::error::ApiError;

#[utoipa::path(operation_id = "statusList", get, path = "/statuslists/{id}", tag = "status",
    params(("id" = u64, Path, description = "The list number, as in a token's `status.status_list.uri`")),
    responses(
        (status = 200, description = "The list as a signed JWT (`typ: statuslist+jwt`; claims `iss sub iat exp ttl status_list {bits: 2, lst}`)",
            content_type = "application/statuslist+jwt", body = String,
            headers(("Cache-Control" = String, description = "public, max-age=<statuslist.ttl_s>"),
                ("ETag" = String, description = "Changes whenever the token does"))),
        (status = 304, description = "`If-None-Match` names the current token"),
        (status = 404, description = "No key has an entry in this list", body = crate::openapi::schemas::ProblemDoc, content_type = "application/problem+json"),
        (status = 406, description = "`Accept` admits no `application/statuslist+jwt`", body = crate::openapi::schemas::ProblemDoc, content_type = "application/problem+json"),
        (status = 501, description = "A `time` parameter: historical lists (§8.4) are not kept", body = crate::openapi::schemas::ProblemDoc, content_type = "application/problem+json"),
        (status = 503, description = "The database or a signing key is unavailable", body = crate::openapi::schemas::ProblemDoc, content_type = "application/problem+json"),
    ))]
pub async fn list(
    req: HttpRequest,
    id: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let id = list_id(&id).ok_or(ApiError::NotFound)?;
    // Historical resolution (§8.4) is optional and not recommended; the
    // draft asks a server without it to say so rather than answer with the
    // current list.
    if url::form_urlencoded::parse(req.query_string().as_bytes()).any(|(name, _)| name == "time") {
        return Err(ApiError::NotImplemented(
            "historical status lists (`time`) are not kept; fetch the current list".to_owned(),
        ));
    }
    if !accepts(&req, MEDIA_TYPE) {
        return Err(ApiError::NotAcceptable(format!(
            "this resource is available as {MEDIA_TYPE} only"
        )));
    }
    let token = state
        .status_lists
        .token(state.status_sources(), id)
        .await?
        .ok_or(ApiError::NotFound)?;
    let ttl_s = state.status_lists.ttl_s();
    let unchanged = none_match(&req, token.etag());
    let mut response = if unchanged {
        HttpResponse::NotModified()
    } else {
        HttpResponse::Ok()
    };
    response
        .insert_header((header::CACHE_CONTROL, cache_control(ttl_s)))
        .insert_header((header::ETAG, token.etag()))
        .insert_header((header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"))
        // Lets a browser verifier read the tag and revalidate with it.
        .insert_header((header::ACCESS_CONTROL_EXPOSE_HEADERS, "ETag"))
        .insert_header((header::VARY, "Accept"));
    if unchanged {
        return Ok(response.finish());
    }
    Ok(response.content_type(MEDIA_TYPE).body(token.body()))
}

#[utoipa::path(operation_id = "statusListAggregation", get, path = "/statuslists", tag = "status",
    responses(
        (status = 200, description = "Every list's URI (the Status List Aggregation, §9)",
            body = crate::openapi::schemas::StatusListAggregation,
            headers(("Cache-Control" = String, description = "public, max-age=<statuslist.ttl_s>"))),
        (status = 503, description = "The database is unavailable", body = crate::openapi::schemas::ProblemDoc, content_type = "application/problem+json"),
    ))]
pub async fn aggregation(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let uris = state.status_lists.uris(state.status_sources()).await?;
    Ok(HttpResponse::Ok()
        .content_type("application/json")
        .insert_header((
            header::CACHE_CONTROL,
            cache_control(state.status_lists.ttl_s()),
        ))
        .insert_header((header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"))
        .body(json!({ "status_lists": uris }).to_string()))
}

fn cache_control(ttl_s: u64) -> HeaderValue {
    // Digits and ASCII only, so the fallback is never taken.
    HeaderValue::try_from(format!("public, max-age={ttl_s}"))
        .unwrap_or_else(|_| HeaderValue::from_static("no-cache"))
}

/// A list number as tokens spell it: decimal, no sign, no leading zero (a
/// token's `sub` must equal the URI it was fetched from).
fn list_id(raw: &str) -> Option<u64> {
    let canonical = !raw.is_empty()
        && raw.len() <= 19
        && raw.bytes().all(|b| b.is_ascii_digit())
        && (raw == "0" || !raw.starts_with('0'));
    canonical.then(|| raw.parse().ok()).flatten()
}

/// Whether `Accept` admits `media_type` (RFC 9110 §12.5.1): no header, or a
/// range that matches it (`*/*`, `type/*` or the type itself) with a
/// non-zero `q`. Parameters other than `q` are ignored.
fn accepts(req: &HttpRequest, media_type: &str) -> bool {
    let values: Vec<&str> = req
        .headers()
        .get_all(header::ACCEPT)
        .filter_map(|v| v.to_str().ok())
        .collect();
    if values.is_empty() {
        return true;
    }
    let (wanted_type, _) = media_type.split_once('/').unwrap_or((media_type, ""));
    values.iter().flat_map(|v| v.split(',')).any(|range| {
        let mut parts = range.split(';');
        let name = parts.next().unwrap_or("").trim().to_ascii_lowercase();
        let zero_q = parts.any(|p| {
            let p = p.trim();
            p.len() > 2
                && p[..2].eq_ignore_ascii_case("q=")
                && p[2..].trim().parse::<f32>().is_ok_and(|q| q <= 0.0)
        });
        let matches = name == "*/*"
            || name == media_type
            || name.strip_suffix("/*").is_some_and(|t| t == wanted_type);
        matches && !zero_q
    })
}

/// Whether `If-None-Match` names `etag` or is `*` (weak comparison, as
/// RFC 9110 §13.1.2 says for GET).
fn none_match(req: &HttpRequest, etag: &str) -> bool {
    req.headers()
        .get_all(header::IF_NONE_MATCH)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .any(|tag| tag == "*" || tag.strip_prefix("W/").unwrap_or(tag) == etag)
}

#[cfg(test)]
mod tests {
    use actix_web::test::TestRequest;

    use super::*;

    #[test]
    fn list_ids_are_canonical_decimals() {
        assert_eq!(list_id("0"), Some(0));
        assert_eq!(list_id("17"), Some(17));
        for bad in [
            "",
            "01",
            "+1",
            "-1",
            "1.0",
            "x",
            "99999999999999999999",
            "1 ",
        ] {
            assert_eq!(list_id(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn accept_admits_the_type_its_ranges_and_nothing_refused() {
        let with = |accept: &str| {
            let req = TestRequest::default()
                .insert_header((header::ACCEPT, accept))
                .to_http_request();
            accepts(&req, MEDIA_TYPE)
        };
        assert!(accepts(
            &TestRequest::default().to_http_request(),
            MEDIA_TYPE
        ));
        assert!(with("application/statuslist+jwt"));
        assert!(with("Application/StatusList+JWT; q=0.5"));
        assert!(with("application/*"));
        assert!(with("*/*"));
        assert!(with(
            "application/statuslist+cwt, application/statuslist+jwt;q=0.1"
        ));
        assert!(!with("application/statuslist+cwt"));
        assert!(!with("application/json"));
        assert!(!with("application/statuslist+jwt;q=0"));
        assert!(!with("text/*"));
    }

    #[test]
    fn if_none_match_compares_weakly_and_takes_a_star() {
        let with = |value: &str| {
            let req = TestRequest::default()
                .insert_header((header::IF_NONE_MATCH, value))
                .to_http_request();
            none_match(&req, "\"abc\"")
        };
        assert!(with("\"abc\""));
        assert!(with("W/\"abc\""));
        assert!(with("\"x\", \"abc\""));
        assert!(with("*"));
        assert!(!with("\"abd\""));
        assert!(!none_match(
            &TestRequest::default().to_http_request(),
            "\"abc\""
        ));
    }
}
