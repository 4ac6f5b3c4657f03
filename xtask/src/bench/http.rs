//! `cargo xtask bench http`: HTTP throughput of one `lina-server` node
//! against a bare actix-web handler, and what a cached authenticated request
//! costs in Redis commands and database transactions.
//!
//! 1. a bare actix-web `GET /health` in this process (the baseline);
//! 2. the node's `GET /health`, ratio to 1;
//! 3. the node's `GET /api/v1/user/info` with a token, ratio to 2;
//! 4. Redis commands per authenticated request (busy − idle window);
//! 5. database transactions per authenticated request (busy − idle window).
//!
//! The node is `target/release/lina-server` (built first) in cluster mode on
//! a private `redis-server` and a fresh PostgreSQL database; one load
//! generator (this process) measures every row. See docs/benchmarks.md.

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::{App, HttpResponse, HttpServer, web};
use anyhow::{Context, Result, anyhow, bail};
use clap::Args;
use lina_testkit::RedisServer;
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbBackend, Statement,
};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::sleep;

use super::coord::parse_duration;
use super::report::{
    Report, Row, Samples, Verdict, build_profile, fmt_duration, fmt_round, load_average, machine,
    target_dir,
};
use crate::process::{ChildGuard, cargo, display, secs};

/// Options of `cargo xtask bench http`.
#[derive(Debug, Args)]
pub struct HttpArgs {
    /// How long each throughput row is measured (after the warm-up), and
    /// the length of the idle and busy windows of rows 4 and 5.
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = parse_duration)]
    duration: Duration,
    /// Load before each throughput row that is not measured.
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = parse_duration)]
    warmup: Duration,
    /// Concurrent keep-alive connections of the load generator (one task each).
    #[arg(long, value_name = "N", default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..=1024))]
    connections: u32,
    /// Wait before reading `pg_stat_database` at the end of a window: a
    /// PostgreSQL 15+ backend may hold its counters up to 10 s before it
    /// reports them.
    #[arg(long, value_name = "DURATION", default_value = "11s", value_parser = parse_duration)]
    stats_settle: Duration,
}

/// Target of row 2: node `/health` ≥ this × the bare handler.
const HEALTH_RATIO_TARGET: f64 = 0.8;
/// Target of row 3: `/api/v1/user/info` ≥ this × the node's `/health`.
const USER_INFO_RATIO_TARGET: f64 = 0.5;
/// The node's JWT secret (a throwaway of 32+ characters).
const JWT_SECRET: &str = "bench-http-secret-of-32-characters-or-more";
/// How long the node gets to answer `/health`.
const NODE_TIMEOUT: Duration = Duration::from_secs(60);
/// The endpoint of rows 3–5.
const USER_INFO: &str = "/api/v1/user/info";

/// Runs `cargo xtask bench http`.
pub fn run(args: HttpArgs) -> Result<()> {
    let started = Instant::now();
    progress(
        "0",
        "building the server: cargo build --release -p lina-server",
    );
    let mut build = cargo(&["build", "--release", "-p", "lina-server"]);
    let status = ChildGuard::spawn(&mut build)?.wait()?;
    if !status.success() {
        bail!("{} failed: {status}", display(&build));
    }
    let binary = target_dir().join("release").join("lina-server");
    if !binary.is_file() {
        bail!("no server binary at {}", binary.display());
    }
    super::run_measurement("http", started, measure(&args, &binary))
}

fn progress(step: &str, message: impl std::fmt::Display) {
    eprintln!("xtask bench http: [{step}/5] {message}");
}

/// The HTTP workers of the node (`lina-server`'s rule) and of the baseline.
fn workers() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get().min(4))
        .unwrap_or(2)
}

