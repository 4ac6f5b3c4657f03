//! `cargo xtask run-cluster`: N `lina-server` nodes in cluster mode on this
//! machine, behind nginx when it is installed, with their roles shown as
//! they change and a control channel (`run-cluster ctl …`) to kill, pause
//! or restart nodes and the private Redis by hand.
//!
//! Everything lives under `target/run-cluster/` (see [`files::Layout`]). The
//! supervisor (this process) owns every child: they run in process groups
//! of their own, so Ctrl-C reaches only the supervisor, which stops the
//! nodes (SIGTERM, then SIGKILL after a grace period), then nginx, then the
//! private redis-server. See docs/run-cluster.md.

mod ctl;
mod files;
mod procs;
mod roles;
mod services;
mod supervisor;

use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use nix::sys::signal::Signal;
use tokio::signal::unix::{SignalKind, signal};

use self::ctl::Request;
use self::files::Layout;
use self::supervisor::Supervisor;
use crate::process::{ChildGuard, cargo, display, target_dir};

/// Options of `cargo xtask run-cluster`.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct RunClusterArgs {
    /// `ctl …`: talk to a running cluster instead of starting one.
    #[command(subcommand)]
    command: Option<Sub>,
    /// Where configs, logs, state and the control socket live (default
    /// `target/run-cluster`); `ctl` must be given the same directory.
    #[arg(long, global = true, value_name = "DIR")]
    dir: Option<PathBuf>,
    #[command(flatten)]
    options: Options,
}

#[derive(Debug, Subcommand)]
enum Sub {
    /// Control the running cluster (kill, stop, pause, resume or restart a
    /// node; restart, pause or resume the private Redis; status).
    Ctl {
        #[command(subcommand)]
        request: Request,
    },
}

/// How the cluster is started.
#[derive(Debug, Clone, Args)]
struct Options {
    /// Number of nodes (node-1 … node-N).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..=32))]
    nodes: u16,
    /// The load balancer listens on this port, node K on base-port + K.
    #[arg(long, value_name = "P", default_value_t = 9120)]
    base_port: u16,
    /// Use this Redis (`redis://[user:pass@]host:port[/db]`) instead of a
    /// private redis-server; run-cluster never restarts it.
    #[arg(long, value_name = "URL", conflicts_with = "shared_redis")]
    redis: Option<String>,
    /// Use the Redis lina-testkit finds (`LINA_TEST_REDIS_URL`, then
    /// 127.0.0.1:6379) instead of a private redis-server.
    #[arg(long)]
    shared_redis: bool,
    /// PostgreSQL server (`postgres://user[:pass]@host:port/admin-db`) on
    /// which the cluster's database is created; default: the one
    /// lina-testkit finds (`LINA_TEST_DATABASE_URL`, then 127.0.0.1:5432,
    /// then a throwaway server).
    #[arg(long, value_name = "URL")]
    database: Option<String>,
    /// The cluster's database, created on first use and reused after.
    #[arg(long, value_name = "NAME", default_value = "lina_cluster")]
    db_name: String,
    /// Drop and recreate the cluster's database first (only a database
    /// run-cluster created is ever dropped).
    #[arg(long)]
    fresh: bool,
    /// `cluster.redis.namespace` of the nodes: every key they write is under it.
    #[arg(long, value_name = "NS", default_value = "lina-cluster")]
    namespace: String,
    /// `cluster.election.lease` (renewInterval is a third of it): how long
    /// a killed leader keeps the lease.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    lease: Duration,
    /// Build and run `lina-server` with `--release` (default: the dev profile).
    #[arg(long, conflicts_with = "binary")]
    release: bool,
    /// Run this `lina-server` binary instead of building the workspace's
    /// (e.g. a release artifact or another checkout's build).
    #[arg(long, value_name = "PATH")]
    binary: Option<PathBuf>,
    /// Do not start nginx even if it is installed.
    #[arg(long)]
    no_nginx: bool,
    /// The user whose token polls `/api/v1/system/info` for the roles.
    #[arg(long, default_value = "admin")]
    username: String,
    /// Its password.
    #[arg(long, default_value = "admin123")]
    password: String,
}

/// A Go-style duration flag (`10s`, `1500ms`, `1m`).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    lina_config::duration::parse_duration(text).map_err(|e| e.to_string())
}

/// How long a node may take to answer `/health` after it was started.
const NODE_START: Duration = Duration::from_secs(180);
/// `shutdown.timeout` of the nodes.
const NODE_SHUTDOWN: Duration = Duration::from_secs(10);
/// How long the supervisor waits for a node to stop after SIGTERM.
const NODE_GRACE: Duration = Duration::from_secs(15);
/// How often roles and processes are checked.
const POLL: Duration = Duration::from_millis(500);
/// Timeout of each poll request.
const POLL_TIMEOUT: Duration = Duration::from_secs(1);

