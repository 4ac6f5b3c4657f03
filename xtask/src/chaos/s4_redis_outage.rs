//! Scenario 4: Redis unreachable (SIGSTOP) for a while: reads that need no
//! coordination keep working, the rest answers 503 with the envelope in
//! bounded time, master_only jobs do not run without a leader, and
//! everything recovers without a restart.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Result, anyhow};
use reqwest::Method;
use serde_json::json;
use tokio::task::JoinSet;

use super::api::Answer;
use super::env::{ADMIN, ADMIN_PASSWORD, Ctx, Env, EnvOptions, NODES};
use super::fires::{self, runs_started_between};
use super::leader::Sampler;
use super::load::{Outcome, REQUEST_TIMEOUT, Targets, failures, require_traffic, summarize};
use super::report::{FireRow, ScenarioReport, fmt_failed, fmt_ms};
use super::s1_leader_kill::SAMPLE_EVERY;
use super::s3_redis_restart::{CODES, all_permissions};
use super::util::{Clock, ms};

/// Public reads that need no coordination.
const PUBLIC: [&str; 3] = [
    "/health",
    "/api/v1/i18n/runtime/messages?lang=en-US",
    "/api/v1/config/public/frontend",
];

/// One probe during the outage.
struct Probe {
    what: String,
    sent: Duration,
    answer: Result<Answer>,
}

/// Sends a probe without waiting for it (open loop: a hung answer does not
/// delay the next probe); its answer lands in `out`.
fn probe(
    pending: &mut JoinSet<()>,
    out: &Arc<Mutex<Vec<Probe>>>,
    clock: Clock,
    what: String,
    request: impl Future<Output = Result<Answer>> + Send + 'static,
) {
    let out = out.clone();
    let sent = clock.now();
    pending.spawn(async move {
        let answer = request.await;
        out.lock()
            .expect("probes")
            .push(Probe { what, sent, answer });
    });
}

