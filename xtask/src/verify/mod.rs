//! `cargo xtask verify`: the scaling checklist against a running cluster
//! (one started by `cargo xtask run-cluster`, or any other). Each check
//! prints ✓ or ✗, its time and a detail line; any ✗ makes the command fail.
//!
//! 1. login through the load balancer;
//! 2. the nodes: `--node` URLs, or `cluster.members[].address` of
//!    `/api/v1/system/info` through the load balancer;
//! 3. `/health` and 4. `/ready` on the load balancer and every node;
//! 5. the token from step 1 works on every node;
//! 6. one leader, named by every node, one term;
//! 7. `/api/v1/menus/all` and `/api/v1/user/info` answer the same on every node;
//! 8. `GET /api/v1/plugins/dynamic` answers the same on every node;
//! 9. a master_only `@every 1s` job runs once per fire, the other nodes
//!    record `skipped_not_primary` (the job is deleted afterwards);
//! 10. a role's menus changed on one node change `/api/v1/user/info` of its
//!     holder on every other node within `--convergence-bound` (the role
//!     and user are deleted afterwards).
//!
//! A route that answers 404 (the plugin and job APIs while they are being
//! built) fails its check with that said; nothing is skipped.

mod jobs;
mod views;

use std::future::Future;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Result, bail};
use clap::Args;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::cluster::parse_duration;
use crate::lina_api::{Api, Reply, normalize_url};

/// Options of `cargo xtask verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The load balancer in front of the nodes (login and the job and
    /// permission changes go through it).
    #[arg(long, value_name = "URL", required_unless_present = "nodes")]
    url: Option<String>,
    /// A node to check (repeat for each); default: the members listed by
    /// `/api/v1/system/info` through --url.
    #[arg(long = "node", value_name = "URL")]
    nodes: Vec<String>,
    /// The administrator to log in as.
    #[arg(long, default_value = "admin")]
    username: String,
    /// Its password.
    #[arg(long, default_value = "admin123")]
    password: String,
    /// How long the master_only job runs before its log is read.
    #[arg(long, value_name = "DURATION", default_value = "8s", value_parser = parse_duration)]
    job_wait: Duration,
    /// A permission change must show on every node within this.
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = parse_duration)]
    convergence_bound: Duration,
    /// Timeout of each HTTP request (above nginx's 3 s read timeout of
    /// run-cluster, so the load balancer can retry a stalled node first).
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    timeout: Duration,
}

/// Runs `cargo xtask verify`.
pub fn run(args: VerifyArgs) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let failed = runtime.block_on(async {
        let mut ctx = Ctx::new(&args)?;
        let started = Instant::now();
        let interrupted = tokio::select! {
            _ = ctx.checklist() => false,
            _ = tokio::signal::ctrl_c() => true,
        };
        if interrupted {
            println!("interrupted");
        }
        ctx.clean_up().await;
        let failed: Vec<&str> = ctx
            .outcomes
            .iter()
            .filter(|o| !o.ok)
            .map(|o| o.name.as_str())
            .collect();
        let total = ctx.outcomes.len();
        println!();
        if failed.is_empty() && !interrupted {
            println!(
                "verify: all {total} checks passed in {:.1}s",
                started.elapsed().as_secs_f64()
            );
        } else {
            println!(
                "verify: {} of {total} checks passed{}; failed: {} ({:.1}s)",
                total - failed.len(),
                if interrupted {
                    " before the interruption"
                } else {
                    ""
                },
                if failed.is_empty() {
                    "none".to_string()
                } else {
                    failed.join(", ")
                },
                started.elapsed().as_secs_f64()
            );
        }
        Ok::<_, anyhow::Error>(!failed.is_empty() || interrupted)
    })?;
    if failed {
        bail!("the cluster failed verification");
    }
    Ok(())
}

/// One finished check.
struct Outcome {
    name: String,
    ok: bool,
}

