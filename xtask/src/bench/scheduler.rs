//! `cargo xtask bench scheduler`: three scheduler nodes, each its own
//! process, on one private `redis-server` and one fresh PostgreSQL
//! database, firing master_only jobs every second.
//!
//! 1. duplicates: fires that ran more than once;
//! 2. missed fires: fires that did not run;
//! 3. fire delay, from the scheduled instant to the handler's start;
//! 4. CPU per node process (leader and followers), from `/proc/<pid>/stat`;
//! 5. `skipped_not_primary` rows per fire and follower (informational).
//!
//! The same binary runs the nodes (`--node <id>`, hidden); the parent
//! creates the jobs before they start, stops them with SIGTERM and reads
//! `sys_job_log`. See docs/benchmarks.md for what each row means.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Write as _};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use clap::Args;
use lina_cache::{CacheRegistry, CacheSettings, StalePolicy};
use lina_coord_api::{Coordinator, NodeId, NodeInfo, unix_millis};
use lina_coord_local::LocalCoordinator;
use lina_coord_redis::RedisSettings;
use lina_scheduler::{
    HandlerInfo, HandlerRegistry, JOBS_DOMAIN, JobContext, JobLog, JobScope, JobSpec, JobStore,
    LogFilter, Page, RunStatus, Scheduler, SchedulerSettings, Trigger, parse_timezone, typed,
};
use lina_testkit::RedisServer;
use sea_orm::Database;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio::time::sleep;

use super::coord::{connect_node, parse_duration};
use super::report::{
    Report, Row, Samples, Verdict, build_profile, fmt_duration, fmt_round, load_average, machine,
};
use crate::process::{ChildGuard, secs};

/// Options of `cargo xtask bench scheduler`.
#[derive(Debug, Args)]
pub struct SchedulerArgs {
    /// How long the three nodes run once all are ready; fires of the first
    /// 3 s and the last 2 s are not counted. E.g. `60s`, `30s`, `2m`.
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = parse_duration)]
    duration: Duration,
    /// master_only jobs firing `@every 1s`.
    #[arg(long, value_name = "N", default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=1000))]
    jobs: u32,
    /// Run as node `<ID>` of a measurement (started by the measuring
    /// process, not by hand).
    #[arg(long, value_name = "ID", hide = true)]
    node: Option<String>,
    /// The node's Redis (with `--node`).
    #[arg(long, value_name = "URL", hide = true)]
    redis_url: Option<String>,
    /// The node's database (with `--node`); passed in the environment so
    /// that credentials do not show in the process list.
    #[arg(long, value_name = "URL", hide = true, env = DATABASE_URL_ENV)]
    database_url: Option<String>,
}

/// Environment variable that carries the database URL to the nodes.
const DATABASE_URL_ENV: &str = "LINA_BENCH_SCHEDULER_DATABASE_URL";
/// Namespace of the nodes.
const NAMESPACE: &str = "bench-sched";
/// The handler of every measured job.
const HANDLER: &str = "bench:record";
/// Nodes (processes).
const NODES: usize = 3;
/// Fires this long after all nodes are ready are not counted (start-up).
const HEAD: Duration = Duration::from_secs(3);
/// Fires this long before the nodes are stopped are not counted (runs
/// still being recorded).
const TAIL: Duration = Duration::from_secs(2);
/// Target of row 3: p99 of the fire delay.
const DELAY_P99_TARGET: Duration = Duration::from_millis(50);
/// How long the nodes get to start, and to stop after SIGTERM.
const NODE_TIMEOUT: Duration = Duration::from_secs(60);

/// Runs `cargo xtask bench scheduler` (or one node of it, with `--node`).
pub fn run(args: SchedulerArgs) -> Result<()> {
    if let Some(node) = &args.node {
        let runtime = super::runtime()?;
        let result = runtime.block_on(run_node(node, &args));
        runtime.shutdown_timeout(Duration::from_secs(1));
        return result.with_context(|| format!("scheduler node {node}"));
    }
    super::run_measurement("scheduler", Instant::now(), measure(&args))
}

