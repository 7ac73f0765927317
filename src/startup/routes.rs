//! The whole route table in one place, and `ROUTES`, derived from it.

use actix_web::middleware::{DefaultHeaders, from_fn};
use actix_web::web;

use crate::routes::{
    audit, console, docs, event_streams, fallback, health, keys, leaks, oauth, settings,
    signing_keys, status_lists, tenants, token, wellknown,
};

/// Declares the route table once and derives from it both the actix
/// registration and `ROUTES`, the list the OpenAPI coverage test walks, so a
/// route cannot be added without the test seeing it.
macro_rules! route_table {
    (
        $( $path:literal { $( $method:ident => $handler:path ),+ $(,)? } )*
        $( scope $prefix:literal [ $( $wrap:expr ),* ] {
            $( $spath:literal { $( $smethod:ident => $shandler:path ),+ $(,)? } )*
        } )*
    ) => {
        /// Every route as `(method, path)`, paths in actix/OpenAPI template form.
        pub const ROUTES: &[(&str, &str)] = &[
            $( $( (stringify!($method), $path), )+ )*
            $( $( $( (stringify!($smethod), concat!($prefix, $spath)), )+ )* )*
        ];

        /// The whole route table. Every resource answers unknown methods with 405.
        pub(super) fn routes(cfg: &mut web::ServiceConfig) {
            $( cfg.service(resource($path) $( .route(web::$method().to($handler)) )+ ); )*
            $(
                cfg.service(
                    web::scope($prefix)
                        $( .wrap($wrap) )*
                        $( .service(resource($spath) $( .route(web::$smethod().to($shandler)) )+ ) )*
                );
            )*
        }
    };
}

route_table! {
    "/healthz" { get => health::healthz }
    "/readyz" { get => health::readyz }
    "/openapi.json" { get => docs::openapi_json }
    "/docs" { get => docs::index_redirect }
    "/docs/{file:.*}" { get => docs::asset }
    "/console" { get => console::index_redirect }
    "/console/" { get => console::page }
    "/console/assets/{hash}/{file:.*}" { get => console::asset }
    "/.well-known/jwks.json" { get => wellknown::jwks }
    "/.well-known/oauth-authorization-server" { get => wellknown::oauth_authorization_server }
    "/.well-known/openid-configuration" { get => wellknown::openid_configuration }
    "/statuslists" { get => status_lists::aggregation }
    "/statuslists/{id}" { get => status_lists::list }
    scope "/oauth" [no_store()] {
        "/token" { post => token::oauth_token }
        "/introspect" { post => oauth::introspect }
        "/revoke" { post => oauth::revoke }
    }
    scope "/api/v1" [no_store(), from_fn(crate::auth::denials::record), from_fn(crate::routes::wake::events_after_change)] {
        "/token" { post => token::api_token }
        "/keys" { post => keys::create, get => keys::list }
        "/keys/revoke" { post => keys::revoke_many }
        "/keys/{id}" { get => keys::get, patch => keys::patch, delete => keys::delete }
        "/keys/{id}/revoke" { post => keys::revoke }
        "/keys/{id}/rotate" { post => keys::rotate }
        "/settings" { get => settings::get, patch => settings::patch }
        "/tenants" { post => tenants::create, get => tenants::list }
        "/tenants/{slug}" { patch => tenants::patch }
        "/audit-events" { get => audit::list }
        "/signing-keys" { get => signing_keys::list }
        "/signing-keys/rotate" { post => signing_keys::rotate }
        "/signing-keys/{kid}/revoke" { post => signing_keys::revoke }
        "/event-streams" { post => event_streams::create, get => event_streams::list }
        "/event-streams/{id}" {
            get => event_streams::get,
            patch => event_streams::patch,
            delete => event_streams::delete,
        }
        "/event-streams/{id}/deliveries" { get => event_streams::deliveries }
        "/event-streams/{id}/deliveries/{delivery}/replay" { post => event_streams::replay }
        "/leaks" { post => leaks::report }
    }
}

/// Token responses and admin data must never be cached (RFC 6749 §5.1).
fn no_store() -> DefaultHeaders {
    DefaultHeaders::new()
        .add(("Cache-Control", "no-store"))
        .add(("Pragma", "no-cache"))
}

pub(super) fn resource(path: &str) -> actix_web::Resource {
    web::resource(path).default_service(web::to(fallback::method_not_allowed))
}
