//! Command line: `serve` (the default) and `check-config`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};

use crate::plugin::SourcePlugin;

/// Exit status for an invalid configuration.
pub const EXIT_INVALID_CONFIG: u8 = 2;

/// `lina-server` command line.
#[derive(Debug, Parser)]
#[command(name = "lina-server", version, about = "The Lina core service")]
pub struct Cli {
    /// What to do; `serve` when omitted.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// YAML config file (default: `config.yaml` in the current directory, if
    /// present); `LINA_CONFIG` sets it too.
    #[arg(long, global = true, value_name = "FILE", env = "LINA_CONFIG")]
    pub config: Option<PathBuf>,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start the service.
    Serve,
    /// Print the effective configuration with secrets redacted, or every
    /// problem found, and exit with status 2 when it is invalid.
    CheckConfig,
}

/// Runs the command line with the source plugins of this build.
pub fn main() -> ExitCode {
    run_with_plugins(crate::plugin::builtin())
}

/// Runs the command line with `plugins` as the build's source plugins: a
/// binary crate that adds its own plugins calls this from its `main`.
pub fn run_with_plugins(plugins: Vec<Arc<dyn SourcePlugin>>) -> ExitCode {
    let cli = Cli::parse();
    let loaded = match lina_config::load(cli.config.as_deref()) {
        Ok(loaded) => loaded,
        Err(error) => {
            eprintln!("{error}");
            return ExitCode::from(EXIT_INVALID_CONFIG);
        }
    };
    match cli.command.unwrap_or(Command::Serve) {
        Command::CheckConfig => {
            for warning in &loaded.warnings {
                eprintln!("warning: {warning}");
            }
            print!("{}", loaded.config.effective_yaml());
            ExitCode::SUCCESS
        }
        Command::Serve => {
            crate::logging::init(&loaded.config);
            loaded.log_warnings();
            let runtime = || {
                tokio::runtime::Builder::new_multi_thread()
                    .enable_all()
                    .build()
                    .expect("cannot start the tokio runtime")
            };
            let result = actix_web::rt::System::with_tokio_rt(runtime)
                .block_on(crate::http::serve(loaded.config, plugins));
            match result {
                Ok(()) => ExitCode::SUCCESS,
                Err(error) => {
                    tracing::error!(error = format!("{error:#}"), "lina-server failed");
                    eprintln!("lina-server: {error:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
