//! Blocking start-up work, on one direct connection under the start-up
//! lock: migrations, the master key, signing keys, bootstrap.

use std::io::IsTerminal;
use std::path::PathBuf;

use chrono::Utc;

use super::error::StartupError;
use crate::bootstrap;
use crate::config::Settings;
use crate::crypto::check;
use crate::crypto::master::{MasterKey, MasterKeyError};
use crate::db::{self, AnyConnection, DbError};
use crate::tokens::signing::{self, KeyRing};

/// Choices made by whoever starts the server, beyond the configuration.
#[derive(Debug, Clone, Default)]
pub struct StartOptions {
    /// Print a new bootstrap key on stdout even when it is not a terminal.
    pub print_bootstrap_key: bool,
    /// Write a new bootstrap key here (`KEYMINT_BOOTSTRAP_KEY_FILE`).
    pub bootstrap_key_file: Option<PathBuf>,
    /// Read the master key from this file instead of the environment.
    pub master_key_file: Option<PathBuf>,
    /// Stop on SIGTERM/SIGINT/SIGQUIT (draining first). Off for servers
    /// embedded in another process, such as the tests', whose signals are
    /// not theirs to take.
    pub handle_signals: bool,
}

impl StartOptions {
    pub fn from_env(print_bootstrap_key: bool) -> Self {
        Self {
            print_bootstrap_key,
            bootstrap_key_file: std::env::var_os(bootstrap::KEY_FILE_ENV)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from),
            master_key_file: None,
            handle_signals: true,
        }
    }
}

pub(super) struct Prepared {
    pub(super) master: MasterKey,
    pub(super) keyring: KeyRing,
    pub(super) bootstrap_secret: Option<crate::keys::secret::ApiKeySecret>,
    /// This start made the system tenant without a key (nowhere to put it).
    pub(super) bootstrap_without_key: bool,
}

/// Blocking start-up work: migrations, master key, signing keys, bootstrap.
/// All of it runs under the start-up lock, so replicas starting together on
/// a new database take turns: the first does the work, the others find it
/// done, and that is success.
pub(super) fn prepare(
    settings: &Settings,
    options: &StartOptions,
) -> Result<Prepared, StartupError> {
    let database = |source| StartupError::Database {
        target: settings.database.target.describe(),
        source,
    };
    let mut conn = db::connect(&settings.database).map_err(database)?;
    let conn = &mut conn;
    let output = bootstrap::Output {
        stdout: options.print_bootstrap_key || std::io::stdout().is_terminal(),
        file: options.bootstrap_key_file.clone(),
    };
    // Set once the bootstrap key file holds a secret: if the lock's commit
    // then fails (SQLite), that key does not exist and the file must go.
    let mut wrote_file = None;
    let locked = db::with_startup_lock(conn, |conn| {
        // The time once the lock is held: a replica that waited must judge
        // the keys the first one just made by the time it sees them, or a
        // key activated "in its future" looks missing and is made again.
        let now = Utc::now().naive_utc();
        let applied = db::migrate(conn).map_err(database)?;
        if applied > 0 {
            tracing::info!(applied, "database migrations applied");
        }
        let master = open_master_key(settings, conn, options.master_key_file.as_deref())?;
        signing::ensure_keys(conn, &master, &settings.signing, now)?;
        let outcome = bootstrap::run(
            conn,
            &output,
            settings.bootstrap.ttl_s,
            &settings.tokens.key_prefix,
            now,
        )?;
        if matches!(outcome, bootstrap::Outcome::Key(_)) {
            wrote_file = output.file.clone();
        }
        Ok::<_, StartupError>((master, outcome))
    });
    let (master, outcome) = match locked {
        Ok(result) => result?,
        Err(err) => {
            if let Some(path) = wrote_file {
                let _ = std::fs::remove_file(path);
            }
            return Err(database(err));
        }
    };
    let now = Utc::now().naive_utc();
    let rows = signing::load_rows(conn).map_err(signing::SigningError::from)?;
    let keyring = KeyRing::load(&rows, &master, &settings.signing, now)?;
    let bootstrap_without_key = matches!(outcome, bootstrap::Outcome::WithoutKey);
    let bootstrap_secret = match outcome {
        bootstrap::Outcome::Key(secret) if output.stdout => Some(secret),
        _ => None,
    };
    Ok(Prepared {
        master,
        keyring,
        bootstrap_secret,
        bootstrap_without_key,
    })
}

