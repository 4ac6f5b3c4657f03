//! Scenario 3: Redis restarted with an empty dataset: leadership, sessions
//! and caches recover by themselves, and no node serves a permission older
//! than the last change.

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};

use super::env::{Ctx, Env, EnvOptions, NODES};
use super::leader::Sampler;
use super::load::{Targets, failures, require_traffic, summarize};
use super::report::{ScenarioReport, fmt_failed};
use super::s1_leader_kill::{SAMPLE_EVERY, current_leader};
use super::util::{Clock, ms, redis_command};

/// The three permission codes whose menus the test role switches between.
pub const CODES: [&str; 3] = [
    "system:user:query",
    "system:role:query",
    "system:menu:query",
];

/// Runs the scenario into `report`.
pub async fn run(ctx: &Ctx, report: &mut ScenarioReport) -> Result<()> {
    let s = &ctx.settings;
    let bound = s.lease * 2;
    report.title = "Redis restarted empty under load".into();
    report.injected = format!(
        "the private redis-server killed and started again on its port with an empty dataset \
         (no persistence); a role's menus changed just before and just after; load {} req/s \
         straight to the nodes",
        ctx.rate
    );
    let clock = ctx.clock;
    let env = Env::start(ctx, EnvOptions::default()).await?;
    let api = &ctx.api;
    let admin = env.admin(0).await?;
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
    let role = env.create_role(&admin, "chaos-r3", &ids[..1]).await?;
    let (_, password) = env.create_user(&admin, "chaos-u3", &[role]).await?;
    let user_token = api.login(&env.base(0), "chaos-u3", &password).await?;
    let sampler = Sampler::start(clock, env.cluster.bases(), SAMPLE_EVERY);
    let load = env
        .load(Targets::Direct(env.cluster.bases()), "before")
        .await?;
    tokio::time::sleep(Duration::from_secs(if ctx.short { 2 } else { 5 })).await;

    // Change 1, before the restart: every node must show it.
    let answer = env.set_role_menus(0, &admin, role, &ids[1..2]).await?;
    if answer.status != 200 {
        bail!(
            "changing the role before the restart: {} {}",
            answer.status,
            answer.body
        );
    }
    let before = expect(CODES[1]);
    let converged =
        wait_all_permissions(&env, &user_token, &before, clock, Duration::from_secs(2)).await;
    report.check(
        "a change before the restart reached every node",
        converged.map_or("not within 2 s".into(), |d| {
            format!("{} after the change", ms(d))
        }),
        "≤ 2000 ms",
        converged.is_some(),
    );
    let (_, term_before) = current_leader(&sampler, clock).await?;
    let port = env.redis.port();
    let set = redis_command(port, None, "SET chaos:marker before-restart").await?;
    if set != "+OK" {
        bail!("SET of the marker key answered {set}");
    }

    load.phase("restart");
    let restart_sent = clock.now();
    env.redis
        .restart()
        .await
        .context("restart the private redis-server")?;
    let up = clock.now();
    let marker = redis_command(port, None, "GET chaos:marker").await?;
    report.check(
        "the restarted Redis lost its dataset",
        format!(
            "restart took {}; GET of a key set before answers {marker}",
            ms(up - restart_sent)
        ),
        "$-1 (nil)",
        marker == "$-1",
    );

    // Change 2, after the restart (the admin's session went with the data).
    let admin2 = retry(clock, Duration::from_secs(10), || async {
        api.login(&env.base(1), "admin", super::env::ADMIN_PASSWORD)
            .await
    })
    .await
    .context("the admin could not log in again after the restart")?;
    retry(clock, Duration::from_secs(10), || async {
        let a = env.set_role_menus(1, &admin2, role, &ids[2..3]).await?;
        if a.status == 200 {
            Ok(())
        } else {
            Err(anyhow!("{} {}", a.status, a.body))
        }
    })
    .await
    .context("changing the role after the restart")?;
    let changed = clock.now();
    let last = expect(CODES[2]);

    // Recovery: leadership, sessions and caches, each timed from `up`.
    let deadline = up + Duration::from_secs(15);
    let (mut leader_at, mut sessions_at, mut caches_at) = (None, None, None);
    let mut new_token: Option<String> = None;
    let mut session_detail = String::new();
    while clock.now() < deadline
        && (leader_at.is_none() || sessions_at.is_none() || caches_at.is_none())
    {
        if leader_at.is_none()
            && let Some((node, term)) = sampler.leader_since(up)
            && term > term_before
        {
            leader_at = Some((clock.now() - up, node, term));
        }
        if sessions_at.is_none() {
            let mut old_refused = 0;
            for i in 0..NODES {
                if let Ok(a) = api
                    .get(&env.base(i), "/api/v1/user/info", Some(&user_token))
                    .await
                    && a.status == 401
                {
                    old_refused += 1;
                }
            }
            if new_token.is_none()
                && let Ok(a) = api.try_login(&env.base(2), "chaos-u3", &password).await
                && a.status == 200
            {
                new_token = a.body["data"]["accessToken"].as_str().map(str::to_string);
            }
            let mut new_accepted = 0;
            if let Some(t) = &new_token {
                for i in 0..NODES {
                    if let Ok(a) = api.get(&env.base(i), "/api/v1/user/info", Some(t)).await
                        && a.status == 200
                    {
                        new_accepted += 1;
                    }
                }
            }
            session_detail = format!(
                "old token refused by {old_refused}/{NODES}, new login's token accepted by \
                 {new_accepted}/{NODES}"
            );
            if old_refused == NODES && new_accepted == NODES {
                sessions_at = Some(clock.now() - up);
            }
        }
        if caches_at.is_none()
            && let Some(t) = &new_token
            && all_permissions(&env, t)
                .await
                .iter()
                .all(|p| p.as_ref() == Some(&last))
        {
            caches_at = Some(clock.now() - up);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let within = |d: Option<Duration>| d.is_some_and(|d| d <= bound);
    let leader_time = leader_at.map(|l| l.0);
    report.check(
        "leadership recovered: a leader under a higher term",
        match leader_at {
            Some((d, node, term)) => format!(
                "{} after Redis answered ({} term {term}, was term {term_before})",
                ms(d),
                env.cluster.nodes[node].id
            ),
            None => format!("no leader above term {term_before} within 15 s"),
        },
        format!("≤ {} (2 × lease)", ms(bound)),
        within(leader_time),
    );
    report.check(
        "sessions: tokens of the lost sessions refused on every node, a new login works on every node",
        match sessions_at {
            Some(d) => format!("{} after Redis answered ({session_detail})", ms(d)),
            None => format!("not within 15 s ({session_detail})"),
        },
        format!("≤ {} (2 × lease)", ms(bound)),
        within(sessions_at),
    );
    report.check(
        "caches: the change made after the restart is served by every node",
        match caches_at {
            Some(d) => format!(
                "{} after Redis answered (change made {} after)",
                ms(d),
                ms(changed - up)
            ),
            None => "not within 15 s".into(),
        },
        format!("≤ {} (2 × lease)", ms(bound)),
        within(caches_at),
    );

    // Once recovered, no node may serve an older permission.
    load.phase("recovered");
    let recovered = clock.now();
    let mut stale = 0;
    let mut looks = 0;
    if let Some(t) = &new_token {
        let end = clock.now() + Duration::from_secs(if ctx.short { 3 } else { 6 });
        while clock.now() < end {
            for p in all_permissions(&env, t).await {
                looks += 1;
                if p.as_ref() != Some(&last) {
                    stale += 1;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    report.check(
        "once recovered, no node served a permission older than the last change",
        format!("{stale} of {looks} answers differ from {last:?}"),
        "0 (and at least one answer)",
        looks > 0 && stale == 0,
    );
    let traffic = load.stop().await;
    let _ = sampler.stop().await;
    require_traffic(&traffic)?;
    let lost_session = |r: &super::load::Record| {
        r.outcome == super::load::Outcome::Status(401)
            && r.token_issued.is_some_and(|t| t < restart_sent)
    };
    let after: Vec<_> = traffic
        .records
        .iter()
        .filter(|r| r.sent >= recovered && !lost_session(r))
        .collect();
    let failed = failures(after.iter().copied());
    report.check(
        "after recovery no request failed (besides 401s for tokens of lost sessions)",
        format!("{} requests, failed: {}", after.len(), fmt_failed(&failed)),
        "0 failed",
        !after.is_empty() && failed.is_empty(),
    );
    report.traffic = summarize(&traffic.records, &traffic.phases, |r| {
        Some(if lost_session(r) {
            "token of a lost session (401 expected)".to_string()
        } else {
            "nodes".to_string()
        })
    });
    let names: Vec<String> = env.cluster.nodes.iter().map(|n| n.id.clone()).collect();
    report.per_node = super::load::per_node(&traffic.records, &names);
    report.notes.push(format!(
        "Times are measured from the moment the new redis-server answered PING. The role's \
         menus went {} → {} before the restart and → {} after it; the check reads \
         `permissions` of `/api/v1/user/info` of a user holding the role. The load logged in \
         again {} times (its sessions were lost with the dataset).",
        CODES[0], CODES[1], CODES[2], traffic.relogins
    ));
    Ok(())
}

fn expect(code: &str) -> BTreeSet<String> {
    BTreeSet::from([code.to_string()])
}

/// The user's permissions on every node (`None` where the request failed).
pub async fn all_permissions(env: &Env, token: &str) -> Vec<Option<BTreeSet<String>>> {
    let mut out = Vec::new();
    for i in 0..NODES {
        out.push(env.ctx.api.permissions(&env.base(i), token).await.ok());
    }
    out
}

/// Waits until every node shows exactly `expected`; returns how long it took.
pub async fn wait_all_permissions(
    env: &Env,
    token: &str,
    expected: &BTreeSet<String>,
    clock: Clock,
    within: Duration,
) -> Option<Duration> {
    let start = clock.now();
    loop {
        if all_permissions(env, token)
            .await
            .iter()
            .all(|p| p.as_ref() == Some(expected))
        {
            return Some(clock.now() - start);
        }
        if clock.now() - start > within {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Retries `f` every 100 ms until it succeeds or `within` passes.
pub async fn retry<T, F, Fut>(clock: Clock, within: Duration, mut f: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    let end = clock.now() + within;
    loop {
        match f().await {
            Ok(v) => return Ok(v),
            Err(e) if clock.now() > end => return Err(e),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}