/// Runs the scenario into `report`.
pub async fn run(ctx: &Ctx, report: &mut ScenarioReport) -> Result<()> {
    let s = &ctx.settings;
    let outage = Duration::from_secs(if ctx.short { 6 } else { 20 });
    let slow = s.redis_timeout * 2 + s.health_timeout + Duration::from_secs(1);
    let refuse_after = s.max_stale + s.revision_poll + s.redis_timeout;
    report.title = "Redis unreachable under load".into();
    report.injected = format!(
        "SIGSTOP of the private redis-server for {} (connections stay open, nothing answers), \
         then SIGCONT; cache maxStale {}, revisionPoll {}, Redis timeouts {}, lease {}; load {} \
         req/s straight to the nodes",
        ms(outage),
        ms(s.max_stale),
        ms(s.revision_poll),
        ms(s.redis_timeout),
        ms(s.lease),
        ctx.rate
    );
    let clock = ctx.clock;
    let api = &ctx.api;
    let env = Env::start(ctx, EnvOptions::default()).await?;
    let admin = env.admin(0).await?;
    let job = env.create_job(&admin).await?;
    let first_run = env.wait_for_runs(job).await?;
    let menus = env.menus_by_perm(&admin).await?;
    let ids: Vec<i64> = CODES
        .iter()
        .map(|c| {
            menus
                .get(*c)
                .copied()
                .ok_or_else(|| anyhow!("no menu with permission {c}"))
        })
        .collect::<Result<_>>()?;
    // Role B is written after maxStale in the outage; role A at the very
    // start of a second, short outage (a write in flight when Redis stops
    // answering) with no other permission write after it; a user of each
    // shows what every node serves afterwards.
    let role_a = env.create_role(&admin, "chaos-r4a", &ids[..1]).await?;
    let (_, password_a) = env.create_user(&admin, "chaos-u4a", &[role_a]).await?;
    let role_b = env.create_role(&admin, "chaos-r4b", &ids[..1]).await?;
    let (_, password_b) = env.create_user(&admin, "chaos-u4b", &[role_b]).await?;
    let user_a = api.login(&env.base(0), "chaos-u4a", &password_a).await?;
    let user_b = api.login(&env.base(0), "chaos-u4b", &password_b).await?;
    let pids: Vec<_> = env.cluster.nodes.iter().map(|n| n.pid()).collect();
    let sampler = Sampler::start(clock, env.cluster.bases(), SAMPLE_EVERY);
    let load = env
        .load(Targets::Direct(env.cluster.bases()), "before")
        .await?;
    let from = first_run.max(clock.unix_now()) + 1000;
    tokio::time::sleep(Duration::from_secs(if ctx.short { 2 } else { 5 })).await;

    load.phase("outage");
    let paused = clock.now();
    env.redis.pause().await?;
    let probes: Arc<Mutex<Vec<Probe>>> = Arc::default();
    let mut pending = JoinSet::new();
    let write = |i: usize, role: i64, menu: i64| {
        let (api, base, token) = (api.clone(), env.base(i), admin.clone());
        async move {
            api.call(
                Method::PUT,
                &base,
                &format!("/api/v1/role/{role}"),
                Some(&token),
                Some(&json!({ "menuIds": [menu] })),
            )
            .await
        }
    };
    let mut late_writes_done = false;
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    while clock.now() < paused + outage {
        tokio::select! {
            _ = tick.tick() => {}
            _ = tokio::time::sleep((paused + outage).saturating_sub(clock.now())) => break,
        }
        for i in 0..NODES {
            for path in PUBLIC {
                let (api, base) = (api.clone(), env.base(i));
                probe(
                    &mut pending,
                    &probes,
                    clock,
                    format!("public {}", path.split('?').next().unwrap_or(path)),
                    async move { api.get(&base, path, None).await },
                );
            }
            let (a, base, token) = (api.clone(), env.base(i), admin.clone());
            probe(
                &mut pending,
                &probes,
                clock,
                "protected /api/v1/user/info".into(),
                async move { a.get(&base, "/api/v1/user/info", Some(&token)).await },
            );
        }
        if !late_writes_done && clock.now() > paused + refuse_after + Duration::from_millis(200) {
            late_writes_done = true;
            probe(
                &mut pending,
                &probes,
                clock,
                "write role B, after maxStale".into(),
                write(1, role_b, ids[2]),
            );
            let (a, base) = (api.clone(), env.base(2));
            probe(
                &mut pending,
                &probes,
                clock,
                "login, after maxStale".into(),
                async move {
                    a.call(
                    Method::POST,
                    &base,
                    "/api/v1/auth/login",
                    None,
                    Some(&json!({"username": ADMIN, "password": ADMIN_PASSWORD, "clientType": "web"})),
                )
                .await
                },
            );
        }
    }

    load.phase("recovery");
    let resume_sent = clock.now();
    env.redis.resume().await?;
    let resumed = clock.now();
    // Recovery: every node ready, serving the admin, a leader, and each
    // test user's permissions as the database holds its role's menus.
    let deadline = resumed + Duration::from_secs(20);
    let mut recovered_at = None;
    let mut truth = Vec::new();
    let mut views = Vec::new();
    while clock.now() < deadline {
        let mut ok = true;
        for i in 0..NODES {
            ok &= matches!(api.get(&env.base(i), "/ready", None).await, Ok(a) if a.status == 200);
            ok &= matches!(api.get(&env.base(i), "/api/v1/user/info", Some(&admin)).await, Ok(a) if a.status == 200);
        }
        ok &= sampler.leader_since(resumed).is_some();
        if ok {
            truth.clear();
            views.clear();
            for (role, token) in [(role_a, &user_a), (role_b, &user_b)] {
                let codes: Option<BTreeSet<String>> =
                    env.role_menus(0, &admin, role).await.ok().map(|menus| {
                        CODES
                            .iter()
                            .zip(&ids)
                            .filter(|(_, id)| menus.contains(id))
                            .map(|(c, _)| c.to_string())
                            .collect()
                    });
                views.push(all_permissions(&env, token).await);
                truth.push(codes);
            }
            let consistent = truth
                .iter()
                .zip(&views)
                .all(|(t, v)| t.is_some() && v.iter().all(|p| p.as_ref() == t.as_ref()));
            if consistent {
                recovered_at = Some(clock.now() - resumed);
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    load.phase("after");
    tokio::time::sleep(Duration::from_secs(2)).await;

    // Outage 2: a write in flight when Redis stops answering, then nothing
    // else changes permissions.
    load.phase("outage 2 (a write in flight)");
    let paused2 = clock.now();
    env.redis.pause().await?;
    let in_flight = write(0, role_a, ids[1]).await;
    tokio::time::sleep((paused2 + s.max_stale + s.redis_timeout).saturating_sub(clock.now())).await;
    env.redis.resume().await?;
    let resumed2 = clock.now();
    load.phase("after outage 2");
    let deadline2 = resumed2 + s.lease * 2 + s.max_stale;
    let mut settled = None;
    let mut truth_a = None;
    let mut views_a = Vec::new();
    while clock.now() < deadline2 {
        truth_a = env.role_menus(0, &admin, role_a).await.ok().map(|menus| {
            CODES
                .iter()
                .zip(&ids)
                .filter(|(_, id)| menus.contains(id))
                .map(|(c, _)| c.to_string())
                .collect::<BTreeSet<String>>()
        });
        views_a = all_permissions(&env, &user_a).await;
        if truth_a.is_some() && views_a.iter().all(|v| v.as_ref() == truth_a.as_ref()) {
            settled = Some(clock.now() - resumed2);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let to = clock.unix_now() - 1000;
    let traffic = load.stop().await;
    let samples = sampler.stop().await;
    require_traffic(&traffic)?;
    let _ = tokio::time::timeout(REQUEST_TIMEOUT + Duration::from_secs(1), async {
        while pending.join_next().await.is_some() {}
    })
    .await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let probes = std::mem::take(&mut *probes.lock().expect("probes"));

    // Reads that need no coordination.
    let public: Vec<&Probe> = probes
        .iter()
        .filter(|p| p.what.starts_with("public"))
        .collect();
    let public_ok = public
        .iter()
        .filter(|p| matches!(&p.answer, Ok(a) if a.status == 200))
        .count();
    let load_health: Vec<_> = traffic
        .records
        .iter()
        .filter(|r| traffic.phases[r.phase] == "outage" && r.path == 0)
        .collect();
    let load_health_failed = failures(load_health.iter().copied());
    report.check(
        "reads that need no coordination kept working (/health, i18n messages, public frontend config)",
        format!(
            "{public_ok} of {} probes answered 200; load /health: {} sent, failed {}",
            public.len(),
            load_health.len(),
            fmt_failed(&load_health_failed)
        ),
        "all 200",
        !public.is_empty() && public_ok == public.len() && load_health_failed.is_empty(),
    );
    // Checks and writes that need coordination.
    let mut refused = 0;
    let mut required = 0;
    let mut wrong: BTreeMap<String, usize> = BTreeMap::new();
    for p in probes.iter().filter(|p| !p.what.starts_with("public")) {
        let late = p.sent >= paused + refuse_after;
        match &p.answer {
            Ok(a) if a.is_unavailable_envelope() => {
                refused += 1;
                required += usize::from(late);
            }
            Ok(a) if a.status == 200 && !late && !p.what.starts_with("login") => {}
            Ok(a) => {
                required += usize::from(late);
                *wrong
                    .entry(format!("{}: {} {}", p.what, a.status, a.error_code()))
                    .or_default() += 1;
            }
            Err(e) => {
                required += usize::from(late);
                let kind = if format!("{e:#}").contains("timed out") {
                    "no answer within 30 s"
                } else {
                    "transport error"
                };
                *wrong.entry(format!("{}: {kind}", p.what)).or_default() += 1;
            }
        }
    }
    let wrong: Vec<String> = wrong
        .into_iter()
        .map(|(what, n)| format!("{what} ×{n}"))
        .collect();
    report.check(
        format!(
            "coordinated checks and writes answer 503 with the envelope (from maxStale + poll + timeout = {} on)",
            ms(refuse_after)
        ),
        format!(
            "{refused} answered 503 SERVICE_UNAVAILABLE ({required} sent after {}); other answers: {}",
            ms(refuse_after),
            if wrong.is_empty() { "none".to_string() } else { wrong.join("; ") }
        ),
        "503 envelope (200 only before maxStale)",
        wrong.is_empty() && required > 0,
    );
    // Answers during the outage: never 500, never a transport error, never slow.
    let outage_load: Vec<_> = traffic
        .records
        .iter()
        .filter(|r| traffic.phases[r.phase] == "outage")
        .collect();
    let bad_load: Vec<_> = outage_load
        .iter()
        .filter(|r| !matches!(r.outcome, Outcome::Status(200) | Outcome::Status(503)))
        .collect();
    let slowest_load = outage_load
        .iter()
        .map(|r| r.latency)
        .max()
        .unwrap_or_default();
    let slowest_probe = probes
        .iter()
        .filter_map(|p| p.answer.as_ref().ok().map(|a| a.took))
        .max()
        .unwrap_or_default();
    report.check(
        "during the outage only 200 or 503: no 500, no transport error",
        format!(
            "load: {} requests, {} other answers ({}); probes: {} failed",
            outage_load.len(),
            bad_load.len(),
            fmt_failed(&failures(bad_load.iter().copied().copied())),
            probes.iter().filter(|p| p.answer.is_err()).count()
        ),
        "0 and 0",
        bad_load.is_empty() && probes.iter().all(|p| p.answer.is_ok()),
    );
    let slowest = slowest_load.max(slowest_probe);
    report.check(
        "no request longer than the timeouts + margin",
        format!(
            "slowest: load {}, probes {}",
            fmt_ms(slowest_load),
            fmt_ms(slowest_probe)
        ),
        format!("≤ {} (2 × Redis timeout + health timeout + 1 s)", ms(slow)),
        slowest <= slow,
    );
    // No leader and no master_only run once every lease had expired.
    let leaderless_from = paused + s.lease;
    let claims_in_outage: Vec<_> = samples
        .iter()
        .filter(|x| x.term.is_some() && x.sent >= leaderless_from && x.received < resume_sent)
        .collect();
    let (logs, claims) = fires::job_rows(&env.db, job).await?;
    let runs = runs_started_between(
        &logs,
        clock.unix_ms(leaderless_from),
        clock.unix_ms(resume_sent),
    );
    let fire_claims = claims
        .iter()
        .filter(|c| {
            c.claimed_at >= clock.unix_ms(leaderless_from)
                && c.claimed_at < clock.unix_ms(resume_sent)
        })
        .count();
    report.check(
        "no leader and no master_only run while every lease had expired",
        format!(
            "from +{} to SIGCONT: {} leadership claims, {} runs started, {} fires claimed",
            ms(s.lease),
            claims_in_outage.len(),
            runs.len(),
            fire_claims
        ),
        "0, 0, 0",
        claims_in_outage.is_empty() && runs.is_empty() && fire_claims == 0,
    );
    let accounting = env.fires(job, from, to, &[]).await?;
    report.check(
        "no fire ran twice; fires of the outage recovered once afterwards (fire_once)",
        accounting.summary(),
        "0 duplicated, 0 missed, 1 claim per fire",
        accounting.exactly_once(),
    );
    report.fires.push(FireRow {
        label: "first steady second → 1 s before the end".into(),
        accounting,
    });
    // Recovery.
    let recovery_bound = s.lease * 2 + s.max_stale;
    report.check(
        "recovered without a restart: ready, serving, a leader, permissions as in the database",
        match recovered_at {
            Some(d) => format!("{} after SIGCONT", ms(d)),
            None => format!(
                "not within 20 s: database says {:?}, nodes serve {:?}",
                truth, views
            ),
        },
        format!("≤ {} (2 × lease + maxStale)", ms(recovery_bound)),
        recovered_at.is_some_and(|d| d <= recovery_bound),
    );
    let in_flight_text = match &in_flight {
        Ok(a) => format!("{} {} in {}", a.status, a.error_code(), fmt_ms(a.took)),
        Err(e) => format!("{e:#}"),
    };
    report.check(
        "a write in flight when Redis stopped answering: afterwards every node serves what the database holds",
        match settled {
            Some(d) => format!(
                "the write answered {in_flight_text}; nodes agree with the database {} after SIGCONT",
                ms(d)
            ),
            None => format!(
                "the write answered {in_flight_text}; the database holds {:?} for the role, the nodes serve {:?}",
                truth_a.as_ref().map(|t| t.iter().cloned().collect::<Vec<_>>()),
                views_a
                    .iter()
                    .map(|v| v.as_ref().map(|v| v.iter().cloned().collect::<Vec<_>>()))
                    .collect::<Vec<_>>()
            ),
        },
        format!(
            "agree within {} (2 × lease + maxStale)",
            ms(s.lease * 2 + s.max_stale)
        ),
        settled.is_some(),
    );
    let same = env
        .cluster
        .nodes
        .iter()
        .zip(&pids)
        .all(|(n, before)| n.pid() == *before && n.pid().is_some());
    let mut alive = true;
    for n in &env.cluster.nodes {
        alive &= n
            .pid()
            .is_some_and(|p| super::cluster::proc_state(p).is_some_and(|s| s != 'Z'));
    }
    report.check(
        "no node restarted or exited",
        format!("same processes: {same}, all alive: {alive}"),
        "true, true",
        same && alive,
    );
    let after: Vec<_> = traffic
        .records
        .iter()
        .filter(|r| traffic.phases[r.phase] == "after")
        .collect();
    let failed_after = failures(after.iter().copied());
    report.check(
        "after recovery no request failed",
        format!(
            "{} requests, failed: {}",
            after.len(),
            fmt_failed(&failed_after)
        ),
        "0 failed",
        !after.is_empty() && failed_after.is_empty(),
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
    let write_notes: Vec<String> = probes
        .iter()
        .filter(|p| p.what.starts_with("write") || p.what.starts_with("login"))
        .map(|p| match &p.answer {
            Ok(a) => format!(
                "{} (+{}): {} {} in {}",
                p.what,
                ms(p.sent - paused),
                a.status,
                a.error_code(),
                fmt_ms(a.took)
            ),
            Err(e) => format!("{}: {e:#}", p.what),
        })
        .collect();
    report.notes.push(format!(
        "Probes every 200 ms on every node during the outage; writes and logins: {}. The role's \
         menus in the database after recovery: {:?}.",
        write_notes.join("; "),
        truth
    ));
    report.notes.push(
        "\"Not run without a leader\" is checked by start time: fires scheduled during the outage \
         are run once after it by the new leader (misfire policy fire_once, DESIGN §5), so their \
         rows carry a scheduled_at inside the outage and a start_at after SIGCONT."
            .into(),
    );
    Ok(())
}
