//! The supervisor of a running cluster: its nodes, Redis and nginx, the
//! role polling, the control requests and the orderly shutdown.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use lina_testkit::{Discovery, ServiceSource};
use nix::sys::signal::Signal;
use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixListener;
use tokio::sync::{mpsc, oneshot};

use super::ctl::{self, Request};
use super::files::{self, Layout, NodeSpec, RedisTarget, node_id};
use super::procs;
use super::roles::{Seen, change_message, several_leaders};
use super::services::{self, DbOutcome, PrivateRedis};
use super::{NODE_GRACE, NODE_SHUTDOWN, NODE_START, Options, POLL, POLL_TIMEOUT, Signals, say};
use crate::lina_api::Api;
use crate::process::{ChildGuard, display};

/// The cluster's Redis.
enum Redis {
    /// Started (and restartable) by the supervisor.
    Private(PrivateRedis),
    /// Given with `--redis` or found by lina-testkit: never restarted.
    External { target: RedisTarget, why: String },
}

/// Why a Redis run-cluster did not start is left alone.
fn refusal(what: &str, target: &RedisTarget, why: &str) -> String {
    format!(
        "refusing {what}: the cluster uses {} ({why}), which run-cluster did not start and \
         never restarts, pauses or stops; start run-cluster without --redis / --shared-redis \
         to get a private redis-server for failover experiments",
        target.redacted()
    )
}

/// A pending `ctl restart`: waiting for the node to stop.
struct PendingRestart {
    since: Instant,
    killed: bool,
    reply: oneshot::Sender<Result<String, String>>,
}

/// One node process and what the supervisor knows of it.
struct Node {
    index: usize,
    id: String,
    port: u16,
    url: String,
    child: Option<ChildGuard>,
    spawned_at: Instant,
    paused: bool,
    up: bool,
    seen: Option<Seen>,
    /// Why the supervisor expects it to exit (a ctl command), if it does.
    expected_exit: Option<&'static str>,
    restart: Option<PendingRestart>,
}

impl Node {
    fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(ChildGuard::id)
    }

    fn state(&self) -> &'static str {
        match (&self.child, self.paused, self.up) {
            (None, _, _) => "exited",
            (Some(_), true, _) => "paused",
            (Some(_), false, true) => "running",
            (Some(_), false, false) => "starting",
        }
    }
}

type CtlMessage = (Request, oneshot::Sender<Result<String, String>>);

pub(super) struct Supervisor {
    layout: Layout,
    binary: PathBuf,
    opts: Options,
    nodes: Vec<Node>,
    redis: Redis,
    nginx: Option<ChildGuard>,
    lb_url: Option<String>,
    api: Api,
    token: Option<String>,
    last_login_failure: Option<Instant>,
    login_failure: Option<String>,
    /// The last "several leaders" warning, so it is printed once.
    several_leaders: Option<String>,
    ctl_rx: Option<mpsc::Receiver<CtlMessage>>,
}