fn progress(step: &str, message: impl std::fmt::Display) {
    eprintln!("xtask bench scheduler: [{step}/5] {message}");
}

/// Registers the `bench:record` handler: its result is the delay from the
/// scheduled instant to its start, in ms (`sys_job_log.result_json`).
fn register_handler(handlers: &HandlerRegistry) -> Result<()> {
    handlers.register(
        HandlerInfo {
            name: HANDLER.into(),
            description: "records how late it started (bench scheduler)".into(),
            params_schema: json!({"type": "object"}),
            default_scope: JobScope::MasterOnly,
            source: "bench".into(),
        },
        Arc::new(typed(|_: Value, ctx: JobContext| async move {
            let started = unix_millis();
            Ok(json!({ "delayMs": started - ctx.scheduled_at }))
        })),
    )?;
    Ok(())
}

/// One node: coordinator, caches, handlers and scheduler; prints `ready`,
/// runs until SIGTERM, shuts down and prints `stopped`.
async fn run_node(node: &str, args: &SchedulerArgs) -> Result<()> {
    let redis_url = args
        .redis_url
        .as_deref()
        .context("--redis-url is missing")?;
    let database_url = args
        .database_url
        .as_deref()
        .with_context(|| format!("--database-url (or {DATABASE_URL_ENV}) is missing"))?;
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("listen for SIGTERM")?;
    let settings = RedisSettings::from_url(redis_url, NAMESPACE)?;
    let coordinator: Arc<dyn Coordinator> = Arc::new(connect_node(&settings, node).await?);
    let db = Database::connect(database_url)
        .await
        .context("connect to the database")?;
    let caches = CacheRegistry::start(coordinator.clone(), CacheSettings::default());
    let handlers = Arc::new(HandlerRegistry::default());
    register_handler(&handlers)?;
    let scheduler = Scheduler::start(
        coordinator.clone(),
        db,
        &caches,
        handlers,
        SchedulerSettings {
            builtin_jobs: false,
            ..SchedulerSettings::default()
        },
    )
    .await?;
    say(&format!("ready {node}"))?;
    tokio::select! {
        _ = terminate.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    let leader = coordinator.election().is_leader();
    let report = scheduler.shutdown().await;
    drop(caches);
    coordinator.shutdown().await?;
    say(&format!(
        "stopped {node} leader={leader} finished={} cancelled={}",
        report.finished, report.cancelled
    ))
}

/// A line to the measuring process.
fn say(line: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}")?;
    out.flush()?;
    Ok(())
}

/// A node process and what it said.
struct NodeProcess {
    id: String,
    guard: ChildGuard,
    pid: u32,
    stopped: Option<String>,
}

