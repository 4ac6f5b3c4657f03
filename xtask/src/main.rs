//! Developer automation for the Lina workspace: `cargo xtask <command>`.
//!
//! `cargo xtask` is an alias (in `.cargo/config.toml`) for
//! `cargo run --package xtask --quiet --`. Each command lives in its own module;
//! later ones (`chaos`) are added the same way.
//!
//! ```text
//! cargo xtask test                 # fmt check, clippy, services, nextest, doc tests
//! cargo xtask test --no-clippy -p lina-testkit -- redis::   # skip a step, one package, a filter
//! cargo xtask services start       # find or start PG + Redis, print `export …` lines
//! cargo xtask services stop        # stop throwaway servers left running
//! cargo xtask bench                # list the benchmark targets
//! cargo xtask bench coord          # measure coordination on a private redis-server
//! cargo xtask bench http           # one lina-server node against a bare actix-web handler
//! cargo xtask run-cluster          # 3 nodes + nginx on :9120, roles shown as they change
//! cargo xtask run-cluster ctl kill node-2   # …while it runs: kill, pause, restart, restart-redis
//! cargo xtask verify --url http://127.0.0.1:9120   # the scaling checklist against a cluster
//! ```

mod bench;
mod chaos;
mod cluster;
mod lina_api;
mod process;
mod services;
mod test;
mod verify;

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
    /// target/bench/TARGET.md.
    Bench(bench::BenchArgs),
    /// Run N lina-server nodes in cluster mode behind nginx (when installed)
    /// on this machine, showing role changes; `run-cluster ctl …` kills,
    /// pauses or restarts nodes and the private Redis while it runs.
    RunCluster(cluster::RunClusterArgs),
    /// Check a running cluster against the scaling checklist (health,
    /// readiness, one leader, tokens, menus, plugins, master_only jobs,
    /// permission changes on every node).
    Verify(verify::VerifyArgs),
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
        Command::RunCluster(args) => cluster::run(args),
        Command::Verify(args) => verify::run(args),
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
