//! `cargo xtask bench coord`: what coordination on Redis costs, measured in
//! one run against one private `redis-server` started for the run.
//!
//! 1. raw GET round trip of a plain fred client: the baseline;
//! 2. lock acquire + release cycle, compared with two GETs;
//! 3. lock hand-off: A releases, B (waiting in `acquire`) gets the lock;
//! 4. revision bump on A until B's subscription yields the event;
//! 5. Redis commands per second of idle nodes with the default production
//!    timings (lease 30 s, renew 10 s, heartbeat 5 s), counted with
//!    `INFO stats` on a separate connection.
//!
//! See docs/benchmarks.md for what each row means.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use clap::Args;
use fred::prelude::{Builder, Client, ClientLike, Config, KeysInterface};
use fred::types::{ClusterHash, CustomCommand};
use lina_coord_api::{Coordinator, EventItem, LockOptions, NodeId, NodeInfo, REVISION_EVENT};
use lina_coord_redis::{RedisCoordinator, RedisSettings};
use lina_testkit::RedisServer;
use tokio::sync::mpsc;
use tokio::time::{sleep, timeout};

use super::report::{
    Report, Row, Samples, Verdict, build_profile, fmt_duration, fmt_round, load_average, machine,
};
use crate::process::secs;

/// Options of `cargo xtask bench coord`.
#[derive(Debug, Args)]
pub struct CoordArgs {
    /// How long the commands of idle nodes are counted, per measurement
    /// (one node, then two); e.g. `20s`, `1m`, `500ms`.
    #[arg(long, value_name = "DURATION", default_value = "20s", value_parser = parse_duration)]
    idle_window: Duration,
    /// How long idle nodes run before counting starts (the first one also
    /// waits for its first lease renewal, 10 s).
    #[arg(long, value_name = "DURATION", default_value = "2s", value_parser = parse_duration)]
    settle: Duration,
    /// Skip the idle measurement with two nodes (leader + follower).
    #[arg(long)]
    no_follower: bool,
    /// Sequential raw GET samples.
    #[arg(long, value_name = "N", default_value_t = 2000, value_parser = clap::value_parser!(u32).range(1..))]
    get_samples: u32,
    /// Sequential lock acquire + release cycles.
    #[arg(long, value_name = "N", default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..))]
    lock_samples: u32,
    /// Lock hand-offs (each costs about 10 ms of waiting).
    #[arg(long, value_name = "N", default_value_t = 200, value_parser = clap::value_parser!(u32).range(1..))]
    handoff_samples: u32,
    /// Revision bumps received as events on the other node.
    #[arg(long, value_name = "N", default_value_t = 300, value_parser = clap::value_parser!(u32).range(1..))]
    event_samples: u32,
}

/// Namespace of every node in the run.
const NAMESPACE: &str = "bench";
/// Target of row 2: median cycle / (2 × median GET).
const LOCK_RATIO_TARGET: f64 = 1.3;
/// Target of row 3: p99 of the hand-off.
const HANDOFF_P99_TARGET: Duration = Duration::from_millis(5);
/// Target of row 4: p99 of bump → event.
const EVENT_P99_TARGET: Duration = Duration::from_millis(5);
/// Target of rows 5a/5b: Redis commands per second of one idle node.
const IDLE_RATE_TARGET: f64 = 3.0;
/// How long node B waits in `acquire` before A releases, so that its first
/// attempt has been answered `Busy` and it is waiting for the announcement.
const HANDOFF_HEAD_START: Duration = Duration::from_millis(10);
/// An event not received within this long counts as lost (and as this late).
const EVENT_TIMEOUT: Duration = Duration::from_secs(1);
/// Unmeasured iterations before each latency measurement (connections,
/// script loading, allocator).
const WARMUP: u32 = 100;
/// Rows 1 and 2 are measured in this many alternating blocks.
const BLOCKS: u32 = 20;
/// Lock TTL used while measuring (long: never expires during the run).
const LOCK_TTL: Duration = Duration::from_secs(10);

/// Runs `cargo xtask bench coord`.
pub fn run(args: CoordArgs) -> Result<()> {
    let started = Instant::now();
    super::run_measurement("coord", started, measure(&args))
}

fn progress(step: &str, message: impl std::fmt::Display) {
    eprintln!("xtask bench coord: [{step}/5] {message}");
}