async fn measure(args: &SchedulerArgs) -> Result<Report> {
    let load_at_start = load_average();
    progress(
        "0",
        "starting a private redis-server (lina-testkit) and creating a fresh PostgreSQL database",
    );
    let server = RedisServer::start()
        .await
        .context("start a private redis-server")?;
    let database = lina_testkit::fresh_database()
        .await
        .context("create a fresh PostgreSQL database")?;
    let db = Database::connect(database.url())
        .await
        .context("connect to the fresh database")?;
    lina_migration::migrate(&db)
        .await
        .context("migrate the fresh database")?;
    progress(
        "0",
        format_args!(
            "redis-server on 127.0.0.1:{}, database {} migrated",
            server.port(),
            database.name()
        ),
    );

    progress(
        "1",
        format_args!(
            "creating {} master_only jobs `@every 1s` (handler {HANDLER})",
            args.jobs
        ),
    );
    let (store, job_ids) = create_jobs(&db, args.jobs).await?;

    progress(
        "2",
        format_args!(
            "starting {NODES} node processes (RedisCoordinator, CacheRegistry, Scheduler), \
             running {}",
            fmt_round(args.duration)
        ),
    );
    let exe = std::env::current_exe().context("path of this xtask binary")?;
    let (tx, mut lines) = mpsc::unbounded_channel::<(usize, String)>();
    let mut nodes = Vec::with_capacity(NODES);
    for i in 0..NODES {
        let id = format!("bench-sched-{i}");
        let mut cmd = Command::new(&exe);
        cmd.args(["bench", "scheduler", "--in-process", "--node", &id])
            .arg("--redis-url")
            .arg(server.url())
            .env(DATABASE_URL_ENV, database.url())
            .stdin(Stdio::null())
            .stdout(Stdio::piped());
        let mut guard = ChildGuard::spawn(&mut cmd)?;
        let stdout = guard.take_stdout().context("node stdout")?;
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                if tx.send((i, line)).is_err() {
                    return;
                }
            }
        });
        let pid = guard.id();
        nodes.push(NodeProcess {
            id,
            guard,
            pid,
            stopped: None,
        });
    }
    drop(tx);
    let mut ready = 0;
    let deadline = tokio::time::Instant::now() + NODE_TIMEOUT;
    while ready < NODES {
        match tokio::time::timeout_at(deadline, lines.recv()).await {
            Ok(Some((i, line))) if line.starts_with("ready ") => {
                ready += 1;
                progress(
                    "2",
                    format_args!("  {} ready (pid {})", nodes[i].id, nodes[i].pid),
                );
            }
            Ok(Some((i, line))) => progress("2", format_args!("  {}: {line}", nodes[i].id)),
            Ok(None) => bail!("a node exited before it was ready"),
            Err(_) => bail!(
                "only {ready} of {NODES} nodes were ready within {}",
                fmt_round(NODE_TIMEOUT)
            ),
        }
    }
    let ready_at = unix_millis();
    let run_started = Instant::now();
    let window = Window::after(ready_at, args.duration)?;
    let clock_ticks = clock_ticks();

    // CPU over the counted window.
    sleep_until_unix_ms(window.start_ms).await;
    let cpu_start: Vec<u64> = nodes
        .iter()
        .map(|n| cpu_ticks(n.pid))
        .collect::<Result<_>>()?;
    let cpu_t0 = Instant::now();
    progress(
        "3",
        format_args!(
            "counting fires scheduled in a {} window ({} after the nodes were ready, \
             {} before they stop)",
            secs(Duration::from_millis(
                (window.end_ms - window.start_ms) as u64
            )),
            fmt_round(HEAD),
            fmt_round(TAIL)
        ),
    );
    loop {
        let now = unix_millis();
        if now >= window.end_ms {
            break;
        }
        let step = (window.end_ms - now).min(10_000);
        sleep(Duration::from_millis(step as u64)).await;
        if unix_millis() < window.end_ms {
            progress(
                "3",
                format_args!(
                    "  running: {} / {}",
                    secs(run_started.elapsed()),
                    secs(args.duration)
                ),
            );
        }
        for (i, node) in nodes.iter_mut().enumerate() {
            if let Some(status) = node.guard.try_wait()? {
                bail!("node {} (#{i}) exited early: {status}", node.id);
            }
        }
    }
    let cpu_end: Vec<u64> = nodes
        .iter()
        .map(|n| cpu_ticks(n.pid))
        .collect::<Result<_>>()?;
    let cpu_elapsed = cpu_t0.elapsed();
    sleep((run_started + args.duration).saturating_duration_since(Instant::now())).await;

    progress("4", "stopping the nodes (SIGTERM, graceful shutdown)");
    for node in &nodes {
        node.guard.terminate();
    }
    let deadline = tokio::time::Instant::now() + NODE_TIMEOUT;
    loop {
        while let Ok((i, line)) = lines.try_recv() {
            if line.starts_with("stopped ") {
                progress("4", format_args!("  {line}"));
                nodes[i].stopped = Some(line);
            }
        }
        let mut running = 0;
        for node in nodes.iter_mut() {
            match node.guard.try_wait()? {
                None => running += 1,
                Some(status) if !status.success() => {
                    bail!("node {} failed: {status}", node.id)
                }
                Some(_) => {}
            }
        }
        if running == 0 {
            break;
        }
        if tokio::time::Instant::now() >= deadline {
            bail!(
                "{running} nodes did not stop within {}",
                fmt_round(NODE_TIMEOUT)
            );
        }
        sleep(Duration::from_millis(50)).await;
    }
    while let Some((i, line)) = lines.recv().await {
        if line.starts_with("stopped ") {
            progress("4", format_args!("  {line}"));
            nodes[i].stopped = Some(line);
        }
    }

    progress("5", "reading sys_job_log");
    let runs = read_logs(&store, &window).await?;
    let analysis = analyze(&runs, &job_ids, &window);
    progress(
        "5",
        format_args!(
            "{} fires: {} duplicates, {} missed; delay p50 {}, p99 {}",
            analysis.fires,
            analysis.duplicates,
            analysis.missed,
            analysis
                .delays
                .as_ref()
                .map_or("-".into(), |d| fmt_duration(d.p50())),
            analysis
                .delays
                .as_ref()
                .map_or("-".into(), |d| fmt_duration(d.p99()))
        ),
    );
    drop(store);
    drop(db);
    drop(database);
    drop(server);

    let cpu: Vec<NodeCpu> = nodes
        .iter()
        .zip(cpu_start.iter().zip(&cpu_end))
        .map(|(node, (start, end))| NodeCpu {
            id: node.id.clone(),
            cpu: Duration::from_secs_f64((end - start) as f64 / clock_ticks as f64),
            successes: analysis.success_by_node.get(&node.id).copied().unwrap_or(0),
            skips: analysis.skips_by_node.get(&node.id).copied().unwrap_or(0),
            stopped: node.stopped.clone(),
        })
        .collect();
    let mut report = Report {
        target: "scheduler".into(),
        setup: vec![
            ("machine".into(), machine()),
            (
                "load average (1 min)".into(),
                format!(
                    "{} at the start, {} at the end (other processes on the machine add noise)",
                    load_at_start.as_deref().unwrap_or("unknown"),
                    load_average().as_deref().unwrap_or("unknown")
                ),
            ),
            (
                "services".into(),
                "a private redis-server on 127.0.0.1 (lina-testkit, no persistence) and a \
                 fresh PostgreSQL database (lina-testkit, migrated), both used only by this run"
                    .into(),
            ),
            (
                "nodes".into(),
                format!(
                    "{NODES} processes of this binary, each a `RedisCoordinator` \
                     (`RedisSettings::from_url` defaults), a `CacheRegistry` (defaults) and a \
                     `Scheduler` (defaults, built-in jobs off)"
                ),
            ),
            (
                "jobs".into(),
                format!(
                    "{} master_only jobs `@every 1s`, handler `{HANDLER}` (returns its start \
                     delay); run {} after all nodes were ready; counted: fires scheduled from \
                     {} after that to {} before the stop ({} s × {} jobs)",
                    args.jobs,
                    fmt_round(args.duration),
                    fmt_round(HEAD),
                    fmt_round(TAIL),
                    window.seconds(),
                    args.jobs
                ),
            ),
            ("build".into(), build_profile().into()),
        ],
        rows: Vec::new(),
        notes: Vec::new(),
    };
    rows_of(&mut report, &analysis, &cpu, cpu_elapsed);
    Ok(report)
}

