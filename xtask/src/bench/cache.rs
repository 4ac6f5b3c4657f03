//! `cargo xtask bench cache`: what the revisioned cache costs, measured in
//! one run against one private `redis-server` started for the run.
//!
//! 1. a bare `DashMap` lookup (1b: plus one clock read) and 2. a bare
//!    `moka::sync::Cache` lookup: the baselines, measured in the same run;
//! 3. a `RevisionedCache` hit (`get_or_load` of a fresh scope), compared
//!    with both;
//! 4. the Redis commands issued by 10 000 hits (`INFO stats`);
//! 5. convergence: a bump on one of three nodes until the other two have
//!    dropped the scope, with the default timings (revisionPoll 1 s);
//! 6. the background sweep's Redis commands per node and second with the
//!    default revisionPoll (informational).
//!
//! See docs/benchmarks.md for what each row means.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Args;
use dashmap::DashMap;
use fred::prelude::{Client, ClientLike, KeysInterface};
use lina_cache::{CacheRegistry, CacheSettings, RevisionedCache, StalePolicy};
use lina_coord_api::Coordinator;
use lina_coord_redis::{RedisCoordinator, RedisSettings};
use lina_testkit::RedisServer;
use tokio::time::sleep;

use super::coord::{
    CommandCount, connect_node, field, get_once, info, parse_duration, plain_client,
};
use super::report::{
    Report, Row, Samples, Verdict, build_profile, fmt_duration, fmt_round, load_average, machine,
};
use crate::process::secs;

/// Options of `cargo xtask bench cache`.
#[derive(Debug, Args)]
pub struct CacheArgs {
    /// Hits timed per contender (the cache, DashMap, moka), in batches.
    #[arg(long, value_name = "N", default_value_t = 1_000_000, value_parser = clap::value_parser!(u32).range(1..))]
    hits: u32,
    /// Hits per timed batch; contenders take turns batch by batch.
    #[arg(long, value_name = "N", default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1..))]
    batch: u32,
    /// Scopes (keys) loaded and cycled through by the hits.
    #[arg(long, value_name = "N", default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..))]
    scopes: u32,
    /// Bumps on node 0 whose convergence on nodes 1 and 2 is timed.
    #[arg(long, value_name = "N", default_value_t = 200, value_parser = clap::value_parser!(u32).range(1..))]
    bumps: u32,
    /// How long the sweep's commands are counted (with caches, then again
    /// without); e.g. `10s`, `1m`.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    sweep_window: Duration,
}

/// Namespace of every node in the run.
const NAMESPACE: &str = "bench";
/// Domain of the measured caches.
const DOMAIN: &str = "bench";
/// Target of rows 3a/3b: cache hit / bare lookup.
const HIT_RATIO_TARGET: f64 = 2.0;
/// Target of row 5: p99 of bump → dropped on another node.
const CONVERGENCE_P99_TARGET: Duration = Duration::from_millis(25);
/// Hits whose Redis commands are counted (row 4).
const COUNTED_HITS: u32 = 10_000;
/// Revision poll of the hit node: long, so the sweep cannot run while the
/// commands of row 4 are counted.
const QUIET_POLL: Duration = Duration::from_secs(60);
/// A scope not dropped within this long counts as lost (and as this late).
const CONVERGENCE_TIMEOUT: Duration = Duration::from_secs(5);
/// Raw GETs of the baseline of row 5.
const GET_SAMPLES: u32 = 1000;
/// Unmeasured batches per contender before the hit measurement.
const WARMUP_BATCHES: u32 = 5;
/// Unmeasured bumps before the convergence measurement.
const WARMUP_BUMPS: u32 = 10;

/// Runs `cargo xtask bench cache`.
pub fn run(args: CacheArgs) -> Result<()> {
    let started = Instant::now();
    super::run_measurement("cache", started, measure(&args))
}

fn progress(step: &str, message: impl std::fmt::Display) {
    eprintln!("xtask bench cache: [{step}/6] {message}");
}

/// `25.3 ns` per operation of a batch of `per` operations.
fn per_op(batch: Duration, per: u32) -> String {
    let ns = batch.as_secs_f64() * 1e9 / f64::from(per);
    if ns < 1_000.0 {
        format!("{ns:.1} ns")
    } else {
        fmt_duration(Duration::from_secs_f64(ns / 1e9))
    }
}

