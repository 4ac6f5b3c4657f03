//! A private Redis Cluster of N masters, for tests of the cluster topology.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use tempfile::TempDir;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::time::{Instant, sleep, timeout};

use crate::error::{Error, Result};
use crate::net::{free_port, redis_ping, wait_until};
use crate::redis::{
    POLL, PORT_ATTEMPTS, START_DEADLINE, base_args, find_redis_binary, kill_child,
    redis_server_binary,
};
use crate::sys;

/// `--cluster-node-timeout` of every node, in milliseconds.
const NODE_TIMEOUT_MS: u32 = 2000;
/// How long `redis-cli --cluster create` may take.
const CREATE_DEADLINE: Duration = Duration::from_secs(30);
/// How long the cluster may take to report `cluster_state:ok` on every node
/// once created. A master waits 2 s after its start before it turns `ok`.
const STATE_DEADLINE: Duration = Duration::from_secs(20);
/// How often cluster state is polled.
const STATE_POLL: Duration = Duration::from_millis(20);
/// Limit of one command sent to a node while starting.
const COMMAND_LIMIT: Duration = Duration::from_millis(500);
/// The smallest cluster `redis-cli --cluster create` accepts.
const MIN_MASTERS: usize = 3;

/// A private Redis Cluster on 127.0.0.1: `masters` masters, no replicas,
/// owned by one test.
///
/// Each node is a `redis-server --cluster-enabled yes` on a free port (and a
/// free cluster-bus port, `--cluster-port`) with its own temporary directory
/// for `nodes.conf` and its log, `--cluster-node-timeout 2000`. Like
/// [`RedisServer`](crate::RedisServer), nodes keep nothing on disk (`--save ""
/// --appendonly no`) and have `FLUSHALL`, `FLUSHDB` and `KEYS` disabled. The
/// slots are split evenly by `redis-cli --cluster create … --cluster-replicas 0`,
/// and [`RedisClusterServer::start`] returns once every node reports
/// `cluster_state:ok` — about 2 s, the delay a fresh master waits before it
/// accepts writes. Every node is killed (SIGKILL) when the value is dropped,
/// also when the test panics.
///
/// Needs `redis-server` and `redis-cli` 7.0 or newer (for `--cluster-port`).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> lina_testkit::Result<()> {
/// let cluster = lina_testkit::RedisClusterServer::start(3).await?;
/// let seeds = cluster.nodes(); // [("127.0.0.1", port), …], one per master
/// assert_eq!(seeds.len(), 3);
/// cluster.kill_all()?; // gone; dropping it would have done the same
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct RedisClusterServer {
    nodes: Vec<ClusterNode>,
}

/// One `redis-server` of the cluster.
#[derive(Debug)]
struct ClusterNode {
    child: Mutex<Child>,
    port: u16,
    bus_port: u16,
    dir: TempDir,
}

impl ClusterNode {
    fn child(&self) -> MutexGuard<'_, Child> {
        self.child.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    fn is_running(&self) -> bool {
        matches!(self.child().try_wait(), Ok(None))
    }

    fn kill(&self) -> Result<()> {
        kill_child(&mut self.child())
    }

    fn log(&self) -> PathBuf {
        self.dir.path().join("redis.log")
    }

    /// Polls PING until the node answers, failing early if the process exits.
    async fn wait_ready(&self) -> Result<()> {
        let addr = self.addr();
        let up = wait_until(START_DEADLINE, POLL, || async move {
            redis_ping(addr, Duration::from_millis(200)).await.is_up() || !self.is_running()
        })
        .await;
        if up && self.is_running() {
            return Ok(());
        }
        let _ = self.kill();
        Err(Error::StartFailed {
            what: format!("redis cluster node on port {}", self.port),
            detail: sys::log_tail(&self.log(), 600),
        })
    }
}

impl Drop for ClusterNode {
    fn drop(&mut self) {
        let child = self.child.get_mut().unwrap_or_else(|p| p.into_inner());
        let _ = kill_child(child);
    }
}

fn redis_cli_binary() -> Result<PathBuf> {
    find_redis_binary("redis-cli").ok_or_else(|| {
        Error::Unavailable(
            "no redis-cli binary found in PATH: install redis-tools \
             (apt-get install redis-tools), needed to create a redis cluster"
                .into(),
        )
    })
}

