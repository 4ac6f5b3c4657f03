//! Private `redis-server` processes for fault tests, and the shared throwaway one.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use nix::sys::signal::Signal;
use tempfile::TempDir;

use crate::error::{Error, Result};
use crate::net::{Ping, free_port, redis_ping, wait_until};
use crate::sys;

/// How long a server may take to answer its first PING.
pub(crate) const START_DEADLINE: Duration = Duration::from_secs(10);
/// How often readiness is polled.
pub(crate) const POLL: Duration = Duration::from_millis(3);
/// How many fresh ports to try when a racing process takes ours.
pub(crate) const PORT_ATTEMPTS: usize = 5;

/// Commands disabled on every server this crate starts, so any use fails loudly.
pub(crate) const DISABLED_COMMANDS: [&str; 3] = ["FLUSHALL", "FLUSHDB", "KEYS"];

/// Whether Sentinel can run here: [`RedisSentinel`] runs `redis-server
/// --sentinel`, so this is true wherever `redis-server` is installed (the
/// separate `redis-sentinel` package is not needed).
pub async fn redis_sentinel_available() -> bool {
    find_redis_binary("redis-server").is_some() || find_redis_binary("redis-sentinel").is_some()
}

/// A private Sentinel (`redis-server <conf> --sentinel`) monitoring one
/// [`RedisServer`] as master `service`, on a free port; killed on drop.
#[derive(Debug)]
pub struct RedisSentinel {
    child: Mutex<Child>,
    port: u16,
    service: String,
    dir: TempDir,
}

impl RedisSentinel {
    /// Starts a Sentinel that monitors `master` under the name `service`
    /// (quorum 1) and waits until it answers.
    pub async fn start(master: &RedisServer, service: &str) -> Result<RedisSentinel> {
        let binary = redis_server_binary()?;
        let mut last_err = None;
        for _ in 0..PORT_ATTEMPTS {
            let dir = tempfile::Builder::new()
                .prefix("lina-sentinel-")
                .tempdir()
                .map_err(|e| Error::io("create temp dir for redis sentinel", e))?;
            let port = free_port();
            let mut conf = format!(
                "port {port}\nbind 127.0.0.1\ndaemonize no\nlogfile {log}\ndir {dir}\n\
                 sentinel monitor {service} 127.0.0.1 {master} 1\n\
                 sentinel down-after-milliseconds {service} 5000\n",
                log = dir.path().join("sentinel.log").display(),
                dir = dir.path().display(),
                master = master.port(),
            );
            if let Some(password) = &master.options.password {
                conf.push_str(&format!("sentinel auth-pass {service} {password}\n"));
            }
            let conf_path = dir.path().join("sentinel.conf");
            std::fs::write(&conf_path, conf).map_err(|e| Error::io("write sentinel.conf", e))?;
            let child = Command::new(&binary)
                .arg(&conf_path)
                .arg("--sentinel")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .map_err(|e| Error::io(format!("spawn {} --sentinel", binary.display()), e))?;
            let sentinel = RedisSentinel {
                child: Mutex::new(child),
                port,
                service: service.to_string(),
                dir,
            };
            let addr = SocketAddr::from(([127, 0, 0, 1], port));
            let up = wait_until(START_DEADLINE, POLL, || async move {
                redis_ping(addr, Duration::from_millis(200)).await.is_up()
            })
            .await;
            if up {
                return Ok(sentinel);
            }
            last_err = Some(Error::StartFailed {
                what: format!("redis sentinel on port {port}"),
                detail: sys::log_tail(&sentinel.dir.path().join("sentinel.log"), 600),
            });
        }
        Err(last_err.expect("at least one start attempt"))
    }

    /// `127.0.0.1`.
    pub fn host(&self) -> &str {
        "127.0.0.1"
    }

    /// The Sentinel's port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The monitored master's service name.
    pub fn service(&self) -> &str {
        &self.service
    }
}

impl Drop for RedisSentinel {
    fn drop(&mut self) {
        let child = self.child.get_mut().unwrap_or_else(|p| p.into_inner());
        let _ = kill_child(child);
    }
}

pub(crate) fn find_redis_binary(name: &str) -> Option<PathBuf> {
    sys::find_binary(
        name,
        &[PathBuf::from("/usr/bin"), PathBuf::from("/usr/local/bin")],
    )
}

pub(crate) fn redis_server_binary() -> Result<PathBuf> {
    find_redis_binary("redis-server").ok_or_else(|| {
        Error::Unavailable(
            "no redis-server binary found in PATH: install redis-server \
             (apt-get install redis-server)"
                .into(),
        )
    })
}

/// Options for a private [`RedisServer`]; see [`RedisServer::builder`].
#[derive(Debug, Clone, Default)]
pub struct RedisServerBuilder {
    password: Option<String>,
    acl_user: Option<(String, String)>,
    port: Option<u16>,
}