async fn measure(args: &CacheArgs) -> Result<Report> {
    let load_at_start = load_average();
    progress("0", "starting a private redis-server (lina-testkit)");
    let server = RedisServer::start()
        .await
        .context("start a private redis-server")?;
    let url = server.url();
    let admin = plain_client(&url).await?;
    let server_info = info(&admin, &["server"]).await?;
    let redis_version = field(&server_info, "redis_version")
        .unwrap_or("unknown")
        .to_string();
    progress(
        "0",
        format_args!(
            "redis-server {redis_version} on 127.0.0.1:{}; raw GET baseline, {GET_SAMPLES} samples",
            server.port()
        ),
    );
    let get = get_baseline(&admin).await?;
    let settings = RedisSettings::from_url(&url, NAMESPACE)?;
    // Joins now, so that it is past its first lease renewal (which loads
    // the renew script once) when its commands are counted in step 6.
    let sweep_node = Arc::new(connect_node(&settings, "bench-sweep").await?);
    let sweep_node_joined = Instant::now();

    let hits = hit_latency(&settings, &admin, args).await?;
    let convergence = convergence(&settings, args.bumps).await?;
    let sweep = sweep_cost(sweep_node, sweep_node_joined, &settings, &admin, args).await?;
    let _ = admin.quit().await;
    drop(server);

    let clocksource =
        std::fs::read_to_string("/sys/devices/system/clocksource/clocksource0/current_clocksource")
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|_| "unknown".into());
    let defaults = CacheSettings::default();
    let mut report = Report {
        target: "cache".into(),
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
                "nodes".into(),
                format!(
                    "`RedisCoordinator`s (`RedisSettings::from_url` defaults), each with its \
                     own `CacheRegistry`; domain `{DOMAIN}` of `Arc<String>`, `fail_closed`; \
                     tokio multi-thread runtime; clock source {clocksource}"
                ),
            ),
            (
                "hits".into(),
                format!(
                    "{} batches of {} per contender, taking turns batch by batch, cycling \
                     through {} keys; the hit node polls revisions every {} \
                     (maxStale {}) so no sweep runs while commands are counted",
                    hits.batches(),
                    args.batch,
                    args.scopes,
                    fmt_round(QUIET_POLL),
                    fmt_round(QUIET_POLL * 2)
                ),
            ),
            (
                "convergence".into(),
                format!(
                    "3 nodes with the default `CacheSettings` (revisionPoll {}, maxStale {}): \
                     only the event path can drop a scope within a second",
                    fmt_round(defaults.revision_poll),
                    fmt_round(defaults.max_stale)
                ),
            ),
            ("build".into(), build_profile().into()),
        ],
        rows: Vec::new(),
        notes: Vec::new(),
    };
    rows(&mut report, args, &get, &hits, &convergence, &sweep);
    Ok(report)
}

