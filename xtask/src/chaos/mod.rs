//! `cargo xtask chaos`: fault scenarios against a real three-node cluster.
//!
//! Every scenario starts its own private `redis-server` (lina-testkit), its
//! own database (a fresh one on the PostgreSQL tests use, or for scenario 5
//! a private throwaway PostgreSQL cluster) and three `lina-server`
//! processes in cluster mode with short leases, puts them under HTTP load
//! (a built-in generator), injects its fault and checks the answers and
//! the database afterwards:
//!
//! 1. SIGKILL of the leader, five times;
//! 2. SIGSTOP of the leader for two leases;
//! 3. Redis restarted with an empty dataset;
//! 4. Redis unreachable (SIGSTOP) for 20 s (6 s with `--short`);
//! 5. PostgreSQL restarted (`pg_ctl restart -m fast`);
//! 6. rolling restart of every node through a load balancer (nginx if
//!    installed, else the generator's built-in one);
//! 7. security: revocations and permission changes on every node within
//!    200 ms, the login rate limit across nodes, no secret in any log.
//!
//! The report (a markdown table per scenario) is printed, written to
//! `target/chaos/report.md` (and `--report FILE`); node logs stay under
//! `target/chaos/<scenario>/`. The command fails when any check fails.
//! Every process is stopped on exit, also on Ctrl-C, errors and panics
//! (drop guards). The shared PostgreSQL and Redis are never restarted,
//! paused or flushed. See docs/benchmarks.md, section "Chaos".

mod api;
mod cluster;
mod env;
mod fires;
mod lb;
mod leader;
mod load;
mod pg;
mod report;
mod s1_leader_kill;
mod s2_leader_pause;
mod s3_redis_restart;
mod s4_redis_outage;
mod s5_postgres_restart;
mod s6_rolling_restart;
mod s7_security;
mod secrets;
mod util;

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use clap::Args;

use self::api::Api;
use self::cluster::Settings;
use self::env::Ctx;
use self::report::{RunReport, ScenarioReport, fmt_secs, scenario_markdown};
pub use self::s6_rolling_restart::LbChoice;
use self::util::{Clock, Secrets, ms, random_string, show_path, target_dir};
use crate::process::{ChildGuard, cargo, display};

/// Options of `cargo xtask chaos`.
#[derive(Debug, Args)]
pub struct ChaosArgs {
    /// Shorter phases (Redis outage 6 s instead of 20 s, PostgreSQL down 3 s
    /// instead of 12 s, shorter steady and settle times): about 2 minutes
    /// with `--dev` on 2 cores.
    #[arg(long)]
    short: bool,
    /// Run only these scenarios (1–7, e.g. `--scenario 1 4`); default all.
    #[arg(long = "scenario", value_name = "N", num_args = 1.., value_parser = clap::value_parser!(u8).range(1..=7))]
    scenarios: Vec<u8>,
    /// Also write the report to this file.
    #[arg(long, value_name = "FILE")]
    report: Option<PathBuf>,
    /// Test the debug build of lina-server (quick to build) instead of the
    /// release build.
    #[arg(long)]
    dev: bool,
    /// The load balancer of scenario 6.
    #[arg(long, value_enum, default_value_t = LbChoice::Auto)]
    lb: LbChoice,
    /// Concurrent tasks of the load generator.
    #[arg(long, value_name = "N", default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=256))]
    concurrency: u32,
    /// Requests per second of the load generator, all tasks together.
    #[arg(long, value_name = "N", default_value_t = 150, value_parser = clap::value_parser!(u32).range(1..=20_000))]
    rate: u32,
}

/// The scenarios: number and directory name.
const SCENARIOS: [(u8, &str); 7] = [
    (1, "leader-kill"),
    (2, "leader-pause"),
    (3, "redis-restart"),
    (4, "redis-outage"),
    (5, "postgres-restart"),
    (6, "rolling-restart"),
    (7, "security"),
];