async fn measure(args: &CoordArgs) -> Result<Report> {
    let load_at_start = load_average();
    progress("0", "starting a private redis-server (lina-testkit)");
    let server = RedisServer::start()
        .await
        .context("start a private redis-server")?;
    let url = server.url();
    let admin = plain_client(&url).await?;
    let server_info = info(&admin, &["server"]).await?;
    let redis_version = field(&server_info, "redis_version").unwrap_or("unknown");
    progress(
        "0",
        format_args!(
            "redis-server {redis_version} on 127.0.0.1:{}; connecting nodes bench-a and bench-b",
            server.port()
        ),
    );
    let settings = RedisSettings::from_url(&url, NAMESPACE)?;
    let a = Arc::new(connect_node(&settings, "bench-a").await?);
    let b = Arc::new(connect_node(&settings, "bench-b").await?);

    let (gets, cycles) = (args.get_samples, args.lock_samples);
    progress(
        "1",
        format_args!(
            "raw GET round trip, {gets} sequential samples, interleaved in {} blocks with [2/5]",
            BLOCKS.min(gets).min(cycles)
        ),
    );
    progress(
        "2",
        format_args!("lock acquire + release cycle on bench-a, {cycles} sequential samples"),
    );
    let (get, cycle) = get_and_lock_cycle(&admin, &a, gets, cycles).await?;
    progress(
        "1",
        format_args!(
            "raw GET: p50 {}, p99 {}, mean {}",
            fmt_duration(get.p50()),
            fmt_duration(get.p99()),
            fmt_duration(get.mean())
        ),
    );

    let ratio = cycle.cycle.p50().as_secs_f64() / (2.0 * get.p50().as_secs_f64());
    progress(
        "2",
        format_args!(
            "lock cycle: median {} (acquire {}, release {}), p99 {}; ratio to 2 × GET {ratio:.2}",
            fmt_duration(cycle.cycle.p50()),
            fmt_duration(cycle.acquire.p50()),
            fmt_duration(cycle.release.p50()),
            fmt_duration(cycle.cycle.p99())
        ),
    );

    let n = args.handoff_samples;
    progress(
        "3",
        format_args!(
            "lock hand-off bench-a → bench-b, {n} samples ({} head start each)",
            fmt_round(HANDOFF_HEAD_START)
        ),
    );
    let handoff = lock_handoff(&a, &b, n).await?;
    progress(
        "3",
        format_args!(
            "hand-off: p50 {}, p99 {}, max {}",
            fmt_duration(handoff.p50()),
            fmt_duration(handoff.p99()),
            fmt_duration(handoff.max())
        ),
    );

    let n = args.event_samples;
    progress(
        "4",
        format_args!("revision bump on bench-a → event on bench-b, {n} samples"),
    );
    let events = revision_events(&a, &b, n).await?;
    progress(
        "4",
        format_args!(
            "bump → event: p50 {}, p99 {}, max {}; {} lost, {} resyncs",
            fmt_duration(events.samples.p50()),
            fmt_duration(events.samples.p99()),
            fmt_duration(events.samples.max()),
            events.lost,
            events.resyncs
        ),
    );
    a.shutdown().await?;
    b.shutdown().await?;
    drop((a, b));

    let idle = idle_nodes(&url, &admin, args).await?;
    let _ = admin.quit().await;
    drop(server);

    let mut report = Report {
        target: "coord".into(),
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
                "redis".into(),
                format!(
                    "private redis-server {redis_version} on 127.0.0.1 (lina-testkit), \
                     no persistence"
                ),
            ),
            (
                "client".into(),
                "fred 10, one connection per node plus its subscriber; \
                 tokio multi-thread runtime"
                    .into(),
            ),
            ("build".into(), build_profile().into()),
            (
                "idle nodes".into(),
                format!(
                    "`RedisSettings::from_url` defaults (lease {}, renew {}, heartbeat {}); \
                     counted for {} per measurement, from {} after the node joined \
                     (the first node: {}, past its first lease renewal)",
                    fmt_round(settings.election.lease),
                    fmt_round(settings.election.renew_interval),
                    fmt_round(settings.heartbeat),
                    fmt_round(args.idle_window),
                    fmt_round(args.settle),
                    fmt_round(settings.election.renew_interval + args.settle)
                ),
            ),
        ],
        rows: Vec::new(),
        notes: Vec::new(),
    };
    rows(&mut report, &get, &cycle, &handoff, &events, &idle);
    Ok(report)
}