impl Supervisor {
    /// Services, files, nodes and nginx, up and answering.
    pub(super) async fn prepare(
        opts: Options,
        layout: Layout,
        binary: PathBuf,
        ports: Vec<u16>,
    ) -> Result<Supervisor> {
        // PostgreSQL and the cluster's database.
        let (admin_url, from) = match &opts.database {
            Some(url) => (url.clone(), "from --database".to_string()),
            None => {
                let found = Discovery::from_env()
                    .postgres()
                    .await
                    .context("find or start PostgreSQL (lina-testkit)")?;
                let from = match found.source {
                    ServiceSource::Env => "from LINA_TEST_DATABASE_URL".into(),
                    ServiceSource::DefaultPort => "on the default port".into(),
                    ServiceSource::Throwaway { started } => format!(
                        "lina-testkit's throwaway server{}; `cargo xtask services stop` stops it",
                        if started { ", started now" } else { "" }
                    ),
                };
                (found.url, from)
            }
        };
        let (database_url, outcome) =
            services::prepare_database(&admin_url, &opts.db_name, opts.fresh).await?;
        say(format_args!(
            "postgres: database {} {} on {} ({from})",
            opts.db_name,
            match outcome {
                DbOutcome::Created => "created",
                DbOutcome::Reused => "reused (--fresh recreates it)",
                DbOutcome::Recreated => "dropped and created again (--fresh)",
            },
            services::redact(&admin_url)
        ));

        // Redis.
        let redis = match (&opts.redis, opts.shared_redis, PrivateRedis::binary()) {
            (Some(url), _, _) => Redis::External {
                target: RedisTarget::parse(url)?,
                why: "given with --redis".into(),
            },
            (None, true, _) | (None, false, None) => {
                if !opts.shared_redis {
                    say("redis: no redis-server binary to start a private one \
                         (apt-get install redis-server); using the Redis lina-testkit finds");
                }
                let found = Discovery::from_env()
                    .redis()
                    .await
                    .context("find Redis (lina-testkit)")?;
                Redis::External {
                    target: RedisTarget::parse(&found.url)?,
                    why: "the shared Redis found by lina-testkit".into(),
                }
            }
            (None, false, Some(binary)) => {
                Redis::Private(PrivateRedis::start(binary, &layout.redis_dir()).await?)
            }
        };
        if let Redis::External { target, .. } = &redis {
            let connect = tokio::net::TcpStream::connect(target.address.as_str());
            match tokio::time::timeout(Duration::from_secs(3), connect).await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => bail!("redis {}: cannot connect: {e}", target.redacted()),
                Err(_) => bail!("redis {}: no connection within 3s", target.redacted()),
            }
        }
        let redis_target = match &redis {
            Redis::Private(private) => {
                say(format_args!(
                    "redis: private redis-server {} (pid {}), log {}; namespace {}",
                    private.url(),
                    private.pid().unwrap_or_default(),
                    private.log().display(),
                    opts.namespace
                ));
                RedisTarget::parse(&private.url())?
            }
            Redis::External { target, why } => {
                say(format_args!(
                    "redis: {} ({why}); namespace {}; ctl restart-redis, pause-redis and resume-redis are refused",
                    target.redacted(),
                    opts.namespace
                ));
                target.clone()
            }
        };

        // Config files.
        let secret = jwt_secret(&layout)?;
        let mut nodes = Vec::new();
        for (i, port) in ports.iter().copied().enumerate() {
            let index = i + 1;
            let yaml = files::node_config_yaml(&NodeSpec {
                index,
                port,
                database_url: &database_url,
                redis: &redis_target,
                namespace: &opts.namespace,
                jwt_secret: &secret,
                lease: opts.lease,
                shutdown: NODE_SHUTDOWN,
            });
            // The same validation the node runs, before anything starts.
            if let Err(e) = lina_config::load_from(Some(&yaml), std::iter::empty()) {
                bail!(
                    "the generated config of {} is invalid:\n{e}",
                    node_id(index)
                );
            }
            procs::write_atomic(&layout.node_config(index), &yaml)?;
            std::fs::create_dir_all(layout.node_dir(index))?;
            nodes.push(Node {
                index,
                id: node_id(index),
                port,
                url: format!("http://127.0.0.1:{port}"),
                child: None,
                spawned_at: Instant::now(),
                paused: false,
                up: false,
                seen: None,
                expected_exit: None,
                restart: None,
            });
        }
        let configs = match nodes.len() {
            1 => layout.node_config(1).display().to_string(),
            n => format!(
                "{} … {}",
                layout.node_config(1).display(),
                layout
                    .node_config(n)
                    .file_name()
                    .unwrap_or_default()
                    .to_string_lossy()
            ),
        };
        say(format_args!(
            "config: {configs} (jwt secret in {})",
            layout.jwt_secret().display()
        ));

