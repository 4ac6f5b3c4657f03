//! Scenario 5: the (private) PostgreSQL restarted with `pg_ctl restart -m
//! fast` under load: `/ready` goes 503 and back, requests in the gap fail
//! cleanly, no job log of a completed run is lost, runs after it are recorded.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use sea_orm::{ConnectionTrait, DbBackend, Statement};

use super::env::{Ctx, Env, EnvOptions, NODES};
use super::load::{Outcome, Targets, failures, require_traffic, summarize};
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

/// Runs the scenario into `report`.
pub async fn run(ctx: &Ctx, report: &mut ScenarioReport) -> Result<()> {
    let s = &ctx.settings;
    let hang = Duration::from_secs(5);
    let ready_bound = Duration::from_secs(5);
    report.title = "PostgreSQL restarted under load".into();
    report.injected = format!(
        "`pg_ctl restart -m fast` of a private PostgreSQL cluster (initdb'd for this scenario) \
         holding the nodes' database; health timeout {}; load {} req/s straight to the nodes \
         (one request in four reads the database)",
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
    load.phase("restart");
    let restart_sent = clock.now();
    let took = pg.restart_fast().await?;
    let back = clock.now();
    // Every node ready again.
    let deadline = back + Duration::from_secs(20);
    let mut all_ready = None;
    while clock.now() < deadline {
        let r = readiness.lock().expect("readiness").clone();
        let ready_now = (0..NODES).all(|n| {
            r.iter()
                .filter(|x| x.node == n && x.sent >= back)
                .any(|x| x.status == Some(200))
        });
        if ready_now {
            all_ready = Some(clock.now());
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
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
    let gap_end = all_ready.unwrap_or(deadline);
    let mut went_down = Vec::new();
    for n in 0..NODES {
        let first_503 = r
            .iter()
            .filter(|x| x.node == n && x.sent >= restart_sent && x.sent <= gap_end)
            .find(|x| x.status == Some(503));
        went_down.push(first_503.map(|x| x.sent - restart_sent));
    }
    report.check(
        "/ready answered 503 on every node while PostgreSQL was restarting",
        format!(
            "first 503 after the restart began: {}; pg_ctl restart took {}",
            went_down
                .iter()
                .enumerate()
                .map(|(n, d)| format!(
                    "{} {}",
                    env.cluster.nodes[n].id,
                    d.map(ms).unwrap_or_else(|| "never".into())
                ))
                .collect::<Vec<_>>()
                .join(", "),
            ms(took)
        ),
        "503 on each node",
        went_down.iter().all(Option::is_some),
    );
    report.check(
        "/ready back to 200 on every node after PostgreSQL was back",
        match all_ready {
            Some(at) => format!("{} after pg_ctl returned", ms(at - back)),
            None => "not within 20 s".into(),
        },
        format!("≤ {}", ms(ready_bound)),
        all_ready.is_some_and(|at| at - back <= ready_bound),
    );
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
    let gap: Vec<_> = traffic
        .records
        .iter()
        .filter(|r| r.sent >= restart_sent && r.sent <= gap_end)
        .collect();
    let unclean: Vec<_> = gap
        .iter()
        .filter(|r| match r.outcome {
            Outcome::Status(st) => {
                !((200..300).contains(&st) || (400..500).contains(&st) || st == 503)
            }
            _ => true,
        })
        .collect();
    let slowest_gap = gap.iter().map(|r| r.latency).max().unwrap_or_default();
    report.check(
        "requests in the gap failed cleanly: 2xx, 4xx or 503 only, none hung",
        format!(
            "{} requests, unclean: {}; slowest {}",
            gap.len(),
            fmt_failed(&failures(unclean.iter().copied().copied())),
            fmt_ms(slowest_gap)
        ),
        format!("no other status or transport error, ≤ {}", ms(hang)),
        !gap.is_empty() && unclean.is_empty() && slowest_gap <= hang,
    );
    let after = success_ids(&env, job).await?;
    let lost: Vec<_> = before.difference(&after).collect();
    report.check(
        "no log row of a completed run was lost",
        format!(
            "{} success rows before the restart, {} of them still there",
            before.len(),
            before.len() - lost.len()
        ),
        "all",
        !before.is_empty() && lost.is_empty(),
    );
    let from = clock.unix_ms(all_ready.unwrap_or(back) + Duration::from_secs(1));
    let accounting = env.fires(job, from, to, &[]).await?;
    report.check(
        "runs after the restart were recorded: every fire once",
        accounting.summary(),
        "0 missed, 0 duplicated, 1 claim per fire",
        accounting.expected > 0 && accounting.exactly_once(),
    );
    report.fires.push(FireRow {
        label: "1 s after every node was ready → 1 s before the end".into(),
        accounting,
    });
    let gap_fires = env
        .fires(
            job,
            clock.unix_ms(restart_sent),
            clock.unix_ms(gap_end),
            &[],
        )
        .await?;
    report.fires.push(FireRow {
        label: "during the restart (informational)".into(),
        accounting: gap_fires,
    });
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
    report.notes.push(format!(
        "/ready was probed on every node every 20 ms ({} probes). \"The gap\" runs from the \
         start of `pg_ctl restart` until every node answered /ready 200 again. Fires due while \
         the database is down cannot be claimed; the second fire row shows what became of them. \
         PostgreSQL's log: {}.",
        r.len(),
        pg.log().display()
    ));
    Ok(())
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

/// Polls `/ready` on every node every 20 ms until told to stop.
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
        loop {
            tokio::select! {
                _ = stopped.changed() => return,
                _ = tick.tick() => {}
            }
            let mut asks = tokio::task::JoinSet::new();
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
            while let Some(Ok(r)) = asks.join_next().await {
                out.lock().expect("readiness").push(r);
            }
        }
    });
    (stop, task)
}
