//! First start: on a database with no tenant, create the system tenant and,
//! when there is somewhere safe to put its secret, one bootstrap key holding
//! every reserved scope. Exactly once across replicas: the check, the key
//! file's creation and the inserts run in one transaction under the
//! `bootstrap` lock (and, at start, under the start-up lock), so a replica
//! that finds the tenant made by another never touches the key file.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use chrono::{Duration, NaiveDateTime};

use crate::audit::{Actor, Origin};
use crate::db::{self, AnyConnection, DbError};
use crate::domain::scope;
use crate::keys::SecurityLevel;
use crate::keys::secret::ApiKeySecret;
use crate::keys::store::{self, KeyStoreError, NewKey};
use crate::tenants::{self, SYSTEM_TENANT};

pub const KEY_FILE_ENV: &str = "KEYMINT_BOOTSTRAP_KEY_FILE";
pub const STDOUT_MARKER: &str = "bootstrap admin key: ";

#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    #[error(transparent)]
    Store(#[from] KeyStoreError),
    #[error("{KEY_FILE_ENV} {path}: {error}")]
    File { path: String, error: std::io::Error },
}

impl From<DbError> for BootstrapError {
    fn from(e: DbError) -> Self {
        Self::Store(e.into())
    }
}

impl From<diesel::result::Error> for BootstrapError {
    fn from(e: diesel::result::Error) -> Self {
        Self::Store(e.into())
    }
}

/// Where a new bootstrap key's secret may go.
#[derive(Debug, Clone, Default)]
pub struct Output {
    pub stdout: bool,
    pub file: Option<PathBuf>,
}

impl Output {
    fn any(&self) -> bool {
        self.stdout || self.file.is_some()
    }
}

/// Makes sure the system tenant exists (for the CLI on a fresh database).
pub fn ensure_system_tenant(conn: &mut AnyConnection, now: NaiveDateTime) -> Result<(), DbError> {
    if tenants::store::any_exists(conn)? {
        return Ok(());
    }
    db::exclusive_transaction(conn, "bootstrap", |conn| {
        if !tenants::store::any_exists(conn)? {
            tenants::store::create(conn, SYSTEM_TENANT, "System", now)?;
        }
        Ok(())
    })
}

fn open_new_file(path: &Path) -> Result<std::fs::File, BootstrapError> {
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|error| BootstrapError::File {
            path: path.display().to_string(),
            error,
        })
}

/// What a start found and did.
pub enum Outcome {
    /// The database had a tenant already: nothing to do.
    Earlier,
    /// This start made the system tenant but no key: its secret would have
    /// had nowhere safe to go.
    WithoutKey,
    /// This start made the system tenant and this key.
    Key(ApiKeySecret),
}

/// Runs the bootstrap if the database has no tenant; a new key's secret is
/// returned after it has been written to the file (if any). The caller
/// prints it when `output.stdout`.
pub fn run(
    conn: &mut AnyConnection,
    output: &Output,
    ttl_s: u64,
    key_prefix: &str,
    now: NaiveDateTime,
) -> Result<Outcome, BootstrapError> {
    if tenants::store::any_exists(conn)? {
        return Ok(Outcome::Earlier);
    }
    let mut file = None;
    let created = db::exclusive_transaction(conn, "bootstrap", |conn| {
        if tenants::store::any_exists(conn)? {
            // Another process bootstrapped: its key file is not ours to claim.
            return Ok::<_, BootstrapError>(Outcome::Earlier);
        }
        // This process bootstraps: claim the file before anything is
        // created; an existing file is an error.
        if let Some(path) = &output.file {
            file = Some((path.clone(), open_new_file(path)?));
        }
        let tenant = tenants::store::create(conn, SYSTEM_TENANT, "System", now)?;
        if !output.any() {
            return Ok(Outcome::WithoutKey);
        }
        let actor = Actor::system("system:bootstrap");
        let new = NewKey {
            tenant_id: tenant.id.clone(),
            name: "bootstrap".to_owned(),
            description: Some("Created at first start; replace it with keys of your own.".into()),
            owner: None,
            scopes: scope::RESERVED.iter().map(|s| (*s).to_owned()).collect(),
            audiences: Vec::new(),
            expires_at: Some(now + Duration::seconds(i64::try_from(ttl_s).unwrap_or(86_400))),
            max_token_ttl_s: None,
            rate_limit_per_s: None,
            ip_allowlist: None,
            claims: None,
            metadata: None,
            security_level: SecurityLevel::Standard,
            created_by: actor.clone(),
            parent_key_id: None,
        };
        let (mut row, secret) = store::prepare(&new, key_prefix, now)?;
        store::insert(conn, &mut row, &actor, &Origin::default())?;
        Ok(Outcome::Key(secret))
    });
    let outcome = match created {
        Ok(outcome) => outcome,
        Err(err) => {
            if let Some((path, _)) = file.take() {
                let _ = std::fs::remove_file(path);
            }
            return Err(err);
        }
    };
    match (&outcome, file.take()) {
        (Outcome::Key(secret), Some((path, mut handle))) => {
            let written = handle
                .write_all(format!("{}\n", secret.expose()).as_bytes())
                .and_then(|()| handle.sync_all());
            written.map_err(|error| BootstrapError::File {
                path: path.display().to_string(),
                error,
            })?;
        }
        // No key was made: leave no empty file behind.
        (_, Some((path, _))) => {
            let _ = std::fs::remove_file(path);
        }
        _ => {}
    }
    Ok(outcome)
}
