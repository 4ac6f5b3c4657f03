//! Finding (or starting) the PostgreSQL server and Redis that tests share.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::sync::OnceCell;

use crate::error::{Error, Result};
use crate::net::{Ping, redis_ping, tcp_open};
use crate::postgres::{PgCluster, answers, postgres_bin_dir, redact};
use crate::redis::start_daemon;
use crate::sys::{self, FileLock};

/// Environment variable holding the URL of a shared Redis (`redis://host:port`).
pub const REDIS_URL_ENV: &str = "LINA_TEST_REDIS_URL";
/// Environment variable holding a `postgres://` URL of a server and an admin
/// database where `CREATE DATABASE` is allowed.
pub const DATABASE_URL_ENV: &str = "LINA_TEST_DATABASE_URL";
/// Environment variable overriding the port probed for a local Redis (default 6379).
pub const REDIS_PORT_PROBE_ENV: &str = "LINA_TEST_REDIS_PORT_PROBE";
/// Environment variable overriding the port probed for a local PostgreSQL (default 5432).
pub const PG_PORT_PROBE_ENV: &str = "LINA_TEST_PG_PORT_PROBE";
/// Environment variable overriding the directory of the shared throwaway services.
pub const STATE_DIR_ENV: &str = "LINA_TEST_STATE_DIR";

/// Where a service came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServiceSource {
    /// From `LINA_TEST_REDIS_URL` / `LINA_TEST_DATABASE_URL`.
    Env,
    /// A server already answering on the default local port.
    DefaultPort,
    /// A throwaway server from the installed binaries, shared through the state directory.
    Throwaway {
        /// Whether this call started it (else it was already running).
        started: bool,
    },
}

/// A service's URL and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Discovered {
    /// `redis://…` or `postgres://…` (for PostgreSQL: the admin database).
    pub url: String,
    /// Where it came from.
    pub source: ServiceSource,
}

/// Both services, as found by [`ensure_services_blocking`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Services {
    /// The PostgreSQL server (URL of an admin database).
    pub database: Discovered,
    /// The shared Redis.
    pub redis: Discovered,
}

/// How services are found: environment variables first, then servers on the
/// default local ports, then throwaway servers started from the installed
/// `redis-server`, `initdb` and `pg_ctl`.
///
/// Throwaway servers are shared by all test processes of a user: the first
/// process to need one starts it under a file lock in [`Discovery::state_dir`]
/// and records its address there; the others find it there and check that it
/// answers. They keep running after the tests (so the next run is fast) until
/// [`Discovery::stop_throwaways`] is called; `cargo xtask test` stops those it started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Discovery {
    /// Whether `LINA_TEST_REDIS_URL` / `LINA_TEST_DATABASE_URL` are honoured.
    pub use_env: bool,
    /// Where a local Redis is probed (127.0.0.1:6379, or `LINA_TEST_REDIS_PORT_PROBE`).
    pub redis_probe: SocketAddr,
    /// Where a local PostgreSQL is probed (127.0.0.1:5432, or `LINA_TEST_PG_PORT_PROBE`).
    pub postgres_probe: SocketAddr,
    /// Lock, state and data of throwaway servers
    /// (`$TMPDIR/lina-testkit-<uid>`, or `LINA_TEST_STATE_DIR`).
    pub state_dir: PathBuf,
}

impl Default for Discovery {
    fn default() -> Self {
        Self::from_env()
    }
}