/// A port that was free a moment ago and is not in `taken`; adds it to `taken`.
fn fresh_port(taken: &mut HashSet<u16>) -> u16 {
    loop {
        let port = free_port();
        if taken.insert(port) {
            return port;
        }
    }
}

fn spawn_node(binary: &Path, port: u16, bus_port: u16, dir: &Path) -> Result<Child> {
    let mut cmd = Command::new(binary);
    base_args(&mut cmd, port, dir);
    cmd.args(["--daemonize", "no"])
        .args(["--cluster-enabled", "yes"])
        .arg("--cluster-config-file")
        .arg(dir.join("nodes.conf"))
        .arg("--cluster-node-timeout")
        .arg(NODE_TIMEOUT_MS.to_string())
        .arg("--cluster-port")
        .arg(bus_port.to_string());
    cmd.spawn()
        .map_err(|e| Error::io(format!("spawn {} --cluster-enabled", binary.display()), e))
}

/// Starts `count` nodes on fresh ports, all at once, then waits for each;
/// a node that does not come up is started again on other ports.
async fn start_nodes(binary: &Path, count: usize) -> Result<Vec<ClusterNode>> {
    let mut taken = HashSet::new();
    let mut nodes = Vec::with_capacity(count);
    for _ in 0..count {
        nodes.push(new_node(binary, &mut taken)?);
    }
    for node in &mut nodes {
        let mut attempt = 1;
        while let Err(e) = node.wait_ready().await {
            // Most likely a racing process took a port: try other ones.
            if attempt == PORT_ATTEMPTS {
                return Err(e);
            }
            attempt += 1;
            *node = new_node(binary, &mut taken)?;
        }
    }
    Ok(nodes)
}

fn new_node(binary: &Path, taken: &mut HashSet<u16>) -> Result<ClusterNode> {
    let dir = tempfile::Builder::new()
        .prefix("lina-redis-cluster-")
        .tempdir()
        .map_err(|e| Error::io("create temp dir for a redis cluster node", e))?;
    let port = fresh_port(taken);
    let bus_port = fresh_port(taken);
    let child = spawn_node(binary, port, bus_port, dir.path())?;
    Ok(ClusterNode {
        child: Mutex::new(child),
        port,
        bus_port,
        dir,
    })
}

impl RedisClusterServer {
    /// Starts `masters` cluster nodes, creates the cluster with
    /// `redis-cli --cluster create` and waits until every node reports
    /// `cluster_state:ok`, knows all the others and sees all 16384 slots
    /// served.
    ///
    /// Fails with [`Error::Unavailable`] when `redis-server` or `redis-cli`
    /// is missing, and with [`Error::StartFailed`] (carrying the tool's output
    /// or the nodes' log tails) when the cluster does not form in time.
    ///
    /// # Panics
    ///
    /// When `masters` is below 3, the smallest cluster Redis accepts.
    pub async fn start(masters: usize) -> Result<RedisClusterServer> {
        assert!(
            masters >= MIN_MASTERS,
            "a redis cluster needs at least {MIN_MASTERS} masters, got {masters}"
        );
        let server = redis_server_binary()?;
        let cli = redis_cli_binary()?;
        let cluster = RedisClusterServer {
            nodes: start_nodes(&server, masters).await?,
        };
        cluster.create(&cli).await?;
        cluster.wait_state_ok().await?;
        Ok(cluster)
    }

