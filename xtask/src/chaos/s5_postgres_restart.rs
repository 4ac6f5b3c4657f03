//! Scenario 5: the (private) PostgreSQL restarted with `pg_ctl restart -m
//! fast`, then stopped for a while and started again, under load: `/ready`
//! goes 503 and back, requests in the gaps fail cleanly, no job log of a
//! completed run is lost, runs after it are recorded.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use sea_orm::{ConnectionTrait, DbBackend, Statement};

use super::env::{Ctx, Env, EnvOptions, NODES};
use super::load::{Outcome, Record, Targets, failures, require_traffic, summarize};
use super::report::{FireRow, ScenarioReport, fmt_failed, fmt_ms};
use super::util::{Clock, ms};

/// One `/ready` answer.
#[derive(Debug, Clone, Copy)]
struct Ready {
    node: usize,
    sent: Duration,
    latency: Duration,
    status: Option<u16>,
}

/// The node's only database timeout: `connect_timeout(10s)` in
/// `open_database` (crates/lina-server/src/node.rs), which sea-orm passes to
/// sqlx as the pool's acquire timeout: how long a request waits for a
/// connection while the database is away.
const NODE_DB_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs the scenario into `report`.
pub async fn run(ctx: &Ctx, report: &mut ScenarioReport) -> Result<()> {
    let s = &ctx.settings;
    let hang = NODE_DB_TIMEOUT + Duration::from_secs(1);
    let ready_bound = Duration::from_secs(5);
    let hold = Duration::from_secs(if ctx.short { 3 } else { 12 });
    report.title = "PostgreSQL restarted under load".into();
    report.injected = format!(
        "on a private PostgreSQL cluster (initdb'd for this scenario) holding the nodes' \
         database: (A) `pg_ctl restart -m fast`; (B) `pg_ctl stop -m fast`, {} down, `pg_ctl \
         start` (longer than the health timeout {}, so /ready must notice); load {} req/s \
         straight to the nodes (one request in four reads the database)",
        ms(hold),
        ms(s.health_timeout),
        ctx.rate
    );
    let clock = ctx.clock;
    let env = Env::start(
        ctx,
        EnvOptions {
            private_postgres: true,
            ..EnvOptions::default()
        },
    )
    .await?;
    let pg = env
        .private_postgres()
        .ok_or_else(|| anyhow!("no private PostgreSQL"))?;
    report
        .injected
        .push_str(&format!(" (private server on port {})", pg.port()));
    let admin = env.admin(0).await?;
    let job = env.create_job(&admin).await?;
    env.wait_for_runs(job).await?;
    let load = env
        .load(Targets::Direct(env.cluster.bases()), "before")
        .await?;
    let readiness = Arc::new(Mutex::new(Vec::<Ready>::new()));
    let (stop_probe, probe) = probe_ready(clock, env.cluster.bases(), readiness.clone());
    tokio::time::sleep(Duration::from_secs(if ctx.short { 3 } else { 6 })).await;
    let before = success_ids(&env, job).await?;

    // A: restart -m fast.
    load.phase("A: pg_ctl restart -m fast");
    let restart_sent = clock.now();
    let restart_took = pg.restart_fast().await?;
    let back = clock.now();
    let ready_a = all_ready_after(&readiness, clock, back, Duration::from_secs(20)).await;
    load.phase("between");
    tokio::time::sleep(Duration::from_secs(2)).await;

    // B: down for longer than the health timeout.
    load.phase(&format!("B: down {}", ms(hold)));
    let stop_sent = clock.now();
    pg.stop_fast().await?;
    let down = clock.now();
    tokio::time::sleep(hold).await;
    pg.start_again().await?;
    let up = clock.now();
    let ready_b = all_ready_after(&readiness, clock, up, Duration::from_secs(20)).await;
    load.phase("after");
    let after_from = clock.now();
    tokio::time::sleep(Duration::from_secs(if ctx.short { 4 } else { 8 })).await;
    let to = clock.unix_now() - 1000;
    let traffic = load.stop().await;
    let _ = stop_probe.send(true);
    let _ = probe.await;
    require_traffic(&traffic)?;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let r = readiness.lock().expect("readiness").clone();

    // A.
    let gap_a_end = ready_a.unwrap_or(back + Duration::from_secs(20));
    let (gap_a, unclean_a, slowest_a) = gap_requests(&traffic.records, restart_sent, gap_a_end);
    report.check(
        "A: requests during `pg_ctl restart -m fast` failed cleanly: 2xx, 4xx or 503 only, none hung",
        format!(
            "{} requests, unclean: {}; slowest {}",
            gap_a,
            fmt_failed(&unclean_a),
            fmt_ms(slowest_a)
        ),
        format!("no other status or transport error, ≤ {} (the node's database timeout + 1 s)", ms(hang)),
        gap_a > 0 && unclean_a.is_empty() && slowest_a <= hang,
    );
    let ready_503_a = (0..NODES)
        .filter(|n| {
            r.iter().any(|x| {
                x.node == *n
                    && x.sent >= restart_sent
                    && x.sent <= gap_a_end
                    && x.status == Some(503)
            })
        })
        .count();
    report.check(
        "A: every node ready again after the restart",
        match ready_a {
            Some(at) => format!(
                "{} after pg_ctl returned (it took {}); /ready answered 503 on {ready_503_a} of \
                 {NODES} nodes in between",
                ms(at - back),
                ms(restart_took)
            ),
            None => "not within 20 s".into(),
        },
        format!("≤ {}", ms(ready_bound)),
        ready_a.is_some_and(|at| at - back <= ready_bound),
    );

    // B.
    let notice = s.health_timeout + Duration::from_millis(500);
    let mut noticed = Vec::new();
    for n in 0..NODES {
        let first_503 = r
            .iter()
            .filter(|x| x.node == n && x.sent >= stop_sent && x.sent <= up)
            .find(|x| x.status == Some(503));
        noticed.push(first_503.map(|x| (x.sent + x.latency).saturating_sub(down)));
    }
    report.check(
        "B: /ready answered 503 on every node while PostgreSQL was down",
        noticed
            .iter()
            .enumerate()
            .map(|(n, d)| {
                format!(
                    "{} {}",
                    env.cluster.nodes[n].id,
                    d.map(|d| format!("{} after the stop", ms(d)))
                        .unwrap_or_else(|| "never".into())
                )
            })
            .collect::<Vec<_>>()
            .join(", "),
        format!(
            "503 on each node within {} (health timeout + 500 ms)",
            ms(notice)
        ),
        noticed.iter().all(|d| d.is_some_and(|d| d <= notice)),
    );
    report.check(
        "B: /ready back to 200 on every node after PostgreSQL started",
        match ready_b {
            Some(at) => format!("{} after pg_ctl start returned", ms(at - up)),
            None => "not within 20 s".into(),
        },
        format!("≤ {}", ms(ready_bound)),
        ready_b.is_some_and(|at| at - up <= ready_bound),
    );
    let gap_b_end = ready_b.unwrap_or(up + Duration::from_secs(20));
    let (gap_b, unclean_b, slowest_b) = gap_requests(&traffic.records, stop_sent, gap_b_end);
    let refused_b = traffic
        .records
        .iter()
        .filter(|x| x.sent >= stop_sent && x.sent <= gap_b_end && x.outcome == Outcome::Status(503))
        .count();
    report.check(
        "B: requests while PostgreSQL was down failed cleanly: 2xx, 4xx or 503 only, none hung",
        format!(
            "{gap_b} requests ({refused_b} answered 503), unclean: {}; slowest {}",
            fmt_failed(&unclean_b),
            fmt_ms(slowest_b)
        ),
        format!(
            "no other status or transport error, ≤ {} (the node's database timeout + 1 s)",
            ms(hang)
        ),
        gap_b > 0 && unclean_b.is_empty() && slowest_b <= hang,
    );

    // Both.
    let slowest_ready = r.iter().map(|x| x.latency).max().unwrap_or_default();
    let ready_failed = r.iter().filter(|x| x.status.is_none()).count();
    let ready_limit = s.health_timeout + Duration::from_secs(1);
    report.check(
        "/ready never hung or failed to answer",
        format!(
            "{} probes, {ready_failed} without an answer, slowest {}",
            r.len(),
            fmt_ms(slowest_ready)
        ),
        format!("0, ≤ {} (health timeout + 1 s)", ms(ready_limit)),
        ready_failed == 0 && slowest_ready <= ready_limit,
    );
    let after = success_ids(&env, job).await?;
    let lost: Vec<_> = before.difference(&after).collect();
    report.check(
        "no log row of a completed run was lost",
        format!(
            "{} success rows before the restarts, {} of them still there",
            before.len(),
            before.len() - lost.len()
        ),
        "all",
        !before.is_empty() && lost.is_empty(),
    );
    let from = clock.unix_ms(gap_b_end + Duration::from_secs(1));
    let accounting = env.fires(job, from, to, &[]).await?;
    report.check(
        "runs after the restarts were recorded: every fire once",
        accounting.summary(),
        "0 missed, 0 duplicated, 1 claim per fire",
        accounting.expected > 0 && accounting.exactly_once(),
    );
    report.fires.push(FireRow {
        label: "1 s after every node was ready again → 1 s before the end".into(),
        accounting,
    });
    for (label, from, to) in [
        ("during A (informational)", restart_sent, gap_a_end),
        ("during B (informational)", stop_sent, gap_b_end),
    ] {
        let accounting = env
            .fires(job, clock.unix_ms(from), clock.unix_ms(to), &[])
            .await?;
        report.fires.push(FireRow {
            label: label.into(),
            accounting,
        });
    }
    let after_records: Vec<_> = traffic
        .records
        .iter()
        .filter(|r| r.sent >= after_from)
        .collect();
    let failed_after = failures(after_records.iter().copied());
    report.check(
        "once every node was ready again, no request failed",
        format!(
            "{} requests, failed: {}",
            after_records.len(),
            fmt_failed(&failed_after)
        ),
        "0 failed",
        !after_records.is_empty() && failed_after.is_empty(),
    );
    report.traffic = summarize(&traffic.records, &traffic.phases, |r| {
        Some(
            super::load::PATHS[r.path]
                .0
                .split('?')
                .next()
                .unwrap_or("")
                .to_string(),
        )
    });
    let names: Vec<String> = env.cluster.nodes.iter().map(|n| n.id.clone()).collect();
    report.per_node = super::load::per_node(&traffic.records, &names);
    report.notes.push(format!(
        "/ready was probed on every node every 20 ms ({} probes). A gap runs from the start of \
         the pg_ctl command until every node answered /ready 200 again. With a restart shorter \
         than the health timeout a /ready probe may simply wait for its connection and answer \
         200; B keeps the database away long enough that it must answer 503. Fires due while \
         the database is away cannot be claimed; the informational fire rows show what became \
         of them. PostgreSQL's log: {}.",
        r.len(),
        pg.log().display()
    ));
    Ok(())
}