fn rows(
    report: &mut Report,
    args: &CacheArgs,
    get: &Samples,
    hits: &HitResult,
    convergence: &ConvergenceResult,
    sweep: &SweepResult,
) {
    let none = || "-".to_string();
    let batch = args.batch;
    let total = hits.batches() as u64 * u64::from(batch);
    let batch_value = |s: &Samples| {
        format!(
            "median {}/hit (p99 batch {}/hit)",
            per_op(s.p50(), batch),
            per_op(s.p99(), batch)
        )
    };
    report.rows.push(Row {
        id: "1".into(),
        figure: format!(
            "bare DashMap lookup + Arc clone (async fn, {} keys, {total} hits)",
            args.scopes
        ),
        value: batch_value(&hits.dashmap),
        baseline: none(),
        ratio: none(),
        target: "- (a baseline)".into(),
        verdict: Verdict::Info,
    });
    let clock = hits.dashmap_clock.p50().as_secs_f64() / hits.dashmap.p50().as_secs_f64();
    report.rows.push(Row {
        id: "1b".into(),
        figure: "the same + one `Instant::now()` (the clock read of a hit)".into(),
        value: batch_value(&hits.dashmap_clock),
        baseline: format!("DashMap {}/hit", per_op(hits.dashmap.p50(), batch)),
        ratio: format!("{clock:.2}×"),
        target: "- (informational)".into(),
        verdict: Verdict::Info,
    });
    report.rows.push(Row {
        id: "2".into(),
        figure: format!(
            "bare moka::sync::Cache get (async fn, {} keys, {total} hits)",
            args.scopes
        ),
        value: batch_value(&hits.moka),
        baseline: none(),
        ratio: none(),
        target: "- (a baseline)".into(),
        verdict: Verdict::Info,
    });
    let cache = hits.cache.p50().as_secs_f64();
    for (id, name, base) in [("3a", "DashMap", &hits.dashmap), ("3b", "moka", &hits.moka)] {
        let ratio = cache / base.p50().as_secs_f64();
        report.rows.push(Row {
            id: id.into(),
            figure: format!("RevisionedCache hit, get_or_load of a fresh scope ({total} hits)"),
            value: batch_value(&hits.cache),
            baseline: format!("{name} {}/hit", per_op(base.p50(), batch)),
            ratio: format!("{ratio:.2}×"),
            target: format!("≤ {HIT_RATIO_TARGET}×"),
            verdict: Verdict::from_ok(ratio <= HIT_RATIO_TARGET),
        });
    }
    report.rows.push(Row {
        id: "4".into(),
        figure: format!("Redis commands issued by {COUNTED_HITS} hits"),
        value: format!(
            "{} (in {})",
            hits.commands.commands,
            fmt_duration(hits.commands.elapsed)
        ),
        baseline: none(),
        ratio: none(),
        target: "0".into(),
        verdict: Verdict::from_ok(hits.commands.commands == 0),
    });

    let get_p50 = get.p50();
    let times_get = |d: Duration| format!("{:.1}×", d.as_secs_f64() / get_p50.as_secs_f64());
    let samples = &convergence.samples;
    let lost = if convergence.lost > 0 {
        format!("; {} lost", convergence.lost)
    } else {
        String::new()
    };
    report.rows.push(Row {
        id: "5".into(),
        figure: format!(
            "convergence: bump on node 0 → scope dropped on nodes 1 and 2 ({} bumps, {} observations)",
            samples.len() / 2,
            samples.len()
        ),
        value: format!(
            "p50 {}, p99 {} (max {}){lost}",
            fmt_duration(samples.p50()),
            fmt_duration(samples.p99()),
            fmt_duration(samples.max())
        ),
        baseline: format!("GET p50 {}", fmt_duration(get_p50)),
        ratio: format!(
            "p50 {}, p99 {}",
            times_get(samples.p50()),
            times_get(samples.p99())
        ),
        target: format!("p99 ≤ {}", fmt_round(CONVERGENCE_P99_TARGET)),
        verdict: Verdict::from_ok(samples.p99() <= CONVERGENCE_P99_TARGET),
    });

    let sweeps = sweep.with.rate() - sweep.without.rate();
    report.rows.push(Row {
        id: "6".into(),
        figure: format!(
            "revision sweep, revisionPoll {} and {} loaded scopes: Redis commands/s per node",
            fmt_round(CacheSettings::default().revision_poll),
            args.scopes
        ),
        value: format!(
            "{sweeps:.2}/s ({:.2}/s with caches − {:.2}/s without)",
            sweep.with.rate(),
            sweep.without.rate()
        ),
        baseline: format!("node without caches {:.2}/s", sweep.without.rate()),
        ratio: none(),
        target: "- (informational)".into(),
        verdict: Verdict::Info,
    });

    report.notes.push(format!(
        "Rows 1–3: every contender (row 1b: a DashMap lookup followed by one `Instant::now()`) is called through an `async fn` and awaited in \
         the same loop on the same task, returns a clone of the stored `Arc<String>` \
         (passed to `black_box`) and cycles through the same {} keys; the \
         contenders take turns batch by batch so that all see the same machine \
         load, and each batch gives one ns/hit figure (the median and the 99th \
         percentile of the batches are shown). A cache hit looks the scope up in \
         the domain's `DashMap`, compares the entry's generation, reads the \
         monotonic clock once to check freshness (maxStale) and counts the hit. \
         The domain's statistics confirmed {} hits and {} misses during rows 3 and 4.",
        args.scopes, hits.stats_hits, hits.stats_misses
    ));
    report.notes.push(format!(
        "Row 4 counts `total_commands_processed` (`INFO stats`, on a separate \
         connection) before and after {COUNTED_HITS} hits, minus the counting `INFO`; \
         counted: {}. Row 5: t0 is taken just before node 0 calls `bump`, t1 when a \
         task that polls `is_loaded` on nodes 1 and 2 (yielding between polls) sees \
         the scope gone; all three nodes reload the scope before the next bump; a \
         scope not dropped within {} counts as lost, with that latency. Row 6 counts \
         one node's commands for {} with `{}` loaded scopes in a registry with the \
         default revisionPoll, then for {} with the registry dropped; the difference \
         is the sweep. Counted with caches: {}; without: {}.",
        hits.commands.breakdown(),
        fmt_round(CONVERGENCE_TIMEOUT),
        fmt_round(args.sweep_window),
        args.scopes,
        fmt_round(args.sweep_window),
        sweep.with.breakdown(),
        sweep.without.breakdown()
    ));
}