impl RedisServerBuilder {
    /// Requires this password for the `default` user (`requirepass`).
    pub fn password(mut self, password: impl Into<String>) -> Self {
        self.password = Some(password.into());
        self
    }

    /// Adds an ACL user with full access (`user NAME on >PASS ~* &* +@all`);
    /// [`RedisServer::url`] then logs in as this user.
    pub fn acl_user(mut self, user: impl Into<String>, password: impl Into<String>) -> Self {
        self.acl_user = Some((user.into(), password.into()));
        self
    }

    /// Listens on this port instead of a free one.
    pub fn port(mut self, port: u16) -> Self {
        self.port = Some(port);
        self
    }

    /// Starts the server and waits until it answers PING.
    pub async fn start(self) -> Result<RedisServer> {
        RedisServer::start_with(self).await
    }
}

/// A private `redis-server` on a free port of 127.0.0.1, owned by one test.
///
/// It keeps nothing on disk (`--save "" --appendonly no`) and has `FLUSHALL`,
/// `FLUSHDB` and `KEYS` disabled, so code that uses them fails loudly. The
/// process is killed (SIGKILL) when the value is dropped, also when the test
/// panics. Use it for tests that kill, pause or restart Redis; tests that only
/// need *a* Redis should use [`shared_redis`](crate::shared_redis).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> lina_testkit::Result<()> {
/// let redis = lina_testkit::RedisServer::start().await?;
/// assert!(redis.url().starts_with("redis://127.0.0.1:"));
/// redis.pause().await?; // SIGSTOP: clients now time out
/// redis.resume().await?; // SIGCONT
/// redis.restart().await?; // same port, empty dataset
/// redis.kill()?; // gone; dropping it would have done the same
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct RedisServer {
    child: Mutex<Child>,
    port: u16,
    options: RedisServerBuilder,
    binary: PathBuf,
    dir: TempDir,
}

impl RedisServer {
    /// Starts a server with default options (no password).
    pub async fn start() -> Result<RedisServer> {
        Self::builder().start().await
    }

    /// Options for a server with a password or an ACL user.
    pub fn builder() -> RedisServerBuilder {
        RedisServerBuilder::default()
    }

    async fn start_with(options: RedisServerBuilder) -> Result<RedisServer> {
        let binary = redis_server_binary()?;
        let attempts = if options.port.is_some() {
            1
        } else {
            PORT_ATTEMPTS
        };
        let mut last_err = None;
        for _ in 0..attempts {
            let dir = tempfile::Builder::new()
                .prefix("lina-redis-")
                .tempdir()
                .map_err(|e| Error::io("create temp dir for redis-server", e))?;
            let port = options.port.unwrap_or_else(free_port);
            let child = spawn_private(&binary, port, &options, dir.path())?;
            let server = RedisServer {
                child: Mutex::new(child),
                port,
                options: options.clone(),
                binary: binary.clone(),
                dir,
            };
            match server.wait_ready().await {
                Ok(()) => return Ok(server),
                // Most likely a racing process took the port: try another one.
                Err(e) => last_err = Some(e),
            }
        }
        Err(last_err.expect("at least one start attempt"))
    }