/// The jobs, created before any node starts (so every node loads them with
/// its first job list), through a store on an in-process coordinator of
/// its own: the nodes' Redis never sees this process. The store also reads
/// the log rows at the end.
async fn create_jobs(db: &sea_orm::DatabaseConnection, n: u32) -> Result<(JobStore, Vec<i64>)> {
    let node = NodeInfo::new(NodeId::new("bench-setup")?, "127.0.0.1:0");
    let coordinator: Arc<dyn Coordinator> = Arc::new(LocalCoordinator::single(node).await);
    let caches = CacheRegistry::start(coordinator.clone(), CacheSettings::default());
    let handlers = Arc::new(HandlerRegistry::default());
    register_handler(&handlers)?;
    let store = JobStore::new(
        db.clone(),
        caches.domain(JOBS_DOMAIN, StalePolicy::ServeStale)?,
        handlers,
        parse_timezone("UTC")?,
    );
    let mut ids = Vec::with_capacity(n as usize);
    for i in 0..n {
        let spec = JobSpec {
            name: format!("bench-{i:03}"),
            handler_ref: HANDLER.into(),
            cron_expr: "@every 1s".into(),
            scope: Some(JobScope::MasterOnly),
            ..JobSpec::default()
        };
        ids.push(store.create_job(&spec).await?);
    }
    drop(caches);
    coordinator.shutdown().await?;
    Ok((store, ids))
}

