//! What a start tells the person who ran it: where the console is, and, on
//! a first start, the bootstrap key or how to make an admin key without it.

use crate::bootstrap;
use crate::config::{DatabaseTarget, Settings};
use crate::domain::scope;
use crate::keys::secret::ApiKeySecret;

/// Prints a new bootstrap key (stdout: the secret never goes to the log)
/// with the console's address and what to do next; warns when a first
/// start made no key; logs the console's address on every start.
pub(super) fn announce(settings: &Settings, secret: Option<ApiKeySecret>, without_key: bool) {
    let console = console_url(settings);
    if let Some(secret) = secret {
        println!("{}{}", bootstrap::STDOUT_MARKER, secret.expose());
        println!("admin console: {console}");
        println!(
            "next: sign in to the console with this key and create an admin key of your own; \
             this one expires in {}",
            hours(settings.bootstrap.ttl_s)
        );
    }
    if without_key {
        tracing::warn!(
            command = %admin_key_command(settings),
            "no bootstrap admin key was made: stdout is not a terminal, --print-bootstrap-key \
             was not given and {} is not set; make an admin key with the command below",
            bootstrap::KEY_FILE_ENV
        );
    }
    tracing::info!(url = %console, "admin console");
}

fn console_url(settings: &Settings) -> String {
    format!("{}/console/", settings.tokens.issuer.trim_end_matches('/'))
}

fn hours(seconds: u64) -> String {
    if seconds.is_multiple_of(3600) {
        format!("{} h", seconds / 3600)
    } else {
        format!("{} min", seconds.div_ceil(60))
    }
}

/// The CLI command that makes an admin key in the system tenant, naming the
/// database this server uses. A PostgreSQL URL may hold a password, so it
/// is referred to by `$DATABASE_URL`, never written out.
fn admin_key_command(settings: &Settings) -> String {
    let database = match &settings.database.target {
        DatabaseTarget::Sqlite(path) => format!(
            "--data-dir {} --database-url {}",
            shell_word(&settings.data_dir.display().to_string()),
            shell_word(&path.display().to_string())
        ),
        DatabaseTarget::Postgres(_) => "--database-url \"$DATABASE_URL\"".to_owned(),
    };
    let scopes = scope::RESERVED
        .iter()
        .filter(|s| **s != "keys:self")
        .copied()
        .collect::<Vec<_>>()
        .join(",");
    format!("keymint keys create --name admin --scopes {scopes} --expires-in 86400 {database}")
}

/// Quoted for a POSIX shell when it holds anything but plain path characters.
fn shell_word(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+:@%".contains(c));
    if plain {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hours_reads_naturally() {
        assert_eq!(hours(86_400), "24 h");
        assert_eq!(hours(90), "2 min");
    }

    #[test]
    fn shell_words_survive_spaces_and_quotes() {
        assert_eq!(shell_word("./data/keymint.db"), "./data/keymint.db");
        assert_eq!(shell_word("my data/it's"), r"'my data/it'\''s'");
    }
}
