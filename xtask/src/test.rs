//! `cargo xtask test`: everything CI checks, in order, stopping at the first failure.
//!
//! 1. `cargo fmt --all -- --check`
//! 2. `cargo clippy --workspace --all-targets --all-features -- -D warnings`
//! 3. the dependency invariants of docs/ARCHITECTURE.md (`cargo tree`)
//! 4. PostgreSQL and Redis for the tests (from `LINA_TEST_DATABASE_URL` /
//!    `LINA_TEST_REDIS_URL`, the default local ports, or throwaway servers
//!    started from the installed binaries), exported to the next steps
//! 5. `cargo nextest run --workspace --all-features [FILTER…]`
//! 6. `cargo test --workspace --all-features --doc`
//! 7. the scaling checklist on a real cluster: `cargo xtask run-cluster`
//!    (three nodes of the binary nextest built, a private Redis, nginx when
//!    installed) in `target/ci-cluster`, then `cargo xtask verify` against it
//! 8. `cargo xtask chaos --short --dev`: the fault scenarios (leader kill and
//!    pause, Redis restart and outage, PostgreSQL restart, rolling restart,
//!    security) against a three-node cluster under load

use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use clap::Args;
use lina_testkit::{DATABASE_URL_ENV, REDIS_URL_ENV, ServiceSource, Services};

use crate::process::{ChildGuard, cargo, display, secs};

/// Options of `cargo xtask test`.
#[derive(Debug, Args)]
pub struct TestArgs {
    /// Skip `cargo fmt --check`.
    #[arg(long)]
    no_fmt: bool,
    /// Skip clippy.
    #[arg(long)]
    no_clippy: bool,
    /// Skip the doc tests.
    #[arg(long)]
    no_doc: bool,
    /// Skip the run-cluster + verify and chaos steps (also skipped with
    /// `--package` or a nextest filter).
    #[arg(long)]
    no_cluster: bool,
    /// Leave throwaway PostgreSQL / Redis servers started by this run running
    /// (they are reused by later runs); by default they are stopped at the end.
    #[arg(long)]
    keep_services: bool,
    /// Check and test only these packages instead of the whole workspace
    /// (clippy, nextest and doc tests; the fmt check always covers everything).
    #[arg(short, long = "package", value_name = "SPEC")]
    packages: Vec<String>,
    /// Extra arguments for `cargo nextest run`, e.g. a test filter.
    #[arg(last = true)]
    nextest_args: Vec<String>,
}