/// Runs `cargo xtask run-cluster`.
pub fn run(args: RunClusterArgs) -> Result<()> {
    let layout = Layout::new(args.dir.unwrap_or_else(|| target_dir().join("run-cluster")));
    match args.command {
        Some(Sub::Ctl { request }) => ctl::send(&layout.socket(), &request),
        None => supervise(args.options, layout),
    }
}

fn supervise(opts: Options, layout: Layout) -> Result<()> {
    files::check_db_name(&opts.db_name)?;
    files::check_namespace(&opts.namespace)?;
    if opts.lease < Duration::from_millis(300) {
        bail!(
            "--lease {opts_lease:?} is too short; use 300ms or more",
            opts_lease = opts.lease
        );
    }
    let ports = files::node_ports(opts.base_port, usize::from(opts.nodes))?;
    std::fs::create_dir_all(&layout.dir)
        .with_context(|| format!("create {}", layout.dir.display()))?;
    refuse_second_supervisor(&layout)?;
    clean_up_previous_run(&layout);
    for port in std::iter::once(opts.base_port).chain(ports.iter().copied()) {
        if !procs::port_free(port) {
            bail!(
                "port {port} on 127.0.0.1 is in use: stop what listens there or pick \
                 another --base-port (the load balancer takes P, node K takes P+K)"
            );
        }
    }

    let binary = match &opts.binary {
        Some(binary) => {
            let binary = std::path::absolute(binary)
                .with_context(|| format!("--binary {}", binary.display()))?;
            if !binary.is_file() {
                bail!("--binary {}: no such file", binary.display());
            }
            say(format_args!(
                "using {} (--binary; nothing is built)",
                binary.display()
            ));
            binary
        }
        None => build_server(opts.release)?,
    };

    // One thread: children get their parent-death signal from the thread
    // that spawned them, and this one lives as long as the supervisor.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("start the tokio runtime")?;
    let result = runtime.block_on(async move {
        let mut signals = Signals::new()?;
        let mut supervisor = Supervisor::prepare(opts, layout, binary, ports).await?;
        let outcome = supervisor.run(&mut signals).await;
        supervisor.shutdown(&mut signals).await;
        outcome
    });
    runtime.shutdown_timeout(Duration::from_secs(1));
    result
}

/// `cargo build -p lina-server [--release]`; the binary's path.
fn build_server(release: bool) -> Result<PathBuf> {
    let mut build = cargo(&["build", "-p", "lina-server"]);
    if release {
        build.arg("--release");
    }
    say(format_args!("building lina-server: {}", display(&build)));
    let status = ChildGuard::spawn(&mut build)?.wait()?;
    if !status.success() {
        bail!("{} failed: {status}", display(&build));
    }
    let profile = if release { "release" } else { "debug" };
    let binary = target_dir().join(profile).join("lina-server");
    if !binary.is_file() {
        bail!("no server binary at {}", binary.display());
    }
    Ok(binary)
}

/// The supervisor's signals: Ctrl-C, SIGTERM and a closed terminal.
struct Signals {
    int: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl Signals {
    fn new() -> Result<Signals> {
        Ok(Signals {
            int: signal(SignalKind::interrupt()).context("listen for SIGINT")?,
            term: signal(SignalKind::terminate()).context("listen for SIGTERM")?,
            hup: signal(SignalKind::hangup()).context("listen for SIGHUP")?,
        })
    }

    async fn recv(&mut self) -> &'static str {
        tokio::select! {
            _ = self.int.recv() => "SIGINT",
            _ = self.term.recv() => "SIGTERM",
            _ = self.hup.recv() => "SIGHUP",
        }
    }
}

/// Prints `[hh:mm:ss.mmm] message` (UTC, as in the nodes' logs).
fn say(message: impl std::fmt::Display) {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let secs = now.as_secs() % 86_400;
    println!(
        "[{:02}:{:02}:{:02}.{:03}] {message}",
        secs / 3600,
        secs / 60 % 60,
        secs % 60,
        now.subsec_millis()
    );
}

/// Fails when another supervisor answers on the control socket.
fn refuse_second_supervisor(layout: &Layout) -> Result<()> {
    if std::os::unix::net::UnixStream::connect(layout.socket()).is_ok() {
        bail!(
            "a run-cluster is already running (it answers on {}): use \
             `cargo xtask run-cluster ctl status`, or stop it with Ctrl-C in its terminal",
            layout.socket().display()
        );
    }
    Ok(())
}