/// Runs `cargo xtask chaos`.
pub fn run(args: ChaosArgs) -> Result<()> {
    let started = Instant::now();
    let profile = if args.dev { "debug" } else { "release" };
    let mut build = cargo(&["build", "-p", "lina-server"]);
    if !args.dev {
        build.arg("--release");
    }
    // `cargo run` gave this process the variables of the xtask package
    // (CARGO_MANIFEST_DIR, CARGO_PKG_*…); passed on, they change the
    // fingerprint of build scripts that read them (ring's reads
    // CARGO_MANIFEST_DIR) and a build from here would redo what a build
    // from the shell did, and the other way round.
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy().into_owned();
        let set_by_cargo_run = key.starts_with("CARGO_PKG_")
            || [
                "CARGO_MANIFEST_DIR",
                "CARGO_MANIFEST_PATH",
                "CARGO_CRATE_NAME",
                "CARGO_BIN_NAME",
                "CARGO_PRIMARY_PACKAGE",
                "CARGO_RUSTC_CURRENT_DIR",
            ]
            .contains(&key.as_str());
        if set_by_cargo_run {
            build.env_remove(key);
        }
    }
    eprintln!("xtask chaos: building the server: {}", display(&build));
    let status = ChildGuard::spawn(&mut build)?.wait()?;
    if !status.success() {
        bail!("{} failed: {status}", display(&build));
    }
    let binary = target_dir().join(profile).join("lina-server");
    if !binary.is_file() {
        bail!("no server binary at {}", binary.display());
    }
    let mut selected: Vec<u8> = if args.scenarios.is_empty() {
        SCENARIOS.iter().map(|(id, _)| *id).collect()
    } else {
        args.scenarios.clone()
    };
    selected.sort_unstable();
    selected.dedup();
    let root = target_dir().join("chaos");
    let dirs: Vec<(u8, PathBuf)> = selected
        .iter()
        .map(|id| {
            let name = SCENARIOS[usize::from(*id) - 1].1;
            (*id, root.join(format!("{id}-{name}")))
        })
        .collect();
    for (_, dir) in &dirs {
        if dir.exists() {
            std::fs::remove_dir_all(dir).with_context(|| format!("clear {}", dir.display()))?;
        }
        std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    }
    let secrets = Secrets::default();
    let jwt_secret = format!("chaos-{}", random_string(40));
    secrets.add("JWT secret", &jwt_secret);
    let settings = Settings::chaos();
    let mut run = RunReport {
        setup: setup_lines(&args, profile, &settings),
        ..RunReport::default()
    };
    let load_at_start = load_average();

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("start the tokio runtime")?;
    let run_dirs: Vec<PathBuf> = dirs.iter().map(|(_, d)| d.clone()).collect();
    let interrupted = runtime.block_on(async {
        let all = async {
            for (n, (id, dir)) in dirs.iter().enumerate() {
                let mut settings = settings.clone();
                if *id == 7 {
                    // The product default: everything Lina logs.
                    settings.log_level = "all".into();
                }
                let ctx = Ctx {
                    id: *id,
                    dir: dir.clone(),
                    binary: binary.clone(),
                    short: args.short,
                    concurrency: args.concurrency as usize,
                    rate: args.rate,
                    secrets: secrets.clone(),
                    settings,
                    clock: Clock::new(),
                    api: Api::new(secrets.clone()),
                    jwt_secret: jwt_secret.clone(),
                    run_dirs: run_dirs.clone(),
                };
                eprintln!(
                    "xtask chaos: [{}/{}] scenario {id} ({}) …",
                    n + 1,
                    dirs.len(),
                    SCENARIOS[usize::from(*id) - 1].1
                );
                let report = run_scenario(&ctx, args.lb).await;
                eprintln!(
                    "xtask chaos: [{}/{}] scenario {id} {} in {}",
                    n + 1,
                    dirs.len(),
                    if report.passed() { "✓" } else { "✗" },
                    fmt_secs(report.elapsed)
                );
                eprint!("{}", scenario_markdown(&report));
                run.scenarios.push(report);
            }
        };
        tokio::select! {
            () = all => false,
            _ = tokio::signal::ctrl_c() => true,
        }
    });
    runtime.shutdown_timeout(Duration::from_secs(2));
    run.elapsed = started.elapsed();
    run.setup.push((
        "load average (1 min)".into(),
        format!(
            "{} at the start, {} at the end",
            load_at_start.as_deref().unwrap_or("unknown"),
            load_average().as_deref().unwrap_or("unknown")
        ),
    ));
    let markdown = run.markdown();
    println!("{markdown}");
    let path = root.join("report.md");
    std::fs::create_dir_all(&root)?;
    std::fs::write(&path, &markdown).with_context(|| format!("write {}", path.display()))?;
    eprintln!("xtask chaos: report written to {}", show_path(&path));
    if let Some(extra) = &args.report {
        std::fs::write(extra, &markdown).with_context(|| format!("write {}", extra.display()))?;
        eprintln!("xtask chaos: report written to {}", extra.display());
    }
    eprintln!("xtask chaos: done in {}", fmt_secs(run.elapsed));
    if interrupted {
        return Err(anyhow!(
            "interrupted (the report holds the scenarios that finished)"
        ));
    }
    if !run.passed() {
        bail!(
            "{} check(s) failed; see the report and the node logs under {}",
            run.failed_checks(),
            show_path(&root)
        );
    }
    Ok(())
}