fn rows(
    report: &mut Report,
    get: &Samples,
    cycle: &CycleResult,
    handoff: &Samples,
    events: &EventResult,
    idle: &IdleResult,
) {
    let get_p50 = get.p50();
    let times_get = |d: Duration| format!("{:.1}×", d.as_secs_f64() / get_p50.as_secs_f64());
    let get_baseline = format!("GET p50 {}", fmt_duration(get_p50));
    let none = || "-".to_string();

    report.rows.push(Row {
        id: "1".into(),
        figure: format!("raw GET round trip (fred, {} sequential)", get.len()),
        value: format!(
            "p50 {}, p99 {}, mean {}",
            fmt_duration(get.p50()),
            fmt_duration(get.p99()),
            fmt_duration(get.mean())
        ),
        baseline: none(),
        ratio: none(),
        target: "- (the baseline)".into(),
        verdict: Verdict::Info,
    });

    let (cycle_parts, cycle) = (cycle, &cycle.cycle);
    let ratio = cycle.p50().as_secs_f64() / (2.0 * get_p50.as_secs_f64());
    report.rows.push(Row {
        id: "2".into(),
        figure: format!("lock acquire + release cycle ({} sequential)", cycle.len()),
        value: format!(
            "median {} (p99 {})",
            fmt_duration(cycle.p50()),
            fmt_duration(cycle.p99())
        ),
        baseline: format!("2 × GET p50 = {}", fmt_duration(get_p50 * 2)),
        ratio: format!("{ratio:.2}"),
        target: format!("ratio ≤ {LOCK_RATIO_TARGET}"),
        verdict: Verdict::from_ok(ratio <= LOCK_RATIO_TARGET),
    });

    report.rows.push(Row {
        id: "3".into(),
        figure: format!(
            "lock hand-off, release → waiter holds it ({})",
            handoff.len()
        ),
        value: format!(
            "p50 {}, p99 {}",
            fmt_duration(handoff.p50()),
            fmt_duration(handoff.p99())
        ),
        baseline: get_baseline.clone(),
        ratio: format!(
            "p50 {}, p99 {}",
            times_get(handoff.p50()),
            times_get(handoff.p99())
        ),
        target: format!("p99 ≤ {}", fmt_round(HANDOFF_P99_TARGET)),
        verdict: Verdict::from_ok(handoff.p99() <= HANDOFF_P99_TARGET),
    });

    let samples = &events.samples;
    let mut lost = String::new();
    if events.lost > 0 {
        lost.push_str(&format!("; {} lost", events.lost));
    }
    if events.resyncs > 0 {
        lost.push_str(&format!("; {} resyncs", events.resyncs));
    }
    report.rows.push(Row {
        id: "4".into(),
        figure: format!(
            "revision bump → event on the other node ({})",
            samples.len()
        ),
        value: format!(
            "p50 {}, p99 {}{lost}",
            fmt_duration(samples.p50()),
            fmt_duration(samples.p99())
        ),
        baseline: get_baseline,
        ratio: format!(
            "p50 {}, p99 {}",
            times_get(samples.p50()),
            times_get(samples.p99())
        ),
        target: format!("p99 ≤ {}", fmt_round(EVENT_P99_TARGET)),
        verdict: Verdict::from_ok(samples.p99() <= EVENT_P99_TARGET),
    });

    let rate =
        |c: &CommandCount| format!("{:.2}/s ({} in {})", c.rate(), c.commands, secs(c.elapsed));
    report.rows.push(Row {
        id: "5a".into(),
        figure: format!("idle node alone ({}): Redis commands/s", idle.alone_role),
        value: rate(&idle.alone),
        baseline: none(),
        ratio: none(),
        target: format!("≤ {IDLE_RATE_TARGET}/s"),
        verdict: Verdict::from_ok(idle.alone.rate() <= IDLE_RATE_TARGET),
    });
    let mut details = vec![format!(
        "Commands counted in the idle windows (from `INFO commandstats`, \
         the counting `INFO` calls excluded; commands run inside Lua scripts \
         count, as in `total_commands_processed`):\n\n- 5a, one node: {}",
        idle.alone.breakdown()
    )];
    if let Some((pair, role)) = &idle.pair {
        let follower = pair.rate() - idle.alone.rate();
        report.rows.push(Row {
            id: "5b".into(),
            figure: format!("idle {role} (5c − 5a): Redis commands/s"),
            value: format!("{follower:.2}/s"),
            baseline: format!("5a {:.2}/s", idle.alone.rate()),
            ratio: none(),
            target: format!("≤ {IDLE_RATE_TARGET}/s"),
            verdict: Verdict::from_ok(follower <= IDLE_RATE_TARGET),
        });
        report.rows.push(Row {
            id: "5c".into(),
            figure: "two idle nodes, leader + follower: Redis commands/s".into(),
            value: rate(pair),
            baseline: none(),
            ratio: none(),
            target: format!("≤ {}/s (2 × {IDLE_RATE_TARGET})", 2.0 * IDLE_RATE_TARGET),
            verdict: Verdict::from_ok(pair.rate() <= 2.0 * IDLE_RATE_TARGET),
        });
        details.push(format!("- 5c, two nodes: {}", pair.breakdown()));
    }
    report.notes.push(details.join("\n"));
    report.notes.push(format!(
        "Rows 1 and 2 are measured alternately, in {BLOCKS} blocks of GETs and \
         cycles, so that both see the same load. Row 2 split: acquire median {} \
         (p99 {}), release median {} (p99 {}); each is one EVALSHA, the release \
         script also publishes the release announcement to every node's \
         subscriber.\n\n\
         Rows 3 and 4 give the ratio to the GET median (in round trips). Row 3: \
         t0 is taken just before A calls `release`, t1 when B's waiting `acquire` \
         returns; B starts waiting {} before t0. Row 4: t0 is taken just before \
         A calls `bump`, t1 when B's subscription yields the matching revision \
         event; an event not seen within {} counts as lost, with that latency.",
        fmt_duration(cycle_parts.acquire.p50()),
        fmt_duration(cycle_parts.acquire.p99()),
        fmt_duration(cycle_parts.release.p50()),
        fmt_duration(cycle_parts.release.p99()),
        fmt_round(HANDOFF_HEAD_START),
        fmt_round(EVENT_TIMEOUT)
    ));
}

