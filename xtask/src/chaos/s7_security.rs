//! Scenario 7: security under load: revoked tokens, removed permissions and
//! disabled users are refused on every node within the convergence bound;
//! the login rate limit holds across nodes; no secret in any log line.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Result, anyhow, bail};
use reqwest::Method;
use serde_json::json;

use super::api::Api;
use super::env::{Ctx, Env, EnvOptions, NODES};
use super::load::{Targets, failures, require_traffic, summarize};
use super::report::{ScenarioReport, fmt_failed};
use super::secrets::scan_logs;
use super::util::{Clock, ms, random_string, show_path};

/// The convergence bound of a revocation (DESIGN.md).
pub const CONVERGENCE: Duration = Duration::from_millis(200);
/// Failed logins allowed per user and address in the window
/// (`MAX_ATTEMPTS` in crates/lina-server/src/api/auth.rs).
pub const LOGIN_LIMIT: usize = 10;
/// Wrong-password logins sent.
const LOGIN_TRIES: usize = 15;
/// Logins whose token is asked first of another node.
const FRESH_LOGINS: usize = 30;
/// Protected by `system:user:query`.
const USER_LIST: &str = "/api/v1/user?pageNum=1&pageSize=1";

/// Runs the scenario into `report`.
pub async fn run(ctx: &Ctx, report: &mut ScenarioReport) -> Result<()> {
    report.title = "security under load".into();
    let redis_password = format!("Redis-{}", random_string(24));
    ctx.secrets.add("Redis password", &redis_password);
    ctx.secrets.add("JWT secret", &ctx.jwt_secret);
    report.injected = format!(
        "logout, forced logout, a role losing its menu, a user disabled — each through one node \
         while every node is polled; {LOGIN_TRIES} wrong-password logins spread over the three \
         nodes; nodes log at level `{}` with a Redis password set; load {} req/s",
        ctx.settings.log_level, ctx.rate
    );
    let clock = ctx.clock;
    let api = &ctx.api;
    let mut env = Env::start(
        ctx,
        EnvOptions {
            redis_password: Some(redis_password),
            ..EnvOptions::default()
        },
    )
    .await?;
    let admin = env.admin(0).await?;
    let menus = env.menus_by_perm(&admin).await?;
    let user_query = *menus
        .get("system:user:query")
        .ok_or_else(|| anyhow!("no menu with permission system:user:query"))?;
    let role = env.create_role(&admin, "chaos-sec", &[user_query]).await?;
    let (_, pw_a) = env.create_user(&admin, "chaos-sec-a", &[role]).await?;
    let (id_b, pw_b) = env.create_user(&admin, "chaos-sec-b", &[role]).await?;
    let (_, pw_rl) = env.create_user(&admin, "chaos-sec-rl", &[role]).await?;
    let bases = env.cluster.bases();
    let load = env.load(Targets::Direct(bases.clone()), "security").await?;
    tokio::time::sleep(Duration::from_secs(1)).await;

    let mut fresh = Fresh::default();

    // 1. Logout on one node.
    let token = api.login(&bases[0], "chaos-sec-a", &pw_a).await?;
    fresh
        .wait(api, &env, 0, "/api/v1/user/info", &token, clock)
        .await?;
    api.ok(
        Method::POST,
        &bases[1],
        "/api/v1/auth/logout",
        Some(&token),
        None,
    )
    .await?;
    let done = clock.now();
    let conv = converge(api, &bases, "/api/v1/user/info", &token, 401, clock, done).await;
    convergence_check(
        report,
        &env,
        "a logged-out token (logout on chaos-2) refused with 401",
        &conv,
    );

    // 2. Forced logout by the admin.
    let token = api.login(&bases[2], "chaos-sec-a", &pw_a).await?;
    fresh
        .wait(api, &env, 2, "/api/v1/user/info", &token, clock)
        .await?;
    let online = api
        .ok(
            Method::GET,
            &bases[0],
            "/api/v1/monitor/online?username=chaos-sec-a",
            Some(&admin),
            None,
        )
        .await?;
    let token_id = online["items"]
        .as_array()
        .and_then(|items| {
            items
                .iter()
                .max_by_key(|i| i["loginTime"].as_i64().unwrap_or(0))
                .and_then(|i| i["tokenId"].as_str())
        })
        .ok_or_else(|| anyhow!("no online session of chaos-sec-a: {online}"))?
        .to_string();
    api.ok(
        Method::DELETE,
        &bases[0],
        &format!("/api/v1/monitor/online/{token_id}"),
        Some(&admin),
        None,
    )
    .await?;
    let done = clock.now();
    let conv = converge(api, &bases, "/api/v1/user/info", &token, 401, clock, done).await;
    convergence_check(
        report,
        &env,
        "a force-logged-out token (admin on chaos-1) refused with 401",
        &conv,
    );

    // 3. A permission removed from the role.
    let token = api.login(&bases[1], "chaos-sec-a", &pw_a).await?;
    fresh.wait(api, &env, 1, USER_LIST, &token, clock).await?;
    let answer = env.set_role_menus(2, &admin, role, &[]).await?;
    if answer.status != 200 {
        bail!(
            "removing the role's menu: {} {}",
            answer.status,
            answer.body
        );
    }
    let done = clock.now();
    let conv = converge(api, &bases, USER_LIST, &token, 403, clock, done).await;
    convergence_check(
        report,
        &env,
        "a permission removed from the role (on chaos-3) refused with 403",
        &conv,
    );

    // 4. A user disabled.
    let token = api.login(&bases[0], "chaos-sec-b", &pw_b).await?;
    fresh
        .wait(api, &env, 0, "/api/v1/user/info", &token, clock)
        .await?;
    api.ok(
        Method::PUT,
        &bases[1],
        &format!("/api/v1/user/{id_b}/status"),
        Some(&admin),
        Some(&json!({"status": 0})),
    )
    .await?;
    let done = clock.now();
    let conv = converge(api, &bases, "/api/v1/user/info", &token, 401, clock, done).await;
    convergence_check(
        report,
        &env,
        "a disabled user's token (disabled on chaos-2) refused with 401",
        &conv,
    );
    let mut logins = Vec::new();
    for base in &bases {
        let a = api.try_login(base, "chaos-sec-b", &pw_b).await?;
        logins.push(format!("{} {}", a.status, a.error_code()));
    }
    report.check(
        "the disabled user cannot log in on any node",
        logins.join(", "),
        "401 on every node",
        logins.iter().all(|l| l.starts_with("401")),
    );

    // 5. More logins of a user whose sessions every node has cached: each
    // new token asked first of another node than the one that issued it.
    let (_, pw_c) = env.create_user(&admin, "chaos-sec-c", &[role]).await?;
    let token = api.login(&bases[0], "chaos-sec-c", &pw_c).await?;
    fresh
        .wait(api, &env, 0, "/api/v1/user/info", &token, clock)
        .await?;
    for k in 0..FRESH_LOGINS {
        let at = k % NODES;
        let token = api.login(&bases[at], "chaos-sec-c", &pw_c).await?;
        fresh
            .wait_from(
                api,
                &env,
                at,
                (at + 1) % NODES,
                "/api/v1/user/info",
                &token,
                clock,
            )
            .await?;
    }
    report.check(
        "a new token is accepted by every node as soon as its login returns",
        format!(
            "{} logins; {} refusals before acceptance{}; accepted everywhere within {}",
            fresh.logins,
            fresh.refusals.len(),
            if fresh.refusals.is_empty() {
                String::new()
            } else {
                format!(" ({})", fresh.refusals.join("; "))
            },
            ms(fresh.slowest)
        ),
        "0 refusals",
        fresh.refusals.is_empty(),
    );

    // 6. The login rate limit across nodes.
    let mut by_node: BTreeMap<String, Vec<u16>> = BTreeMap::new();
    let mut sequence = Vec::new();
    for k in 0..LOGIN_TRIES {
        let i = k % NODES;
        let a = api
            .try_login(&bases[i], "chaos-sec-rl", &format!("wrong-{k}"))
            .await?;
        by_node
            .entry(env.cluster.nodes[i].id.clone())
            .or_default()
            .push(a.status);
        sequence.push(a.status);
    }
    let right = api.try_login(&bases[0], "chaos-sec-rl", &pw_rl).await?;
    let allowed = sequence.iter().take_while(|s| **s == 401).count();
    let limited = sequence[allowed..].iter().all(|s| *s == 429);
    report.check(
        format!("the login rate limit ({LOGIN_LIMIT} attempts) applies to the total over all nodes"),
        format!(
            "{allowed} answered 401 before the first 429, all later ones 429: {limited}; by node {by_node:?}; \
             then the right password: {} {}",
            right.status,
            right.error_code()
        ),
        format!("{LOGIN_LIMIT} × 401, then only 429 (also for the right password)"),
        allowed == LOGIN_LIMIT && limited && right.status == 429,
    );

    let traffic = load.stop().await;
    require_traffic(&traffic)?;
    let failed = failures(&traffic.records);
    report.check(
        "the admin's load was not disturbed",
        format!(
            "{} requests, failed: {}",
            traffic.records.len(),
            fmt_failed(&failed)
        ),
        "0 failed",
        failed.is_empty(),
    );
    report.traffic = summarize(&traffic.records, &traffic.phases, |_| Some("nodes".into()));
    let names: Vec<String> = env.cluster.nodes.iter().map(|n| n.id.clone()).collect();
    report.per_node = super::load::per_node(&traffic.records, &names);

    // 7. No secret in any log line (the nodes are stopped first, so every
    // line is on disk).
    env.cluster.stop_all(Duration::from_secs(15));
    let secrets = ctx.secrets.all();
    let scan = scan_logs(&ctx.run_dirs, &secrets)?;
    let mut kinds: BTreeMap<&str, usize> = BTreeMap::new();
    for (label, _) in &secrets {
        let kind = if label.contains("Token") {
            "tokens and signatures"
        } else {
            label.as_str()
        };
        *kinds.entry(kind).or_default() += 1;
    }
    report.check(
        "no secret in any node log line",
        format!(
            "{} findings in {} lines of {} files ({} secrets: {})",
            scan.findings.len(),
            scan.lines,
            scan.files,
            scan.secrets,
            kinds
                .iter()
                .map(|(k, n)| format!("{k} ×{n}"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        "0 findings (in a non-empty log)",
        scan.findings.is_empty() && scan.lines > 0,
    );
    for f in scan.findings.iter().take(10) {
        report.notes.push(format!(
            "secret found: {} in {} line {}",
            f.what,
            show_path(&f.file),
            f.line
        ));
    }
    report.notes.push(format!(
        "Convergence is measured from the moment the revoking request returned 200 to the first \
         answer of each node with the expected refusal (every node polled in a loop); each node \
         must then keep refusing for 5 more polls. The scan covers every `*.log` of this run's \
         scenarios, {} (this scenario's nodes log at level `{}`), looking for the JWT secret, the admin's and the test users' \
         passwords, the Redis password, and every access and refresh token issued in this run \
         and their signatures.",
        ctx.run_dirs
            .iter()
            .map(|d| format!("`{}`", show_path(d)))
            .collect::<Vec<_>>()
            .join(", "),
        ctx.settings.log_level
    ));
    Ok(())
}

/// Fresh tokens: how long every node took to accept them, and every
/// refusal seen before.
#[derive(Default)]
struct Fresh {
    logins: usize,
    refusals: Vec<String>,
    slowest: Duration,
}

impl Fresh {
    /// Right after a login on node `at`: asks every node for `path` with
    /// `token` until it answers 200 (3 s at most), counting other answers.
    async fn wait(
        &mut self,
        api: &Api,
        env: &Env,
        at: usize,
        path: &str,
        token: &str,
        clock: Clock,
    ) -> Result<()> {
        self.wait_from(api, env, at, 0, path, token, clock).await
    }

    /// [`Fresh::wait`], asking node `first` first, then the others in order.
    #[allow(clippy::too_many_arguments)]
    async fn wait_from(
        &mut self,
        api: &Api,
        env: &Env,
        at: usize,
        first: usize,
        path: &str,
        token: &str,
        clock: Clock,
    ) -> Result<()> {
        self.logins += 1;
        let start = clock.now();
        let n = env.cluster.nodes.len();
        for node in (0..n).map(|k| &env.cluster.nodes[(first + k) % n]) {
            loop {
                let a = api.get(&node.base, path, Some(token)).await?;
                if a.status == 200 {
                    break;
                }
                self.refusals.push(format!(
                    "{} {} on {} {} after the login on {}",
                    a.status,
                    a.error_code(),
                    node.id,
                    ms(clock.now() - start),
                    env.cluster.nodes[at].id
                ));
                if clock.now() - start > Duration::from_secs(3) {
                    bail!(
                        "{path} on {} never accepted a new token: {}",
                        node.id,
                        a.body
                    );
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
        self.slowest = self.slowest.max(clock.now() - start);
        Ok(())
    }
}

/// Polls `path` with `token` on every node until each answers `expect`;
/// per node the time from `from` to that answer, or why not.
async fn converge(
    api: &Api,
    bases: &[String],
    path: &str,
    token: &str,
    expect: u16,
    clock: Clock,
    from: Duration,
) -> Vec<Result<Duration, String>> {
    let mut tasks = tokio::task::JoinSet::new();
    for (i, base) in bases.iter().enumerate() {
        let (api, base, path, token) = (
            api.clone(),
            base.clone(),
            path.to_string(),
            token.to_string(),
        );
        tasks.spawn(async move {
            let outcome = async {
                let mut last;
                loop {
                    match api.get(&base, &path, Some(&token)).await {
                        Ok(a) if a.status == expect => break,
                        Ok(a) => last = format!("{} {}", a.status, a.error_code()),
                        Err(e) => last = format!("{e:#}"),
                    }
                    if clock.now() - from > Duration::from_secs(3) {
                        return Err(format!("still {last} after 3 s"));
                    }
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
                let took = clock.now().saturating_sub(from);
                for _ in 0..5 {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    match api.get(&base, &path, Some(&token)).await {
                        Ok(a) if a.status == expect => {}
                        Ok(a) => return Err(format!("refused, then answered {} again", a.status)),
                        Err(e) => return Err(format!("refused, then {e:#}")),
                    }
                }
                Ok(took)
            }
            .await;
            (i, outcome)
        });
    }
    let mut out = vec![Err("not polled".to_string()); bases.len()];
    while let Some(Ok((i, outcome))) = tasks.join_next().await {
        out[i] = outcome;
    }
    out
}

fn convergence_check(
    report: &mut ScenarioReport,
    env: &Env,
    what: &str,
    conv: &[Result<Duration, String>],
) {
    let ok = conv.iter().all(|c| matches!(c, Ok(d) if *d <= CONVERGENCE));
    let measured = conv
        .iter()
        .enumerate()
        .map(|(i, c)| {
            format!(
                "{} {}",
                env.cluster.nodes[i].id,
                match c {
                    Ok(d) => ms(*d),
                    Err(e) => e.clone(),
                }
            )
        })
        .collect::<Vec<_>>()
        .join(", ");
    report.check(
        format!("{what} on every node"),
        measured,
        format!("≤ {} on each node", ms(CONVERGENCE)),
        ok,
    );
}