/// Requests sent in `[from, to]`: how many, the unclean ones (not 2xx,
/// 4xx or 503) by status, and the slowest.
fn gap_requests(
    records: &[Record],
    from: Duration,
    to: Duration,
) -> (usize, std::collections::BTreeMap<String, usize>, Duration) {
    let gap: Vec<&Record> = records
        .iter()
        .filter(|r| r.sent >= from && r.sent <= to)
        .collect();
    let unclean = failures(gap.iter().copied().filter(|r| match r.outcome {
        Outcome::Status(st) => !((200..300).contains(&st) || (400..500).contains(&st) || st == 503),
        _ => true,
    }));
    let slowest = gap.iter().map(|r| r.latency).max().unwrap_or_default();
    (gap.len(), unclean, slowest)
}

/// Waits until every node answered /ready 200 to a probe sent after
/// `after`; returns when.
async fn all_ready_after(
    readiness: &Mutex<Vec<Ready>>,
    clock: Clock,
    after: Duration,
    within: Duration,
) -> Option<Duration> {
    let deadline = after + within;
    while clock.now() < deadline {
        let ready = {
            let r = readiness.lock().expect("readiness");
            (0..NODES).all(|n| {
                r.iter()
                    .any(|x| x.node == n && x.sent >= after && x.status == Some(200))
            })
        };
        if ready {
            return Some(clock.now());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    None
}

/// Ids of the job's successful runs.
async fn success_ids(env: &Env, job: i64) -> Result<BTreeSet<i64>> {
    let rows = env
        .db
        .query_all_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT id FROM sys_job_log WHERE job_id = $1 AND status = 'success'",
            [job.into()],
        ))
        .await
        .context("read the job's successful runs")?;
    rows.into_iter()
        .map(|r| r.try_get::<i64>("", "id").context("id"))
        .collect()
}