/// A plain fred client with default settings.
pub(super) async fn plain_client(url: &str) -> Result<Client> {
    let config = Config::from_url(url).context("redis url")?;
    let client = Builder::from_config(config)
        .build()
        .context("build a fred client")?;
    client.init().await.context("connect a fred client")?;
    Ok(client)
}

pub(super) async fn connect_node(settings: &RedisSettings, id: &str) -> Result<RedisCoordinator> {
    let node = NodeInfo::new(NodeId::new(id)?, "127.0.0.1:0");
    RedisCoordinator::connect(settings.clone(), node)
        .await
        .with_context(|| format!("connect node {id}"))
}

/// `INFO <sections…>` as text.
pub(super) async fn info(client: &Client, sections: &[&str]) -> Result<String> {
    let command = CustomCommand::new_static("INFO", ClusterHash::FirstKey, false);
    client
        .custom::<String, _>(command, sections.to_vec())
        .await
        .context("INFO")
}

/// The value of `name:value` in INFO text.
pub(super) fn field<'a>(info: &'a str, name: &str) -> Option<&'a str> {
    info.lines()
        .filter_map(|l| l.trim_end().split_once(':'))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// Whole cycles, and their acquire and release parts.
struct CycleResult {
    cycle: Samples,
    acquire: Samples,
    release: Samples,
}