    /// Runs `redis-cli --cluster create`, introducing the nodes to each other
    /// meanwhile.
    ///
    /// redis-cli introduces every node to the first one only and then checks
    /// once a second whether all nodes agree; the others find each other by
    /// gossip, which takes one to several seconds. Once redis-cli has assigned
    /// the slots and config epochs (a node knows another), every node is
    /// introduced to every other one directly, so the first check passes.
    async fn create(&self, cli: &Path) -> Result<()> {
        let mut cmd = tokio::process::Command::new(cli);
        cmd.arg("--cluster").arg("create");
        for node in &self.nodes {
            cmd.arg(format!("127.0.0.1:{}", node.port));
        }
        cmd.args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let create = timeout(CREATE_DEADLINE, cmd.output());
        tokio::pin!(create);
        let mut introduced = false;
        let output = loop {
            tokio::select! {
                output = &mut create => break output,
                _ = sleep(Duration::from_millis(5)), if !introduced => {
                    if self.any_knows_another().await {
                        self.introduce_all().await;
                        introduced = true;
                    }
                }
            }
        };
        let what = || format!("redis cluster on ports {:?}", self.ports());
        let output = match output {
            Ok(Ok(output)) => output,
            Ok(Err(e)) => return Err(Error::io(format!("run {}", cli.display()), e)),
            Err(_) => {
                return Err(Error::StartFailed {
                    what: what(),
                    detail: format!("redis-cli --cluster create took over {CREATE_DEADLINE:?}"),
                });
            }
        };
        if output.status.success() {
            return Ok(());
        }
        let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
        text.push_str(&String::from_utf8_lossy(&output.stderr));
        let text = strip_ansi(&text);
        let tail = &text[text.len().saturating_sub(600)..];
        Err(Error::StartFailed {
            what: what(),
            detail: format!(
                "redis-cli --cluster create failed ({}): …{}",
                output.status,
                tail.trim()
            ),
        })
    }

    /// Whether some node knows another (redis-cli sends `CLUSTER MEET` only
    /// after assigning slots and config epochs).
    async fn any_knows_another(&self) -> bool {
        for node in &self.nodes {
            if let Some(info) = cluster_info(node.addr()).await
                && info_field(&info, "cluster_known_nodes").is_some_and(|n| n != "1")
            {
                return true;
            }
        }
        false
    }

    /// Sends `CLUSTER MEET` from every node to every other one. Errors are
    /// ignored: redis-cli's own check decides.
    async fn introduce_all(&self) {
        for from in &self.nodes {
            let Ok(Ok(mut conn)) = timeout(COMMAND_LIMIT, Resp::connect(from.addr())).await else {
                continue;
            };
            for to in self.nodes.iter().filter(|to| to.port != from.port) {
                let (port, bus) = (to.port.to_string(), to.bus_port.to_string());
                let meet = ["CLUSTER", "MEET", "127.0.0.1", &port, &bus];
                if conn.command(&meet).await.is_none() {
                    break;
                }
            }
        }
    }

    /// Polls `CLUSTER INFO` on every node until all report the cluster ok.
    async fn wait_state_ok(&self) -> Result<()> {
        let expected_nodes = self.nodes.len().to_string();
        let end = Instant::now() + STATE_DEADLINE;
        let mut pending: Vec<&ClusterNode> = self.nodes.iter().collect();
        let mut last_info: Vec<Option<String>> = vec![None; self.nodes.len()];
        loop {
            let mut still = Vec::new();
            for node in pending {
                let info = cluster_info(node.addr()).await;
                let ok = info.as_deref().is_some_and(|info| {
                    info_field(info, "cluster_state") == Some("ok")
                        && info_field(info, "cluster_slots_ok") == Some("16384")
                        && info_field(info, "cluster_known_nodes") == Some(&expected_nodes)
                });
                if !ok {
                    let index = self.index_of(node);
                    last_info[index] = info;
                    still.push(node);
                }
            }
            pending = still;
            if pending.is_empty() {
                return Ok(());
            }
            if Instant::now() >= end || pending.iter().any(|n| !n.is_running()) {
                break;
            }
            sleep(STATE_POLL).await;
        }
        let detail = pending
            .iter()
            .map(|node| {
                let state = last_info[self.index_of(node)]
                    .as_deref()
                    .map(|info| {
                        ["cluster_state", "cluster_slots_ok", "cluster_known_nodes"]
                            .iter()
                            .map(|f| format!("{f}:{}", info_field(info, f).unwrap_or("?")))
                            .collect::<Vec<_>>()
                            .join(" ")
                    })
                    .unwrap_or_else(|| "no answer to CLUSTER INFO".into());
                let running = if node.is_running() { "" } else { "exited, " };
                format!(
                    "node {} ({running}{state}): {}",
                    node.port,
                    sys::log_tail(&node.log(), 400)
                )
            })
            .collect::<Vec<_>>()
            .join("; ");
        Err(Error::StartFailed {
            what: format!(
                "redis cluster on ports {:?} (not cluster_state:ok within {STATE_DEADLINE:?})",
                self.ports()
            ),
            detail,
        })
    }