async fn get_baseline(client: &Client) -> Result<Samples> {
    let key = format!("{{{NAMESPACE}}}:raw-get");
    client
        .set::<(), _, _>(&key, "some value", None, None, false)
        .await?;
    for _ in 0..100 {
        get_once(client, &key).await?;
    }
    let mut samples = Vec::with_capacity(GET_SAMPLES as usize);
    for _ in 0..GET_SAMPLES {
        samples.push(get_once(client, &key).await?);
    }
    let samples = Samples::new(samples);
    progress(
        "0",
        format_args!(
            "raw GET: p50 {}, p99 {}",
            fmt_duration(samples.p50()),
            fmt_duration(samples.p99())
        ),
    );
    Ok(samples)
}

type Value = Arc<String>;

/// The stored value of `key` (what every contender holds).
fn value_of(key: &str) -> Value {
    Arc::new(format!("value of {key}: {}", "x".repeat(64)))
}

/// Batch durations of each contender and the command count of row 4.
struct HitResult {
    dashmap: Samples,
    dashmap_clock: Samples,
    moka: Samples,
    cache: Samples,
    commands: CommandCount,
    stats_hits: u64,
    stats_misses: u64,
}

impl HitResult {
    fn batches(&self) -> usize {
        self.cache.len()
    }
}

#[derive(Clone, Copy)]
enum Contender {
    DashMap,
    /// A DashMap lookup plus one read of the monotonic clock, as a hit
    /// makes: shows what the freshness check's clock read costs.
    DashMapClock,
    Moka,
    Cache,
}

struct Contenders<'a> {
    dashmap: &'a DashMap<String, Value>,
    moka: &'a moka::sync::Cache<String, Value>,
    cache: &'a RevisionedCache<Value>,
    keys: &'a [String],
}

async fn dashmap_get(map: &DashMap<String, Value>, key: &str) -> Option<Value> {
    map.get(key).map(|entry| entry.value().clone())
}

async fn moka_get(cache: &moka::sync::Cache<String, Value>, key: &str) -> Option<Value> {
    cache.get(key)
}

impl Contenders<'_> {
    /// `n` lookups cycling through the keys; how long they took.
    async fn batch(&self, who: Contender, n: u32) -> Result<Duration> {
        let keys = self.keys;
        let mut k = 0;
        let t0 = Instant::now();
        for _ in 0..n {
            let key = &keys[k];
            k += 1;
            if k == keys.len() {
                k = 0;
            }
            let found = match who {
                Contender::DashMap => dashmap_get(self.dashmap, key).await,
                Contender::DashMapClock => {
                    let found = dashmap_get(self.dashmap, key).await;
                    black_box(Instant::now());
                    found
                }
                Contender::Moka => moka_get(self.moka, key).await,
                Contender::Cache => self
                    .cache
                    .get_or_load(key, || async { Err(std::io::Error::other("a miss")) })
                    .await
                    .ok(),
            };
            if black_box(found).is_none() {
                bail!("{key} was not served from memory");
            }
        }
        Ok(t0.elapsed())
    }
}