/// The cron runs scheduled in `window`, every page.
async fn read_logs(store: &JobStore, window: &Window) -> Result<Vec<LogRow>> {
    const PAGE: u64 = 500;
    let filter = LogFilter {
        trigger: Some(Trigger::Cron),
        begin_time: Some(window.start_ms),
        end_time: Some(window.end_ms - 1),
        ..LogFilter::default()
    };
    let mut rows = Vec::new();
    for num in 1.. {
        let page = store
            .list_logs(&filter, Page::new(num, PAGE)?)
            .await
            .context("read sys_job_log")?;
        let n = page.list.len() as u64;
        rows.extend(page.list.into_iter().map(LogRow::from));
        if n < PAGE || rows.len() as u64 >= page.total {
            break;
        }
    }
    Ok(rows)
}

/// The counted fires: whole seconds from `start_ms` (inclusive) to
/// `end_ms` (exclusive), Unix ms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Window {
    start_ms: i64,
    end_ms: i64,
}

impl Window {
    /// The window of a run of `duration` from `ready_ms`, without its
    /// first [`HEAD`] and last [`TAIL`].
    fn after(ready_ms: i64, duration: Duration) -> Result<Window> {
        let start = ready_ms + HEAD.as_millis() as i64;
        let end = ready_ms + duration.as_millis() as i64 - TAIL.as_millis() as i64;
        let window = Window {
            start_ms: start.div_euclid(1000) * 1000 + if start % 1000 == 0 { 0 } else { 1000 },
            end_ms: end.div_euclid(1000) * 1000,
        };
        if window.end_ms <= window.start_ms {
            bail!(
                "--duration {} leaves no fire to count (the first {} and the last {} are not counted)",
                fmt_round(duration),
                fmt_round(HEAD),
                fmt_round(TAIL)
            );
        }
        Ok(window)
    }

    fn seconds(&self) -> i64 {
        (self.end_ms - self.start_ms) / 1000
    }
}

async fn sleep_until_unix_ms(at: i64) {
    let now = unix_millis();
    if at > now {
        sleep(Duration::from_millis((at - now) as u64)).await;
    }
}

/// One row of `sys_job_log`, as far as the measurement needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct LogRow {
    job_id: i64,
    node_id: String,
    status: String,
    scheduled_at: i64,
    start_at: Option<i64>,
    /// What the handler recorded: its start − the scheduled instant.
    delay_ms: Option<i64>,
}

impl From<JobLog> for LogRow {
    fn from(m: JobLog) -> LogRow {
        let delay_ms = m
            .result_json
            .as_ref()
            .and_then(|v| v.get("delayMs").and_then(Value::as_i64));
        LogRow {
            job_id: m.job_id,
            node_id: m.node_id,
            status: m.status.as_str().to_string(),
            scheduled_at: m.scheduled_at,
            start_at: m.start_at,
            delay_ms,
        }
    }
}