fn env_port(var: &str, default: u16) -> u16 {
    std::env::var(var)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

fn env_url(var: &str) -> Option<String> {
    std::env::var(var).ok().filter(|v| !v.trim().is_empty())
}

impl Discovery {
    /// The default discovery, with the overrides from the environment.
    pub fn from_env() -> Self {
        let state_dir = std::env::var_os(STATE_DIR_ENV)
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                std::env::temp_dir()
                    .join(format!("lina-testkit-{}", nix::unistd::geteuid().as_raw()))
            });
        Discovery {
            use_env: true,
            redis_probe: SocketAddr::from(([127, 0, 0, 1], env_port(REDIS_PORT_PROBE_ENV, 6379))),
            postgres_probe: SocketAddr::from(([127, 0, 0, 1], env_port(PG_PORT_PROBE_ENV, 5432))),
            state_dir,
        }
    }

    /// Finds or starts a Redis.
    pub async fn redis(&self) -> Result<Discovered> {
        if self.use_env
            && let Some(url) = env_url(REDIS_URL_ENV)
        {
            return Ok(Discovered {
                url,
                source: ServiceSource::Env,
            });
        }
        if redis_ping(self.redis_probe, Duration::from_secs(1)).await == Ping::Pong {
            return Ok(Discovered {
                url: format!("redis://{}", self.redis_probe),
                source: ServiceSource::DefaultPort,
            });
        }
        if crate::redis::find_redis_binary("redis-server").is_none() {
            return Err(Error::Unavailable(format!(
                "redis not reachable at {} and no redis-server binary found: install \
                 redis-server (apt-get install redis-server) or set {REDIS_URL_ENV}",
                self.redis_probe
            )));
        }
        sys::ensure_dir(&self.state_dir)?;
        let _lock = FileLock::acquire_async(&self.state_dir.join("redis.lock")).await?;
        let state_file = self.state_dir.join("redis.json");
        if let Some(state) = read_state::<RedisState>(&state_file)? {
            let addr = SocketAddr::from(([127, 0, 0, 1], state.port));
            if redis_ping(addr, Duration::from_secs(1)).await == Ping::Pong {
                return Ok(Discovered {
                    url: state.url(),
                    source: ServiceSource::Throwaway { started: false },
                });
            }
            sys::terminate(state.pid, Duration::from_secs(1));
        }
        let dir = self.state_dir.join("redis");
        sys::ensure_dir(&dir)?;
        let (port, pid) = start_daemon(&dir).await?;
        let state = RedisState { port, pid };
        write_state(&state_file, &state)?;
        tracing::info!(port, pid, "started throwaway redis-server");
        Ok(Discovered {
            url: state.url(),
            source: ServiceSource::Throwaway { started: true },
        })
    }

    /// Finds or starts a PostgreSQL server; the URL names its admin database.
    pub async fn postgres(&self) -> Result<Discovered> {
        if self.use_env
            && let Some(url) = env_url(DATABASE_URL_ENV)
        {
            return Ok(Discovered {
                url,
                source: ServiceSource::Env,
            });
        }
        let default_url = format!("postgres://postgres@{}/postgres", self.postgres_probe);
        if tcp_open(self.postgres_probe, Duration::from_secs(1)).await
            && answers(&default_url).await
        {
            return Ok(Discovered {
                url: default_url,
                source: ServiceSource::DefaultPort,
            });
        }
        let Some(bin_dir) = postgres_bin_dir() else {
            return Err(Error::Unavailable(format!(
                "postgresql not reachable at {} (user postgres, database postgres) and no \
                 initdb/pg_ctl found in PATH or /usr/lib/postgresql/*/bin: install postgresql \
                 (apt-get install postgresql) or set {DATABASE_URL_ENV}",
                self.postgres_probe
            )));
        };
        sys::ensure_dir(&self.state_dir)?;
        let _lock = FileLock::acquire_async(&self.state_dir.join("postgres.lock")).await?;
        let state_file = self.state_dir.join("postgres.json");
        if let Some(cluster) = read_state::<PgCluster>(&state_file)? {
            if answers(&cluster.admin_url()).await {
                return Ok(Discovered {
                    url: cluster.admin_url(),
                    source: ServiceSource::Throwaway { started: false },
                });
            }
            cluster.destroy().await;
        }
        let _ = std::fs::remove_file(&state_file);
        let cluster = PgCluster::init_and_start(&self.state_dir, bin_dir).await?;
        write_state(&state_file, &cluster)?;
        tracing::info!(port = cluster.port, "started throwaway postgres");
        Ok(Discovered {
            url: cluster.admin_url(),
            source: ServiceSource::Throwaway { started: true },
        })
    }

    /// Stops the throwaway servers recorded in the state directory, if any,
    /// and removes their files. Servers found through the environment or on
    /// the default ports are never touched.
    pub async fn stop_throwaways(&self) -> Result<()> {
        if !self.state_dir.exists() {
            return Ok(());
        }
        {
            let _lock = FileLock::acquire_async(&self.state_dir.join("redis.lock")).await?;
            let state_file = self.state_dir.join("redis.json");
            if let Some(state) = read_state::<RedisState>(&state_file)? {
                sys::terminate(state.pid, Duration::from_secs(5));
                tracing::info!(
                    port = state.port,
                    pid = state.pid,
                    "stopped throwaway redis-server"
                );
            }
            let _ = std::fs::remove_file(&state_file);
            let _ = std::fs::remove_dir_all(self.state_dir.join("redis"));
        }
        {
            let _lock = FileLock::acquire_async(&self.state_dir.join("postgres.lock")).await?;
            let state_file = self.state_dir.join("postgres.json");
            if let Some(cluster) = read_state::<PgCluster>(&state_file)? {
                cluster.destroy().await;
                tracing::info!(port = cluster.port, "stopped throwaway postgres");
            }
            let _ = std::fs::remove_file(&state_file);
        }
        Ok(())
    }

    /// Finds or starts both services.
    pub async fn ensure(&self) -> Result<Services> {
        let database = self.postgres().await?;
        let redis = self.redis().await?;
        Ok(Services { database, redis })
    }
}

