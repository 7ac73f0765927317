//! `GET /openapi.json` (the document generated from the handlers) and the
//! Swagger UI at `/docs/`, whose files are compiled into the binary so the
//! page works with no network.

use std::sync::{Arc, LazyLock};

use actix_web::http::header;
use actix_web::web::Bytes;
use actix_web::{HttpResponse, ResponseError, web};

use crate::error::ApiError;
use crate::openapi::schemas::ProblemDoc;

/// The OpenAPI document, serialized once at start-up. Handed in as app data
/// because the document is assembled from these very handlers (`openapi`
/// sits above the routes).
pub struct Document(pub Bytes);

static UI_CONFIG: LazyLock<Arc<utoipa_swagger_ui::Config<'static>>> = LazyLock::new(|| {
    Arc::new(
        utoipa_swagger_ui::Config::from("/openapi.json")
            .try_it_out_enabled(false)
            .display_request_duration(true),
    )
});

#[utoipa::path(operation_id = "openapi", 
    get,
    path = "/openapi.json",
    tag = "meta",
    responses((status = 200, description = "This OpenAPI 3.1 document", content_type = "application/json", body = Object))
)]
pub async fn openapi_json(document: web::Data<Document>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .insert_header((header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"))
        .body(document.0.clone())
}

#[utoipa::path(operation_id = "docsRedirect", 
    get,
    path = "/docs",
    tag = "meta",
    responses((status = 308, description = "Redirects to `/docs/`", headers(("Location" = String))))
)]
pub async fn index_redirect() -> HttpResponse {
    HttpResponse::PermanentRedirect()
        .insert_header((header::LOCATION, "/docs/"))
        .finish()
}

#[utoipa::path(operation_id = "docsAsset", 
    get,
    path = "/docs/{file}",
    tag = "meta",
    params(("file" = String, Path, description = "A Swagger UI file; empty for the page itself")),
    responses(
        (status = 200, description = "The interactive documentation page or one of its assets", content_type = "text/html"),
        (status = 404, description = "No such file", body = ProblemDoc, content_type = "application/problem+json"),
    )
)]
pub async fn asset(file: web::Path<String>) -> HttpResponse {
    match utoipa_swagger_ui::serve(&file, UI_CONFIG.clone()) {
        Ok(Some(asset)) => HttpResponse::Ok()
            .content_type(asset.content_type)
            .insert_header((header::CACHE_CONTROL, "public, max-age=3600"))
            .body(asset.bytes.into_owned()),
        Ok(None) => ApiError::NotFound.error_response(),
        Err(err) => ApiError::internal(err).error_response(),
    }
}
