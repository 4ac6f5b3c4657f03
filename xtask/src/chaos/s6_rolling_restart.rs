//! Scenario 6: rolling restart of every node under load through a load
//! balancer: zero failed requests, one leader at any instant.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;

use super::cluster::START_TIMEOUT;
use super::env::{Ctx, Env, EnvOptions, NODES};
use super::lb::{Nginx, Rotation, find_nginx};
use super::leader::{Sampler, check_leadership};
use super::load::{Targets, failures, require_traffic, summarize};
use super::report::{FireRow, ScenarioReport, fmt_failed};
use super::s1_leader_kill::{SAMPLE_EVERY, current_leader};
use super::util::ms;

/// Which load balancer to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LbChoice {
    /// nginx when installed, else the built-in one.
    Auto,
    /// A private nginx (fails when not installed).
    Nginx,
    /// The load generator's built-in balancer.
    Builtin,
}

/// Runs the scenario into `report`.
pub async fn run(ctx: &Ctx, lb: LbChoice, report: &mut ScenarioReport) -> Result<()> {
    let s = &ctx.settings;
    let nginx_binary =
        match lb {
            LbChoice::Builtin => None,
            LbChoice::Auto => find_nginx(),
            LbChoice::Nginx => Some(find_nginx().ok_or_else(|| {
                anyhow::anyhow!("--lb nginx: no nginx binary in PATH or /usr/sbin")
            })?),
        };
    report.title = "rolling restart of every node through a load balancer".into();
    let clock = ctx.clock;
    let mut env = Env::start(ctx, EnvOptions::default()).await?;
    let admin = env.admin(0).await?;
    let job = env.create_job(&admin).await?;
    let first_run = env.wait_for_runs(job).await?;
    let rotation = Arc::new(Rotation::new(NODES));
    let nginx = match &nginx_binary {
        Some(binary) => Some(
            Nginx::start(
                binary,
                &ctx.dir.join("nginx"),
                env.cluster.nodes.iter().map(|n| n.port).collect(),
            )
            .await?,
        ),
        None => None,
    };
    let (targets, balancer) = match &nginx {
        Some(n) => (
            Targets::Proxy(n.url()),
            format!(
                "a private nginx ({}, `proxy_next_upstream error timeout`, 2 tries, upstreams \
                 marked `down` while out of rotation, reloaded with SIGHUP; a new client \
                 connection per request)",
                nginx_binary
                    .as_ref()
                    .map(|b| b.display().to_string())
                    .unwrap_or_default()
            ),
        ),
        None => (
            Targets::Balanced {
                bases: env.cluster.bases(),
                rotation: rotation.clone(),
            },
            "the built-in balancer of the load generator (round robin over the nodes in \
             rotation, one retry on another node after a transport error)"
                .to_string(),
        ),
    };
    report.injected = format!(
        "each node in turn: out of rotation, SIGTERM, wait for its exit, start again, wait for \
         /ready, back in rotation; shutdown timeout {}; load {} req/s through {balancer}",
        ms(s.shutdown_timeout),
        ctx.rate
    );
    let sampler = Sampler::start(clock, env.cluster.bases(), SAMPLE_EVERY);
    let load = env.load(targets, "steady").await?;
    let from = first_run.max(clock.unix_now()) + 1000;
    tokio::time::sleep(Duration::from_secs(if ctx.short { 2 } else { 5 })).await;

    let mut stops = Vec::new();
    let mut handovers = Vec::new();
    for i in 0..NODES {
        let id = env.cluster.nodes[i].id.clone();
        load.phase(&format!("restart {id}"));
        let (leader, term) = current_leader(&sampler, clock).await?;
        rotation.remove(i);
        if let Some(n) = &nginx {
            n.apply(&rotation).await?;
        }
        // Requests already sent to it finish; no new one goes there.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let term_sent = clock.now();
        let (status, took) = env
            .cluster
            .terminate(i, s.shutdown_timeout + Duration::from_secs(5))
            .await?;
        stops.push((id.clone(), status, took));
        if leader == i {
            let new = sampler
                .wait_new_leader(
                    clock,
                    term_sent,
                    term,
                    Some(i),
                    term_sent + Duration::from_secs(15),
                )
                .await;
            handovers.push((id.clone(), new.map(|x| (x.received - term_sent, x.node))));
        }
        env.cluster.spawn(i)?;
        env.cluster.wait_ready(i, START_TIMEOUT).await?;
        rotation.add(i);
        if let Some(n) = &nginx {
            n.apply(&rotation).await?;
        }
        tokio::time::sleep(Duration::from_millis(if ctx.short { 1500 } else { 4000 })).await;
    }
    load.phase("after");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let to = clock.unix_now() - 1000;
    let traffic = load.stop().await;
    let samples = sampler.stop().await;
    require_traffic(&traffic)?;
    drop(nginx);
    tokio::time::sleep(Duration::from_millis(2500)).await;

    let failed = failures(&traffic.records);
    let retried = traffic.records.iter().filter(|r| r.retried).count();
    report.check(
        "zero failed requests through the load balancer",
        format!(
            "{} requests, failed: {}{}",
            traffic.records.len(),
            fmt_failed(&failed),
            if nginx_binary.is_none() {
                format!(" ({retried} retried on another node)")
            } else {
                String::new()
            }
        ),
        "0 failed",
        failed.is_empty(),
    );
    let grace = s.shutdown_timeout + Duration::from_secs(1);
    report.check(
        "every node stopped cleanly on SIGTERM",
        stops
            .iter()
            .map(|(id, status, took)| format!("{id}: {status} in {}", ms(*took)))
            .collect::<Vec<_>>()
            .join("; "),
        format!("exit 0 within {} (shutdown.timeout + 1 s)", ms(grace)),
        stops
            .iter()
            .all(|(_, st, took)| st.success() && *took <= grace),
    );
    let leadership = check_leadership(&samples);
    report.check(
        "never two different nodes leader under the same term",
        format!(
            "{} claims in {} samples; terms {:?}; conflicts {:?}",
            leadership.claims, leadership.samples, leadership.terms, leadership.term_conflicts
        ),
        "no term claimed by two nodes",
        leadership.term_conflicts.is_empty(),
    );
    report.check(
        "at most one node leads at any instant: no claim of an older term sent after a newer leader answered",
        format!(
            "{} such claims; {} of {} sampling rounds had two claimers (requests in flight together, inconclusive alone)",
            leadership.stale_claims.len(),
            leadership.multi_claim_rounds,
            leadership.rounds
        ),
        "0",
        leadership.stale_claims.is_empty(),
    );
    for (id, new) in &handovers {
        report.check(
            format!("a SIGTERMed leader ({id}) hands over by releasing its lease, not by expiry"),
            match new {
                Some((d, node)) => format!(
                    "{} from SIGTERM to {} claiming",
                    ms(*d),
                    env.cluster.nodes[*node].id
                ),
                None => "no new leader within 15 s".into(),
            },
            format!("< {} (lease)", ms(s.lease)),
            new.is_some_and(|(d, _)| d < s.lease),
        );
    }
    let accounting = env.fires(job, from, to, &[]).await?;
    report.check(
        "every master_only fire ran exactly once",
        accounting.summary(),
        "0 missed, 0 duplicated, 1 claim per fire",
        accounting.exactly_once(),
    );
    report.fires.push(FireRow {
        label: "first steady second → 1 s before the end".into(),
        accounting,
    });
    report.traffic = summarize(&traffic.records, &traffic.phases, |_| {
        Some("load balancer".to_string())
    });
    let names: Vec<String> = env.cluster.nodes.iter().map(|n| n.id.clone()).collect();
    report.per_node = super::load::per_node(&traffic.records, &names);
    report.notes.push(format!(
        "Leadership is sampled from every node's /metrics (`lina_leader_term`, computed from \
         the node's lease deadline at the moment of the request) every {} ms. Checked: (a) no \
         term is ever claimed by two nodes; (b) no answer claiming term t was produced by a \
         request sent after an answer claiming a term above t had been read — at that instant \
         the newer leader had provably taken over, so the older claim would be a second leader \
         at the same time. Two claims in one round whose requests were in flight together can \
         both be true in sequence (a handover between them) and are only counted.",
        SAMPLE_EVERY.as_millis()
    ));
    Ok(())
}