async fn measure(args: &HttpArgs, binary: &Path) -> Result<Report> {
    let load_at_start = load_average();
    progress(
        "0",
        "starting a private redis-server (lina-testkit) and creating a fresh PostgreSQL database",
    );
    let redis = RedisServer::start()
        .await
        .context("start a private redis-server")?;
    let database = lina_testkit::fresh_database()
        .await
        .context("create a fresh PostgreSQL database")?;
    let dir = tempfile::tempdir().context("create a temporary directory")?;
    let port = lina_testkit::free_port();
    let base = format!("http://127.0.0.1:{port}");
    let log_path = dir.path().join("server.log");
    let log = std::fs::File::create(&log_path).context("create the server log")?;
    let mut cmd = Command::new(binary);
    cmd.current_dir(dir.path());
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("LINA_") {
            cmd.env_remove(key);
        }
    }
    cmd.env_remove("RUST_LOG")
        .env("LINA_SERVER__ADDRESS", format!("127.0.0.1:{port}"))
        .env("LINA_CLUSTER__ENABLED", "true")
        .env(
            "LINA_CLUSTER__REDIS__ADDRESS",
            format!("127.0.0.1:{}", redis.port()),
        )
        .env("LINA_DATABASE__DEFAULT__LINK", database.url())
        .env("LINA_JWT__SECRET", JWT_SECRET)
        .env("LINA_LOGGER__LEVEL", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log);
    let mut node = ChildGuard::spawn(&mut cmd)?;
    let http = reqwest::Client::new();
    let node_id = wait_for_health(&http, &base, &mut node, &log_path).await?;
    progress(
        "0",
        format_args!(
            "node {node_id} (pid {}) on {base}, cluster mode on redis-server 127.0.0.1:{}, \
             database {}",
            node.id(),
            redis.port(),
            database.name()
        ),
    );
    let token = login(&http, &base).await?;

    progress(
        "0",
        format_args!(
            "starting the bare actix-web baseline ({} workers)",
            workers()
        ),
    );
    let bare = BareServer::start(&node_id)?;

    let load = Load {
        connections: args.connections as usize,
        warmup: args.warmup,
        duration: args.duration,
    };
    progress(
        "1",
        format_args!(
            "bare actix-web GET /health: {} connections, {} warm-up + {}",
            load.connections,
            fmt_round(load.warmup),
            fmt_round(load.duration)
        ),
    );
    let bare_health = load.run(&format!("{}/health", bare.base), None).await?;
    progress("1", format_args!("  {}", bare_health.summary()));
    progress("2", "node GET /health");
    let node_health = load.run(&format!("{base}/health"), None).await?;
    progress("2", format_args!("  {}", node_health.summary()));
    progress("3", format_args!("node GET {USER_INFO} with a token"));
    let user_info_url = format!("{base}{USER_INFO}");
    let user_info = load.run(&user_info_url, Some(&token)).await?;
    progress("3", format_args!("  {}", user_info.summary()));
    drop(bare);

    progress(
        "4",
        format_args!(
            "counting Redis commands and database transactions: an idle window of {}, then \
             {} of authenticated requests ({} settle before each database reading)",
            fmt_round(args.duration),
            fmt_round(args.duration),
            fmt_round(args.stats_settle)
        ),
    );
    let stats = connect_stats(database.url()).await?;
    sleep(args.stats_settle).await;
    let counted = Load {
        warmup: Duration::ZERO,
        ..load
    };
    let redis_port = redis.port();
    let pg_idle_start = pg_transactions(&stats).await?;
    let redis_idle_start = redis_commands(redis_port).await?;
    sleep(args.duration).await;
    let redis_idle = redis_commands(redis_port).await? - redis_idle_start - 1;
    sleep(args.stats_settle).await;
    let pg_idle_end = pg_transactions(&stats).await?;
    let pg_idle = pg_idle_end - pg_idle_start;
    progress(
        "4",
        format_args!(
            "  idle: {redis_idle} Redis commands, {pg_idle} database transactions \
             (including this run's own readings)"
        ),
    );
    let pg_busy_start = pg_idle_end;
    let redis_busy_start = redis_commands(redis_port).await?;
    let busy = counted.run(&user_info_url, Some(&token)).await?;
    let redis_busy = redis_commands(redis_port).await? - redis_busy_start - 1;
    sleep(args.stats_settle).await;
    let pg_busy = pg_transactions(&stats).await? - pg_busy_start;
    progress(
        "5",
        format_args!(
            "  busy: {} requests, {redis_busy} Redis commands, {pg_busy} database transactions",
            busy.requests
        ),
    );
    let counts = Counts {
        requests: busy.requests,
        redis_idle,
        redis_busy,
        pg_idle,
        pg_busy,
    };
    if let Some(status) = node.try_wait()? {
        bail!("the node exited during the run: {status}");
    }
    drop(stats);
    drop(node);
    drop(database);
    drop(redis);

    let mut report = Report {
        target: "http".into(),
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
                "node".into(),
                format!(
                    "`target/release/lina-server` ({} HTTP workers), cluster mode on a private \
                     redis-server (lina-testkit, no persistence) and a fresh PostgreSQL database \
                     (lina-testkit), default settings otherwise (logger level warn)",
                    workers()
                ),
            ),
            (
                "baseline".into(),
                format!(
                    "actix-web in this process, its own thread and `actix_web::rt::System`, {} \
                     workers, one route `GET /health` returning `{{\"status\":\"ok\",\"nodeId\":\
                     \"{node_id}\"}}` as the node does, no middleware",
                    workers()
                ),
            ),
            (
                "load generator".into(),
                format!(
                    "this process: {} tasks on a tokio runtime, one shared reqwest client \
                     (HTTP/1.1 keep-alive, one connection per task), each sending its next \
                     request when the previous answer is read; {} warm-up then {} measured per \
                     row. The generator runs on the same machine and shares its CPUs with the \
                     server measured, so every figure is what server + generator reach together",
                    load.connections,
                    fmt_round(load.warmup),
                    fmt_round(load.duration)
                ),
            ),
            ("build".into(), build_profile().into()),
        ],
        rows: Vec::new(),
        notes: Vec::new(),
    };
    rows_of(
        &mut report,
        &bare_health,
        &node_health,
        &user_info,
        &counts,
        args,
    );
    Ok(report)
}

