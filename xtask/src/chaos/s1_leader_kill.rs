//! Scenario 1: SIGKILL the leader five times under load, restarting the
//! killed node each time.

use std::time::Duration;

use anyhow::{Result, anyhow};
use rand::Rng;

use super::cluster::START_TIMEOUT;
use super::env::{Ctx, Env, EnvOptions};
use super::fires::Kill;
use super::leader::{Sampler, check_leadership};
use super::load::{Targets, failures, require_traffic, summarize};
use super::report::{FireRow, ScenarioReport, fmt_failed};
use super::util::ms;

/// How often every node's leadership is sampled.
pub const SAMPLE_EVERY: Duration = Duration::from_millis(20);
/// Slack over the lease for a failover.
pub const FAILOVER_SLACK: Duration = Duration::from_millis(250);
/// Kills of the scenario.
const KILLS: usize = 5;

/// Runs the scenario into `report`.
pub async fn run(ctx: &Ctx, report: &mut ScenarioReport) -> Result<()> {
    let s = &ctx.settings;
    report.title = "leader SIGKILLed five times under load".into();
    report.injected = format!(
        "SIGKILL of the current leader {KILLS} times (at a random instant within a second), the \
         killed node restarted and back in /ready before the next kill; lease {}, renewInterval {}; \
         load {} req/s from {} tasks straight to the three nodes",
        ms(s.lease),
        ms(s.renew),
        ctx.rate,
        ctx.concurrency
    );
    let clock = ctx.clock;
    let mut env = Env::start(ctx, EnvOptions::default()).await?;
    let token = env.admin(0).await?;
    let job = env.create_job(&token).await?;
    let first_run = env.wait_for_runs(job).await?;
    let sampler = Sampler::start(clock, env.cluster.bases(), SAMPLE_EVERY);
    let load = env
        .load(Targets::Direct(env.cluster.bases()), "steady")
        .await?;
    let from = first_run.max(clock.unix_now()) + 1000;
    let steady = if ctx.short { 2 } else { 5 };
    tokio::time::sleep(Duration::from_secs(steady)).await;

    let bound = s.lease + FAILOVER_SLACK;
    let mut kills = Vec::new();
    for k in 1..=KILLS {
        let jitter = Duration::from_millis(rand::rng().random_range(0..1000));
        tokio::time::sleep(jitter).await;
        let (leader, term) = current_leader(&sampler, clock).await?;
        let id = env.cluster.nodes[leader].id.clone();
        load.phase(&format!("kill {k} ({id})"));
        load.set_faulted(leader, true);
        let killed_at = clock.now();
        env.cluster.kill9(leader)?;
        kills.push(Kill {
            node_id: id.clone(),
            at: clock.unix_ms(killed_at),
        });
        let new = sampler
            .wait_new_leader(
                clock,
                killed_at,
                term,
                Some(leader),
                killed_at + Duration::from_secs(15),
            )
            .await;
        match new {
            Some(sample) => {
                let took = sample.received.saturating_sub(killed_at);
                report.check(
                    format!("kill {k}: a new leader within lease + 250 ms"),
                    format!(
                        "{} ({id} term {term} killed → {} term {})",
                        ms(took),
                        env.cluster.nodes[sample.node].id,
                        sample.term.unwrap_or(0)
                    ),
                    format!("≤ {}", ms(bound)),
                    took <= bound,
                );
            }
            None => report.check(
                format!("kill {k}: a new leader within lease + 250 ms"),
                format!("no node claimed a term above {term} within 15 s"),
                format!("≤ {}", ms(bound)),
                false,
            ),
        }
        env.cluster.spawn(leader)?;
        env.cluster.wait_ready(leader, START_TIMEOUT).await?;
        load.set_faulted(leader, false);
        tokio::time::sleep(Duration::from_millis(if ctx.short { 1000 } else { 3000 })).await;
    }
    load.phase("after the kills");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let to = clock.unix_now() - 1000;
    let traffic = load.stop().await;
    let samples = sampler.stop().await;
    require_traffic(&traffic)?;
    // Let the last runs finish and the restarted nodes mark abandoned rows.
    tokio::time::sleep(Duration::from_millis(2500)).await;

    let survivors: Vec<_> = traffic.records.iter().filter(|r| !r.faulted).collect();
    let failed = failures(survivors.iter().copied());
    report.check(
        "no request failed on the surviving nodes",
        format!(
            "{} requests, failed: {}",
            survivors.len(),
            fmt_failed(&failed)
        ),
        "0 failed",
        failed.is_empty(),
    );
    let leadership = check_leadership(&samples);
    report.check(
        "one leader per term; no node claimed an older term after a newer one answered",
        format!(
            "{} samples, terms {:?}, conflicts {:?}, stale claims {}",
            leadership.samples,
            leadership.terms.keys().collect::<Vec<_>>(),
            leadership.term_conflicts,
            leadership.stale_claims.len()
        ),
        "no conflict, no stale claim",
        leadership.holds(),
    );
    let accounting = env.fires(job, from, to, &kills).await?;
    report.check(
        "every master_only fire ran exactly once, with one claim `*`",
        accounting.summary(),
        "0 missed, 0 duplicated, 1 claim per fire (a run cut by a SIGKILL is shown apart)",
        accounting.exactly_once(),
    );
    report.fires.push(FireRow {
        label: "first steady second → 1 s before the end".into(),
        accounting,
    });
    report.traffic = summarize(&traffic.records, &traffic.phases, |r| {
        Some(
            if r.faulted {
                "killed node (excluded)"
            } else {
                "surviving nodes"
            }
            .to_string(),
        )
    });
    let names: Vec<String> = env.cluster.nodes.iter().map(|n| n.id.clone()).collect();
    report.per_node = super::load::per_node(&traffic.records, &names);
    report.notes.push(format!(
        "Failover is measured from just before the SIGKILL to the first /metrics answer of \
         another node claiming a higher term (every node sampled every {} ms), so it includes \
         up to one sampling interval. Requests sent to the killed node while it was down (until \
         it answered /ready again) are counted apart. The load logged in again {} times.",
        SAMPLE_EVERY.as_millis(),
        traffic.relogins
    ));
    if !kills.is_empty() {
        report.notes.push(
            "A fire whose claim was taken by the leader less than 1 s before it was killed and \
             that has no successful run is counted as `interrupted by a kill`: the claim keeps \
             it from running twice, so a run cut short by a SIGKILL is not run again (at most \
             once per fire after a crash); any other fire without a run counts as missed."
                .into(),
        );
    }
    Ok(())
}

/// The leader in the last samples; waits up to 10 s for one.
pub async fn current_leader(sampler: &Sampler, clock: super::util::Clock) -> Result<(usize, u64)> {
    let deadline = clock.now() + Duration::from_secs(10);
    loop {
        let since = clock.now().saturating_sub(Duration::from_millis(200));
        if let Some(found) = sampler.leader_since(since) {
            return Ok(found);
        }
        if clock.now() > deadline {
            return Err(anyhow!("no node claimed leadership for 10 s"));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
