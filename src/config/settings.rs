//! The configuration's types: what the rest of the code reads.

use std::net::SocketAddr;
use std::path::PathBuf;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

/// Why the configuration cannot be used. The message names the field.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {0}")]
pub struct ConfigError(pub(super) String);

impl ConfigError {
    pub(super) fn field(path: &str, why: impl std::fmt::Display) -> Self {
        Self(format!("{path}: {why}"))
    }
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

/// Token Status Lists (`GET /statuslists/{id}`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatusListSettings {
    /// The lists' `ttl` claim and `Cache-Control` max-age: how long a
    /// verifier may use a list before fetching it again, and so how long a
    /// revocation may take to reach offline verifiers.
    pub ttl_s: u64,
}

/// Security events pushed to receivers (RFC 8417 SETs over RFC 8935).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventSettings {
    /// Networks a receiver may be in although they are not public (loopback,
    /// private, link-local …); there `http` is accepted too. Empty: only
    /// public addresses, over https.
    pub allowed_networks: Vec<IpNet>,
    /// How often the delivering replica looks for due events.
    pub poll_interval_ms: u64,
    /// One delivery attempt's bound, connect and response included.
    pub timeout_ms: u64,
    /// Attempts before a delivery is marked failed.
    pub max_attempts: u32,
    /// The first retry's delay; each next one doubles, up to `backoff_max_s`,
    /// with jitter.
    pub backoff_base_ms: u64,
    pub backoff_max_s: u64,
    /// How long the delivering replica's lease lasts without renewal: after
    /// a crash, another replica (or the restarted one) takes over this late.
    pub lease_s: u64,
    /// How often expiry warnings are looked for.
    pub expiry_scan_s: u64,
    /// Delivered and failed events are kept this long for the deliveries view.
    pub retention_days: u32,
}

/// Leak reports in (`POST /api/v1/leaks`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LeakSettings {
    /// The public keys whose ECDSA signature a report must carry, as code
    /// hosts publish them. Empty: every report is refused.
    pub sender_keys: Vec<SenderKeyConfig>,
    /// Reports per second per client address (burst ⌈rate⌉), per replica.
    pub reports_per_s: f64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SenderKeyConfig {
    pub key_identifier: String,
    /// PEM `PUBLIC KEY` (ECDSA P-256).
    pub key: String,
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
    pub(super) derived_from_bind: (bool, bool),
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
    pub statuslist: StatusListSettings,
    pub events: EventSettings,
    pub leaks: LeakSettings,
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