/// Waits until the node answers `/health`; returns its `nodeId`.
async fn wait_for_health(
    http: &reqwest::Client,
    base: &str,
    node: &mut ChildGuard,
    log: &Path,
) -> Result<String> {
    let deadline = Instant::now() + NODE_TIMEOUT;
    loop {
        if let Ok(response) = http.get(format!("{base}/health")).send().await
            && response.status().is_success()
        {
            let body: Value = response.json().await.context("/health body")?;
            return body["nodeId"]
                .as_str()
                .map(str::to_string)
                .ok_or_else(|| anyhow!("no nodeId in /health: {body}"));
        }
        if let Some(status) = node.try_wait()? {
            let log = std::fs::read_to_string(log).unwrap_or_default();
            bail!("the node exited early with {status}; its log:\n{log}");
        }
        if Instant::now() >= deadline {
            bail!(
                "the node did not answer /health within {}",
                fmt_round(NODE_TIMEOUT)
            );
        }
        sleep(Duration::from_millis(50)).await;
    }
}

/// Logs in as the seeded admin; returns the access token.
async fn login(http: &reqwest::Client, base: &str) -> Result<String> {
    let response = http
        .post(format!("{base}/api/v1/auth/login"))
        .json(&json!({"username": "admin", "password": "admin123", "clientType": "web"}))
        .send()
        .await
        .context("POST /api/v1/auth/login")?;
    let status = response.status();
    let body: Value = response.json().await.context("login response")?;
    if !status.is_success() {
        bail!("login failed: {status} {body}");
    }
    body["data"]["accessToken"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| anyhow!("no data.accessToken in the login response: {body}"))
}