#[derive(Debug)]
struct Analysis {
    /// Jobs × seconds in the window.
    fires: usize,
    duplicates: usize,
    missed: usize,
    /// Handler start − scheduled instant, of every success.
    delays: Option<Samples>,
    /// `start_at` (when the run was recorded) − scheduled instant.
    recorded: Option<Samples>,
    success_by_node: BTreeMap<String, usize>,
    skips_by_node: BTreeMap<String, usize>,
    /// Rows of any other status, by status.
    other: BTreeMap<String, usize>,
}

fn analyze(rows: &[LogRow], job_ids: &[i64], window: &Window) -> Analysis {
    let success = RunStatus::Success.as_str();
    let skipped = RunStatus::SkippedNotPrimary.as_str();
    let mut per_fire: HashMap<(i64, i64), usize> = HashMap::new();
    let mut delays = Vec::new();
    let mut recorded = Vec::new();
    let mut success_by_node = BTreeMap::new();
    let mut skips_by_node = BTreeMap::new();
    let mut other = BTreeMap::new();
    let ms = |ms: i64| Duration::from_millis(ms.max(0) as u64);
    for row in rows {
        if row.scheduled_at < window.start_ms || row.scheduled_at >= window.end_ms {
            continue;
        }
        if row.status == success {
            *per_fire.entry((row.job_id, row.scheduled_at)).or_default() += 1;
            *success_by_node.entry(row.node_id.clone()).or_default() += 1;
            if let Some(delay) = row.delay_ms {
                delays.push(ms(delay));
            }
            if let Some(start) = row.start_at {
                recorded.push(ms(start - row.scheduled_at));
            }
        } else if row.status == skipped {
            *skips_by_node.entry(row.node_id.clone()).or_default() += 1;
        } else {
            *other.entry(row.status.clone()).or_default() += 1;
        }
    }
    let (mut fires, mut duplicates, mut missed) = (0, 0, 0);
    for job in job_ids {
        let mut at = window.start_ms;
        while at < window.end_ms {
            fires += 1;
            match per_fire.get(&(*job, at)).copied().unwrap_or(0) {
                0 => missed += 1,
                1 => {}
                _ => duplicates += 1,
            }
            at += 1000;
        }
    }
    let samples = |v: Vec<Duration>| (!v.is_empty()).then(|| Samples::new(v));
    Analysis {
        fires,
        duplicates,
        missed,
        delays: samples(delays),
        recorded: samples(recorded),
        success_by_node,
        skips_by_node,
        other,
    }
}

/// CPU of one node process over the counted window.
struct NodeCpu {
    id: String,
    cpu: Duration,
    successes: usize,
    skips: usize,
    stopped: Option<String>,
}

impl NodeCpu {
    fn percent(&self, window: Duration) -> f64 {
        100.0 * self.cpu.as_secs_f64() / window.as_secs_f64()
    }
}