        let mut supervisor = Supervisor {
            layout,
            binary,
            opts,
            nodes,
            redis,
            nginx: None,
            lb_url: None,
            api: Api::new("http://127.0.0.1", POLL_TIMEOUT)?,
            token: None,
            last_login_failure: None,
            login_failure: None,
            several_leaders: None,
            ctl_rx: None,
        };
        for i in 0..supervisor.nodes.len() {
            supervisor.spawn_node(i)?;
        }
        supervisor.write_state();
        Ok(supervisor)
    }

    /// Starts node `i` (0-based) with its config; output appended to its log.
    fn spawn_node(&mut self, i: usize) -> Result<()> {
        let node = &mut self.nodes[i];
        let log_path = self.layout.node_log(node.index);
        let mut log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .with_context(|| format!("open {}", log_path.display()))?;
        use std::io::Write as _;
        let _ = writeln!(
            log,
            "==== run-cluster: starting {} at unix {} ====",
            node.id,
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs()
        );
        let mut cmd = procs::isolated(&self.binary, "TERM");
        cmd.arg("serve")
            .arg("--config")
            .arg(self.layout.node_config(node.index))
            .current_dir(self.layout.node_dir(node.index));
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("LINA_") {
                cmd.env_remove(key);
            }
        }
        // Plain text in the log files.
        cmd.env_remove("RUST_LOG")
            .env("NO_COLOR", "1")
            .stdout(log.try_clone()?)
            .stderr(log);
        let child = ChildGuard::spawn(&mut cmd)?;
        node.child = Some(child);
        node.spawned_at = Instant::now();
        node.paused = false;
        node.up = false;
        node.seen = None;
        node.expected_exit = None;
        Ok(())
    }

    /// Writes `state.json`: who runs, for `ctl` messages and for cleaning up
    /// after a supervisor that was killed.
    fn write_state(&self) {
        let mut processes = Vec::new();
        for node in &self.nodes {
            if let Some(pid) = node.pid() {
                processes.push(json!({"name": node.id, "pid": pid, "url": node.url}));
            }
        }
        if let Redis::Private(redis) = &self.redis
            && let Some(pid) = redis.pid()
        {
            processes.push(json!({"name": "redis-server", "pid": pid, "url": redis.url()}));
        }
        if let Some(nginx) = &self.nginx {
            processes.push(json!({"name": "nginx", "pid": nginx.id(), "url": self.lb_url}));
        }
        let state = json!({
            "supervisorPid": std::process::id(),
            "socket": self.layout.socket(),
            "loadBalancer": self.lb_url,
            "processes": processes,
        });
        let text = serde_json::to_string_pretty(&state).unwrap_or_default();
        if let Err(e) = procs::write_atomic(&self.layout.state(), &text) {
            say(format_args!(
                "cannot write {}: {e:#}",
                self.layout.state().display()
            ));
        }
    }

    /// Waits for every node, starts nginx and the control socket, then
    /// watches until a signal.
    pub(super) async fn run(&mut self, signals: &mut Signals) -> Result<()> {
        let reason = tokio::select! {
            started = self.wait_for_nodes() => { started?; None }
            signal = signals.recv() => Some(signal),
        };
        if let Some(signal) = reason {
            say(format_args!("{signal} while starting"));
            return Ok(());
        }
        self.start_nginx().await;
        self.write_state();
        self.start_control()?;
        self.banner();

        let mut ctl_rx = self.ctl_rx.take().expect("control channel started");
        let mut tick = tokio::time::interval(POLL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                signal = signals.recv() => {
                    say(format_args!("{signal}: stopping the cluster"));
                    return Ok(());
                }
                Some((request, reply)) = ctl_rx.recv() => self.handle(request, reply).await,
                _ = tick.tick() => {
                    self.reap();
                    self.progress_restarts();
                    self.poll().await;
                }
            }
        }
    }

    /// Polls until every node answers `/health`; fails if one exits.
    async fn wait_for_nodes(&mut self) -> Result<()> {
        let started = Instant::now();
        loop {
            for node in &mut self.nodes {
                if let Some(child) = node.child.as_mut()
                    && let Some(status) = child.try_wait()?
                {
                    node.child = None;
                    bail!(
                        "{} exited while starting ({}); last lines of {}:\n{}",
                        node.id,
                        procs::describe_exit(status),
                        self.layout.node_log(node.index).display(),
                        procs::log_tail(&self.layout.node_log(node.index), 20)
                    );
                }
            }
            self.poll_health().await;
            if self.nodes.iter().all(|n| n.up) {
                return Ok(());
            }
            if started.elapsed() > NODE_START {
                let waiting: Vec<&str> = self
                    .nodes
                    .iter()
                    .filter(|n| !n.up)
                    .map(|n| n.id.as_str())
                    .collect();
                bail!(
                    "{} did not answer /health within {NODE_START:?}; see their logs in {}",
                    waiting.join(", "),
                    self.layout.dir.display()
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Marks nodes up when their `/health` first answers.
    async fn poll_health(&mut self) {
        let mut tasks = tokio::task::JoinSet::new();
        for (i, node) in self.nodes.iter().enumerate() {
            if node.up || node.paused || node.child.is_none() {
                continue;
            }
            let api = self.api.with_base(&node.url);
            tasks.spawn(async move { (i, api.get("/health", None).await) });
        }
        while let Some(Ok((i, reply))) = tasks.join_next().await {
            if let Ok(reply) = reply
                && reply.status.is_success()
            {
                let node = &mut self.nodes[i];
                node.up = true;
                say(format_args!(
                    "{} is up on {} (pid {}, {:.1}s after its start)",
                    node.id,
                    node.url,
                    node.pid().unwrap_or_default(),
                    node.spawned_at.elapsed().as_secs_f64()
                ));
            }
        }
    }

    /// Roles of the nodes that are up; `/health` of those that are not yet.
    async fn poll(&mut self) {
        self.poll_health().await;
        if self.token.is_none() {
            self.login().await;
        }
        let Some(token) = self.token.clone() else {
            return;
        };
        let mut tasks = tokio::task::JoinSet::new();
        for (i, node) in self.nodes.iter().enumerate() {
            if !node.up || node.paused || node.child.is_none() {
                continue;
            }
            let api = self.api.with_base(&node.url);
            let token = token.clone();
            tasks.spawn(async move { (i, api.get("/api/v1/system/info", Some(&token)).await) });
        }
        let mut unauthorized = false;
        while let Some(Ok((i, reply))) = tasks.join_next().await {
            let now = match reply {
                Ok(reply) if reply.is_ok() => Seen::from_info(reply.data()),
                Ok(reply) if reply.status == reqwest::StatusCode::UNAUTHORIZED => {
                    unauthorized = true;
                    continue;
                }
                Ok(reply) => Seen::Silent(reply.brief()),
                Err(e) => Seen::Silent(short_error(&e)),
            };
            let node = &mut self.nodes[i];
            if let Some(message) = change_message(&node.id, node.seen.as_ref(), &now) {
                say(message);
            }
            node.seen = Some(now);
        }
        if unauthorized {
            // Sessions are gone (e.g. Redis restarted empty): log in again.
            self.token = None;
        }
        let seen: Vec<(&str, &Seen)> = self
            .nodes
            .iter()
            .filter(|n| n.child.is_some() && !n.paused)
            .filter_map(|n| Some((n.id.as_str(), n.seen.as_ref()?)))
            .collect();
        let warning = several_leaders(&seen);
        if let Some(text) = &warning
            && self.several_leaders.as_ref() != Some(text)
        {
            say(format_args!("warning: {text}"));
        }
        self.several_leaders = warning;
    }

    /// Logs in through the load balancer or any node that is up; after a
    /// failure, tries again 5 s later and prints why once.
    async fn login(&mut self) {
        if self
            .last_login_failure
            .is_some_and(|t| t.elapsed() < Duration::from_secs(5))
        {
            return;
        }
        let candidates: Vec<String> = self
            .lb_url
            .iter()
            .cloned()
            .chain(
                self.nodes
                    .iter()
                    .filter(|n| n.up && !n.paused && n.child.is_some())
                    .map(|n| n.url.clone()),
            )
            .collect();
        let mut last_error = None;
        for base in candidates {
            match self
                .api
                .with_base(&base)
                .login(&self.opts.username, &self.opts.password)
                .await
            {
                Ok(token) => {
                    self.token = Some(token);
                    self.last_login_failure = None;
                    if self.login_failure.take().is_some() {
                        say("logged in again: roles are shown");
                    }
                    return;
                }
                Err(e) => last_error = Some(format!("{e:#}")),
            }
        }
        self.last_login_failure = Some(Instant::now());
        if let Some(error) = last_error
            && self.login_failure.as_deref() != Some(error.as_str())
        {
            say(format_args!(
                "cannot log in as {} to watch the roles ({error}); retrying every 5s \
                 (--username / --password set the account)",
                self.opts.username
            ));
            self.login_failure = Some(error);
        }
    }

    /// Notices processes that exited and says how.
    fn reap(&mut self) {
        for node in &mut self.nodes {
            let Some(child) = node.child.as_mut() else {
                continue;
            };
            let Ok(Some(status)) = child.try_wait() else {
                continue;
            };
            node.child = None;
            node.paused = false;
            node.up = false;
            node.seen = None;
            let how = procs::describe_exit(status);
            let ran = node.spawned_at.elapsed().as_secs_f64();
            match node.expected_exit.take() {
                Some(why) => say(format_args!("{} exited ({how}) after {why}", node.id)),
                None => say(format_args!(
                    "{} exited unexpectedly ({how}) after {ran:.1}s; last lines of {}:\n{}\n\
                     (`cargo xtask run-cluster ctl restart {}` starts it again)",
                    node.id,
                    self.layout.node_log(node.index).display(),
                    procs::log_tail(&self.layout.node_log(node.index), 10),
                    node.id
                )),
            }
        }
        if let Redis::Private(redis) = &mut self.redis
            && let Some(how) = redis.reap()
        {
            say(format_args!(
                "redis-server exited ({how}); `ctl restart-redis` starts an empty one; log {}:\n{}",
                redis.log().display(),
                procs::log_tail(&redis.log(), 5)
            ));
        }
        if let Some(nginx) = self.nginx.as_mut()
            && let Ok(Some(status)) = nginx.try_wait()
        {
            say(format_args!(
                "nginx exited ({}); the load balancer is gone, the nodes still answer; \
                 error log:\n{}",
                procs::describe_exit(status),
                procs::log_tail(&self.layout.nginx_dir().join("logs/error.log"), 5)
            ));
            self.nginx = None;
        }
    }

    /// Moves pending restarts on: SIGKILL past the grace period, start once
    /// the old process is gone.
    fn progress_restarts(&mut self) {
        for i in 0..self.nodes.len() {
            let node = &mut self.nodes[i];
            let Some(pending) = node.restart.as_mut() else {
                continue;
            };
            if let Some(child) = &node.child {
                if !pending.killed && pending.since.elapsed() > NODE_GRACE {
                    say(format_args!(
                        "{} did not stop within {NODE_GRACE:?}: SIGKILL",
                        node.id
                    ));
                    child.signal(Signal::SIGKILL);
                    pending.killed = true;
                }
                continue;
            }
            let pending = node.restart.take().expect("checked above");
            let stopped_in = pending.since.elapsed();
            let answer = match self.spawn_node(i) {
                Ok(()) => {
                    let node = &self.nodes[i];
                    let pid = node.pid().unwrap_or_default();
                    say(format_args!("{} started again (pid {pid})", node.id));
                    Ok(format!(
                        "{} stopped in {:.1}s and started again (pid {pid}); the supervisor \
                         prints when it is up and its role",
                        node.id,
                        stopped_in.as_secs_f64()
                    ))
                }
                Err(e) => Err(format!(
                    "{} stopped but did not start: {e:#}",
                    self.nodes[i].id
                )),
            };
            let _ = pending.reply.send(answer);
            self.write_state();
        }
    }

    /// nginx on the base port, if installed and not `--no-nginx`.
    async fn start_nginx(&mut self) {
        let lb = format!("http://127.0.0.1:{}", self.opts.base_port);
        if self.opts.no_nginx {
            say("nginx: not started (--no-nginx)");
            return;
        }
        let Some(nginx) = procs::find_binary("nginx", &["/usr/sbin", "/usr/local/sbin"]) else {
            say(format_args!(
                "nginx is not installed, so there is no load balancer on {lb}: install it \
                 with `apt-get install nginx` and start run-cluster again; meanwhile use the \
                 nodes directly"
            ));
            return;
        };
        match self.try_start_nginx(&nginx, &lb).await {
            Ok(child) => {
                say(format_args!(
                    "nginx (pid {}) balances {lb} over the {} nodes; access log {}",
                    child.id(),
                    self.nodes.len(),
                    self.layout.nginx_dir().join("logs/access.log").display()
                ));
                self.nginx = Some(child);
                self.lb_url = Some(lb);
            }
            Err(e) => say(format_args!(
                "nginx did not start, continuing without a load balancer: {e:#}"
            )),
        }
    }

    async fn try_start_nginx(&self, nginx: &Path, lb: &str) -> Result<ChildGuard> {
        let prefix = self.layout.nginx_dir();
        std::fs::create_dir_all(prefix.join("logs"))?;
        for dir in files::NGINX_TEMP_DIRS {
            let path = prefix.join(dir);
            std::fs::create_dir_all(&path)?;
            // Workers may run as another user (nobody) when we are root.
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o1777))?;
        }
        let ports: Vec<u16> = self.nodes.iter().map(|n| n.port).collect();
        let conf = self.layout.nginx_conf();
        procs::write_atomic(
            &conf,
            &files::nginx_conf(&prefix, self.opts.base_port, &ports),
        )?;
        let args = |cmd: &mut std::process::Command| {
            cmd.arg("-e")
                .arg(prefix.join("logs/error.log"))
                .arg("-p")
                .arg(&prefix)
                .arg("-c")
                .arg(&conf);
        };
        let mut test = std::process::Command::new(nginx);
        args(&mut test);
        test.arg("-t").stdin(Stdio::null());
        let out = test
            .output()
            .with_context(|| format!("run {}", display(&test)))?;
        if !out.status.success() {
            bail!(
                "{} failed:\n{}",
                display(&test),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        let stderr = std::fs::File::create(prefix.join("logs/stderr.log"))?;
        let mut cmd = procs::isolated(nginx, "TERM");
        args(&mut cmd);
        cmd.stdout(Stdio::null()).stderr(stderr);
        let mut child = ChildGuard::spawn(&mut cmd)?;
        let api = self.api.with_base(lb);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(reply) = api.get("/health", None).await
                && reply.status.is_success()
            {
                return Ok(child);
            }
            if let Some(status) = child.try_wait()? {
                bail!(
                    "nginx exited ({}):\n{}",
                    procs::describe_exit(status),
                    procs::log_tail(&prefix.join("logs/error.log"), 5)
                );
            }
            if Instant::now() > deadline {
                bail!("nothing answered {lb}/health within 10s");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Listens on `ctl.sock`; each connection's request goes to the main loop.
    fn start_control(&mut self) -> Result<()> {
        let path = self.layout.socket();
        let _ = std::fs::remove_file(&path);
        let listener =
            UnixListener::bind(&path).with_context(|| format!("listen on {}", path.display()))?;
        let (tx, rx) = mpsc::channel::<CtlMessage>(8);
        self.ctl_rx = Some(rx);
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let tx = tx.clone();
                tokio::spawn(async move {
                    let (read, mut write) = stream.into_split();
                    let mut line = String::new();
                    let read = tokio::time::timeout(
                        Duration::from_secs(5),
                        BufReader::new(read).read_line(&mut line),
                    )
                    .await;
                    let answer = match read {
                        Ok(Ok(_)) => match Request::parse(&line) {
                            Ok(request) => {
                                let (reply_tx, reply_rx) = oneshot::channel();
                                if tx.send((request, reply_tx)).await.is_err() {
                                    Err("the supervisor is stopping".to_string())
                                } else {
                                    reply_rx.await.unwrap_or_else(|_| {
                                        Err("the supervisor is stopping".into())
                                    })
                                }
                            }
                            Err(e) => Err(e),
                        },
                        _ => Err("no request line within 5s".into()),
                    };
                    let text = match answer {
                        Ok(text) => format!("{text}\n"),
                        Err(e) => format!("error: {e}\n"),
                    };
                    let _ = write.write_all(text.as_bytes()).await;
                    let _ = write.shutdown().await;
                });
            }
        });
        Ok(())
    }

    fn banner(&self) {
        let mut lines = vec!["the cluster is up:".to_string()];
        match &self.lb_url {
            Some(lb) => lines.push(format!("  load balancer  {lb}  (nginx)")),
            None => lines.push("  load balancer  none (nginx not running)".into()),
        }
        for node in &self.nodes {
            lines.push(format!(
                "  {:<13}  {}  (pid {}, log {})",
                node.id,
                node.url,
                node.pid().unwrap_or_default(),
                self.layout.node_log(node.index).display()
            ));
        }
        let verify = match &self.lb_url {
            Some(lb) => format!("cargo xtask verify --url {lb}"),
            None => {
                let nodes: Vec<String> = self
                    .nodes
                    .iter()
                    .map(|n| format!("--node {}", n.url))
                    .collect();
                format!("cargo xtask verify {}", nodes.join(" "))
            }
        };
        lines.push(format!("  check it:      {verify}"));
        lines.push(
            "  failover:      cargo xtask run-cluster ctl kill|stop|pause|resume|restart node-K, \
             ctl restart-redis|pause-redis|resume-redis, ctl status"
                .into(),
        );
        lines.push("  Ctrl-C stops everything".into());
        say(lines.join("\n"));
    }

    /// Carries out one `ctl` request (a restart answers when it is done).
    async fn handle(&mut self, request: Request, reply: oneshot::Sender<Result<String, String>>) {
        say(format_args!("ctl: {}", request.to_line()));
        let count = self.nodes.len();
        let index = |node: &str| ctl::node_index(node, count).map(|k| k - 1);
        let answer: Result<String, String> = match &request {
            Request::Kill { node } => index(node).and_then(|i| {
                let node = &mut self.nodes[i];
                let child = node
                    .child
                    .as_ref()
                    .ok_or(format!("{} is not running", node.id))?;
                child.signal(Signal::SIGKILL);
                node.expected_exit = Some("ctl kill");
                Ok(format!("sent SIGKILL to {} (pid {})", node.id, child.id()))
            }),
            Request::Stop { node } => index(node).and_then(|i| {
                let node = &mut self.nodes[i];
                let child = node
                    .child
                    .as_ref()
                    .ok_or(format!("{} is not running", node.id))?;
                child.terminate();
                child.signal(Signal::SIGCONT);
                node.expected_exit = Some("ctl stop");
                Ok(format!(
                    "sent SIGTERM to {} (pid {}): it stops cleanly and hands over leadership",
                    node.id,
                    child.id()
                ))
            }),
            Request::Pause { node } => index(node).and_then(|i| {
                let node = &mut self.nodes[i];
                let child = node
                    .child
                    .as_ref()
                    .ok_or(format!("{} is not running", node.id))?;
                if node.paused {
                    return Err(format!("{} is already paused", node.id));
                }
                child.signal(Signal::SIGSTOP);
                node.paused = true;
                node.seen = None;
                Ok(format!(
                    "{} (pid {}) paused with SIGSTOP; `ctl resume {}` continues it",
                    node.id,
                    child.id(),
                    node.id
                ))
            }),
            Request::Resume { node } => index(node).and_then(|i| {
                let node = &mut self.nodes[i];
                let child = node
                    .child
                    .as_ref()
                    .ok_or(format!("{} is not running", node.id))?;
                if !node.paused {
                    return Err(format!("{} is not paused", node.id));
                }
                child.signal(Signal::SIGCONT);
                node.paused = false;
                Ok(format!(
                    "{} (pid {}) continued with SIGCONT",
                    node.id,
                    child.id()
                ))
            }),
            Request::Restart { node } => match index(node) {
                Err(e) => Err(e),
                Ok(i) => {
                    let node = &mut self.nodes[i];
                    if node.restart.is_some() {
                        Err(format!("{} is already restarting", node.id))
                    } else if let Some(child) = &node.child {
                        child.signal(Signal::SIGCONT);
                        child.terminate();
                        node.paused = false;
                        node.expected_exit = Some("ctl restart");
                        say(format_args!(
                            "{}: SIGTERM for a restart (SIGKILL after {NODE_GRACE:?})",
                            node.id
                        ));
                        node.restart = Some(PendingRestart {
                            since: Instant::now(),
                            killed: false,
                            reply,
                        });
                        // Answered by progress_restarts once it has started again.
                        return;
                    } else {
                        match self.spawn_node(i) {
                            Ok(()) => {
                                self.write_state();
                                let node = &self.nodes[i];
                                Ok(format!(
                                    "{} was not running; started it (pid {})",
                                    node.id,
                                    node.pid().unwrap_or_default()
                                ))
                            }
                            Err(e) => Err(format!("{e:#}")),
                        }
                    }
                }
            },
            Request::RestartRedis => match &mut self.redis {
                Redis::Private(redis) => match redis.restart().await {
                    Ok(took) => Ok(format!(
                        "redis-server killed and started again empty on {} (pid {}) in {} ms; \
                             the nodes reconnect and see a new epoch",
                        redis.url(),
                        redis.pid().unwrap_or_default(),
                        took.as_millis()
                    )),
                    Err(e) => Err(format!("restart redis-server: {e:#}")),
                },
                Redis::External { target, why } => Err(refusal("restart-redis", target, why)),
            },
            Request::PauseRedis => match &mut self.redis {
                Redis::Private(redis) => redis
                    .pause()
                    .map(|pid| {
                        format!(
                            "redis-server (pid {pid}) paused with SIGSTOP; `ctl resume-redis` \
                             continues it"
                        )
                    })
                    .map_err(|e| format!("{e:#}")),
                Redis::External { target, why } => Err(refusal("pause-redis", target, why)),
            },
            Request::ResumeRedis => match &mut self.redis {
                Redis::Private(redis) => redis
                    .resume()
                    .map(|pid| format!("redis-server (pid {pid}) continued with SIGCONT"))
                    .map_err(|e| format!("{e:#}")),
                Redis::External { target, why } => Err(refusal("resume-redis", target, why)),
            },
            Request::Status => Ok(self.status()),
        };
        if matches!(request, Request::RestartRedis) {
            self.write_state();
        }
        match &answer {
            Ok(_) if request == Request::Status => {}
            Ok(text) => say(format_args!("ctl: {text}")),
            Err(e) => say(format_args!("ctl: refused: {e}")),
        }
        let _ = reply.send(answer);
    }

    fn status(&self) -> String {
        let mut lines = Vec::new();
        if let Some(lb) = &self.lb_url {
            lines.push(format!(
                "load-balancer  {lb}  nginx pid {}",
                self.nginx.as_ref().map(ChildGuard::id).unwrap_or_default()
            ));
        }
        for node in &self.nodes {
            let role = match (&node.seen, node.state()) {
                (_, "exited" | "paused") => String::new(),
                (Some(seen), _) => seen.to_string(),
                (None, _) => "role not known yet".into(),
            };
            let pid = node
                .pid()
                .map(|p| format!("pid {p}"))
                .unwrap_or_else(|| "no process".into());
            lines.push(format!(
                "{:<13}  {}  {pid:<10}  {:<8}  {role}",
                node.id,
                node.url,
                node.state()
            ));
        }
        match &self.redis {
            Redis::Private(redis) => lines.push(format!(
                "redis          {}  {}  private{}",
                redis.url(),
                redis
                    .pid()
                    .map(|p| format!("pid {p}"))
                    .unwrap_or_else(|| "not running".into()),
                if redis.paused() { ", paused" } else { "" }
            )),
            Redis::External { target, why } => {
                lines.push(format!("redis          {}  {why}", target.redacted()))
            }
        }
        lines.join("\n")
    }

    /// Stops the nodes (SIGTERM, SIGKILL after the grace period or a second
    /// signal), then nginx, then the private redis-server.
    pub(super) async fn shutdown(&mut self, signals: &mut Signals) {
        for node in &mut self.nodes {
            if let Some(pending) = node.restart.take() {
                let _ = pending.reply.send(Err("the supervisor is stopping".into()));
            }
        }
        let running: Vec<usize> = (0..self.nodes.len())
            .filter(|&i| self.nodes[i].child.is_some())
            .collect();
        if !running.is_empty() {
            say(format_args!(
                "stopping {} node(s) with SIGTERM (SIGKILL after {NODE_GRACE:?} or another Ctrl-C)",
                running.len()
            ));
        }
        for &i in &running {
            let child = self.nodes[i].child.as_ref().expect("running");
            child.terminate();
            child.signal(Signal::SIGCONT);
        }
        let started = Instant::now();
        let mut killed = false;
        loop {
            for &i in &running {
                let node = &mut self.nodes[i];
                if let Some(child) = node.child.as_mut()
                    && let Ok(Some(status)) = child.try_wait()
                {
                    say(format_args!(
                        "{} stopped ({}) in {:.1}s",
                        node.id,
                        procs::describe_exit(status),
                        started.elapsed().as_secs_f64()
                    ));
                    node.child = None;
                }
            }
            if running.iter().all(|&i| self.nodes[i].child.is_none()) {
                break;
            }
            let kill_now = tokio::select! {
                signal = signals.recv() => {
                    say(format_args!("{signal} again: SIGKILL"));
                    true
                }
                _ = tokio::time::sleep(Duration::from_millis(50)) => {
                    !killed && started.elapsed() > NODE_GRACE
                }
            };
            if kill_now && !killed {
                killed = true;
                for &i in &running {
                    if let Some(child) = &self.nodes[i].child {
                        child.signal(Signal::SIGKILL);
                    }
                }
            }
        }
        if let Some(nginx) = self.nginx.take() {
            nginx.signal(Signal::SIGQUIT);
            let deadline = Instant::now() + Duration::from_secs(5);
            let mut nginx = nginx;
            loop {
                match nginx.try_wait() {
                    Ok(Some(status)) => {
                        say(format_args!(
                            "nginx stopped ({})",
                            procs::describe_exit(status)
                        ));
                        break;
                    }
                    Ok(None) if Instant::now() < deadline => {
                        tokio::time::sleep(Duration::from_millis(50)).await
                    }
                    _ => {
                        nginx.signal(Signal::SIGKILL);
                        let _ = nginx.wait();
                        say("nginx killed after 5s");
                        break;
                    }
                }
            }
        }
        if let Redis::Private(redis) = &mut self.redis
            && let Some(how) = redis.stop(Duration::from_secs(5)).await
        {
            say(format_args!("redis-server stopped ({how})"));
        }
        let _ = std::fs::remove_file(self.layout.socket());
        let _ = std::fs::remove_file(self.layout.state());
        say(format_args!(
            "stopped; logs and configs stay in {}",
            self.layout.dir.display()
        ));
    }
}

/// The JWT secret of `target/run-cluster/jwt-secret`, generated on first use.
fn jwt_secret(layout: &Layout) -> Result<String> {
    let path = layout.jwt_secret();
    if let Ok(text) = std::fs::read_to_string(&path) {
        let secret = text.trim().to_string();
        if secret.len() >= 32 {
            return Ok(secret);
        }
    }
    let secret = format!(
        "{}{}",
        lina_coord_api::random_hex128(),
        lina_coord_api::random_hex128()
    );
    procs::write_atomic(&path, &secret)?;
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    Ok(secret)
}

fn short_error(e: &anyhow::Error) -> String {
    let text = format!("{e:#}");
    if text.contains("timed out") {
        "timed out".into()
    } else if text.contains("refused") {
        "connection refused".into()
    } else {
        text
    }
}