/// The baseline: a bare actix-web server on its own thread, stopped on drop.
struct BareServer {
    base: String,
    handle: actix_web::dev::ServerHandle,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl BareServer {
    fn start(node_id: &str) -> Result<BareServer> {
        let port = lina_testkit::free_port();
        let node_id: Arc<str> = node_id.into();
        let (tx, rx) = std::sync::mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("bare-actix".into())
            .spawn(move || {
                let system = actix_web::rt::System::new();
                system.block_on(async move {
                    let server = HttpServer::new(move || {
                        App::new()
                            .app_data(web::Data::new(node_id.clone()))
                            .route("/health", web::get().to(bare_health))
                    })
                    .workers(workers())
                    .disable_signals()
                    .bind(("127.0.0.1", port));
                    let server = match server {
                        Ok(server) => server.run(),
                        Err(e) => {
                            let _ = tx.send(Err(anyhow!("bind 127.0.0.1:{port}: {e}")));
                            return;
                        }
                    };
                    let _ = tx.send(Ok(server.handle()));
                    let _ = server.await;
                });
            })
            .context("start the baseline thread")?;
        let handle = rx
            .recv()
            .context("the baseline thread ended before it listened")??;
        Ok(BareServer {
            base: format!("http://127.0.0.1:{port}"),
            handle,
            thread: Some(thread),
        })
    }
}

impl Drop for BareServer {
    fn drop(&mut self) {
        // `stop` resolves on the server's own system; a current-thread
        // runtime on a thread of its own (this may run inside another
        // runtime) is enough to send the command and wait for it.
        let handle = self.handle.clone();
        std::thread::scope(|s| {
            s.spawn(|| {
                if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    rt.block_on(handle.stop(false));
                }
            });
        });
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The baseline handler: the node's `/health` body, nothing else.
async fn bare_health(node_id: web::Data<Arc<str>>) -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok", "nodeId": node_id.as_ref().as_ref()}))
}

/// The load generator's settings.
#[derive(Debug, Clone, Copy)]
struct Load {
    connections: usize,
    warmup: Duration,
    duration: Duration,
}

/// What one load run measured.
#[derive(Debug)]
struct Throughput {
    /// Requests answered in the measured time.
    requests: u64,
    elapsed: Duration,
    latencies: Samples,
}

impl Throughput {
    fn per_second(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64()
    }

    fn summary(&self) -> String {
        format!(
            "{} req/s ({} requests in {}), p50 {}, p99 {}",
            fmt_rate(self.per_second()),
            self.requests,
            secs(self.elapsed),
            fmt_duration(self.latencies.p50()),
            fmt_duration(self.latencies.p99())
        )
    }
}

impl Load {
    /// `connections` tasks GET `url` (with `token` as bearer) in a loop
    /// for `warmup` + `duration`; requests that start in the warm-up are not
    /// counted. Any non-2xx answer fails the run.
    async fn run(&self, url: &str, token: Option<&str>) -> Result<Throughput> {
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(self.connections)
            .build()
            .context("build the HTTP client")?;
        let start = Instant::now();
        let measure_from = start + self.warmup;
        let end = measure_from + self.duration;
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..self.connections {
            let client = client.clone();
            let url = url.to_string();
            let token = token.map(str::to_string);
            tasks.spawn(async move {
                let mut latencies = Vec::with_capacity(16_384);
                loop {
                    let t0 = Instant::now();
                    if t0 >= end {
                        break;
                    }
                    let mut request = client.get(&url);
                    if let Some(token) = &token {
                        request = request.bearer_auth(token);
                    }
                    let response = request.send().await.with_context(|| format!("GET {url}"))?;
                    let status = response.status();
                    let body = response.bytes().await.context("read the body")?;
                    if !status.is_success() {
                        bail!(
                            "GET {url}: {status} {}",
                            String::from_utf8_lossy(&body[..body.len().min(300)])
                        );
                    }
                    let t1 = Instant::now();
                    if t0 >= measure_from && t1 <= end {
                        latencies.push(t1 - t0);
                    }
                }
                Ok::<_, anyhow::Error>(latencies)
            });
        }
        let mut latencies = Vec::new();
        while let Some(joined) = tasks.join_next().await {
            latencies.extend(joined.context("a load task panicked")??);
        }
        if latencies.is_empty() {
            bail!("no request to {url} was answered in the measured time");
        }
        Ok(Throughput {
            requests: latencies.len() as u64,
            elapsed: self.duration,
            latencies: Samples::new(latencies),
        })
    }
}

/// Requests/s as `12 345`.
fn fmt_rate(rate: f64) -> String {
    let n = rate.round() as u64;
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(' ');
        }
        out.push(c);
    }
    out
}

