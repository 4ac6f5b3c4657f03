//! Three `lina-server` processes in cluster mode on one private
//! `redis-server` and one database, each logging to
//! `target/chaos/<scenario>/<node>.log` (appended across restarts), with the
//! faults a scenario injects: SIGKILL, SIGSTOP/SIGCONT, SIGTERM and restart.

use std::fs::OpenOptions;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use super::util::{show_path, tail};
use crate::process::ChildGuard;

/// Timing of the nodes (passed as `LINA_*` environment).
#[derive(Debug, Clone)]
pub struct Settings {
    /// `cluster.election.lease`.
    pub lease: Duration,
    /// `cluster.election.renewInterval`.
    pub renew: Duration,
    /// `cache.revisionPoll`.
    pub revision_poll: Duration,
    /// `cache.maxStale`.
    pub max_stale: Duration,
    /// `cluster.redis.readTimeout` and `writeTimeout`.
    pub redis_timeout: Duration,
    /// `health.timeout` (the `/ready` probes).
    pub health_timeout: Duration,
    /// `shutdown.timeout`.
    pub shutdown_timeout: Duration,
    /// `logger.level`.
    pub log_level: String,
}

impl Settings {
    /// The short timings every scenario uses.
    pub fn chaos() -> Settings {
        Settings {
            lease: Duration::from_secs(2),
            renew: Duration::from_millis(600),
            revision_poll: Duration::from_millis(250),
            max_stale: Duration::from_millis(1500),
            redis_timeout: Duration::from_millis(500),
            health_timeout: Duration::from_secs(1),
            shutdown_timeout: Duration::from_secs(6),
            log_level: "info".into(),
        }
    }
}

/// A Go-style duration for the configuration (`600ms`).
fn go(d: Duration) -> String {
    format!("{}ms", d.as_millis())
}

/// One node: its id, port and process (when running).
pub struct Node {
    /// `chaos-1` …
    pub id: String,
    /// HTTP port.
    pub port: u16,
    /// `http://127.0.0.1:port`.
    pub base: String,
    log: PathBuf,
    work: PathBuf,
    child: Option<ChildGuard>,
    starts: u32,
}

impl Node {
    /// The process id, when running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(ChildGuard::id)
    }

    fn signal(&self, signal: Signal) -> Result<()> {
        let pid = self
            .pid()
            .ok_or_else(|| anyhow!("node {} is not running", self.id))?;
        kill(Pid::from_raw(pid as i32), signal)
            .with_context(|| format!("{signal} to node {} (pid {pid})", self.id))
    }
}

/// The three nodes and what they share.
pub struct Cluster {
    /// The nodes, in order.
    pub nodes: Vec<Node>,
    binary: PathBuf,
    env: Vec<(String, String)>,
    http: reqwest::Client,
}

/// What the nodes connect to.
pub struct Wiring<'a> {
    /// The server binary.
    pub binary: &'a Path,
    /// The scenario directory (logs, work directories).
    pub dir: &'a Path,
    /// Port of the private redis-server.
    pub redis_port: u16,
    /// Its password, if it has one.
    pub redis_password: Option<&'a str>,
    /// `postgres://…` of the database.
    pub database_url: &'a str,
    /// The JWT secret.
    pub jwt_secret: &'a str,
}

/// How long a node may take from spawn to `/ready`.
pub const START_TIMEOUT: Duration = Duration::from_secs(90);

