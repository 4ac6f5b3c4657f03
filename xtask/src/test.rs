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

    let total =
        6 - usize::from(args.no_fmt) - usize::from(args.no_clippy) - usize::from(args.no_doc);
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

    drop(cleanup);
    eprintln!(
        "xtask test: all {total} steps ok ({}); total {}",
        report.summary(),
        secs(started.elapsed())
    );
    Ok(())
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