/// `total_commands_processed` of the Redis on `port`, over a raw
/// connection (its `INFO` is counted by the next reading).
async fn redis_commands(port: u16) -> Result<i64> {
    let mut conn = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .context("connect to redis-server")?;
    conn.write_all(b"INFO stats\r\n").await?;
    let mut buf = vec![0u8; 16_384];
    let mut text = String::new();
    while !text
        .split("total_commands_processed:")
        .nth(1)
        .is_some_and(|rest| rest.contains("\r\n"))
    {
        let n = tokio::time::timeout(Duration::from_secs(5), conn.read(&mut buf))
            .await
            .context("INFO timed out")??;
        if n == 0 {
            bail!("redis-server closed the connection: {text}");
        }
        text.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    text.lines()
        .find_map(|l| l.strip_prefix("total_commands_processed:"))
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| anyhow!("no total_commands_processed in INFO stats"))
}

/// One connection to the node's database, for its statistics.
async fn connect_stats(url: &str) -> Result<DatabaseConnection> {
    let mut options = ConnectOptions::new(url);
    options.max_connections(1).min_connections(1);
    Database::connect(options)
        .await
        .context("connect to the node's database")
}

/// Committed + rolled back transactions of the database so far.
async fn pg_transactions(db: &DatabaseConnection) -> Result<i64> {
    db.execute_unprepared("SELECT pg_stat_clear_snapshot()")
        .await
        .context("pg_stat_clear_snapshot")?;
    let row = db
        .query_one_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT (xact_commit + xact_rollback)::bigint AS n FROM pg_stat_database \
             WHERE datname = current_database()",
        ))
        .await
        .context("read pg_stat_database")?
        .ok_or_else(|| anyhow!("no pg_stat_database row for the database"))?;
    row.try_get::<i64>("", "n")
        .context("xact_commit + xact_rollback")
}

/// Rows 4 and 5: counts in the idle and the busy window.
#[derive(Debug, Clone, Copy)]
struct Counts {
    requests: u64,
    redis_idle: i64,
    redis_busy: i64,
    pg_idle: i64,
    pg_busy: i64,
}

impl Counts {
    fn per_request(&self, busy: i64, idle: i64) -> f64 {
        (busy - idle) as f64 / self.requests.max(1) as f64
    }
}

/// A per-request figure meets a target of 0 when it rounds to 0.000.
fn rounds_to_zero(per_request: f64) -> bool {
    per_request < 0.0005
}

