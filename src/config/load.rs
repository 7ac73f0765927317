//! Loading: the layers merged, every value checked once, derived values
//! resolved.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::Deserialize;

use super::settings::*;
use crate::domain::key_prefix::KeyPrefix;
use crate::domain::sender_key::SenderKey;

const DEFAULT_TOML: &str = include_str!("../../config/default.toml");

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
    statuslist: StatusListSettings,
    events: EventSettings,
    leaks: LeakSettings,
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

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTokens {
    issuer: Option<String>,
    admin_audience: Option<String>,
    key_prefix: String,
    max_jwt_bytes: usize,
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

    pub(super) fn load_from(
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
        check_range("statuslist.ttl_s", self.statuslist.ttl_s, 5, 3_600)?;
        let events = &self.events;
        check_range(
            "events.poll_interval_ms",
            events.poll_interval_ms,
            50,
            60_000,
        )?;
        check_range("events.timeout_ms", events.timeout_ms, 100, 60_000)?;
        check_range("events.max_attempts", events.max_attempts, 1, 50)?;
        check_range(
            "events.backoff_base_ms",
            events.backoff_base_ms,
            10,
            600_000,
        )?;
        check_range("events.backoff_max_s", events.backoff_max_s, 1, 86_400)?;
        check_range("events.lease_s", events.lease_s, 1, 3_600)?;
        check_range("events.expiry_scan_s", events.expiry_scan_s, 1, 86_400)?;
        check_range("events.retention_days", events.retention_days, 1, 3_650)?;
        if !self.leaks.reports_per_s.is_finite() {
            return Err(ConfigError::field(
                "leaks.reports_per_s",
                "must be a number",
            ));
        }
        check_range(
            "leaks.reports_per_s",
            self.leaks.reports_per_s,
            0.1,
            10_000.0,
        )?;
        for (i, sender) in self.leaks.sender_keys.iter().enumerate() {
            let path = format!("leaks.sender_keys[{i}]");
            if sender.key_identifier.is_empty() || sender.key_identifier.len() > 200 {
                return Err(ConfigError::field(
                    &path,
                    "key_identifier must be 1 to 200 characters",
                ));
            }
            if let Err(why) = SenderKey::from_pem(&sender.key_identifier, &sender.key) {
                return Err(ConfigError::field(&path, format!("key {why}")));
            }
        }
        if events.lease_s * 1000 <= events.timeout_ms {
            return Err(ConfigError::field(
                "events.lease_s",
                "must be longer than events.timeout_ms, or a slow delivery outlives the lease",
            ));
        }
        check_range(
            "tokens.max_jwt_bytes",
            self.tokens.max_jwt_bytes,
            512,
            65_536,
        )?;
        if let Err(rule) = KeyPrefix::parse(&self.tokens.key_prefix) {
            return Err(ConfigError::field("tokens.key_prefix", rule));
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
            statuslist: self.statuslist,
            events: self.events,
            leaks: self.leaks,
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

/// On a loopback bind the issuer defaults to `http://<bind>`; anywhere else it
/// must be configured, as `https://` (plain http only for loopback hosts).
pub(super) fn resolve_issuer(
    configured: Option<&str>,
    bind: SocketAddr,
) -> Result<String, ConfigError> {
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