/// Rows 1 and 2, interleaved in [`BLOCKS`] blocks (GETs, then cycles) so
/// that both see the same load on the machine and their ratio stays
/// meaningful when other processes come and go.
async fn get_and_lock_cycle(
    client: &Client,
    node: &RedisCoordinator,
    gets: u32,
    cycles: u32,
) -> Result<(Samples, CycleResult)> {
    let key = format!("{{{NAMESPACE}}}:raw-get");
    client
        .set::<(), _, _>(&key, "some value", None, None, false)
        .await?;
    for _ in 0..WARMUP {
        get_once(client, &key).await?;
        cycle_once(node).await?;
    }
    let mut get = Vec::with_capacity(gets as usize);
    let mut cycle = Vec::with_capacity(cycles as usize);
    let mut acquire = Vec::with_capacity(cycles as usize);
    let mut release = Vec::with_capacity(cycles as usize);
    let blocks = BLOCKS.min(gets).min(cycles);
    for block in 0..blocks {
        for _ in 0..share(gets, blocks, block) {
            get.push(get_once(client, &key).await?);
        }
        for _ in 0..share(cycles, blocks, block) {
            let (took_lock, released) = cycle_once(node).await?;
            cycle.push(took_lock + released);
            acquire.push(took_lock);
            release.push(released);
        }
    }
    Ok((
        Samples::new(get),
        CycleResult {
            cycle: Samples::new(cycle),
            acquire: Samples::new(acquire),
            release: Samples::new(release),
        },
    ))
}

/// The `block`-th of `blocks` near-equal parts of `total`.
fn share(total: u32, blocks: u32, block: u32) -> u32 {
    let (total, blocks, block) = (u64::from(total), u64::from(blocks), u64::from(block));
    (total * (block + 1) / blocks - total * block / blocks) as u32
}

/// One GET round trip.
pub(super) async fn get_once(client: &Client, key: &str) -> Result<Duration> {
    let t = Instant::now();
    let value: Option<String> = client.get(key).await?;
    let elapsed = t.elapsed();
    if value.is_none() {
        bail!("GET {key} returned nothing");
    }
    Ok(elapsed)
}

/// One lock acquire and release: how long each took.
async fn cycle_once(node: &RedisCoordinator) -> Result<(Duration, Duration)> {
    let t0 = Instant::now();
    let guard = node
        .locks()
        .acquire("bench-cycle", LockOptions::ttl(LOCK_TTL))
        .await?;
    let t1 = Instant::now();
    guard.release().await?;
    Ok((t1 - t0, t1.elapsed()))
}

async fn lock_handoff(
    a: &Arc<RedisCoordinator>,
    b: &Arc<RedisCoordinator>,
    n: u32,
) -> Result<Samples> {
    const NAME: &str = "bench-handoff";
    let warmup = 10;
    let mut samples = Vec::with_capacity(n as usize);
    for i in 0..warmup + n {
        let held = a.locks().acquire(NAME, LockOptions::ttl(LOCK_TTL)).await?;
        let b = b.clone();
        let waiter = tokio::spawn(async move {
            let options = LockOptions::ttl(LOCK_TTL).wait(Duration::from_secs(5));
            let guard = b.locks().acquire(NAME, options).await;
            (guard, Instant::now())
        });
        sleep(HANDOFF_HEAD_START).await;
        if waiter.is_finished() {
            let (guard, _) = waiter.await?;
            bail!("bench-b's acquire returned while bench-a held the lock: {guard:?}");
        }
        let t0 = Instant::now();
        held.release().await?;
        let (guard, t1) = waiter.await?;
        let guard = guard.context("bench-b waiting for the lock")?;
        guard.release().await?;
        if i >= warmup {
            samples.push(t1.saturating_duration_since(t0));
        }
        if i > 0 && i % 50 == 0 {
            progress("3", format_args!("  {i} / {} hand-offs", warmup + n));
        }
    }
    Ok(Samples::new(samples))
}

struct EventResult {
    samples: Samples,
    lost: u32,
    resyncs: u32,
}

