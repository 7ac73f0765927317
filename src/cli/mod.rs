//! The command line: `serve` (the default) and the offline administration
//! commands, which work directly on the database.
//!
//! Exit codes: 0 ok, 1 failure, 2 usage (clap's own), 3 refused (`token`
//! and `verify`: the key or token was not accepted). Logs go to stderr; a
//! command's result (such as a new secret) is the only thing on stdout.

use std::process::ExitCode;

use clap::Parser;

mod admin;
mod args;
mod client;
mod runtime;

pub use args::{
    Cli, Command, CreateKeyArgs, KeysCommand, LeaksCommand, MasterKeyCommand, ServeArgs,
    SettingsCommand, SigningKeysCommand,
};

use crate::config::{Overrides, Settings};
use crate::startup::{self, Application, StartOptions};
use crate::telemetry;
use runtime::runtime;

/// Parses the command line and runs it.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    disable_core_dumps();
    crate::tokens::ring_provider::install();
    let command = cli.command.unwrap_or(Command::Serve(cli.serve));
    // Client commands need no configuration or database.
    let command = match command {
        Command::Token(args) => return client::token(args),
        Command::Verify(args) => return client::verify(args),
        Command::Openapi => return client::openapi(),
        other => other,
    };
    let overrides = Overrides {
        data_dir: cli.data_dir,
        bind: match &command {
            Command::Serve(args) => args.bind,
            _ => None,
        },
        database_url: cli.database_url,
    };
    let settings = match Settings::load(cli.config.as_deref(), &overrides) {
        Ok(settings) => settings,
        Err(err) => return fail(err),
    };
    telemetry::init(settings.log.format, &settings.log.level);
    let result = match command {
        Command::Serve(args) => serve(settings, StartOptions::from_env(args.print_bootstrap_key)),
        Command::Migrate => migrate(settings),
        Command::Keys(command) => admin::keys(&settings, command),
        Command::SigningKeys(SigningKeysCommand::Rotate) => admin::rotate_signing_keys(&settings),
        Command::Settings(SettingsCommand::Set {
            tenant,
            assignments,
        }) => admin::set_settings(&settings, &tenant, &assignments),
        Command::MasterKey(MasterKeyCommand::Rotate { new_key_file }) => {
            admin::rotate_master_key(&settings, &new_key_file)
        }
        Command::Leaks(LeaksCommand::Patterns) => {
            print_scan_pattern(&settings.tokens.key_prefix);
            Ok(())
        }
        Command::BenchSeed {
            count,
            out,
            scopes,
            owners,
        } => admin::bench_seed(&settings, count, &out, scopes, owners),
        Command::Token(_) | Command::Verify(_) | Command::Openapi => {
            unreachable!("handled before the configuration is loaded")
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => fail(err),
    }
}

/// One line on stderr, whatever the cause printed (libpq's messages span lines).
fn fail(err: impl std::fmt::Display) -> ExitCode {
    let message = err.to_string();
    let line: Vec<&str> = message.split_whitespace().collect();
    eprintln!("keymint: {}", line.join(" "));
    ExitCode::FAILURE
}

/// A crash must not write secrets held in memory to a core file.
fn disable_core_dumps() {
    if let Err(err) = rlimit::setrlimit(rlimit::Resource::CORE, 0, 0) {
        eprintln!("keymint: warning: cannot disable core dumps: {err}");
    }
}

fn serve(settings: Settings, options: StartOptions) -> Result<(), String> {
    actix_web::rt::System::new().block_on(async move {
        tracing::info!(
            bind = %settings.server.bind,
            database = %settings.database.target.describe(),
            issuer = %settings.tokens.issuer,
            "starting keymint"
        );
        let app = Application::build_with(settings, options)
            .await
            .map_err(|e| e.to_string())?;
        tracing::info!(port = app.port(), "listening");
        app.run_until_stopped().await.map_err(|e| e.to_string())?;
        tracing::info!("stopped");
        Ok(())
    })
}

fn migrate(settings: Settings) -> Result<(), String> {
    let runtime = runtime()?;
    runtime.block_on(async {
        startup::migrate_database(&settings)
            .await
            .map_err(|e| e.to_string())?;
        println!("migrations are up to date");
        Ok(())
    })
}

/// `keymint leaks patterns`: the fields of a custom secret-scanning pattern,
/// then the same as one expression.
fn print_scan_pattern(prefix: &str) {
    let pattern = crate::keys::secret::ScanPattern::for_prefix(prefix);
    println!("secret format: {}", pattern.secret);
    println!("before secret: {}", pattern.before);
    println!("after secret:  {}", pattern.after);
    println!("one expression (grep -E): {}", pattern.single());
}