/// A node under verification.
struct NodeRef {
    api: Api,
    /// From its `/health`.
    id: Option<String>,
}

impl NodeRef {
    fn label(&self) -> String {
        self.id
            .clone()
            .unwrap_or_else(|| self.api.base().to_string())
    }
}

/// What the checks share.
struct Ctx<'a> {
    args: &'a VerifyArgs,
    /// Login, job and permission changes go through this one.
    entry: Api,
    /// Whether `entry` is a load balancer (`--url`).
    lb: Option<Api>,
    nodes: Vec<NodeRef>,
    token: Option<String>,
    outcomes: Vec<Outcome>,
    /// Things created by the checks, deleted at the end (also on Ctrl-C).
    created: Vec<Created>,
}

#[derive(Debug, Clone, PartialEq)]
enum Created {
    Job(i64),
    /// The log rows of a job (the API keeps them when the job is deleted).
    JobLogs(i64),
    User(i64),
    Role(i64),
}

type Check = Result<String, String>;

impl<'a> Ctx<'a> {
    fn new(args: &'a VerifyArgs) -> Result<Ctx<'a>> {
        let base = args
            .url
            .clone()
            .or_else(|| args.nodes.first().cloned())
            .expect("clap requires --url or --node");
        let entry = Api::new(&base, args.timeout)?;
        let nodes = args
            .nodes
            .iter()
            .map(|url| NodeRef {
                api: entry.with_base(url),
                id: None,
            })
            .collect();
        Ok(Ctx {
            args,
            lb: args.url.as_ref().map(|_| entry.clone()),
            entry,
            nodes,
            token: None,
            outcomes: Vec::new(),
            created: Vec::new(),
        })
    }

    /// Prints a check's line and detail, and records it.
    fn record(&mut self, name: &str, (result, took): (Check, Duration)) {
        let ok = result.is_ok();
        let (mark, detail) = match result {
            Ok(detail) => ("✓", detail),
            Err(detail) => ("✗", detail),
        };
        println!("{mark} {name}  ({})", fmt_took(took));
        for line in detail.lines() {
            println!("    {line}");
        }
        self.outcomes.push(Outcome {
            name: name.to_string(),
            ok,
        });
    }

    async fn checklist(&mut self) {
        match &self.lb {
            Some(lb) => println!("verify: load balancer {}", lb.base()),
            None => println!(
                "verify: no load balancer (--url): logging in through {}",
                self.entry.base()
            ),
        }
        let (login, took) = timed(self.login()).await;
        let name = match &self.lb {
            Some(_) => "login through the load balancer",
            None => "login",
        };
        let detail = login
            .as_ref()
            .map(|_| format!("as {}: access token received", self.args.username))
            .map_err(Clone::clone);
        self.record(name, (detail, took));
        self.token = login.ok();

        if self.nodes.is_empty() {
            let (discovered, took) = timed(self.discover()).await;
            let count = discovered.as_ref().map_or(0, Vec::len);
            let detail = discovered
                .as_ref()
                .map(|urls| format!("{} (cluster.members[].address)", urls.join(", ")))
                .map_err(Clone::clone);
            self.record(&format!("{count} node(s) discovered"), (detail, took));
            if let Ok(urls) = discovered {
                self.nodes = urls
                    .iter()
                    .map(|u| NodeRef {
                        api: self.entry.with_base(u),
                        id: None,
                    })
                    .collect();
            }
        } else {
            println!(
                "verify: {} node(s) given with --node: {}",
                self.nodes.len(),
                self.nodes
                    .iter()
                    .map(|n| n.api.base())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }

        let everywhere = match self.lb {
            Some(_) => "on the load balancer and every node",
            None => "on every node",
        };
        let r = timed(self.health()).await;
        self.record(&format!("/health {everywhere}"), r);
        let r = timed(self.ready()).await;
        self.record(&format!("/ready {everywhere}"), r);
        let r = timed(self.token_everywhere()).await;
        self.record("the login token works on every node", r);
        let r = timed(self.leader()).await;
        self.record("one leader and one term, named by every node", r);
        let r = timed(self.menus_and_info()).await;
        self.record("menus/all and user/info answer the same on every node", r);
        let r = timed(self.plugins()).await;
        self.record("plugin state identical on every node", r);
        let r = timed(self.master_only_job()).await;
        self.record("a master_only job runs once per fire", r);
        let r = timed(self.permission_change()).await;
        self.record("a permission change reaches every node", r);
    }

    fn need_token(&self) -> Result<&str, String> {
        self.token
            .as_deref()
            .ok_or_else(|| "not run: the login failed".to_string())
    }

    fn need_nodes(&self) -> Result<(), String> {
        if self.nodes.is_empty() {
            Err("not run: no nodes (give --node URLs or fix the discovery)".into())
        } else {
            Ok(())
        }
    }

    async fn login(&self) -> Result<String, String> {
        self.entry
            .login(&self.args.username, &self.args.password)
            .await
            .map_err(|e| format!("{e:#}"))
    }

    /// `cluster.members[].address` through the entry.
    async fn discover(&self) -> Result<Vec<String>, String> {
        let token = self.need_token()?;
        let reply = self
            .entry
            .get("/api/v1/system/info", Some(token))
            .await
            .map_err(|e| format!("{e:#}"))?;
        if !reply.is_ok() {
            return Err(format!("GET /api/v1/system/info: {}", reply.brief()));
        }
        let mut urls: Vec<String> = reply.data()["cluster"]["members"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|m| m["address"].as_str())
            .map(normalize_url)
            .collect();
        urls.sort();
        urls.dedup();
        if urls.is_empty() {
            return Err(format!(
                "cluster.members lists no address: {}",
                reply.data()["cluster"]
            ));
        }
        Ok(urls)
    }

    /// `GET path` on the load balancer (if any) and every node, without a token.
    async fn public_everywhere(&self, path: &str) -> Vec<(String, Result<Reply, String>)> {
        let mut out = Vec::new();
        if let Some(lb) = &self.lb {
            out.push((
                "load balancer".to_string(),
                lb.get(path, None).await.map_err(|e| format!("{e:#}")),
            ));
        }
        for node in &self.nodes {
            out.push((
                node.label(),
                node.api.get(path, None).await.map_err(|e| format!("{e:#}")),
            ));
        }
        out
    }

    async fn health(&mut self) -> Check {
        self.need_nodes()?;
        let mut ids = Vec::new();
        for node in &mut self.nodes {
            if let Ok(reply) = node.api.get("/health", None).await
                && let Some(id) = reply.body["nodeId"].as_str()
            {
                node.id = Some(id.to_string());
                ids.push(id.to_string());
            }
        }
        let answers = self.public_everywhere("/health").await;
        let mut problems = Vec::new();
        let mut seen = Vec::new();
        for (who, answer) in &answers {
            match answer {
                Ok(r) if r.status == StatusCode::OK && r.body["status"] == "ok" => {
                    let id = r.body["nodeId"].as_str().unwrap_or("?");
                    seen.push(if who == "load balancer" {
                        format!("load balancer → {id}")
                    } else {
                        format!("{who} ok")
                    });
                }
                Ok(r) => problems.push(format!("{who}: {}", r.brief())),
                Err(e) => problems.push(format!("{who}: {e}")),
            }
        }
        let mut unique = ids.clone();
        unique.sort();
        unique.dedup();
        if unique.len() != ids.len() {
            problems.push(format!(
                "two URLs answer as the same node: {}",
                ids.join(", ")
            ));
        }
        if problems.is_empty() {
            Ok(seen.join("; "))
        } else {
            Err(problems.join("\n"))
        }
    }

    async fn ready(&self) -> Check {
        self.need_nodes()?;
        let answers = self.public_everywhere("/ready").await;
        let mut problems = Vec::new();
        let mut good = Vec::new();
        for (who, answer) in &answers {
            match answer {
                Ok(r) if r.status == StatusCode::OK => good.push(who.clone()),
                Ok(r) => problems.push(format!("{who}: {} {}", r.status, r.body["checks"])),
                Err(e) => problems.push(format!("{who}: {e}")),
            }
        }
        if problems.is_empty() {
            Ok(format!(
                "ready (database and redis ok): {}",
                good.join(", ")
            ))
        } else {
            Err(problems.join("\n"))
        }
    }

    /// `GET path` with the token on every node.
    async fn on_every_node(&self, path: &str) -> Result<Vec<(String, Reply)>, String> {
        self.need_nodes()?;
        let token = self.need_token()?;
        let mut out = Vec::new();
        let mut problems = Vec::new();
        for node in &self.nodes {
            match node.api.get(path, Some(token)).await {
                Ok(reply) if reply.is_ok() => out.push((node.label(), reply)),
                Ok(reply) => {
                    problems.push(format!("{}: GET {path}: {}", node.label(), reply.brief()))
                }
                Err(e) => problems.push(format!("{}: {e:#}", node.label())),
            }
        }
        if problems.is_empty() {
            Ok(out)
        } else {
            Err(problems.join("\n"))
        }
    }

    async fn token_everywhere(&self) -> Check {
        let replies = self.on_every_node("/api/v1/user/info").await?;
        let wrong: Vec<String> = replies
            .iter()
            .filter(|(_, r)| r.data()["username"] != self.args.username.as_str())
            .map(|(n, r)| format!("{n} says the token is {}", r.data()["username"]))
            .collect();
        if !wrong.is_empty() {
            return Err(wrong.join("\n"));
        }
        Ok(format!(
            "GET /api/v1/user/info as {} accepted by {}",
            self.args.username,
            replies
                .iter()
                .map(|(n, _)| n.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))
    }

    async fn leader(&self) -> Check {
        let replies = self.on_every_node("/api/v1/system/info").await?;
        let infos: Vec<(String, Value)> = replies
            .into_iter()
            .map(|(n, r)| (n, r.data().clone()))
            .collect();
        let ids: Vec<String> = self.nodes.iter().filter_map(|n| n.id.clone()).collect();
        views::leader_agreement(&infos, &ids)
    }

    async fn menus_and_info(&self) -> Check {
        let mut details = Vec::new();
        for path in ["/api/v1/menus/all", "/api/v1/user/info"] {
            let replies = self.on_every_node(path).await?;
            let data: Vec<(String, Value)> = replies
                .into_iter()
                .map(|(n, r)| (n, r.data().clone()))
                .collect();
            let differ = views::differing(&data);
            if !differ.is_empty() {
                return Err(format!(
                    "GET {path}: {} answer(s) differently from {}",
                    differ.join(", "),
                    data[0].0
                ));
            }
            let first = &data[0].1;
            details.push(match path {
                "/api/v1/menus/all" => format!(
                    "menus/all: {} top-level routes",
                    first["list"].as_array().map_or(0, Vec::len)
                ),
                _ => format!(
                    "user/info: {} with {} permission code(s), {} menu(s)",
                    first["username"].as_str().unwrap_or("?"),
                    first["permissions"].as_array().map_or(0, Vec::len),
                    first["menus"].as_array().map_or(0, Vec::len)
                ),
            });
        }
        Ok(format!(
            "{}; identical on {} node(s)",
            details.join("; "),
            self.nodes.len()
        ))
    }

    async fn plugins(&self) -> Check {
        self.need_nodes()?;
        const PATH: &str = "/api/v1/plugins/dynamic";
        let mut lists = Vec::new();
        let mut missing = Vec::new();
        let mut problems = Vec::new();
        for node in &self.nodes {
            match node.api.get(PATH, None).await {
                Ok(r) if r.status == StatusCode::NOT_FOUND => missing.push(node.label()),
                Ok(r) if r.is_ok() => match views::plugin_list(r.data()) {
                    Ok(list) => lists.push((node.label(), Value::Array(list))),
                    Err(e) => problems.push(format!("{}: {e}", node.label())),
                },
                Ok(r) => problems.push(format!("{}: {}", node.label(), r.brief())),
                Err(e) => problems.push(format!("{}: {e:#}", node.label())),
            }
        }
        if !missing.is_empty() {
            problems.insert(
                0,
                format!(
                    "GET {PATH} answers 404 on {}: the route does not exist on this server yet \
                     (the plugin runtime API is still being built)",
                    missing.join(", ")
                ),
            );
        }
        if !problems.is_empty() {
            return Err(problems.join("\n"));
        }
        let differ = views::differing(&lists);
        if !differ.is_empty() {
            return Err(format!(
                "{} see other plugin states than {}: {}",
                differ.join(", "),
                lists[0].0,
                lists
                    .iter()
                    .map(|(n, l)| format!("{n} {l}"))
                    .collect::<Vec<_>>()
                    .join("; ")
            ));
        }
        let count = lists[0].1.as_array().map_or(0, Vec::len);
        Ok(format!(
            "{count} plugin(s), the same id/installed/enabled/version/generation/runtimeState \
             on {} node(s)",
            lists.len()
        ))
    }

    async fn call(
        &self,
        api: &Api,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Reply, String> {
        let token = self.need_token()?;
        api.call(method.clone(), path, Some(token), body)
            .await
            .map_err(|e| format!("{e:#}"))
    }

    async fn master_only_job(&mut self) -> Check {
        self.need_nodes()?;
        let suffix = &lina_coord_api::random_hex128()[..8];
        let body = json!({
            "name": format!("xtask-verify-{suffix}"),
            "description": "created by cargo xtask verify; deleted when it ends",
            "handlerRef": "host:wait",
            "params": {"ms": 50},
            "cronExpr": "@every 1s",
            "scope": "master_only",
            "concurrency": "singleton",
            "status": "enabled",
        });
        let created_ms = unix_ms();
        let entry = self.entry.clone();
        let reply = self
            .call(&entry, Method::POST, "/api/v1/job", Some(&body))
            .await?;
        if reply.status == StatusCode::NOT_FOUND {
            return Err(format!(
                "POST /api/v1/job answers {}: the jobs API does not exist on this server yet \
                 (it is still being built)",
                reply.brief()
            ));
        }
        if !reply.is_ok() {
            return Err(format!("POST /api/v1/job: {}", reply.brief()));
        }
        let Some(job) = reply.data()["id"].as_i64() else {
            return Err(format!(
                "POST /api/v1/job answered no data.id: {}",
                reply.body
            ));
        };
        // Deleted in reverse order: the job first, then its log rows.
        self.created.push(Created::JobLogs(job));
        self.created.push(Created::Job(job));
        println!(
            "… master_only job {job} created ({}, handler host:wait); its log is read in {:.0}s",
            body["cronExpr"],
            self.args.job_wait.as_secs_f64()
        );
        tokio::time::sleep(self.args.job_wait).await;
        let read_ms = unix_ms();
        let logs = self
            .call(
                &entry,
                Method::GET,
                &format!("/api/v1/job/log?jobId={job}&pageNum=1&pageSize=500"),
                None,
            )
            .await;
        let mut deleted = self.delete(Created::Job(job)).await;
        if deleted.is_ok() {
            // Let a fire in flight write its row, then remove them all.
            tokio::time::sleep(Duration::from_millis(1200)).await;
            deleted = self.delete(Created::JobLogs(job)).await;
        }
        let logs = logs?;
        if !logs.is_ok() {
            return Err(format!("GET /api/v1/job/log?jobId={job}: {}", logs.brief()));
        }
        let rows = logs.data()["list"].as_array().cloned().unwrap_or_default();
        let ids: Vec<String> = self.nodes.iter().filter_map(|n| n.id.clone()).collect();
        let verdict = jobs::judge(&rows, &ids, created_ms, read_ms, 1000);
        let mut detail = verdict.summary();
        if let Err(e) = &deleted {
            detail.push_str(&format!("\n{e}"));
        }
        if verdict.ok() && deleted.is_ok() {
            Ok(detail)
        } else {
            Err(format!("{detail}\n{}", verdict.problems.join("\n"))
                .trim_end()
                .to_string())
        }
    }

    async fn permission_change(&mut self) -> Check {
        self.need_nodes()?;
        let token = self.need_token()?.to_string();
        let writer = self.nodes[0].api.clone();
        let writer_label = self.nodes[0].label();
        let menus = writer
            .get("/api/v1/menus/all", Some(&token))
            .await
            .map_err(|e| format!("{e:#}"))?;
        if !menus.is_ok() {
            return Err(format!("GET /api/v1/menus/all: {}", menus.brief()));
        }
        let Some((page, code)) = views::page_with_permission(&menus.data()["list"], "/system/role")
        else {
            return Err("no page with a permission code in /api/v1/menus/all".into());
        };
        let suffix = &lina_coord_api::random_hex128()[..8];
        let role = self
            .create(
                &writer,
                "/api/v1/role",
                json!({"name": format!("xtask verify {suffix}"), "key": format!("xtask-verify-{suffix}"),
                       "remark": "created by cargo xtask verify; deleted when it ends", "menuIds": []}),
            )
            .await?;
        self.created.push(Created::Role(role));
        let username = format!("xv_{suffix}");
        let password = lina_coord_api::random_hex128()[..16].to_string();
        let user = self
            .create(
                &writer,
                "/api/v1/user",
                json!({"username": username, "password": password, "nickname": "xtask verify",
                       "remark": "created by cargo xtask verify; deleted when it ends",
                       "roleIds": [role]}),
            )
            .await?;
        self.created.push(Created::User(user));
        let result = self
            .observe_permission(
                &writer,
                &writer_label,
                role,
                page,
                &code,
                &username,
                &password,
            )
            .await;
        let user_deleted = self.delete(Created::User(user)).await;
        let role_deleted = self.delete(Created::Role(role)).await;
        let cleanup: Vec<String> = [user_deleted, role_deleted]
            .into_iter()
            .filter_map(Result::err)
            .collect();
        match (result, cleanup.is_empty()) {
            (Ok(detail), true) => Ok(detail),
            (Ok(detail), false) => Err(format!("{detail}\n{}", cleanup.join("\n"))),
            (Err(e), _) => Err([e]
                .into_iter()
                .chain(cleanup)
                .collect::<Vec<_>>()
                .join("\n")),
        }
    }

    /// Logs in as the new user, checks it lacks `code` everywhere, grants
    /// `page` to its role on the writer and times when every other node shows it.
    #[allow(clippy::too_many_arguments)]
    async fn observe_permission(
        &self,
        writer: &Api,
        writer_label: &str,
        role: i64,
        page: i64,
        code: &str,
        username: &str,
        password: &str,
    ) -> Check {
        let user_token = writer
            .login(username, password)
            .await
            .map_err(|e| format!("{e:#}"))?;
        for node in &self.nodes {
            let codes = codes_of(&node.api, &user_token).await?;
            if codes.iter().any(|c| c == code) {
                return Err(format!(
                    "{} shows {code} for the new user before the change: {codes:?}",
                    node.label()
                ));
            }
        }
        let admin = self.need_token()?;
        let reply = writer
            .call(
                Method::PUT,
                &format!("/api/v1/role/{role}"),
                Some(admin),
                Some(&json!({"menuIds": [page]})),
            )
            .await
            .map_err(|e| format!("{e:#}"))?;
        if !reply.is_ok() {
            return Err(format!("PUT /api/v1/role/{role}: {}", reply.brief()));
        }
        let changed = Instant::now();
        let give_up = (self.args.convergence_bound * 5).max(Duration::from_secs(5));
        let observers: Vec<&NodeRef> = if self.nodes.len() > 1 {
            self.nodes.iter().skip(1).collect()
        } else {
            self.nodes.iter().collect()
        };
        let mut reached = Vec::new();
        let mut late = Vec::new();
        for node in observers {
            loop {
                let codes = codes_of(&node.api, &user_token).await?;
                if codes.iter().any(|c| c == code) {
                    let took = changed.elapsed();
                    reached.push(format!("{} in {}", node.label(), fmt_took(took)));
                    if took > self.args.convergence_bound {
                        late.push(node.label());
                    }
                    break;
                }
                if changed.elapsed() > give_up {
                    return Err(format!(
                        "{} still shows {codes:?} for the user {} after the role got {code} on \
                         {writer_label}",
                        node.label(),
                        fmt_took(changed.elapsed())
                    ));
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
        let detail = format!(
            "role {role} got page {page} ({code}) on {writer_label}; its holder's \
             /api/v1/user/info showed it on {} (bound {})",
            reached.join(", "),
            fmt_took(self.args.convergence_bound)
        );
        if late.is_empty() {
            Ok(detail)
        } else {
            Err(format!(
                "{detail}\nlater than the bound: {}",
                late.join(", ")
            ))
        }
    }

    /// `POST path` and the new id.
    async fn create(&self, api: &Api, path: &str, body: Value) -> Result<i64, String> {
        let reply = self.call(api, Method::POST, path, Some(&body)).await?;
        if !reply.is_ok() {
            return Err(format!("POST {path}: {}", reply.brief()));
        }
        reply.data()["id"]
            .as_i64()
            .ok_or_else(|| format!("POST {path} answered no data.id: {}", reply.body))
    }

    /// Deletes what a check created; forgets it once deleted.
    async fn delete(&mut self, what: Created) -> Result<(), String> {
        let entry = self.entry.clone();
        let result = match &what {
            Created::Job(id) => {
                let query = self
                    .call(
                        &entry,
                        Method::DELETE,
                        &format!("/api/v1/job?ids[]={id}"),
                        None,
                    )
                    .await;
                match query {
                    Ok(r) if r.is_ok() => Ok(()),
                    _ => {
                        // DELETE may carry its ids as a JSON body instead.
                        let body = json!({"ids": [id]});
                        match self
                            .call(&entry, Method::DELETE, "/api/v1/job", Some(&body))
                            .await
                        {
                            Ok(r) if r.is_ok() => Ok(()),
                            Ok(r) => Err(format!(
                                "could not delete job {id} ({}): delete it by hand",
                                r.brief()
                            )),
                            Err(e) => Err(format!(
                                "could not delete job {id} ({e}): delete it by hand"
                            )),
                        }
                    }
                }
            }
            Created::JobLogs(job) => {
                let path = format!("/api/v1/job/log?jobId={job}&pageNum=1&pageSize=500");
                match self.call(&entry, Method::GET, &path, None).await {
                    Ok(r) if r.is_ok() => {
                        let ids: Vec<i64> = r.data()["list"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .filter_map(|row| row["id"].as_i64())
                            .collect();
                        if ids.is_empty() {
                            Ok(())
                        } else {
                            let body = json!({ "ids": ids });
                            match self
                                .call(&entry, Method::DELETE, "/api/v1/job/log", Some(&body))
                                .await
                            {
                                Ok(r) if r.is_ok() => Ok(()),
                                Ok(r) => Err(format!(
                                    "could not delete the log rows of job {job} ({}): delete \
                                     them by hand",
                                    r.brief()
                                )),
                                Err(e) => Err(format!(
                                    "could not delete the log rows of job {job} ({e}): delete \
                                     them by hand"
                                )),
                            }
                        }
                    }
                    Ok(r) => Err(format!(
                        "could not list the log rows of job {job} ({}): delete them by hand",
                        r.brief()
                    )),
                    Err(e) => Err(format!(
                        "could not list the log rows of job {job} ({e}): delete them by hand"
                    )),
                }
            }
            Created::User(id) | Created::Role(id) => {
                let (path, kind) = match what {
                    Created::User(_) => (format!("/api/v1/user/{id}"), "user"),
                    _ => (format!("/api/v1/role/{id}"), "role"),
                };
                match self.call(&entry, Method::DELETE, &path, None).await {
                    Ok(r) if r.is_ok() => Ok(()),
                    Ok(r) => Err(format!(
                        "could not delete {kind} {id} ({}): delete it by hand",
                        r.brief()
                    )),
                    Err(e) => Err(format!(
                        "could not delete {kind} {id} ({e}): delete it by hand"
                    )),
                }
            }
        };
        if result.is_ok() {
            self.created.retain(|c| *c != what);
        }
        result
    }

    /// Deletes whatever an interrupted or failed check left behind.
    async fn clean_up(&mut self) {
        // Users before roles, as the checks create them the other way round.
        let mut left = self.created.clone();
        left.reverse();
        for what in left {
            match self.delete(what.clone()).await {
                Ok(()) => println!("cleanup: deleted {what:?}"),
                Err(e) => println!("cleanup: {e}"),
            }
        }
    }
}

async fn codes_of(api: &Api, token: &str) -> Result<Vec<String>, String> {
    let reply = api
        .get("/api/v1/user/info", Some(token))
        .await
        .map_err(|e| format!("{e:#}"))?;
    if !reply.is_ok() {
        return Err(format!(
            "{}: GET /api/v1/user/info: {}",
            api.base(),
            reply.brief()
        ));
    }
    Ok(views::permission_codes(reply.data()))
}

/// Awaits `f` and measures it.
async fn timed<T>(f: impl Future<Output = T>) -> (T, Duration) {
    let started = Instant::now();
    let out = f.await;
    (out, started.elapsed())
}

fn unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

/// `12 ms`, `1.25 s`.
fn fmt_took(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        format!("{} ms", d.as_millis())
    } else {
        format!("{:.2} s", d.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        args: VerifyArgs,
    }

    #[test]
    fn verify_needs_a_url_or_nodes() {
        assert!(Cli::try_parse_from(["verify"]).is_err());
        let cli = Cli::try_parse_from(["verify", "--url", "http://127.0.0.1:9120"]).unwrap();
        assert_eq!(cli.args.url.as_deref(), Some("http://127.0.0.1:9120"));
        assert!(cli.args.nodes.is_empty());
        assert_eq!(cli.args.username, "admin");
        assert_eq!(cli.args.password, "admin123");
        assert_eq!(cli.args.job_wait, Duration::from_secs(8));
        let cli = Cli::try_parse_from([
            "verify",
            "--node",
            "http://127.0.0.1:9121",
            "--node",
            "127.0.0.1:9122",
            "--convergence-bound",
            "200ms",
        ])
        .unwrap();
        assert_eq!(cli.args.nodes.len(), 2);
        assert_eq!(cli.args.convergence_bound, Duration::from_millis(200));
        assert!(Cli::try_parse_from(["verify", "--url", "x", "--job-wait", "8"]).is_err());
    }

    #[test]
    fn times_read_well() {
        assert_eq!(fmt_took(Duration::from_millis(12)), "12 ms");
        assert_eq!(fmt_took(Duration::from_millis(1250)), "1.25 s");
    }
}
