//! Typed settings, layered as `config/default.toml` (embedded) ← `--config FILE`
//! ← `KEYMINT__SECTION__FIELD` environment ← command-line flags.
//!
//! Everything read here is checked once, before anything starts; an error names
//! the configuration path (`signing.prepublish_s`) so the operator knows what to
//! fix. Derived values (the issuer, the admin audience, the database backend)
//! are resolved here so the rest of the code never second-guesses them.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};

const DEFAULT_TOML: &str = include_str!("../config/default.toml");

/// Why the configuration cannot be used. The message names the field.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {0}")]
pub struct ConfigError(String);

impl ConfigError {
    fn field(path: &str, why: impl std::fmt::Display) -> Self {
        Self(format!("{path}: {why}"))
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSettings {
    data_dir: PathBuf,
    server: ServerSettings,
    database: RawDatabase,
    log: LogSettings,
    tokens: RawTokens,
    signing: SigningSettings,
    bootstrap: BootstrapSettings,
    usage: UsageSettings,
    limits: LimitSettings,
    audit: AuditSettings,
    janitor: JanitorSettings,
    metrics: MetricsSettings,
    cors: CorsSettings,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JanitorSettings {
    pub interval_s: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSettings {
    pub bind: SocketAddr,
    pub workers: usize,
    pub shutdown_timeout_s: u64,
    pub drain_s: u64,
    pub client_request_timeout_ms: u64,
    pub keep_alive_s: u64,
    pub max_connections: usize,
    pub trusted_proxies: Vec<IpNet>,
    /// The one header a trusted proxy's chain is read from.
    pub forwarded_header: ForwardedHeader,
}

/// Which forwarding header carries the client address behind a trusted
/// proxy. Only one is ever read: a proxy that sets one passes the other
/// through from the client untouched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum ForwardedHeader {
    /// `X-Forwarded-For`: comma-separated addresses.
    #[serde(rename = "x-forwarded-for")]
    XForwardedFor,
    /// RFC 7239 `Forwarded`: its `for=` parameters.
    #[serde(rename = "forwarded")]
    Forwarded,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDatabase {
    url: String,
    max_connections: u32,
    connect_timeout_ms: u64,
    sqlite_busy_timeout_ms: u64,
    admin_max_connections: u32,
    admin_query_timeout_ms: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Human,
    Json,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSettings {
    pub format: LogFormat,
    pub level: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTokens {
    issuer: Option<String>,
    admin_audience: Option<String>,
    key_prefix: String,
    max_jwt_bytes: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
pub enum SigningAlg {
    ES256,
    EdDSA,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SigningSettings {
    pub alg: SigningAlg,
    pub jwks_max_age_s: u64,
    pub prepublish_s: u64,
    pub reload_s: u64,
    pub rotation_interval_s: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BootstrapSettings {
    pub ttl_s: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UsageSettings {
    pub flush_interval_ms: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitSettings {
    pub failed_auth_per_minute: u32,
    /// Admin-API requests per second per calling key (burst ⌈rate⌉).
    pub admin_per_s: f64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditSettings {
    pub retention_days: u32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsSettings {
    pub bind: SocketAddr,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CorsSettings {
    pub allowed_origins: Vec<String>,
}

/// Which database to use. Chosen from the URL scheme, never by trial.
#[derive(Clone, PartialEq, Eq)]
pub enum DatabaseTarget {
    Sqlite(PathBuf),
    Postgres(String),
}

impl DatabaseTarget {
    /// `sqlite://PATH`, a bare path, or `postgres://…` / `postgresql://…`.
    pub fn parse(url: &str) -> Result<Self, ConfigError> {
        let url = url.trim();
        if url.is_empty() {
            return Err(ConfigError::field("database.url", "is empty"));
        }
        if let Some(path) = url.strip_prefix("sqlite://") {
            if path.is_empty() {
                return Err(ConfigError::field(
                    "database.url",
                    "sqlite:// needs a file path",
                ));
            }
            return Ok(Self::Sqlite(PathBuf::from(path)));
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(Self::Postgres(url.to_owned()));
        }
        if let Some((scheme, _)) = url.split_once("://") {
            return Err(ConfigError::field(
                "database.url",
                format!("unsupported scheme `{scheme}` (use sqlite:// or postgres://)"),
            ));
        }
        Ok(Self::Sqlite(PathBuf::from(url)))
    }

    pub fn is_sqlite(&self) -> bool {
        matches!(self, Self::Sqlite(_))
    }
}

/// Shows where the database is without the password a URL may carry.
impl std::fmt::Debug for DatabaseTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

impl DatabaseTarget {
    pub fn describe(&self) -> String {
        match self {
            Self::Sqlite(path) => format!("sqlite {}", path.display()),
            Self::Postgres(url) => match url::Url::parse(url) {
                Ok(u) => format!(
                    "postgres {}:{}{}",
                    u.host_str().unwrap_or("(socket)"),
                    u.port().unwrap_or(5432),
                    u.path()
                ),
                Err(_) => "postgres (unparsable url)".to_owned(),
            },
        }
    }
}

#[derive(Debug, Clone)]
pub struct DatabaseSettings {
    pub target: DatabaseTarget,
    pub max_connections: u32,
    pub connect_timeout_ms: u64,
    pub sqlite_busy_timeout_ms: u64,
    /// Connections kept apart for admin lists and searches, which never
    /// use the token endpoints' `max_connections`.
    pub admin_max_connections: u32,
    /// How long one admin list or search may run.
    pub admin_query_timeout_ms: u64,
}

#[derive(Debug, Clone)]
pub struct TokenSettings {
    /// Used verbatim as `iss` and as the base of every metadata URL.
    pub issuer: String,
    pub admin_audience: String,
    /// Whether `issuer` (and then `admin_audience`) came from the bind address,
    /// so binding to port 0 can fill in the port actually bound.
    derived_from_bind: (bool, bool),
    pub key_prefix: String,
    pub max_jwt_bytes: usize,
}

/// The resolved configuration the server and the CLI run with.
#[derive(Debug, Clone)]
pub struct Settings {
    pub data_dir: PathBuf,
    pub server: ServerSettings,
    pub database: DatabaseSettings,
    pub log: LogSettings,
    pub tokens: TokenSettings,
    pub signing: SigningSettings,
    pub bootstrap: BootstrapSettings,
    pub usage: UsageSettings,
    pub limits: LimitSettings,
    pub audit: AuditSettings,
    pub janitor: JanitorSettings,
    pub metrics: MetricsSettings,
    pub cors: CorsSettings,
}

/// Values given on the command line; they win over every other layer.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Overrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bind: Option<SocketAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_url: Option<String>,
}

impl Settings {
    /// Loads the layers from the process environment.
    pub fn load(config_file: Option<&Path>, overrides: &Overrides) -> Result<Self, ConfigError> {
        Self::load_from(
            config_file,
            overrides,
            Env::prefixed("KEYMINT__").split("__"),
        )
    }

    /// The defaults with one TOML layer over them and no environment: what
    /// tests and tools use to get a configuration independent of the process.
    pub fn from_toml(layers: &[&str], overrides: &Overrides) -> Result<Self, ConfigError> {
        let mut figment = Figment::new();
        for layer in layers {
            figment = figment.merge(Toml::string(layer));
        }
        Self::load_from(None, overrides, figment)
    }

    /// After binding: a server asked for port 0 learns its port here, and an
    /// issuer derived from the bind address follows it.
    pub fn bound_to(&mut self, actual: SocketAddr) {
        self.server.bind = actual;
        let (issuer_derived, audience_derived) = self.tokens.derived_from_bind;
        if issuer_derived {
            self.tokens.issuer = format!("http://{actual}");
            if audience_derived {
                self.tokens.admin_audience = format!("{}/api", self.tokens.issuer);
            }
        }
    }

    fn load_from(
        config_file: Option<&Path>,
        overrides: &Overrides,
        env: impl figment::Provider,
    ) -> Result<Self, ConfigError> {
        let mut figment = Figment::new().merge(Toml::string(DEFAULT_TOML));
        if let Some(file) = config_file {
            if !file.is_file() {
                return Err(ConfigError(format!(
                    "--config {}: no such file",
                    file.display()
                )));
            }
            figment = figment.merge(Toml::file(file));
        }
        figment = figment.merge(env);
        if let Some(dir) = &overrides.data_dir {
            figment = figment.merge(Serialized::default("data_dir", dir));
        }
        if let Some(bind) = overrides.bind {
            figment = figment.merge(Serialized::default("server.bind", bind.to_string()));
        }
        if let Some(url) = &overrides.database_url {
            figment = figment.merge(Serialized::default("database.url", url));
        }
        let raw: RawSettings = figment.extract().map_err(describe_figment_error)?;
        raw.resolve()
    }
}

fn describe_figment_error(err: figment::Error) -> ConfigError {
    // figment's own message names the key path; keep only the first error so
    // the operator gets one line.
    let path = err.path.join(".");
    let kind = err.kind.to_string();
    if path.is_empty() {
        ConfigError(kind)
    } else {
        ConfigError::field(&path, kind)
    }
}

impl RawSettings {
    fn resolve(self) -> Result<Settings, ConfigError> {
        let target = if self.database.url.trim().is_empty() {
            DatabaseTarget::Sqlite(self.data_dir.join("keymint.db"))
        } else {
            DatabaseTarget::parse(&self.database.url)?
        };
        check_range(
            "database.max_connections",
            self.database.max_connections,
            1,
            64,
        )?;
        check_range(
            "database.connect_timeout_ms",
            self.database.connect_timeout_ms,
            100,
            60_000,
        )?;
        check_range("server.drain_s", self.server.drain_s, 0, 300)?;
        check_range(
            "server.shutdown_timeout_s",
            self.server.shutdown_timeout_s,
            1,
            600,
        )?;
        check_range(
            "server.client_request_timeout_ms",
            self.server.client_request_timeout_ms,
            100,
            120_000,
        )?;
        check_range(
            "server.max_connections",
            self.server.max_connections,
            1,
            1_000_000,
        )?;
        check_range(
            "usage.flush_interval_ms",
            self.usage.flush_interval_ms,
            100,
            5_000,
        )?;
        check_range("bootstrap.ttl_s", self.bootstrap.ttl_s, 60, 30 * 86_400)?;
        check_range(
            "signing.jwks_max_age_s",
            self.signing.jwks_max_age_s,
            0,
            86_400,
        )?;
        check_range("signing.reload_s", self.signing.reload_s, 1, 3_600)?;
        if self.signing.prepublish_s < 2 * self.signing.jwks_max_age_s {
            return Err(ConfigError::field(
                "signing.prepublish_s",
                "must be at least 2 × signing.jwks_max_age_s",
            ));
        }
        if self.signing.rotation_interval_s <= self.signing.prepublish_s {
            return Err(ConfigError::field(
                "signing.rotation_interval_s",
                "must be longer than signing.prepublish_s",
            ));
        }
        check_range(
            "limits.failed_auth_per_minute",
            self.limits.failed_auth_per_minute,
            1,
            100_000,
        )?;
        check_range(
            "database.admin_max_connections",
            self.database.admin_max_connections,
            1,
            16,
        )?;
        check_range(
            "database.admin_query_timeout_ms",
            self.database.admin_query_timeout_ms,
            100,
            60_000,
        )?;
        if !self.limits.admin_per_s.is_finite() {
            return Err(ConfigError::field("limits.admin_per_s", "must be a number"));
        }
        check_range(
            "limits.admin_per_s",
            self.limits.admin_per_s,
            0.1,
            100_000.0,
        )?;
        check_range("audit.retention_days", self.audit.retention_days, 1, 36_500)?;
        check_range("janitor.interval_s", self.janitor.interval_s, 1, 3_600)?;
        check_range(
            "tokens.max_jwt_bytes",
            self.tokens.max_jwt_bytes,
            512,
            65_536,
        )?;
        if !is_valid_key_prefix(&self.tokens.key_prefix) {
            return Err(ConfigError::field(
                "tokens.key_prefix",
                "must match ^[a-z][a-z0-9]{0,9}$",
            ));
        }
        tracing_subscriber::EnvFilter::try_new(&self.log.level)
            .map_err(|e| ConfigError::field("log.level", e))?;

        let issuer_derived = self.tokens.issuer.is_none();
        let audience_derived = self.tokens.admin_audience.is_none();
        let issuer = resolve_issuer(self.tokens.issuer.as_deref(), self.server.bind)?;
        let admin_audience = match self.tokens.admin_audience {
            Some(aud) if aud.trim().is_empty() => {
                return Err(ConfigError::field("tokens.admin_audience", "is empty"));
            }
            Some(aud) => aud,
            None => format!("{issuer}/api"),
        };

        Ok(Settings {
            data_dir: self.data_dir,
            server: self.server,
            database: DatabaseSettings {
                target,
                max_connections: self.database.max_connections,
                connect_timeout_ms: self.database.connect_timeout_ms,
                sqlite_busy_timeout_ms: self.database.sqlite_busy_timeout_ms,
                admin_max_connections: self.database.admin_max_connections,
                admin_query_timeout_ms: self.database.admin_query_timeout_ms,
            },
            log: self.log,
            tokens: TokenSettings {
                issuer,
                admin_audience,
                derived_from_bind: (issuer_derived, audience_derived),
                key_prefix: self.tokens.key_prefix,
                max_jwt_bytes: self.tokens.max_jwt_bytes,
            },
            signing: self.signing,
            bootstrap: self.bootstrap,
            usage: self.usage,
            limits: self.limits,
            audit: self.audit,
            janitor: self.janitor,
            metrics: self.metrics,
            cors: self.cors,
        })
    }
}

fn check_range<T: PartialOrd + std::fmt::Display>(
    path: &str,
    value: T,
    min: T,
    max: T,
) -> Result<(), ConfigError> {
    if value < min || value > max {
        return Err(ConfigError::field(
            path,
            format!("{value} is outside {min}..={max}"),
        ));
    }
    Ok(())
}

pub fn is_valid_key_prefix(prefix: &str) -> bool {
    let bytes = prefix.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 10
        && bytes[0].is_ascii_lowercase()
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

/// On a loopback bind the issuer defaults to `http://<bind>`; anywhere else it
/// must be configured, as `https://` (plain http only for loopback hosts).
fn resolve_issuer(configured: Option<&str>, bind: SocketAddr) -> Result<String, ConfigError> {
    let Some(issuer) = configured else {
        if bind.ip().is_loopback() {
            return Ok(format!("http://{bind}"));
        }
        return Err(ConfigError::field(
            "tokens.issuer",
            format!("is required when binding to the non-loopback address {bind}"),
        ));
    };
    let parsed = url::Url::parse(issuer)
        .map_err(|e| ConfigError::field("tokens.issuer", format!("is not a URL: {e}")))?;
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Err(ConfigError::field(
            "tokens.issuer",
            "must not have a query or fragment",
        ));
    }
    if issuer.ends_with('/') {
        return Err(ConfigError::field(
            "tokens.issuer",
            "must not end with `/` (it is the base of every metadata URL)",
        ));
    }
    match parsed.scheme() {
        "https" => Ok(issuer.to_owned()),
        "http" if is_loopback_host(&parsed) => Ok(issuer.to_owned()),
        "http" => Err(ConfigError::field(
            "tokens.issuer",
            "must use https:// (plain http only for loopback hosts)",
        )),
        other => Err(ConfigError::field(
            "tokens.issuer",
            format!("unsupported scheme `{other}`"),
        )),
    }
}

/// Whether a URL names this machine: `localhost`, 127.0.0.0/8 or `::1`; the
/// only hosts plain http is accepted for (here and in `validator`).
pub fn is_loopback_host(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        None => false,
    }
}

#[cfg(test)]
mod tests {
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
}