    fn index_of(&self, node: &ClusterNode) -> usize {
        self.nodes
            .iter()
            .position(|n| n.port == node.port)
            .expect("node of this cluster")
    }

    fn ports(&self) -> Vec<u16> {
        self.nodes.iter().map(|n| n.port).collect()
    }

    /// `(host, port)` of every master, in start order: the seed list for a
    /// cluster client.
    pub fn nodes(&self) -> Vec<(String, u16)> {
        self.nodes
            .iter()
            .map(|n| (self.host().to_string(), n.port))
            .collect()
    }

    /// Always `127.0.0.1`.
    pub fn host(&self) -> &str {
        "127.0.0.1"
    }

    /// The process ids of the nodes, in the order of [`RedisClusterServer::nodes`].
    pub fn pids(&self) -> Vec<u32> {
        self.nodes.iter().map(|n| n.child().id()).collect()
    }

    /// Whether every node process exists.
    pub fn is_running(&self) -> bool {
        self.nodes.iter().all(ClusterNode::is_running)
    }

    /// Kills every node with SIGKILL and reaps it. Killing dead nodes is a
    /// no-op. Tries every node and returns the first error.
    pub fn kill_all(&self) -> Result<()> {
        let mut first_err = None;
        for node in &self.nodes {
            if let Err(e) = node.kill() {
                first_err.get_or_insert(e);
            }
        }
        first_err.map_or(Ok(()), Err)
    }
}

/// The value of `field` in `CLUSTER INFO` output.
fn info_field<'a>(info: &'a str, field: &str) -> Option<&'a str> {
    info.lines().find_map(|line| {
        line.strip_prefix(field)?
            .strip_prefix(':')
            .map(|v| v.trim())
    })
}

/// `CLUSTER INFO` of the node at `addr`, if it answers in time.
async fn cluster_info(addr: SocketAddr) -> Option<String> {
    let mut conn = timeout(COMMAND_LIMIT, Resp::connect(addr))
        .await
        .ok()?
        .ok()?;
    conn.command(&["CLUSTER", "INFO"]).await
}

/// Removes terminal colour sequences (`ESC [ … m`) from redis-cli output.
fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Just enough RESP for `CLUSTER INFO` and `CLUSTER MEET`.
struct Resp {
    stream: BufReader<TcpStream>,
}

impl Resp {
    async fn connect(addr: SocketAddr) -> std::io::Result<Resp> {
        Ok(Resp {
            stream: BufReader::new(TcpStream::connect(addr).await?),
        })
    }

    /// Sends a command; returns a bulk reply's text, or a status or error
    /// line as is (`+OK`, `-ERR …`). `None` when no reply came in time.
    async fn command(&mut self, args: &[&str]) -> Option<String> {
        timeout(COMMAND_LIMIT, self.command_inner(args))
            .await
            .ok()?
            .ok()
    }

    async fn command_inner(&mut self, args: &[&str]) -> std::io::Result<String> {
        let mut out = format!("*{}\r\n", args.len());
        for a in args {
            out.push_str(&format!("${}\r\n{a}\r\n", a.len()));
        }
        self.stream.get_mut().write_all(out.as_bytes()).await?;
        let mut line = String::new();
        if self.stream.read_line(&mut line).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        let line = line.trim_end();
        let Some(len) = line.strip_prefix('$') else {
            return Ok(line.to_string());
        };
        let len: usize = len
            .parse()
            .map_err(|_| std::io::Error::other(format!("unexpected reply {line:?}")))?;
        let mut buf = vec![0u8; len + 2];
        self.stream.read_exact(&mut buf).await?;
        buf.truncate(len);
        Ok(String::from_utf8_lossy(&buf).into_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn info_fields_are_found() {
        let info = "cluster_state:ok\r\ncluster_slots_ok:16384\r\ncluster_known_nodes:3\r\n";
        assert_eq!(info_field(info, "cluster_state"), Some("ok"));
        assert_eq!(info_field(info, "cluster_known_nodes"), Some("3"));
        assert_eq!(info_field(info, "cluster_slots"), None);
        assert_eq!(info_field(info, "cluster_size"), None);
    }

    #[test]
    fn colours_are_stripped() {
        assert_eq!(
            strip_ansi("\x1b[29;1m>>> Check\n\x1b[0m[OK] done"),
            ">>> Check\n[OK] done"
        );
    }
}