fn rows_of(report: &mut Report, analysis: &Analysis, cpu: &[NodeCpu], cpu_window: Duration) {
    let none = || "-".to_string();
    let fires = analysis.fires;
    report.rows.push(Row {
        id: "1".into(),
        figure: format!("duplicate runs: fires with more than one `success` run ({fires} fires)"),
        value: analysis.duplicates.to_string(),
        baseline: none(),
        ratio: none(),
        target: "0".into(),
        verdict: Verdict::from_ok(analysis.duplicates == 0),
    });
    report.rows.push(Row {
        id: "2".into(),
        figure: format!("missed fires: fires without a `success` run ({fires} fires)"),
        value: analysis.missed.to_string(),
        baseline: none(),
        ratio: none(),
        target: "0".into(),
        verdict: Verdict::from_ok(analysis.missed == 0),
    });
    match &analysis.delays {
        Some(delays) => report.rows.push(Row {
            id: "3".into(),
            figure: format!(
                "fire delay, scheduled instant → handler start ({} runs)",
                delays.len()
            ),
            value: format!(
                "p50 {}, p99 {} (max {})",
                fmt_duration(delays.p50()),
                fmt_duration(delays.p99()),
                fmt_duration(delays.max())
            ),
            baseline: none(),
            ratio: none(),
            target: format!("p99 ≤ {}", fmt_round(DELAY_P99_TARGET)),
            verdict: Verdict::from_ok(delays.p99() <= DELAY_P99_TARGET),
        }),
        None => report.rows.push(Row {
            id: "3".into(),
            figure: "fire delay, scheduled instant → handler start (no runs)".into(),
            value: "no run recorded a delay".into(),
            baseline: none(),
            ratio: none(),
            target: format!("p99 ≤ {}", fmt_round(DELAY_P99_TARGET)),
            verdict: Verdict::Miss,
        }),
    }

    // The leader is the node that ran the fires.
    let leader = cpu.iter().max_by_key(|n| n.successes);
    let percent = |n: &NodeCpu| {
        format!(
            "{:.1}% of one core ({:.2}s CPU in {})",
            n.percent(cpu_window),
            n.cpu.as_secs_f64(),
            secs(cpu_window)
        )
    };
    if let Some(leader) = leader {
        report.rows.push(Row {
            id: "4a".into(),
            figure: format!("scheduler CPU, leader ({}, process total)", leader.id),
            value: percent(leader),
            baseline: none(),
            ratio: none(),
            target: "- (informational)".into(),
            verdict: Verdict::Info,
        });
        let leader_pct = leader.percent(cpu_window);
        for (k, follower) in cpu.iter().filter(|n| n.id != leader.id).enumerate() {
            let ratio = follower.percent(cpu_window) / leader_pct;
            report.rows.push(Row {
                id: format!("4{}", (b'b' + k as u8) as char),
                figure: format!("scheduler CPU, follower ({}, process total)", follower.id),
                value: percent(follower),
                baseline: format!("leader {leader_pct:.1}%"),
                ratio: if ratio.is_finite() {
                    format!("{ratio:.2}×")
                } else {
                    none()
                },
                target: "- (informational)".into(),
                verdict: Verdict::Info,
            });
        }
        let per_fire: Vec<String> = cpu
            .iter()
            .filter(|n| n.id != leader.id)
            .map(|n| format!("{} {:.2}", n.id, n.skips as f64 / fires.max(1) as f64))
            .collect();
        report.rows.push(Row {
            id: "5".into(),
            figure: "`skipped_not_primary` rows per fire, per follower".into(),
            value: per_fire.join(", "),
            baseline: none(),
            ratio: none(),
            target: "- (expected 1.00)".into(),
            verdict: Verdict::Info,
        });
    }

    let by_node: Vec<String> = cpu
        .iter()
        .map(|n| {
            format!(
                "{}: {} success, {} skipped_not_primary{}",
                n.id,
                n.successes,
                n.skips,
                n.stopped
                    .as_deref()
                    .map(|s| format!(" (at the end: `{s}`)"))
                    .unwrap_or_default()
            )
        })
        .collect();
    let other = if analysis.other.is_empty() {
        "none".to_string()
    } else {
        analysis
            .other
            .iter()
            .map(|(status, n)| format!("`{status}` × {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let recorded = analysis.recorded.as_ref().map_or("-".into(), |r| {
        format!(
            "p50 {}, p99 {}, max {}",
            fmt_duration(r.p50()),
            fmt_duration(r.p99()),
            fmt_duration(r.max())
        )
    });
    report.notes.push(format!(
        "A fire is one job at one whole second of the counted window; the \
         log rows of cron runs scheduled in the window are counted per fire. \
         Rows per node: {}. Rows of other statuses in the window: {other}. \
         Row 3 is the delay the handler itself recorded (its start in Unix ms − \
         the fire instant, so 1 ms resolution); `start_at` − fire instant of \
         the same runs (the run's log row, written before the handler starts): \
         {recorded}. Row 4 is each node process's user + system CPU time \
         (`/proc/<pid>/stat`) over the counted window, in % of one core: \
         coordinator, cache, scheduler and database client together; \
         PostgreSQL's and Redis's own CPU is not included.",
        by_node.join("; ")
    ));
}

/// The clock ticks per second of `/proc/<pid>/stat` times (`getconf CLK_TCK`).
fn clock_ticks() -> u64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .filter(|t| *t > 0)
        .unwrap_or(100)
}