/// What has run so far, for the summary line.
#[derive(Debug, Default)]
struct Report {
    done: Vec<(&'static str, Duration)>,
}

impl Report {
    fn summary(&self) -> String {
        self.done
            .iter()
            .map(|(name, d)| format!("{name} {}", secs(*d)))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Stops the throwaway servers this run started, also on an early return.
struct ServiceCleanup {
    stop: bool,
}

impl Drop for ServiceCleanup {
    fn drop(&mut self) {
        if self.stop {
            eprintln!("xtask: stopping the throwaway services this run started");
            if let Err(e) = lina_testkit::stop_throwaways_blocking() {
                eprintln!("xtask: could not stop throwaway services: {e}");
            }
        }
    }
}

/// Runs `cargo xtask test`.
pub fn run(args: TestArgs) -> Result<()> {
    let started = Instant::now();
    let mut report = Report::default();
    let mut env: Vec<(&'static str, String)> = Vec::new();
    let scope: Vec<String> = if args.packages.is_empty() {
        vec!["--workspace".into()]
    } else {
        args.packages
            .iter()
            .flat_map(|p| ["--package".to_string(), p.clone()])
            .collect()
    };

    let cluster = !args.no_cluster && args.packages.is_empty() && args.nextest_args.is_empty();
    let total = 8
        - usize::from(args.no_fmt)
        - usize::from(args.no_clippy)
        - usize::from(args.no_doc)
        - 2 * usize::from(!cluster);
    let mut index = 0;
    let mut step = |name: &'static str,
                    report: &mut Report,
                    f: &mut dyn FnMut() -> Result<()>|
     -> Result<()> {
        index += 1;
        eprintln!("xtask test: [{index}/{total}] {name}");
        let t = Instant::now();
        match f() {
            Ok(()) => {
                let d = t.elapsed();
                eprintln!("xtask test: [{index}/{total}] {name} ok in {}", secs(d));
                report.done.push((name, d));
                Ok(())
            }
            Err(e) => {
                eprintln!(
                    "xtask test: FAILED at step `{name}` after {} ({e:#}); passed before it: [{}]; total {}",
                    secs(t.elapsed()),
                    report.summary(),
                    secs(started.elapsed())
                );
                Err(e)
            }
        }
    };

    if !args.no_fmt {
        step("fmt", &mut report, &mut || {
            run_cmd(&mut cargo(&["fmt", "--all", "--", "--check"]), &[])
        })?;
    }
    if !args.no_clippy {
        step("clippy", &mut report, &mut || {
            let mut cmd = cargo(&["clippy"]);
            cmd.args(&scope)
                .args(["--all-targets", "--all-features", "--", "-D", "warnings"]);
            run_cmd(&mut cmd, &[])
        })?;
    }

    step("invariants", &mut report, &mut check_dependency_invariants)?;

    let mut cleanup = ServiceCleanup { stop: false };
    step("services", &mut report, &mut || {
        let services = lina_testkit::ensure_services_blocking()?;
        cleanup.stop = !args.keep_services && started_any(&services);
        describe("postgres", &services.database.url, services.database.source);
        describe("redis", &services.redis.url, services.redis.source);
        env = vec![
            (DATABASE_URL_ENV, services.database.url.clone()),
            (REDIS_URL_ENV, services.redis.url.clone()),
        ];
        Ok(())
    })?;

    step("nextest", &mut report, &mut || {
        ensure_nextest()?;
        let mut cmd = cargo(&["nextest", "run"]);
        cmd.args(&scope)
            .arg("--all-features")
            .args(&args.nextest_args);
        run_cmd(&mut cmd, &env)
    })?;

    if !args.no_doc {
        step("doctest", &mut report, &mut || {
            let mut cmd = cargo(&["test"]);
            cmd.args(&scope).args(["--all-features", "--doc"]);
            run_cmd(&mut cmd, &env)
        })?;
    }

    if cluster {
        step("cluster", &mut report, &mut || cluster_smoke(&env))?;
        step("chaos", &mut report, &mut || {
            let xtask = std::env::current_exe()?;
            run_cmd(
                Command::new(xtask).args(["chaos", "--short", "--dev"]),
                &env,
            )
        })?;
    }

    drop(cleanup);
    eprintln!(
        "xtask test: all {total} steps ok ({}); total {}",
        report.summary(),
        secs(started.elapsed())
    );
    Ok(())
}

/// How long the cluster may take to come up.
const CLUSTER_START: Duration = Duration::from_secs(240);

/// `run-cluster` on free ports with the binary nextest built, then the
/// `verify` command it prints; the cluster is stopped with Ctrl-C's signal.
fn cluster_smoke(env: &[(&'static str, String)]) -> Result<()> {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;

    let xtask = std::env::current_exe()?;
    let binary = crate::process::target_dir().join("debug/lina-server");
    let base = free_port_run(4)?;
    let database = env
        .iter()
        .find(|(k, _)| *k == DATABASE_URL_ENV)
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    let mut cmd = Command::new(&xtask);
    cmd.args(["run-cluster", "--nodes", "3", "--fresh", "--lease", "3s"])
        .args(["--base-port", &base.to_string()])
        .args(["--db-name", "lina_ci_cluster", "--namespace", "lina-ci"])
        .arg("--dir")
        .arg(crate::process::target_dir().join("ci-cluster"))
        .arg("--binary")
        .arg(&binary)
        .args(["--database", &database])
        .stdout(Stdio::piped());
    let mut supervisor = ChildGuard::spawn(&mut cmd)?;
    let stdout = supervisor.take_stdout().expect("piped stdout");
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout)
            .lines()
            .map_while(std::result::Result::ok)
        {
            eprintln!("  run-cluster | {line}");
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let deadline = Instant::now() + CLUSTER_START;
    let verify = loop {
        match rx.recv_timeout(Duration::from_millis(500)) {
            Ok(line) => {
                if let Some(command) = line.trim().strip_prefix("check it:") {
                    break command.trim().to_string();
                }
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                bail!("run-cluster ended before the cluster was up")
            }
        }
        if let Some(status) = supervisor.try_wait()? {
            bail!("run-cluster exited with {status} before the cluster was up");
        }
        if Instant::now() > deadline {
            bail!("the cluster was not up within {CLUSTER_START:?}");
        }
    };
    let args: Vec<&str> = verify
        .strip_prefix("cargo xtask verify")
        .unwrap_or(&verify)
        .split_whitespace()
        .collect();
    let verified = run_cmd(Command::new(&xtask).arg("verify").args(&args), &[]);
    supervisor.signal(nix::sys::signal::Signal::SIGINT);
    let stop_deadline = Instant::now() + Duration::from_secs(60);
    while supervisor.try_wait()?.is_none() {
        if Instant::now() > stop_deadline {
            bail!("run-cluster did not stop within 60s of SIGINT");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    verified
}

/// A base port `p` with `p .. p + count` all free on 127.0.0.1.
fn free_port_run(count: u16) -> Result<u16> {
    for _ in 0..200 {
        let base = lina_testkit::free_port();
        if base > u16::MAX - count {
            continue;
        }
        if (base..base + count).all(|p| std::net::TcpListener::bind(("127.0.0.1", p)).is_ok()) {
            return Ok(base);
        }
    }
    bail!("no {count} consecutive free ports found")
}

/// Which crates must never depend on which: the layering of
/// docs/ARCHITECTURE.md. Crates not in the workspace yet are skipped.
const FORBIDDEN: &[(&str, &[&str])] = &[
    (
        "lina-coord-api",
        &["fred", "sea-orm", "sqlx", "actix-web", "lina-config"],
    ),
    (
        "lina-coord-local",
        &["fred", "sea-orm", "sqlx", "actix-web"],
    ),
    (
        "lina-cache",
        &[
            "fred",
            "sea-orm",
            "sqlx",
            "actix-web",
            "lina-coord-local",
            "lina-coord-redis",
        ],
    ),
    (
        "lina-scheduler",
        &["fred", "actix-web", "lina-coord-local", "lina-coord-redis"],
    ),
    ("lina-config", &["fred", "sea-orm", "sqlx", "actix-web"]),
];

fn check_dependency_invariants() -> Result<()> {
    let mut broken = Vec::new();
    for (krate, forbidden) in FORBIDDEN {
        let out = cargo(&[
            "tree",
            "--package",
            krate,
            "--edges",
            "normal",
            "--prefix",
            "none",
        ])
        .output()?;
        if !out.status.success() {
            let stderr = String::from_utf8_lossy(&out.stderr);
            if stderr.contains("did not match any packages") {
                continue; // not a member yet
            }
            bail!("cargo tree --package {krate} failed: {stderr}");
        }
        let tree = String::from_utf8_lossy(&out.stdout);
        for line in tree.lines() {
            let name = line.split_whitespace().next().unwrap_or("");
            if forbidden.contains(&name) {
                broken.push(format!("{krate} depends on {name}"));
            }
        }
    }
    broken.sort();
    broken.dedup();
    if broken.is_empty() {
        Ok(())
    } else {
        bail!("layering broken: {}", broken.join("; "))
    }
}

fn started_any(services: &Services) -> bool {
    [services.database.source, services.redis.source]
        .contains(&ServiceSource::Throwaway { started: true })
}

pub(crate) fn describe(what: &str, url: &str, source: ServiceSource) {
    let from = match source {
        ServiceSource::Env => "from the environment",
        ServiceSource::DefaultPort => "already running on the default port",
        ServiceSource::Throwaway { started: true } => "throwaway, started now",
        ServiceSource::Throwaway { started: false } => "throwaway, already running",
    };
    eprintln!("xtask:   {what}: {} ({from})", redact(url));
}

/// `url` with any password replaced by `***`.
fn redact(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => match rest.split_once('@') {
            Some((userinfo, host)) => {
                let user = userinfo.split(':').next().unwrap_or("");
                if userinfo.contains(':') {
                    format!("{scheme}://{user}:***@{host}")
                } else {
                    url.to_string()
                }
            }
            None => url.to_string(),
        },
        None => url.to_string(),
    }
}

fn ensure_nextest() -> Result<()> {
    let ok = cargo(&["nextest", "--version"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !ok {
        bail!(
            "cargo-nextest is not installed: install it with `cargo install cargo-nextest --locked`"
        );
    }
    Ok(())
}

fn run_cmd(cmd: &mut Command, env: &[(&str, String)]) -> Result<()> {
    for (k, v) in env {
        cmd.env(k, v);
    }
    eprintln!("xtask test:   $ {}", display(cmd));
    let status = ChildGuard::spawn(cmd)?.wait()?;
    if !status.success() {
        bail!("`{}` exited with {status}", display(cmd));
    }
    Ok(())
}