/// Runs one scenario; an error becomes a failed check of its report.
async fn run_scenario(ctx: &Ctx, lb: LbChoice) -> ScenarioReport {
    let started = Instant::now();
    let mut report = ScenarioReport {
        id: ctx.id,
        title: SCENARIOS[usize::from(ctx.id) - 1].1.to_string(),
        logs: show_path(&ctx.dir),
        ..ScenarioReport::default()
    };
    let result = match ctx.id {
        1 => s1_leader_kill::run(ctx, &mut report).await,
        2 => s2_leader_pause::run(ctx, &mut report).await,
        3 => s3_redis_restart::run(ctx, &mut report).await,
        4 => s4_redis_outage::run(ctx, &mut report).await,
        5 => s5_postgres_restart::run(ctx, &mut report).await,
        6 => s6_rolling_restart::run(ctx, lb, &mut report).await,
        7 => s7_security::run(ctx, &mut report).await,
        other => Err(anyhow!("no scenario {other}")),
    };
    if let Err(e) = result {
        report.check(
            "the scenario ran to completion",
            format!("{e:#}"),
            "no error",
            false,
        );
    }
    report.elapsed = started.elapsed();
    report
}

fn setup_lines(args: &ChaosArgs, profile: &str, s: &Settings) -> Vec<(String, String)> {
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, m)| m.trim().to_string())
        })
        .unwrap_or_default();
    let version = |program: &str, arg: &str| {
        Command::new(program)
            .arg(arg)
            .output()
            .ok()
            .map(|o| {
                let text = if o.stdout.is_empty() {
                    o.stderr
                } else {
                    o.stdout
                };
                String::from_utf8_lossy(&text)
                    .lines()
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_string()
            })
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| "unknown".into())
    };
    let head = Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .current_dir(crate::process::workspace_root())
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    vec![
        ("machine".into(), format!("{cpus} CPUs ({model})")),
        (
            "server".into(),
            format!(
                "`target/{profile}/lina-server` ({}), commit {head}",
                if profile == "release" {
                    "release build"
                } else {
                    "debug build, `--dev`"
                }
            ),
        ),
        ("redis-server".into(), version("redis-server", "--version")),
        (
            "variant".into(),
            if args.short {
                "`--short`".into()
            } else {
                "long (default)".into()
            },
        ),
        (
            "node timings".into(),
            format!(
                "lease {}, renewInterval {}, cache revisionPoll {}, maxStale {}, Redis read/write timeout {}, health timeout {}, shutdown timeout {}",
                ms(s.lease),
                ms(s.renew),
                ms(s.revision_poll),
                ms(s.max_stale),
                ms(s.redis_timeout),
                ms(s.health_timeout),
                ms(s.shutdown_timeout)
            ),
        ),
        (
            "load".into(),
            format!(
                "{} tasks, {} requests/s together, cycling through {}",
                args.concurrency,
                args.rate,
                load::PATHS
                    .iter()
                    .map(|(p, _)| format!("`{p}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ),
    ]
}

/// The 1-minute load average (`/proc/loadavg`), when known.
fn load_average() -> Option<String> {
    let loadavg = std::fs::read_to_string("/proc/loadavg").ok()?;
    loadavg.split_whitespace().next().map(str::to_string)
}