#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct RedisState {
    port: u16,
    pid: u32,
}

impl RedisState {
    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
}

fn read_state<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Option<T>> {
    match std::fs::read(path) {
        Ok(bytes) => match serde_json::from_slice(&bytes) {
            Ok(state) => Ok(Some(state)),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "ignoring corrupt state file");
                Ok(None)
            }
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(format!("read {}", path.display()), e)),
    }
}

fn write_state<T: serde::Serialize>(path: &Path, state: &T) -> Result<()> {
    let bytes = serde_json::to_vec_pretty(state).map_err(|e| Error::State {
        path: path.to_path_buf(),
        detail: e.to_string(),
    })?;
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, bytes).map_err(|e| Error::io(format!("write {}", tmp.display()), e))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io(format!("rename {}", tmp.display()), e))
}

static SHARED_REDIS: OnceCell<String> = OnceCell::const_new();
static POSTGRES_ADMIN: OnceCell<String> = OnceCell::const_new();

/// The URL of a Redis shared by all tests (found once per process with
/// [`Discovery::from_env`]).
///
/// Tests using it must keep their keys under a unique namespace (prefix) and
/// never flush: other tests use the same server at the same time.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> lina_testkit::Result<()> {
/// let url = lina_testkit::shared_redis().await?;
/// assert!(url.starts_with("redis://"));
/// # Ok(())
/// # }
/// ```
pub async fn shared_redis() -> Result<String> {
    SHARED_REDIS
        .get_or_try_init(|| async { Discovery::from_env().redis().await.map(|d| d.url) })
        .await
        .cloned()
}

/// The admin URL of the PostgreSQL server tests share (found once per process).
pub(crate) async fn postgres_admin_url() -> Result<String> {
    POSTGRES_ADMIN
        .get_or_try_init(|| async {
            let found = Discovery::from_env().postgres().await?;
            tracing::debug!(url = %redact(&found.url), source = ?found.source, "postgres for tests");
            Ok::<_, Error>(found.url)
        })
        .await
        .cloned()
}

/// Makes sure PostgreSQL and Redis are available (environment, default
/// ports, or throwaway servers) and returns their URLs; for `cargo xtask test`,
/// which exports them as `LINA_TEST_DATABASE_URL` and `LINA_TEST_REDIS_URL`.
///
/// Runs its own small runtime: call it outside of any async runtime.
pub fn ensure_services_blocking() -> Result<Services> {
    block_on(Discovery::from_env().ensure())
}

/// Blocking [`Discovery::stop_throwaways`] for the default discovery.
pub fn stop_throwaways_blocking() -> Result<()> {
    block_on(Discovery::from_env().stop_throwaways())
}

fn block_on<T>(fut: impl std::future::Future<Output = Result<T>>) -> Result<T> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::io("build tokio runtime", e))?
        .block_on(fut)
}