async fn revision_events(
    a: &RedisCoordinator,
    b: &RedisCoordinator,
    n: u32,
) -> Result<EventResult> {
    const DOMAIN: &str = "bench";
    const SCOPE: &str = "s";
    // Receipt times are taken by a task that only listens, so an event that
    // arrives before `bump` returns is still timed when it arrives.
    let mut subscription = b.events().subscribe();
    let (tx, mut rx) = mpsc::unbounded_channel::<Result<(u64, Instant), String>>();
    let listener = tokio::spawn(async move {
        while let Some(item) = subscription.recv().await {
            let now = Instant::now();
            let sent = match item {
                EventItem::Event(event)
                    if event.kind == REVISION_EVENT
                        && event.domain == DOMAIN
                        && event.scope == SCOPE =>
                {
                    match event.revision {
                        Some(revision) => tx.send(Ok((revision.value, now))),
                        None => Ok(()),
                    }
                }
                EventItem::Event(_) => Ok(()),
                EventItem::Resync { reason } => tx.send(Err(reason)),
            };
            if sent.is_err() {
                return;
            }
        }
    });

    let warmup = 20;
    let mut samples = Vec::with_capacity(n as usize);
    let (mut lost, mut resyncs) = (0, 0);
    for i in 0..warmup + n {
        let t0 = Instant::now();
        let revision = a.revisions().bump(DOMAIN, SCOPE).await?;
        let deadline = tokio::time::Instant::from_std(t0 + EVENT_TIMEOUT);
        let latency = loop {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(Ok((value, t1)))) if value == revision.value => {
                    break Some(t1.saturating_duration_since(t0));
                }
                // An older bump's event, late: skip it.
                Ok(Some(Ok(_))) => {}
                Ok(Some(Err(reason))) => {
                    resyncs += u32::from(i >= warmup);
                    progress("4", format_args!("  resync on bench-b: {reason}"));
                }
                Ok(None) => bail!("bench-b's subscription ended"),
                Err(_) => break None,
            }
        };
        if i >= warmup {
            match latency {
                Some(latency) => samples.push(latency),
                None => {
                    lost += 1;
                    samples.push(EVENT_TIMEOUT);
                }
            }
        }
    }
    listener.abort();
    Ok(EventResult {
        samples: Samples::new(samples),
        lost,
        resyncs,
    })
}

/// Commands the server processed during a window (between two `INFO
/// stats commandstats` snapshots), without the counting `INFO` itself.
pub(super) struct CommandCount {
    pub(super) commands: u64,
    pub(super) elapsed: Duration,
    pub(super) per_command: Vec<(String, u64)>,
}