fn rows_of(
    report: &mut Report,
    bare: &Throughput,
    health: &Throughput,
    user_info: &Throughput,
    counts: &Counts,
    args: &HttpArgs,
) {
    let none = || "-".to_string();
    let value = |t: &Throughput| {
        format!(
            "{} req/s (p50 {}, p99 {})",
            fmt_rate(t.per_second()),
            fmt_duration(t.latencies.p50()),
            fmt_duration(t.latencies.p99())
        )
    };
    let c = args.connections;
    report.rows.push(Row {
        id: "1".into(),
        figure: format!("bare actix-web GET /health ({c} connections)"),
        value: value(bare),
        baseline: none(),
        ratio: none(),
        target: "- (the baseline)".into(),
        verdict: Verdict::Info,
    });
    let health_ratio = health.per_second() / bare.per_second();
    report.rows.push(Row {
        id: "2".into(),
        figure: format!("node GET /health ({c} connections)"),
        value: value(health),
        baseline: format!("bare {} req/s", fmt_rate(bare.per_second())),
        ratio: format!("{health_ratio:.2}×"),
        target: format!("≥ {HEALTH_RATIO_TARGET}×"),
        verdict: Verdict::from_ok(health_ratio >= HEALTH_RATIO_TARGET),
    });
    let info_ratio = user_info.per_second() / health.per_second();
    report.rows.push(Row {
        id: "3".into(),
        figure: format!("node GET {USER_INFO} with a token ({c} connections)"),
        value: value(user_info),
        baseline: format!("node /health {} req/s", fmt_rate(health.per_second())),
        ratio: format!("{info_ratio:.2}×"),
        target: format!("≥ {USER_INFO_RATIO_TARGET}×"),
        verdict: Verdict::from_ok(info_ratio >= USER_INFO_RATIO_TARGET),
    });
    let window = fmt_round(args.duration);
    let redis = counts.per_request(counts.redis_busy, counts.redis_idle);
    report.rows.push(Row {
        id: "4".into(),
        figure: format!(
            "Redis commands per authenticated request ({} requests in {window})",
            counts.requests
        ),
        value: format!(
            "{redis:.3}/request ({} busy − {} idle)",
            counts.redis_busy, counts.redis_idle
        ),
        baseline: none(),
        ratio: none(),
        target: "0".into(),
        verdict: Verdict::from_ok(rounds_to_zero(redis)),
    });
    let pg = counts.per_request(counts.pg_busy, counts.pg_idle);
    report.rows.push(Row {
        id: "5".into(),
        figure: format!(
            "database transactions per authenticated request ({} requests in {window})",
            counts.requests
        ),
        value: format!(
            "{pg:.3}/request ({} busy − {} idle)",
            counts.pg_busy, counts.pg_idle
        ),
        baseline: none(),
        ratio: none(),
        target: "0".into(),
        verdict: Verdict::from_ok(rounds_to_zero(pg)),
    });
    report.notes.push(format!(
        "Rows 1–3 were measured one after the other in this run with the same \
         generator and the same {c} connections; latencies are per request, \
         send to the end of the body. The generator shares the machine's CPUs \
         with the server, so the ratios compare server + generator on both \
         sides. Rows 4 and 5 compare a {window} window of `GET {USER_INFO}` \
         under load (the same generator, no warm-up: the node's caches are \
         warm from row 3) with an idle {window} window just before it: Redis \
         `total_commands_processed` (`INFO stats` on a raw connection, minus \
         the counting `INFO`), and `xact_commit + xact_rollback` of the \
         database in `pg_stat_database`, read {} after each window (a \
         PostgreSQL backend may report its counters late); the idle window \
         holds the node's background work (lease, heartbeat, cache revision \
         sweep, scheduler) and this run's own readings. A target of 0 is met \
         when busy − idle rounds to 0.000 per request.",
        fmt_round(args.stats_settle)
    ));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_group_thousands() {
        assert_eq!(fmt_rate(12_345.4), "12 345");
        assert_eq!(fmt_rate(999.6), "1 000");
        assert_eq!(fmt_rate(42.0), "42");
        assert_eq!(fmt_rate(1_234_567.0), "1 234 567");
    }

    #[test]
    fn per_request_counts_subtract_the_idle_window() {
        let counts = Counts {
            requests: 10_000,
            redis_idle: 8,
            redis_busy: 9,
            pg_idle: 4,
            pg_busy: 10_004,
        };
        let redis = counts.per_request(counts.redis_busy, counts.redis_idle);
        assert!(rounds_to_zero(redis));
        let pg = counts.per_request(counts.pg_busy, counts.pg_idle);
        assert!((pg - 1.0).abs() < 1e-9);
        assert!(!rounds_to_zero(pg));
    }

    #[tokio::test]
    async fn the_generator_measures_the_bare_server() {
        let bare = BareServer::start("n1").unwrap();
        let load = Load {
            connections: 2,
            warmup: Duration::from_millis(50),
            duration: Duration::from_millis(200),
        };
        let result = load
            .run(&format!("{}/health", bare.base), None)
            .await
            .unwrap();
        assert!(result.requests > 0);
        assert!(
            load.run(&format!("{}/nope", bare.base), None)
                .await
                .is_err()
        );
    }
}
