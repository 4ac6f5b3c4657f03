//! `cargo xtask bench <target>`: measurements, not tests.
//!
//! Each target is a subcommand of [`Target`] in its own module, measures
//! against services it starts itself, prints a table and writes it as
//! markdown to `target/bench/<target>.md`. A missed target is reported as
//! `MISS` but does not fail the command: only an error does.
//!
//! From a debug build of xtask (what `cargo xtask` runs) the command re-runs
//! itself built with `--release`, so the measured code is optimized; pass
//! `--in-process` to measure in whatever profile xtask was built with.

mod cache;
mod coord;
mod http;
mod report;
mod scheduler;

use std::ffi::OsString;

use anyhow::{Context, Result, bail};
use clap::{Args, CommandFactory, Subcommand};

use crate::process::{ChildGuard, cargo, display};

/// Options of `cargo xtask bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Measure in this process, in the profile xtask was built with, instead
    /// of re-running xtask built with `--release` (numbers from a debug build
    /// are not meaningful).
    #[arg(long, global = true)]
    in_process: bool,
    /// What to measure; without one, the targets are listed.
    #[command(subcommand)]
    target: Option<Target>,
}

/// The benchmark targets.
#[derive(Debug, Subcommand)]
enum Target {
    /// Coordination on Redis: raw GET baseline, lock cycle, lock hand-off,
    /// revision event latency, commands/s of idle nodes.
    Coord(coord::CoordArgs),
    /// Revisioned cache: hit latency against bare DashMap and moka lookups,
    /// Redis commands per 10 000 hits, convergence of a bump on 3 nodes.
    Cache(cache::CacheArgs),
    /// Scheduler on 3 node processes: duplicates and missed fires of 50
    /// master_only jobs every second, fire delay, CPU per node.
    Scheduler(scheduler::SchedulerArgs),
    /// HTTP on one lina-server node: /health against a bare actix-web
    /// handler, /api/v1/user/info with a token, Redis commands and database
    /// transactions per cached authenticated request.
    Http(http::HttpArgs),
}

impl Target {
    fn name(&self) -> &'static str {
        match self {
            Target::Coord(_) => "coord",
            Target::Cache(_) => "cache",
            Target::Scheduler(_) => "scheduler",
            Target::Http(_) => "http",
        }
    }
}

/// Only for listing the targets with their help text.
#[derive(Debug, clap::Parser)]
struct Targets {
    #[command(subcommand)]
    target: Target,
}

/// Runs `cargo xtask bench`.
pub fn run(args: BenchArgs) -> Result<()> {
    let Some(target) = args.target else {
        list_targets();
        return Ok(());
    };
    if cfg!(debug_assertions) && !args.in_process {
        return rerun_in_release(target.name());
    }
    match target {
        Target::Coord(coord_args) => coord::run(coord_args),
        Target::Cache(cache_args) => cache::run(cache_args),
        Target::Scheduler(scheduler_args) => scheduler::run(scheduler_args),
        Target::Http(http_args) => http::run(http_args),
    }
}

/// A multi-threaded tokio runtime for a benchmark.
fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("start the tokio runtime")
}

/// Runs `measure` of benchmark `target` on a fresh runtime (Ctrl-C
/// interrupts it), prints and writes its report, and says how long the
/// target took since `started`.
fn run_measurement(
    target: &str,
    started: std::time::Instant,
    measure: impl std::future::Future<Output = Result<report::Report>>,
) -> Result<()> {
    let runtime = runtime()?;
    let result = runtime.block_on(async {
        tokio::select! {
            report = measure => report,
            _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("interrupted")),
        }
    });
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    result?.print_and_write()?;
    eprintln!(
        "xtask bench {target}: done in {}",
        crate::process::secs(started.elapsed())
    );
    Ok(())
}

fn list_targets() {
    println!("benchmark targets (cargo xtask bench <target> [--help]):");
    let command = Targets::command();
    for sub in command.get_subcommands() {
        let about = sub.get_about().map(|a| a.to_string()).unwrap_or_default();
        let about = about.split_whitespace().collect::<Vec<_>>().join(" ");
        println!("  {:<10} {about}", sub.get_name());
    }
}

/// Runs the same command line again from xtask built with `--release`.
fn rerun_in_release(target: &str) -> Result<()> {
    let mut cmd = cargo(&["run", "--release", "--package", "xtask", "--"]);
    cmd.args(std::env::args_os().skip(1))
        .arg(OsString::from("--in-process"));
    eprintln!(
        "xtask bench {target}: measuring with an optimized build: {} \
         (the first release build takes a few minutes)",
        display(&cmd)
    );
    let status = ChildGuard::spawn(&mut cmd)?.wait()?;
    if !status.success() {
        bail!("xtask bench {target} (release build) failed: {status}");
    }
    Ok(())
}
