//! Unit tests of the configuration: layering, checks, derived values.

use std::net::SocketAddr;
use std::path::PathBuf;

use figment::providers::{Format, Toml};

use super::load::resolve_issuer;
use super::*;

fn load_with(layer: &str) -> Result<Settings, ConfigError> {
    Settings::load_from(None, &Overrides::default(), Toml::string(layer))
}

#[test]
fn defaults_resolve_to_sqlite_on_loopback() {
    let s = load_with("").unwrap();
    assert_eq!(
        s.database.target,
        DatabaseTarget::Sqlite(PathBuf::from("./data/keymint.db"))
    );
    assert_eq!(s.tokens.issuer, "http://127.0.0.1:8080");
    assert_eq!(s.tokens.admin_audience, "http://127.0.0.1:8080/api");
    assert_eq!(s.server.forwarded_header, ForwardedHeader::XForwardedFor);
}

#[test]
fn database_scheme_picks_the_backend() {
    assert!(matches!(
        DatabaseTarget::parse("postgres://u:p@h/db").unwrap(),
        DatabaseTarget::Postgres(_)
    ));
    assert_eq!(
        DatabaseTarget::parse("sqlite:///tmp/x.db").unwrap(),
        DatabaseTarget::Sqlite(PathBuf::from("/tmp/x.db"))
    );
    assert_eq!(
        DatabaseTarget::parse("data/x.db").unwrap(),
        DatabaseTarget::Sqlite(PathBuf::from("data/x.db"))
    );
    let err = DatabaseTarget::parse("postgress://h/db").unwrap_err();
    assert!(err.to_string().contains("database.url"), "{err}");
}

#[test]
fn password_never_shows_in_debug() {
    let t = DatabaseTarget::parse("postgres://user:hunter2@db:5433/keymint").unwrap();
    let shown = format!("{t:?}");
    assert!(!shown.contains("hunter2"), "{shown}");
    assert!(shown.contains("db:5433"), "{shown}");
}

#[test]
fn errors_name_the_field() {
    let err = load_with("[server]\nbind = \"nope\"").unwrap_err();
    assert!(err.to_string().contains("server.bind"), "{err}");
    let err = load_with("[signing]\nprepublish_s = 10").unwrap_err();
    assert!(err.to_string().contains("signing.prepublish_s"), "{err}");
    let err = load_with("[server]\nbogus = 1").unwrap_err();
    assert!(err.to_string().contains("bogus"), "{err}");
    let err = load_with("[server]\nforwarded_header = \"x-real-ip\"").unwrap_err();
    assert!(err.to_string().contains("server.forwarded_header"), "{err}");
    let overrides = Overrides {
        bind: Some("0.0.0.0:8080".parse().unwrap()),
        ..Overrides::default()
    };
    let err = Settings::load_from(None, &overrides, Toml::string("")).unwrap_err();
    assert!(err.to_string().contains("tokens.issuer"), "{err}");
}

#[test]
fn issuer_must_be_https_off_loopback() {
    let bind: SocketAddr = "0.0.0.0:8080".parse().unwrap();
    assert!(resolve_issuer(Some("http://auth.example.com"), bind).is_err());
    assert!(resolve_issuer(Some("https://auth.example.com"), bind).is_ok());
    assert!(resolve_issuer(Some("http://localhost:8080"), bind).is_ok());
    assert!(resolve_issuer(Some("https://auth.example.com/"), bind).is_err());
}

#[test]
fn status_list_ttl_is_bounded() {
    assert_eq!(load_with("").unwrap().statuslist.ttl_s, 30);
    assert_eq!(
        load_with("[statuslist]\nttl_s = 300")
            .unwrap()
            .statuslist
            .ttl_s,
        300
    );
    for bad in ["4", "3601"] {
        let err = load_with(&format!("[statuslist]\nttl_s = {bad}")).unwrap_err();
        assert!(err.to_string().contains("statuslist.ttl_s"), "{err}");
    }
}