/// User + system CPU of process `pid`, in clock ticks.
fn cpu_ticks(pid: u32) -> Result<u64> {
    let path = format!("/proc/{pid}/stat");
    let stat = std::fs::read_to_string(&path).with_context(|| format!("read {path}"))?;
    parse_cpu_ticks(&stat).ok_or_else(|| anyhow!("no utime/stime in {path}"))
}

/// utime + stime (fields 14 and 15) of a `/proc/<pid>/stat` line; the
/// command name (field 2) is in parentheses and may contain spaces.
fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // fields[0] is field 3 (state), so field n is fields[n - 3].
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(job_id: i64, node: &str, status: &str, at: i64, delay: i64) -> LogRow {
        LogRow {
            job_id,
            node_id: node.into(),
            status: status.into(),
            scheduled_at: at,
            start_at: Some(at + delay),
            delay_ms: Some(delay),
        }
    }

    #[test]
    fn windows_cover_whole_seconds_without_head_and_tail() {
        let window = Window::after(10_500, Duration::from_secs(10)).unwrap();
        assert_eq!(window.start_ms, 14_000);
        assert_eq!(window.end_ms, 18_000);
        assert_eq!(window.seconds(), 4);
        let exact = Window::after(10_000, Duration::from_secs(10)).unwrap();
        assert_eq!((exact.start_ms, exact.end_ms), (13_000, 18_000));
        assert!(Window::after(10_000, Duration::from_secs(5)).is_err());
    }

    #[test]
    fn fires_count_duplicates_and_misses() {
        let window = Window {
            start_ms: 1_000,
            end_ms: 4_000,
        };
        let rows = vec![
            row(1, "a", "success", 1_000, 3),
            row(1, "b", "skipped_not_primary", 1_000, 1),
            row(1, "a", "success", 2_000, 5),
            row(1, "a", "success", 2_000, 7),
            // job 1 at 3_000: missed
            row(2, "a", "success", 1_000, 2),
            row(2, "a", "success", 2_000, 2),
            row(2, "a", "failed", 3_000, 2),
            // outside the window
            row(2, "a", "success", 4_000, 2),
            row(2, "a", "success", 0, 2),
        ];
        let analysis = analyze(&rows, &[1, 2], &window);
        assert_eq!(analysis.fires, 6);
        assert_eq!(analysis.duplicates, 1);
        assert_eq!(analysis.missed, 2);
        assert_eq!(analysis.delays.as_ref().unwrap().len(), 5);
        assert_eq!(
            analysis.delays.as_ref().unwrap().max(),
            Duration::from_millis(7)
        );
        assert_eq!(analysis.success_by_node.get("a"), Some(&5));
        assert_eq!(analysis.skips_by_node.get("b"), Some(&1));
        assert_eq!(analysis.other.get("failed"), Some(&1));
    }

    #[test]
    fn proc_stat_cpu_parses() {
        let stat = "1234 (xtask bench) S 1 1234 1234 0 -1 4194560 2000 0 0 0 \
                    150 25 0 0 20 0 9 0 100 1000000 2000 18446744073709551615";
        assert_eq!(parse_cpu_ticks(stat), Some(175));
        assert_eq!(parse_cpu_ticks("garbage"), None);
        let own = std::fs::read_to_string("/proc/self/stat").unwrap();
        assert!(parse_cpu_ticks(&own).is_some());
    }
}