    /// Polls PING until the server answers, failing early if the process exits.
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
            what: format!("redis-server on port {}", self.port),
            detail: sys::log_tail(&self.dir.path().join("redis.log"), 600),
        })
    }

    fn child(&self) -> MutexGuard<'_, Child> {
        self.child.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// `redis://[user:pass@]127.0.0.1:PORT`, logging in as the ACL user if one
    /// was configured, else with the password if one was set.
    pub fn url(&self) -> String {
        let auth = match (&self.options.acl_user, &self.options.password) {
            (Some((user, pass)), _) => format!("{}:{}@", encode(user), encode(pass)),
            (None, Some(pass)) => format!(":{}@", encode(pass)),
            (None, None) => String::new(),
        };
        format!("redis://{auth}127.0.0.1:{}", self.port)
    }

    /// Always `127.0.0.1`.
    pub fn host(&self) -> &str {
        "127.0.0.1"
    }

    /// The TCP port; it stays the same across [`RedisServer::restart`].
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The process id of the current server process.
    pub fn pid(&self) -> u32 {
        self.child().id()
    }

    /// Whether the server process exists (a paused one does).
    pub fn is_running(&self) -> bool {
        matches!(self.child().try_wait(), Ok(None))
    }

    /// Kills the server with SIGKILL and reaps it. Killing a dead server is a no-op.
    pub fn kill(&self) -> Result<()> {
        let mut child = self.child();
        kill_child(&mut child)
    }

    /// Stops the server with SIGSTOP: connections still open at the TCP level,
    /// but no command is answered until [`RedisServer::resume`].
    /// Returns once the kernel reports the process stopped.
    pub async fn pause(&self) -> Result<()> {
        let pid = self.pid();
        sys::signal(pid, Signal::SIGSTOP)?;
        wait_until(
            Duration::from_secs(5),
            Duration::from_millis(1),
            || async move { sys::proc_state(pid) == Some('T') },
        )
        .await;
        Ok(())
    }

    /// Continues a paused server with SIGCONT and waits until it answers PING.
    pub async fn resume(&self) -> Result<()> {
        sys::signal(self.pid(), Signal::SIGCONT)?;
        self.wait_ready().await
    }

    /// Kills the server and starts a new one on the same port with the same
    /// options and an empty dataset; returns once it answers PING.
    pub async fn restart(&self) -> Result<()> {
        let mut last_err = None;
        for _ in 0..PORT_ATTEMPTS {
            {
                let mut child = self.child();
                kill_child(&mut child)?;
                *child = spawn_private(&self.binary, self.port, &self.options, self.dir.path())?;
            }
            match self.wait_ready().await {
                Ok(()) => return Ok(()),
                // The old socket may linger for a moment; try again.
                Err(e) => last_err = Some(e),
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Err(last_err.expect("at least one restart attempt"))
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let child = self.child.get_mut().unwrap_or_else(|p| p.into_inner());
        let _ = kill_child(child);
    }
}

pub(crate) fn kill_child(child: &mut Child) -> Result<()> {
    // SIGKILL works on a stopped process too.
    if let Ok(None) = child.try_wait()
        && let Err(e) = child.kill()
        && e.kind() != std::io::ErrorKind::InvalidInput
    {
        return Err(Error::io(format!("kill redis-server {}", child.id()), e));
    }
    child
        .wait()
        .map_err(|e| Error::io(format!("wait for redis-server {}", child.id()), e))?;
    Ok(())
}

/// Percent-encodes a user name or password for a URL's userinfo.
fn encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

/// The arguments shared by private and shared throwaway servers.
pub(crate) fn base_args(cmd: &mut Command, port: u16, dir: &Path) {
    cmd.arg("--port")
        .arg(port.to_string())
        .args(["--bind", "127.0.0.1"])
        .args(["--save", ""])
        .args(["--appendonly", "no"])
        .arg("--dir")
        .arg(dir)
        .arg("--logfile")
        .arg(dir.join("redis.log"));
    for command in DISABLED_COMMANDS {
        cmd.args(["--rename-command", command, ""]);
    }
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
}

fn spawn_private(
    binary: &Path,
    port: u16,
    options: &RedisServerBuilder,
    dir: &Path,
) -> Result<Child> {
    let mut cmd = Command::new(binary);
    base_args(&mut cmd, port, dir);
    cmd.args(["--daemonize", "no"]);
    if let Some(pass) = &options.password {
        cmd.arg("--requirepass").arg(pass);
    }
    if let Some((user, pass)) = &options.acl_user {
        cmd.arg("--user")
            .arg(user)
            .arg("on")
            .arg(format!(">{pass}"))
            .args(["~*", "&*", "+@all"]);
    }
    cmd.spawn()
        .map_err(|e| Error::io(format!("spawn {}", binary.display()), e))
}

/// Starts a daemonized `redis-server` for the shared throwaway service; it
/// outlives this process. Returns its pid.
pub(crate) async fn start_daemon(dir: &Path) -> Result<(u16, u32)> {
    let binary = redis_server_binary()?;
    let mut last_err = None;
    for _ in 0..PORT_ATTEMPTS {
        let port = free_port();
        let pidfile = dir.join("redis.pid");
        let _ = std::fs::remove_file(&pidfile);
        let mut cmd = Command::new(&binary);
        base_args(&mut cmd, port, dir);
        cmd.args(["--daemonize", "yes"])
            .arg("--pidfile")
            .arg(&pidfile);
        let status = tokio::process::Command::from(cmd)
            .status()
            .await
            .map_err(|e| Error::io(format!("spawn {}", binary.display()), e))?;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let up = status.success()
            && wait_until(START_DEADLINE, POLL, || async move {
                redis_ping(addr, Duration::from_millis(200)).await == Ping::Pong
            })
            .await;
        let pid = std::fs::read_to_string(&pidfile)
            .ok()
            .and_then(|s| s.trim().parse::<u32>().ok());
        match (up, pid) {
            (true, Some(pid)) => return Ok((port, pid)),
            (_, pid) => {
                if let Some(pid) = pid {
                    sys::terminate(pid, Duration::from_secs(1));
                }
                last_err = Some(Error::StartFailed {
                    what: format!("shared redis-server on port {port}"),
                    detail: sys::log_tail(&dir.join("redis.log"), 600),
                });
            }
        }
    }
    Err(last_err.expect("at least one start attempt"))
}