async fn hit_latency(
    settings: &RedisSettings,
    admin: &Client,
    args: &CacheArgs,
) -> Result<HitResult> {
    let keys: Vec<String> = (0..args.scopes).map(|i| format!("scope-{i}")).collect();
    progress(
        "1",
        format_args!(
            "node bench-hits (revisionPoll {}): loading {} scopes; filling a DashMap and a moka cache",
            fmt_round(QUIET_POLL),
            keys.len()
        ),
    );
    let node: Arc<dyn Coordinator> = Arc::new(connect_node(settings, "bench-hits").await?);
    let registry = CacheRegistry::start(
        node.clone(),
        CacheSettings {
            revision_poll: QUIET_POLL,
            max_stale: QUIET_POLL * 2,
        },
    );
    let cache = registry.domain::<Value>(DOMAIN, StalePolicy::FailClosed)?;
    let dashmap = DashMap::new();
    let moka = moka::sync::Cache::new(10_000);
    for key in &keys {
        let value = value_of(key);
        let loaded = cache
            .get_or_load(key, || {
                let value = value.clone();
                async move { Ok::<_, std::convert::Infallible>(value) }
            })
            .await
            .with_context(|| format!("load scope {key}"))?;
        dashmap.insert(key.clone(), loaded.clone());
        moka.insert(key.clone(), loaded);
    }
    let contenders = Contenders {
        dashmap: &dashmap,
        moka: &moka,
        cache: &cache,
        keys: &keys,
    };
    let before = cache.stats();
    let batches = (args.hits / args.batch).max(1);
    progress(
        "1",
        format_args!(
            "hits of rows 1–3: {batches} batches of {} per contender, taking turns \
             ({WARMUP_BATCHES} warm-up batches each)",
            args.batch
        ),
    );
    let order = [
        Contender::DashMap,
        Contender::DashMapClock,
        Contender::Moka,
        Contender::Cache,
    ];
    for _ in 0..WARMUP_BATCHES {
        for who in order {
            contenders.batch(who, args.batch).await?;
        }
    }
    let mut times: [Vec<Duration>; 4] = Default::default();
    for b in 0..batches {
        for i in 0..order.len() {
            let slot = (i + b as usize) % order.len();
            times[slot].push(contenders.batch(order[slot], args.batch).await?);
        }
        if b > 0 && b.is_multiple_of(25) {
            progress("1", format_args!("  {b} / {batches} batches"));
        }
    }
    let [dashmap_t, clock_t, moka_t, cache_t] = times.map(Samples::new);
    progress(
        "1",
        format_args!(
            "median per hit: DashMap {} (+ clock read {}), moka {}, RevisionedCache {} \
             ({:.2}× DashMap, {:.2}× moka)",
            per_op(dashmap_t.p50(), args.batch),
            per_op(clock_t.p50(), args.batch),
            per_op(moka_t.p50(), args.batch),
            per_op(cache_t.p50(), args.batch),
            cache_t.p50().as_secs_f64() / dashmap_t.p50().as_secs_f64(),
            cache_t.p50().as_secs_f64() / moka_t.p50().as_secs_f64()
        ),
    );

    progress(
        "4",
        format_args!("Redis commands while bench-hits serves {COUNTED_HITS} hits"),
    );
    let commands = count_commands(admin, async {
        contenders.batch(Contender::Cache, COUNTED_HITS).await
    })
    .await?;
    progress(
        "4",
        format_args!(
            "{} commands in {} ({})",
            commands.commands,
            fmt_duration(commands.elapsed),
            commands.breakdown()
        ),
    );
    let after = cache.stats();
    drop(registry);
    node.shutdown().await?;
    Ok(HitResult {
        dashmap: dashmap_t,
        dashmap_clock: clock_t,
        moka: moka_t,
        cache: cache_t,
        commands,
        stats_hits: after.hits - before.hits,
        stats_misses: after.misses - before.misses,
    })
}

/// Counts the commands the server processes while `work` runs, without the
/// counting itself: a command is counted once it has run, so the first
/// `INFO` is in the difference and the second is not.
async fn count_commands<T>(
    client: &Client,
    work: impl Future<Output = Result<T>>,
) -> Result<CommandCount> {
    const SECTIONS: &[&str] = &["stats", "commandstats"];
    let before = info(client, SECTIONS).await?;
    let t0 = Instant::now();
    work.await?;
    let elapsed = t0.elapsed();
    let after = info(client, SECTIONS).await?;
    CommandCount::between(&before, &after, elapsed)
}

struct ConvergenceResult {
    samples: Samples,
    lost: u32,
}

async fn load(cache: &RevisionedCache<Value>, scope: &str) -> Result<()> {
    cache
        .get_or_load(scope, || async {
            Ok::<_, std::convert::Infallible>(value_of(scope))
        })
        .await
        .with_context(|| format!("load scope {scope} of {}", cache.domain()))?;
    Ok(())
}