impl CommandCount {
    /// Builds the count from the snapshots taken before and after.
    pub(super) fn between(before: &str, after: &str, elapsed: Duration) -> Result<Self> {
        let total = |info: &str| -> Result<u64> {
            field(info, "total_commands_processed")
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| anyhow!("no total_commands_processed in INFO stats"))
        };
        let commands = (total(after)? - total(before)?).saturating_sub(1);
        let (before, after) = (command_calls(before), command_calls(after));
        let mut per_command: Vec<(String, u64)> = after
            .iter()
            .filter(|(command, _)| command != "info")
            .filter_map(|(command, calls)| {
                let old = before
                    .iter()
                    .find(|(c, _)| c == command)
                    .map_or(0, |(_, n)| *n);
                (calls > &old).then(|| (command.clone(), calls - old))
            })
            .collect();
        per_command.sort_by(|x, y| y.1.cmp(&x.1).then_with(|| x.0.cmp(&y.0)));
        Ok(CommandCount {
            commands,
            elapsed,
            per_command,
        })
    }

    pub(super) fn rate(&self) -> f64 {
        self.commands as f64 / self.elapsed.as_secs_f64()
    }

    pub(super) fn breakdown(&self) -> String {
        if self.per_command.is_empty() {
            return "none".into();
        }
        self.per_command
            .iter()
            .map(|(command, calls)| format!("`{command}` × {calls}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

struct IdleResult {
    alone: CommandCount,
    alone_role: &'static str,
    pair: Option<(CommandCount, &'static str)>,
}

fn role(node: &RedisCoordinator) -> &'static str {
    if node.election().is_leader() {
        "leader"
    } else {
        "follower"
    }
}

async fn idle_nodes(url: &str, admin: &Client, args: &CoordArgs) -> Result<IdleResult> {
    // Production timings: nothing is shortened here.
    let settings = RedisSettings::from_url(url, NAMESPACE)?;
    progress(
        "5",
        format_args!(
            "idle node bench-idle-a with default timings (lease {}, renew {}, heartbeat {}); \
             settling {} (past its first lease renewal)",
            secs(settings.election.lease),
            secs(settings.election.renew_interval),
            secs(settings.heartbeat),
            secs(settings.election.renew_interval + args.settle)
        ),
    );
    let first = connect_node(&settings, "bench-idle-a").await?;
    // Counting starts after the first lease renewal: it loads the renew
    // script once (NOSCRIPT, SCRIPT LOAD), a start-up cost, not an idle one.
    sleep(settings.election.renew_interval + args.settle).await;
    let alone_role = role(&first);
    let alone = count_commands(admin, args.idle_window, "one idle node").await?;
    progress(
        "5",
        format_args!(
            "one idle node ({alone_role}): {:.2} commands/s ({} in {})",
            alone.rate(),
            alone.commands,
            secs(alone.elapsed)
        ),
    );
    let mut pair = None;
    if !args.no_follower {
        progress(
            "5",
            format_args!(
                "adding idle node bench-idle-b; settling {}",
                secs(args.settle)
            ),
        );
        let second = connect_node(&settings, "bench-idle-b").await?;
        sleep(args.settle).await;
        let second_role = role(&second);
        let count = count_commands(admin, args.idle_window, "two idle nodes").await?;
        progress(
            "5",
            format_args!(
                "two idle nodes: {:.2} commands/s ({} in {})",
                count.rate(),
                count.commands,
                secs(count.elapsed)
            ),
        );
        second.shutdown().await?;
        pair = Some((count, second_role));
    }
    first.shutdown().await?;
    Ok(IdleResult {
        alone,
        alone_role,
        pair,
    })
}

/// Counts the commands the server processes during `window`, without the
/// counting itself: a command is counted once it has run, so the first
/// `INFO` is in the difference and the second is not.
async fn count_commands(client: &Client, window: Duration, what: &str) -> Result<CommandCount> {
    const SECTIONS: &[&str] = &["stats", "commandstats"];
    let before = info(client, SECTIONS).await?;
    let t0 = Instant::now();
    let tick = Duration::from_secs(5);
    let mut waited = Duration::ZERO;
    while waited < window {
        let step = tick.min(window - waited);
        sleep(step).await;
        waited += step;
        if waited < window {
            progress(
                "5",
                format_args!("  counting {what}: {} / {}", secs(waited), secs(window)),
            );
        }
    }
    let after = timeout(Duration::from_secs(5), info(client, SECTIONS))
        .await
        .context("INFO timed out")??;
    CommandCount::between(&before, &after, t0.elapsed())
}

/// `(command, calls)` from `INFO commandstats` lines `cmdstat_get:calls=3,…`.
pub(super) fn command_calls(info: &str) -> Vec<(String, u64)> {
    info.lines()
        .filter_map(|line| {
            let rest = line.strip_prefix("cmdstat_")?;
            let (command, stats) = rest.split_once(':')?;
            let calls = stats
                .split(',')
                .find_map(|kv| kv.strip_prefix("calls="))?
                .parse()
                .ok()?;
            Some((command.to_string(), calls))
        })
        .collect()
}

/// `20s`, `1500ms`, `1m`, or plain seconds.
pub(super) fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let number: f64 = number
        .parse()
        .map_err(|_| format!("duration {s:?} must be a number with a unit, e.g. 20s"))?;
    let seconds = match unit.trim() {
        "" | "s" => number,
        "ms" => number / 1_000.0,
        "m" | "min" => number * 60.0,
        other => {
            return Err(format!(
                "duration {s:?} has an unknown unit {other:?} (use ms, s or m)"
            ));
        }
    };
    Duration::try_from_secs_f64(seconds).map_err(|e| format!("duration {s:?}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("20s"), Ok(Duration::from_secs(20)));
        assert_eq!(parse_duration("1500ms"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("1m"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("2.5"), Ok(Duration::from_millis(2500)));
        assert!(parse_duration("5h").is_err());
        assert!(parse_duration("s").is_err());
    }

    #[test]
    fn blocks_share_the_samples() {
        for (total, blocks) in [(2000, 20), (1000, 20), (7, 3), (1, 1)] {
            let parts: Vec<u32> = (0..blocks).map(|k| share(total, blocks, k)).collect();
            assert_eq!(parts.iter().sum::<u32>(), total);
            assert!(parts.iter().max().unwrap() - parts.iter().min().unwrap() <= 1);
        }
    }

    #[test]
    fn info_fields_and_command_stats_parse() {
        let info = "# Stats\r\ntotal_commands_processed:42\r\n# Commandstats\r\n\
                    cmdstat_evalsha:calls=7,usec=10,usec_per_call=1.43\r\n\
                    cmdstat_info:calls=2,usec=5\r\n";
        assert_eq!(field(info, "total_commands_processed"), Some("42"));
        assert_eq!(
            command_calls(info),
            vec![("evalsha".to_string(), 7), ("info".to_string(), 2)]
        );
    }
}
