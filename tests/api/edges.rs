//! Edges a security review (issue 13) found open: the client address behind
//! proxies.

use serde_json::json;

use crate::backend_tests;
use crate::helpers::{Backend, TestApp, spawn_app_with};
use crate::keys::{admin_token, create_key};

backend_tests!(only_the_configured_forwarding_header_names_the_client,);

/// Exchanges `secret` at `/api/v1/token` with the given forwarding headers.
async fn exchange_via_proxy(app: &TestApp, secret: &str, headers: &[(&str, &str)]) -> u16 {
    let mut request = app
        .client
        .post(app.url("/api/v1/token"))
        .header("X-API-Key", secret);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.unwrap().status().as_u16()
}

async fn only_the_configured_forwarding_header_names_the_client(backend: Backend) {
    let trusted = "[server]\ntrusted_proxies = [\"127.0.0.0/8\"]\n";
    for header in ["x-forwarded-for", "forwarded"] {
        // X-Forwarded-For is the default: the first server leaves it unset.
        let config = match header {
            "x-forwarded-for" => trusted.to_owned(),
            _ => format!("{trusted}forwarded_header = \"{header}\"\n"),
        };
        let app = spawn_app_with(backend, &config).await;
        let admin = admin_token(&app, &app.bootstrap_key).await;
        let key = create_key(
            &app,
            &admin,
            json!({"name": "one-address", "ip_allowlist": ["203.0.113.7/32"]}),
        )
        .await;
        let secret = key["key"].as_str().unwrap();
        let forged_forwarded = [
            ("Forwarded", "for=203.0.113.7"),
            ("X-Forwarded-For", "198.51.100.1"),
        ];
        let forged_xff = [
            ("X-Forwarded-For", "203.0.113.7"),
            ("Forwarded", "for=198.51.100.1"),
        ];
        let (forged, honest) = match header {
            "x-forwarded-for" => (forged_forwarded, forged_xff),
            _ => (forged_xff, forged_forwarded),
        };
        assert_eq!(
            exchange_via_proxy(&app, secret, &forged).await,
            400,
            "{header}: the other header cannot name the client"
        );
        assert_eq!(
            exchange_via_proxy(&app, secret, &honest).await,
            200,
            "{header}: the configured header names the client"
        );
        assert_eq!(
            exchange_via_proxy(&app, secret, &honest[..1]).await,
            200,
            "{header}: alone, too"
        );
        assert_eq!(
            exchange_via_proxy(&app, secret, &forged[..1]).await,
            400,
            "{header}: the other header alone leaves the peer as the client"
        );
    }
}