/// Stops what a supervisor that died without cleaning up left running: the
/// processes recorded in `state.json` whose command line names this
/// run-cluster directory (so an unrelated process that reused a pid is
/// never touched).
fn clean_up_previous_run(layout: &Layout) {
    let Ok(text) = std::fs::read_to_string(layout.state()) else {
        let _ = std::fs::remove_file(layout.socket());
        return;
    };
    let state: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
    let dir = layout.dir.display().to_string();
    let leftovers: Vec<(String, u32)> = state["processes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| Some((p["name"].as_str()?.to_string(), p["pid"].as_u64()? as u32)))
        .filter(|(_, pid)| procs::cmdline(*pid).is_some_and(|c| c.contains(&dir)))
        .collect();
    for (name, pid) in &leftovers {
        say(format_args!(
            "stopping {name} (pid {pid}) left running by an earlier run-cluster"
        ));
        procs::signal(*pid, Signal::SIGCONT);
        procs::signal(*pid, Signal::SIGTERM);
    }
    let deadline = Instant::now() + NODE_GRACE;
    while leftovers.iter().any(|(_, pid)| procs::alive(*pid)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    for (_, pid) in &leftovers {
        if procs::alive(*pid) {
            procs::signal(*pid, Signal::SIGKILL);
        }
    }
    let _ = std::fs::remove_file(layout.state());
    let _ = std::fs::remove_file(layout.socket());
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        args: RunClusterArgs,
    }

    fn parse(args: &[&str]) -> Result<RunClusterArgs, clap::Error> {
        Cli::try_parse_from(std::iter::once("run-cluster").chain(args.iter().copied()))
            .map(|c| c.args)
    }

    #[test]
    fn defaults_are_three_dev_nodes_from_9120_on_a_private_redis() {
        let args = parse(&[]).unwrap();
        assert!(args.command.is_none());
        let o = args.options;
        assert_eq!((o.nodes, o.base_port), (3, 9120));
        assert_eq!(o.db_name, "lina_cluster");
        assert_eq!(o.namespace, "lina-cluster");
        assert_eq!(o.lease, Duration::from_secs(10));
        assert!(!o.release && !o.fresh && !o.shared_redis && !o.no_nginx);
        assert_eq!(o.binary, None);
        assert_eq!((o.redis, o.database), (None, None));
        assert_eq!(
            (o.username.as_str(), o.password.as_str()),
            ("admin", "admin123")
        );
    }

    #[test]
    fn flags_are_read() {
        let o = parse(&[
            "--nodes",
            "5",
            "--base-port",
            "9300",
            "--redis",
            "redis://127.0.0.1:6379/2",
            "--database",
            "postgres://postgres@127.0.0.1:5432/postgres",
            "--db-name",
            "lina_cluster_b",
            "--fresh",
            "--release",
            "--lease",
            "3s",
            "--no-nginx",
        ])
        .unwrap()
        .options;
        assert_eq!((o.nodes, o.base_port), (5, 9300));
        assert_eq!(o.redis.as_deref(), Some("redis://127.0.0.1:6379/2"));
        assert_eq!(o.db_name, "lina_cluster_b");
        assert!(o.fresh && o.release && o.no_nginx);
        assert_eq!(o.lease, Duration::from_secs(3));
    }

    #[test]
    fn bad_flags_are_refused() {
        assert!(parse(&["--nodes", "0"]).is_err());
        assert!(parse(&["--nodes", "33"]).is_err());
        assert!(
            parse(&["--lease", "10"]).is_err(),
            "a duration needs a unit"
        );
        assert!(parse(&["--redis", "redis://x", "--shared-redis"]).is_err());
        assert!(parse(&["--release", "--binary", "/x/lina-server"]).is_err());
    }

    #[test]
    fn ctl_requests_parse_and_do_not_mix_with_start_flags() {
        let args = parse(&["ctl", "kill", "node-2"]).unwrap();
        let Some(Sub::Ctl { request }) = args.command else {
            panic!("a ctl command");
        };
        assert_eq!(
            request,
            Request::Kill {
                node: "node-2".into()
            }
        );
        let Some(Sub::Ctl { request }) = parse(&["ctl", "restart-redis"]).unwrap().command else {
            panic!("a ctl command");
        };
        assert_eq!(request, Request::RestartRedis);
        assert!(parse(&["ctl", "kill"]).is_err());
        assert!(parse(&["--nodes", "2", "ctl", "status"]).is_err());
    }
}
