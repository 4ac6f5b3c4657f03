//! Developer automation for the Lina workspace: `cargo xtask <command>`.
//!
//! `cargo xtask` is an alias (in `.cargo/config.toml`) for
//! `cargo run --package xtask --quiet --`. Each command lives in its own module;
//! later ones (`run-cluster`, `verify`, `chaos`) are added the same way.
//!
//! ```text
//! cargo xtask test                 # fmt check, clippy, services, nextest, doc tests
//! cargo xtask test --no-clippy -p lina-testkit -- redis::   # skip a step, one package, a filter
//! cargo xtask services start       # find or start PG + Redis, print `export …` lines
//! cargo xtask services stop        # stop throwaway servers left running
//! cargo xtask bench                # list the benchmark targets
//! cargo xtask bench coord          # measure coordination on a private redis-server
//! cargo xtask bench http           # one lina-server node against a bare actix-web handler
//! ```

mod bench;
mod chaos;
mod process;
mod services;
mod test;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Developer automation for the Lina workspace.
#[derive(Debug, Parser)]
#[command(name = "cargo xtask", bin_name = "cargo xtask")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run what CI runs: fmt check, clippy -D warnings, nextest, doc tests.
    Test(test::TestArgs),
    /// Start, show or stop the PostgreSQL and Redis that tests use.
    Services(services::ServicesArgs),
    /// Measure a subsystem (`cargo xtask bench` lists the targets); writes
    /// target/bench/<target>.md.
    Bench(bench::BenchArgs),
    /// Fault scenarios against a three-node cluster under load; writes
    /// target/chaos/report.md and fails when a check fails.
    Chaos(chaos::ChaosArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Test(args) => test::run(args),
        Command::Services(args) => services::run(args),
        Command::Bench(args) => bench::run(args),
        Command::Chaos(args) => chaos::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