async fn convergence(settings: &RedisSettings, bumps: u32) -> Result<ConvergenceResult> {
    const SCOPE: &str = "s";
    let defaults = CacheSettings::default();
    progress(
        "5",
        format_args!(
            "nodes bench-conv-0..2 with default cache settings (revisionPoll {}, maxStale {}); \
             {bumps} bumps on bench-conv-0 ({WARMUP_BUMPS} warm-up)",
            fmt_round(defaults.revision_poll),
            fmt_round(defaults.max_stale)
        ),
    );
    let mut nodes = Vec::new();
    let mut registries = Vec::new();
    let mut caches = Vec::new();
    for i in 0..3 {
        let node: Arc<dyn Coordinator> =
            Arc::new(connect_node(settings, &format!("bench-conv-{i}")).await?);
        let registry = CacheRegistry::start(node.clone(), defaults);
        caches.push(registry.domain::<Value>(DOMAIN, StalePolicy::FailClosed)?);
        registries.push(registry);
        nodes.push(node);
    }
    let mut samples = Vec::with_capacity(2 * bumps as usize);
    let mut lost = 0;
    for i in 0..WARMUP_BUMPS + bumps {
        for cache in &caches {
            load(cache, SCOPE).await?;
        }
        if !caches.iter().all(|c| c.is_loaded(SCOPE)) {
            bail!("scope {SCOPE} is not loaded on every node after loading it");
        }
        // The watcher polls before the bump is sent, so a drop that
        // happens before `bump` returns is timed when it happens.
        let others = [caches[1].clone(), caches[2].clone()];
        let watcher = tokio::spawn(async move {
            let mut seen: [Option<Instant>; 2] = [None, None];
            let deadline = Instant::now() + CONVERGENCE_TIMEOUT;
            while seen.iter().any(Option::is_none) && Instant::now() < deadline {
                for (slot, cache) in seen.iter_mut().zip(&others) {
                    if slot.is_none() && !cache.is_loaded(SCOPE) {
                        *slot = Some(Instant::now());
                    }
                }
                tokio::task::yield_now().await;
            }
            seen
        });
        let t0 = Instant::now();
        caches[0].bump(SCOPE).await?;
        let seen = watcher.await?;
        if i >= WARMUP_BUMPS {
            for t1 in seen {
                match t1 {
                    Some(t1) => samples.push(t1.saturating_duration_since(t0)),
                    None => {
                        lost += 1;
                        samples.push(CONVERGENCE_TIMEOUT);
                    }
                }
            }
        }
        if i > WARMUP_BUMPS && (i - WARMUP_BUMPS).is_multiple_of(50) {
            progress("5", format_args!("  {} / {bumps} bumps", i - WARMUP_BUMPS));
        }
    }
    let samples = Samples::new(samples);
    progress(
        "5",
        format_args!(
            "bump → dropped: p50 {}, p99 {}, max {}; {lost} lost",
            fmt_duration(samples.p50()),
            fmt_duration(samples.p99()),
            fmt_duration(samples.max())
        ),
    );
    drop(caches);
    drop(registries);
    for node in nodes {
        node.shutdown().await?;
    }
    Ok(ConvergenceResult { samples, lost })
}

struct SweepResult {
    with: CommandCount,
    without: CommandCount,
}

async fn sweep_cost(
    node: Arc<RedisCoordinator>,
    joined: Instant,
    settings: &RedisSettings,
    admin: &Client,
    args: &CacheArgs,
) -> Result<SweepResult> {
    // Past the node's first lease renewal, as in `bench coord`.
    let settle = Duration::from_secs(2);
    let ready = joined + settings.election.renew_interval + settle;
    let wait = ready.saturating_duration_since(Instant::now());
    let defaults = CacheSettings::default();
    progress(
        "6",
        format_args!(
            "node bench-sweep with a registry (revisionPoll {}) and {} loaded scopes; \
             waiting {} (past its first lease renewal), then counting {} with caches \
             and {} without",
            fmt_round(defaults.revision_poll),
            args.scopes,
            secs(wait.max(settle)),
            fmt_round(args.sweep_window),
            fmt_round(args.sweep_window)
        ),
    );
    let coordinator: Arc<dyn Coordinator> = node.clone();
    let registry = CacheRegistry::start(coordinator, defaults);
    let cache = registry.domain::<Value>(DOMAIN, StalePolicy::FailClosed)?;
    for i in 0..args.scopes {
        load(&cache, &format!("scope-{i}")).await?;
    }
    sleep(wait.max(settle)).await;
    let with = count_commands(admin, async {
        sleep(args.sweep_window).await;
        Ok(())
    })
    .await?;
    progress(
        "6",
        format_args!(
            "with caches: {:.2} commands/s ({})",
            with.rate(),
            with.breakdown()
        ),
    );
    drop(cache);
    drop(registry);
    sleep(settle).await;
    let without = count_commands(admin, async {
        sleep(args.sweep_window).await;
        Ok(())
    })
    .await?;
    progress(
        "6",
        format_args!(
            "without caches: {:.2} commands/s ({}); the sweep: {:.2}/s",
            without.rate(),
            without.breakdown(),
            with.rate() - without.rate()
        ),
    );
    node.shutdown().await?;
    Ok(SweepResult { with, without })
}