/// Finds the master key and proves it is the one the database was written
/// with. A key is generated only for SQLite on a loopback bind, and only for
/// a database that has never had one: a wrong or lost key stops the start
/// and changes nothing. Runs under the start-up lock, so processes starting
/// together generate and record one key.
pub fn open_master_key(
    settings: &Settings,
    conn: &mut AnyConnection,
    explicit_file: Option<&std::path::Path>,
) -> Result<MasterKey, StartupError> {
    let database = |source| StartupError::Database {
        target: settings.database.target.describe(),
        source,
    };
    db::with_startup_lock(conn, |conn| find_master_key(settings, conn, explicit_file))
        .map_err(database)?
}

fn find_master_key(
    settings: &Settings,
    conn: &mut AnyConnection,
    explicit_file: Option<&std::path::Path>,
) -> Result<MasterKey, StartupError> {
    let fail = |e: MasterKeyError| StartupError::MasterKey(e.to_string());
    let database = |source: DbError| StartupError::Database {
        target: settings.database.target.describe(),
        source,
    };
    let stored = check::stored(conn).map_err(|e| database(e.into()))?;
    let from_env = match explicit_file {
        Some(path) => Some(MasterKey::from_file(path, "master key file").map_err(fail)?),
        None => MasterKey::from_env().map_err(fail)?,
    };
    let master = match from_env {
        Some(key) => key,
        None if settings.database.target.is_sqlite() && settings.server.bind.ip().is_loopback() => {
            let path = settings.data_dir.join("master.key");
            if path.exists() {
                MasterKey::from_file(&path, "data-dir master.key").map_err(fail)?
            } else if stored.is_some() {
                return Err(StartupError::MasterKey(format!(
                    "{} is missing and the database was written with a master key; set KEYMINT_MASTER_KEY_FILE",
                    path.display()
                )));
            } else {
                db::create_private_dir(&settings.data_dir)
                    .map_err(|e| StartupError::MasterKey(e.to_string()))?;
                let key = MasterKey::generate_file(&path).map_err(fail)?;
                tracing::warn!(
                    path = %path.display(),
                    "generated a master key; backups of the data directory contain it"
                );
                key
            }
        }
        None => {
            return Err(StartupError::MasterKey(
                "set KEYMINT_MASTER_KEY_FILE or KEYMINT_MASTER_KEY (base64 of 32 bytes); one is required with PostgreSQL or a non-loopback bind".to_owned(),
            ));
        }
    };
    let (stored_id, check) = match stored {
        Some(row) => row,
        None => check::record(conn, &master, Utc::now().naive_utc()).map_err(|e| match e {
            check::SealError::Db(db) => database(db),
            check::SealError::MasterKey(key) => fail(key),
        })?,
    };
    if master.verify_check(&check).is_err() {
        return Err(StartupError::MasterKey(format!(
            "the master key (id {}) is not the one this database was written with (id {stored_id})",
            master.id()
        )));
    }
    Ok(master)
}

/// Proves the database answers and applies migrations, on one connection.
pub async fn migrate_database(settings: &Settings) -> Result<(), StartupError> {
    let target = settings.database.target.describe();
    let fail = |source| StartupError::Database {
        target: target.clone(),
        source,
    };
    let database = settings.database.clone();
    tokio::task::spawn_blocking(move || {
        let mut conn = db::connect(&database)?;
        let applied = db::migrate(&mut conn)?;
        if applied > 0 {
            tracing::info!(applied, "database migrations applied");
        }
        Ok::<_, DbError>(())
    })
    .await
    .map_err(|e| StartupError::Other(e.to_string()))?
    .map_err(fail)?;
    Ok(())
}
