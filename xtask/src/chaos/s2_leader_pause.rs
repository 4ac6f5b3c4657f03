//! Scenario 2: SIGSTOP the leader for two leases, then SIGCONT: it must have
//! stepped down and must run nothing as leader after waking.

use std::time::Duration;

use anyhow::Result;

use super::env::{Ctx, Env, EnvOptions};
use super::fires::{self, acted_as_leader_since};
use super::leader::{Sampler, check_leadership};
use super::load::{Targets, failures, require_traffic, summarize};
use super::report::{FireRow, ScenarioReport, fmt_failed};
use super::s1_leader_kill::{FAILOVER_SLACK, SAMPLE_EVERY, current_leader};
use super::util::ms;

/// Runs the scenario into `report`.
pub async fn run(ctx: &Ctx, report: &mut ScenarioReport) -> Result<()> {
    let s = &ctx.settings;
    let pause = s.lease * 2;
    report.title = "leader paused (SIGSTOP) for two leases".into();
    report.injected = format!(
        "SIGSTOP of the leader for {} (2 × lease {}), then SIGCONT; load {} req/s straight to \
         the nodes",
        ms(pause),
        ms(s.lease),
        ctx.rate
    );
    let clock = ctx.clock;
    let env = Env::start(ctx, EnvOptions::default()).await?;
    let token = env.admin(0).await?;
    let job = env.create_job(&token).await?;
    let first_run = env.wait_for_runs(job).await?;
    let sampler = Sampler::start(clock, env.cluster.bases(), SAMPLE_EVERY);
    let load = env
        .load(Targets::Direct(env.cluster.bases()), "steady")
        .await?;
    let from = first_run.max(clock.unix_now()) + 1000;
    tokio::time::sleep(Duration::from_secs(if ctx.short { 2 } else { 5 })).await;

    let (leader, term) = current_leader(&sampler, clock).await?;
    let id = env.cluster.nodes[leader].id.clone();
    let base = env.base(leader);
    load.phase(&format!("{id} paused"));
    load.set_faulted(leader, true);
    let pause_sent = clock.now();
    env.cluster.pause(leader).await?;
    let stopped = clock.now();
    let stop_point = clock.unix_ms(stopped);
    let wake_at = tokio::time::Instant::now() + pause.saturating_sub(clock.now() - pause_sent);
    let (new, ()) = tokio::join!(
        sampler.wait_new_leader(clock, pause_sent, term, Some(leader), pause_sent + pause),
        tokio::time::sleep_until(wake_at)
    );
    env.cluster.resume(leader)?;
    let woken = clock.now();
    load.phase(&format!("{id} woken"));
    let bound = s.lease + FAILOVER_SLACK;
    match new {
        Some(sample) => {
            let took = sample.received.saturating_sub(pause_sent);
            report.check(
                "a new leader while the old one is paused",
                format!(
                    "{} ({id} term {term} paused → {} term {})",
                    ms(took),
                    env.cluster.nodes[sample.node].id,
                    sample.term.unwrap_or(0)
                ),
                format!("≤ {}", ms(bound)),
                took <= bound,
            );
        }
        None => report.check(
            "a new leader while the old one is paused",
            format!("no node claimed a term above {term} during the pause"),
            format!("≤ {}", ms(bound)),
            false,
        ),
    }

    // The woken node's own view, from its first answer on.
    let mut answers = Vec::new();
    let mut named_leader_after = None;
    let watch_until = woken + s.lease * 2;
    while clock.now() < watch_until {
        if let Ok(a) = ctx
            .api
            .get(&base, "/api/v1/system/info", Some(&token))
            .await
        {
            let role = a.body["data"]["cluster"]["role"]
                .as_str()
                .unwrap_or("?")
                .to_string();
            let named = a.body["data"]["cluster"]["leader"]
                .as_str()
                .map(str::to_string);
            if named_leader_after.is_none() && named.as_deref().is_some_and(|n| n != id) {
                named_leader_after = Some(clock.now() - woken);
            }
            answers.push((a.status, role));
        }
        if answers.len() == 1 {
            load.set_faulted(leader, false);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    load.set_faulted(leader, false);
    let followers = answers
        .iter()
        .filter(|(status, role)| *status == 200 && role == "follower")
        .count();
    report.check(
        "after SIGCONT the woken node reports itself follower (system/info)",
        format!(
            "{followers} of {} answers in {} say follower (first answer {}); it named another \
             leader {}",
            answers.len(),
            ms(s.lease * 2),
            answers
                .first()
                .map(|(st, r)| format!("{st} {r}"))
                .unwrap_or_else(|| "none".into()),
            named_leader_after
                .map(|d| format!("{} after waking", ms(d)))
                .unwrap_or_else(|| "never".into())
        ),
        "every answer follower",
        !answers.is_empty() && followers == answers.len(),
    );
    load.phase("after");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let to = clock.unix_now() - 1000;
    let traffic = load.stop().await;
    let samples = sampler.stop().await;
    require_traffic(&traffic)?;
    tokio::time::sleep(Duration::from_millis(2500)).await;

    let (logs, claims) = fires::job_rows(&env.db, job).await?;
    let (rows, taken) = acted_as_leader_since(&logs, &claims, &id, term as i64, stop_point);
    report.check(
        "the woken node ran nothing as leader: no log row or claim under its old term after the stop",
        format!(
            "{} log rows, {} claims of {id} under term {term} since the stop{}",
            rows.len(),
            taken.len(),
            rows.first()
                .map(|r| format!(" (first: scheduled {} status {})", r.scheduled_at, r.status))
                .unwrap_or_default()
        ),
        "0 and 0",
        rows.is_empty() && taken.is_empty(),
    );
    let accounting = env.fires(job, from, to, &[]).await?;
    report.check(
        "no fire ran twice (and none was lost: the new leader recovers the pause's fires)",
        accounting.summary(),
        "0 duplicated, 0 missed, 1 claim per fire",
        accounting.exactly_once(),
    );
    report.fires.push(FireRow {
        label: "first steady second → 1 s before the end".into(),
        accounting,
    });
    let others: Vec<_> = traffic.records.iter().filter(|r| !r.faulted).collect();
    let failed = failures(others.iter().copied());
    report.check(
        "no request failed on the other nodes",
        format!("{} requests, failed: {}", others.len(), fmt_failed(&failed)),
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
    report.traffic = summarize(&traffic.records, &traffic.phases, |r| {
        Some(
            if r.faulted {
                "paused node (excluded)"
            } else {
                "other nodes"
            }
            .to_string(),
        )
    });
    let names: Vec<String> = env.cluster.nodes.iter().map(|n| n.id.clone()).collect();
    report.per_node = super::load::per_node(&traffic.records, &names);
    report.notes.push(format!(
        "The stop point is the instant the kernel reported the process stopped (Unix ms \
         {stop_point}); rows count by their start_at, claims by claimed_at. Requests to the \
         paused node until its first system/info answer after SIGCONT are counted apart."
    ));
    Ok(())
}