impl Cluster {
    /// Starts `n` nodes together and waits until each answers `/ready`.
    pub async fn start(wiring: Wiring<'_>, settings: &Settings, n: usize) -> Result<Cluster> {
        let mut env = vec![
            ("LINA_CLUSTER__ENABLED", "true".to_string()),
            (
                "LINA_CLUSTER__REDIS__ADDRESS",
                format!("127.0.0.1:{}", wiring.redis_port),
            ),
            (
                "LINA_CLUSTER__REDIS__READTIMEOUT",
                go(settings.redis_timeout),
            ),
            (
                "LINA_CLUSTER__REDIS__WRITETIMEOUT",
                go(settings.redis_timeout),
            ),
            ("LINA_CLUSTER__ELECTION__LEASE", go(settings.lease)),
            ("LINA_CLUSTER__ELECTION__RENEWINTERVAL", go(settings.renew)),
            ("LINA_CACHE__REVISIONPOLL", go(settings.revision_poll)),
            ("LINA_CACHE__MAXSTALE", go(settings.max_stale)),
            ("LINA_HEALTH__TIMEOUT", go(settings.health_timeout)),
            ("LINA_SHUTDOWN__TIMEOUT", go(settings.shutdown_timeout)),
            (
                "LINA_DATABASE__DEFAULT__LINK",
                wiring.database_url.to_string(),
            ),
            ("LINA_JWT__SECRET", wiring.jwt_secret.to_string()),
            ("LINA_LOGGER__LEVEL", settings.log_level.clone()),
        ];
        if let Some(password) = wiring.redis_password {
            env.push(("LINA_CLUSTER__REDIS__PASSWORD", password.to_string()));
        }
        let mut cluster = Cluster {
            nodes: Vec::new(),
            binary: wiring.binary.to_path_buf(),
            env: env.into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(2))
                .build()
                .context("an HTTP client")?,
        };
        for i in 1..=n {
            let id = format!("chaos-{i}");
            let port = lina_testkit::free_port();
            let work = wiring.dir.join(&id);
            std::fs::create_dir_all(&work).with_context(|| format!("create {}", work.display()))?;
            cluster.nodes.push(Node {
                base: format!("http://127.0.0.1:{port}"),
                log: wiring.dir.join(format!("{id}.log")),
                id,
                port,
                work,
                child: None,
                starts: 0,
            });
        }
        for i in 0..n {
            cluster.spawn(i)?;
        }
        for i in 0..n {
            cluster.wait_ready(i, START_TIMEOUT).await?;
        }
        Ok(cluster)
    }

    /// Base URLs of every node.
    pub fn bases(&self) -> Vec<String> {
        self.nodes.iter().map(|n| n.base.clone()).collect()
    }

    /// Starts node `i`'s process (it must not be running).
    pub fn spawn(&mut self, i: usize) -> Result<()> {
        let node = &mut self.nodes[i];
        if node.child.is_some() {
            bail!("node {} is already running", node.id);
        }
        node.starts += 1;
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&node.log)
            .with_context(|| format!("open {}", node.log.display()))?;
        writeln!(
            log,
            "==== xtask chaos: start #{} of {} on 127.0.0.1:{} ====",
            node.starts, node.id, node.port
        )?;
        let mut cmd = Command::new(&self.binary);
        cmd.current_dir(&node.work);
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("LINA_") {
                cmd.env_remove(key);
            }
        }
        cmd.env_remove("RUST_LOG")
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env("LINA_NODE_ID", &node.id)
            .env("LINA_SERVER__ADDRESS", format!("127.0.0.1:{}", node.port))
            .stdin(Stdio::null())
            .stdout(log.try_clone().context("clone the log handle")?)
            .stderr(log);
        node.child = Some(ChildGuard::spawn(&mut cmd)?);
        Ok(())
    }

    /// Waits until node `i` answers `/ready` with 200; fails early if it exits.
    pub async fn wait_ready(&mut self, i: usize, timeout: Duration) -> Result<Duration> {
        let started = Instant::now();
        let url = format!("{}/ready", self.nodes[i].base);
        loop {
            if let Ok(r) = self.http.get(&url).send().await
                && r.status().is_success()
            {
                return Ok(started.elapsed());
            }
            let node = &mut self.nodes[i];
            let child = node
                .child
                .as_mut()
                .ok_or_else(|| anyhow!("node {} is not running", node.id))?;
            if let Some(status) = child.try_wait()? {
                node.child = None;
                bail!(
                    "node {} exited before it was ready ({status}); its log {} ends with:\n{}",
                    node.id,
                    show_path(&node.log),
                    tail(&node.log, 2000)
                );
            }
            if started.elapsed() > timeout {
                bail!(
                    "node {} was not ready within {:?}; its log {} ends with:\n{}",
                    node.id,
                    timeout,
                    show_path(&node.log),
                    tail(&node.log, 2000)
                );
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// SIGKILL of node `i`, reaped.
    pub fn kill9(&mut self, i: usize) -> Result<()> {
        let node = &mut self.nodes[i];
        node.signal(Signal::SIGKILL)?;
        if let Some(child) = node.child.take() {
            child.wait().context("reap a killed node")?;
        }
        Ok(())
    }

    /// SIGSTOP of node `i`; returns once the kernel reports it stopped.
    pub async fn pause(&self, i: usize) -> Result<()> {
        let node = &self.nodes[i];
        node.signal(Signal::SIGSTOP)?;
        let pid = node.pid().expect("running");
        let deadline = Instant::now() + Duration::from_secs(5);
        while proc_state(pid) != Some('T') {
            if Instant::now() > deadline {
                bail!("node {} did not stop", node.id);
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        Ok(())
    }

    /// SIGCONT of node `i`.
    pub fn resume(&self, i: usize) -> Result<()> {
        self.nodes[i].signal(Signal::SIGCONT)
    }

    /// SIGTERM of node `i`, then waits for it to exit (SIGKILL after
    /// `timeout`); returns the exit status and how long it took.
    pub async fn terminate(
        &mut self,
        i: usize,
        timeout: Duration,
    ) -> Result<(ExitStatus, Duration)> {
        let node = &mut self.nodes[i];
        let mut child = node
            .child
            .take()
            .ok_or_else(|| anyhow!("node {} is not running", node.id))?;
        let started = Instant::now();
        child.terminate();
        loop {
            if let Some(status) = child.try_wait()? {
                return Ok((status, started.elapsed()));
            }
            if started.elapsed() > timeout {
                let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGKILL);
                let status = child.wait()?;
                return Ok((status, started.elapsed()));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Stops every running node: SIGCONT and SIGTERM to all, then waits up
    /// to `grace` for all of them together, then SIGKILL for the rest.
    pub fn stop_all(&mut self, grace: Duration) {
        for node in &self.nodes {
            if let Some(pid) = node.pid() {
                let pid = Pid::from_raw(pid as i32);
                let _ = kill(pid, Signal::SIGCONT);
                let _ = kill(pid, Signal::SIGTERM);
            }
        }
        let deadline = Instant::now() + grace;
        for node in &mut self.nodes {
            if let Some(mut child) = node.child.take() {
                while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(20));
                }
                if matches!(child.try_wait(), Ok(None)) {
                    let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGKILL);
                }
                let _ = child.wait();
            }
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // Also on errors, panics and Ctrl-C: nodes get a moment to stop
        // cleanly (their Redis may be gone already), then are killed.
        self.stop_all(Duration::from_secs(3));
    }
}

/// The one-letter state of a process (`R`, `S`, `T`, …) from `/proc`.
pub fn proc_state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.trim_start().chars().next()
}