/// Polls `/ready` on every node every 20 ms until told to stop, open loop
/// (a probe waiting for the database does not delay the next one).
fn probe_ready(
    clock: Clock,
    bases: Vec<String>,
    out: Arc<Mutex<Vec<Ready>>>,
) -> (
    tokio::sync::watch::Sender<bool>,
    tokio::task::JoinHandle<()>,
) {
    let (stop, mut stopped) = tokio::sync::watch::channel(false);
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("an HTTP client");
    let task = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(20));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut asks = tokio::task::JoinSet::new();
        loop {
            tokio::select! {
                _ = stopped.changed() => break,
                _ = tick.tick() => {}
            }
            while let Some(Ok(r)) = asks.try_join_next() {
                out.lock().expect("readiness").push(r);
            }
            for (node, base) in bases.iter().enumerate() {
                let http = http.clone();
                let url = format!("{base}/ready");
                asks.spawn(async move {
                    let sent = clock.now();
                    let status = match http.get(&url).send().await {
                        Ok(r) => {
                            let status = r.status().as_u16();
                            r.bytes().await.ok().map(|_| status)
                        }
                        Err(_) => None,
                    };
                    Ready {
                        node,
                        sent,
                        latency: clock.now() - sent,
                        status,
                    }
                });
            }
        }
        while let Some(Ok(r)) = asks.join_next().await {
            out.lock().expect("readiness").push(r);
        }
    });
    (stop, task)
}
