//! The command line's grammar (clap derives): what `main` parses.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use super::client;
use crate::tenants::SYSTEM_TENANT;

#[derive(Debug, Parser)]
#[command(
    name = "keymint",
    version,
    about = "Token-exchange authorization server: API keys in, short-lived JWTs out",
    long_about = "keymint exchanges long-lived API keys for short-lived JWTs (30..3600 s) that \
downstream services verify offline against its JWKS.\n\n\
With no command it serves on 127.0.0.1:8080 with SQLite under ./data/.\n\
Configuration: config/default.toml <- --config FILE <- KEYMINT__SECTION__FIELD env <- flags.",
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    /// A TOML file layered over the defaults.
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// sqlite://PATH, a file path, or postgres://USER@HOST/DB.
    #[arg(long, global = true, env = "DATABASE_URL", value_name = "URL")]
    pub database_url: Option<String>,
    /// Where the SQLite file and a generated master key live.
    #[arg(long, global = true, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Option<Command>,
    /// `serve`'s flags, for the default command.
    #[command(flatten)]
    pub serve: ServeArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP server (the default).
    Serve(ServeArgs),
    /// Apply pending database migrations and exit.
    Migrate,
    /// Manage API keys offline, directly in the database.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Manage JWT signing keys offline.
    #[command(subcommand, name = "signing-keys")]
    SigningKeys(SigningKeysCommand),
    /// Change a tenant's policy offline (recovery when the API locks you out).
    #[command(subcommand)]
    Settings(SettingsCommand),
    /// Exchange an API key for a JWT at a running keymint and print it.
    /// Exit 0 ok, 1 unreachable or server error, 3 refused.
    Token(client::TokenArgs),
    /// Verify a JWT through the issuer's JWKS and print its claims.
    /// Exit 0 valid, 1 key set unreachable, 3 invalid (expired, wrong
    /// audience or issuer, bad signature).
    Verify(client::VerifyArgs),
    /// Print the OpenAPI 3.1 document (also served at /openapi.json).
    Openapi,
    /// Manage the master key that encrypts secrets at rest.
    #[command(subcommand, name = "master-key")]
    MasterKey(MasterKeyCommand),
    /// Secret scanning: what finds keymint keys in code and logs.
    #[command(subcommand)]
    Leaks(LeaksCommand),
    /// Benchmark support: insert COUNT keys in bulk and write `id secret`
    /// lines to OUT. Not for production data.
    #[command(hide = true, name = "bench-seed")]
    BenchSeed {
        #[arg(long)]
        count: u64,
        #[arg(long)]
        out: PathBuf,
        #[arg(long, value_delimiter = ',', default_value = "read")]
        scopes: Vec<String>,
        /// Key n gets owner `team-<n % OWNERS>` (a search benchmark wants
        /// owners to find); without it keys act for themselves.
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
        owners: Option<u64>,
    },
}

#[derive(Debug, Subcommand)]
pub enum LeaksCommand {
    /// Print the regular expressions of this server's key format (the
    /// configured prefix), for a code host's custom secret-scanning pattern.
    Patterns,
}

#[derive(Debug, Subcommand)]
pub enum MasterKeyCommand {
    /// Re-encrypt every secret under a new master key, in one transaction
    /// (killed at any point, the database stays under the old key).
    /// Running servers store no secrets until they have the new key: they
    /// re-read their KEYMINT_MASTER_KEY_FILE every signing.reload_s, or
    /// restart them with it. See the README's operations section.
    Rotate {
        /// The new key: standard base64 of 32 bytes, in a file.
        #[arg(long, value_name = "FILE")]
        new_key_file: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum SettingsCommand {
    /// Set policy fields, e.g. `api_keys_enabled=true allowed_ip_ranges=[]`.
    /// Values are JSON (`true`, `900`, `null`, `["10.0.0.0/8"]`) or plain text.
    Set {
        #[arg(long, default_value = SYSTEM_TENANT)]
        tenant: String,
        /// FIELD=VALUE pairs.
        #[arg(required = true, value_name = "FIELD=VALUE")]
        assignments: Vec<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create a key and print its secret (only) on stdout. The secret is
    /// shown this once.
    Create(CreateKeyArgs),
    /// List a tenant's keys (never their secrets).
    List {
        #[arg(long, default_value = SYSTEM_TENANT)]
        tenant: String,
        /// One JSON object per line instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a key, irreversibly (and the keys it created through keys:self).
    Revoke {
        /// The key id.
        id: String,
        #[arg(long, default_value = SYSTEM_TENANT)]
        tenant: String,
        #[arg(long)]
        reason: Option<String>,
    },
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("expiry").args(["expires_in", "expires_at", "never_expires"])))]
pub struct CreateKeyArgs {
    /// A name for people (1..100 characters).
    #[arg(long)]
    pub name: String,
    #[arg(long, default_value = SYSTEM_TENANT)]
    pub tenant: String,
    /// Who the key acts for; tokens carry it as `sub` (default `key:<id>`).
    #[arg(long)]
    pub owner: Option<String>,
    /// Comma-separated scopes.
    #[arg(long, value_delimiter = ',')]
    pub scopes: Vec<String>,
    /// Seconds until the key expires.
    #[arg(long, value_name = "SECONDS")]
    pub expires_in: Option<i64>,
    /// When the key expires (RFC 3339).
    #[arg(long, value_name = "TIME")]
    pub expires_at: Option<chrono::DateTime<chrono::Utc>>,
    /// The key never expires (only when the tenant sets no maximum lifetime).
    #[arg(long)]
    pub never_expires: bool,
    /// Comma-separated audiences registered in the tenant; the first is the default.
    #[arg(long, value_delimiter = ',')]
    pub audiences: Vec<String>,
    /// The longest token this key may get, 30..3600 seconds.
    #[arg(long, value_name = "SECONDS")]
    pub max_token_ttl: Option<i64>,
    /// An advanced key: its secret signs requests and is never sent.
    #[arg(long)]
    pub advanced: bool,
}

#[derive(Debug, Subcommand)]
pub enum SigningKeysCommand {
    /// Promote the next signing key (published at least signing.prepublish_s
    /// ago) and publish a new next key. Servers switch within signing.reload_s.
    Rotate,
}

#[derive(Debug, Default, Clone, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, value_name = "ADDR")]
    pub bind: Option<SocketAddr>,
    /// Print a newly created bootstrap key even when stdout is not a terminal.
    #[arg(long)]
    pub print_bootstrap_key: bool,
}
