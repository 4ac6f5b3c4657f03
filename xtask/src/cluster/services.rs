//! The PostgreSQL database and the Redis of a run-cluster.
//!
//! - PostgreSQL: the server of `--database`, else the one lina-testkit finds
//!   (`LINA_TEST_DATABASE_URL`, 127.0.0.1:5432, or a throwaway server); on it
//!   one database (`--db-name`, default `lina_cluster`) that run-cluster
//!   created and marked with a comment. It never touches another database:
//!   an existing database without the mark is refused, and `--fresh` drops
//!   only a marked one.
//! - Redis: by default a private `redis-server` under `target/run-cluster/redis`
//!   that `ctl restart-redis` may kill and restart; with `--redis URL` or
//!   `--shared-redis` a Redis run-cluster did not start and never restarts.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use nix::sys::signal::Signal;
use sea_orm::{ConnectOptions, ConnectionTrait, Database, DbBackend, Statement};

use super::procs::{self, isolated, redis_pong};
use crate::process::ChildGuard;

/// The comment that marks a database as run-cluster's.
pub const DB_MARK: &str = "created by cargo xtask run-cluster";

/// What happened to the cluster's database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DbOutcome {
    /// It did not exist and was created.
    Created,
    /// It existed (run-cluster's) and is used as it is.
    Reused,
    /// It existed (run-cluster's) and was dropped and created (`--fresh`).
    Recreated,
}

/// Creates, reuses or (with `fresh`) recreates the database `name` on the
/// server of `admin_url`; returns its URL.
pub async fn prepare_database(
    admin_url: &str,
    name: &str,
    fresh: bool,
) -> Result<(String, DbOutcome)> {
    super::files::check_db_name(name)?;
    let mut options = ConnectOptions::new(admin_url.to_string());
    options
        .max_connections(1)
        .min_connections(0)
        .connect_timeout(Duration::from_secs(5))
        .acquire_timeout(Duration::from_secs(5))
        .sqlx_logging(false);
    let db = Database::connect(options)
        .await
        .with_context(|| format!("connect to PostgreSQL at {}", redact(admin_url)))?;
    let row = db
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT shobj_description(oid, 'pg_database') AS mark FROM pg_database WHERE datname = $1",
            [name.into()],
        ))
        .await
        .context("look the database up in pg_database")?;
    let exists = row.is_some();
    let marked = match &row {
        Some(row) => row.try_get::<Option<String>>("", "mark")?.as_deref() == Some(DB_MARK),
        None => false,
    };
    if exists && !marked {
        bail!(
            "database {name} exists on {} and was not created by run-cluster: it is left \
             alone; choose another --db-name",
            redact(admin_url)
        );
    }
    let outcome = match (exists, fresh) {
        (true, false) => DbOutcome::Reused,
        (true, true) => {
            // Only a database carrying run-cluster's mark gets here.
            db.execute_unprepared(&format!("DROP DATABASE \"{name}\" WITH (FORCE)"))
                .await
                .with_context(|| format!("drop database {name}"))?;
            DbOutcome::Recreated
        }
        (false, _) => DbOutcome::Created,
    };
    if outcome != DbOutcome::Reused {
        db.execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
            .await
            .with_context(|| format!("create database {name}"))?;
        db.execute_unprepared(&format!("COMMENT ON DATABASE \"{name}\" IS '{DB_MARK}'"))
            .await
            .with_context(|| format!("mark database {name}"))?;
    }
    let _ = db.close().await;
    let mut url = url::Url::parse(admin_url)
        .with_context(|| format!("{} is not a URL", redact(admin_url)))?;
    url.set_path(&format!("/{name}"));
    Ok((url.to_string(), outcome))
}

/// `url` with its password replaced by `***`.
pub fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) => {
            if u.password().is_some() {
                let _ = u.set_password(Some("***"));
            }
            u.to_string()
        }
        Err(_) => "<unparsable url>".into(),
    }
}

/// Commands disabled on the private server, as lina-testkit does: any use fails.
const DISABLED_COMMANDS: [&str; 3] = ["FLUSHALL", "FLUSHDB", "KEYS"];
/// How long a redis-server may take to answer its first PING.
const REDIS_START: Duration = Duration::from_secs(10);

/// A `redis-server` owned by the supervisor: no persistence, `FLUSHALL`,
/// `FLUSHDB` and `KEYS` disabled, data and log under `dir`.
#[derive(Debug)]
pub struct PrivateRedis {
    binary: PathBuf,
    dir: PathBuf,
    port: u16,
    child: Option<ChildGuard>,
    paused: bool,
}

impl PrivateRedis {
    /// The installed `redis-server`, if any.
    pub fn binary() -> Option<PathBuf> {
        procs::find_binary("redis-server", &["/usr/bin", "/usr/local/bin"])
    }

    /// Starts one on a free port and waits for its PING.
    pub async fn start(binary: PathBuf, dir: &Path) -> Result<PrivateRedis> {
        std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
        let mut last = None;
        for _ in 0..5 {
            let mut redis = PrivateRedis {
                binary: binary.clone(),
                dir: dir.to_path_buf(),
                port: lina_testkit::free_port(),
                child: None,
                paused: false,
            };
            match redis.spawn_and_wait().await {
                Ok(()) => return Ok(redis),
                // Most likely another process took the port: try another.
                Err(e) => last = Some(e),
            }
        }
        Err(last.expect("at least one attempt"))
    }

    fn command(&self) -> Command {
        let mut cmd = isolated(&self.binary, "TERM");
        cmd.arg("--port")
            .arg(self.port.to_string())
            .args(["--bind", "127.0.0.1"])
            .args(["--save", ""])
            .args(["--appendonly", "no"])
            .args(["--daemonize", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .arg("--logfile")
            .arg(self.log());
        for command in DISABLED_COMMANDS {
            cmd.args(["--rename-command", command, ""]);
        }
        cmd.stdout(Stdio::null()).stderr(Stdio::null());
        cmd
    }

    async fn spawn_and_wait(&mut self) -> Result<()> {
        let mut child = ChildGuard::spawn(&mut self.command())?;
        let deadline = Instant::now() + REDIS_START;
        loop {
            if redis_pong(self.port, Duration::from_millis(200)).await {
                self.child = Some(child);
                self.paused = false;
                return Ok(());
            }
            if let Some(status) = child.try_wait()? {
                bail!(
                    "redis-server on port {} exited with {}:\n{}",
                    self.port,
                    procs::describe_exit(status),
                    procs::log_tail(&self.log(), 5)
                );
            }
            if Instant::now() > deadline {
                bail!(
                    "redis-server on port {} did not answer PING within {REDIS_START:?}",
                    self.port
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The server's log file.
    pub fn log(&self) -> PathBuf {
        self.dir.join("redis.log")
    }

    /// `redis://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The current process id, if it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(ChildGuard::id)
    }

    /// Whether it is paused (SIGSTOP).
    pub fn paused(&self) -> bool {
        self.paused
    }

    /// The exit status if the process ended since the last call.
    pub fn reap(&mut self) -> Option<String> {
        let child = self.child.as_mut()?;
        match child.try_wait() {
            Ok(Some(status)) => {
                self.child = None;
                self.paused = false;
                Some(procs::describe_exit(status))
            }
            _ => None,
        }
    }

    /// SIGKILL, then an empty server on the same port; returns the time it took.
    pub async fn restart(&mut self) -> Result<Duration> {
        let started = Instant::now();
        if let Some(child) = self.child.take() {
            child.signal(Signal::SIGKILL);
            child.wait()?;
        }
        let mut last = None;
        for _ in 0..5 {
            match self.spawn_and_wait().await {
                Ok(()) => return Ok(started.elapsed()),
                // The old socket may linger for a moment.
                Err(e) => last = Some(e),
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(last.unwrap_or_else(|| anyhow!("redis-server did not restart")))
    }

    /// SIGSTOP.
    pub fn pause(&mut self) -> Result<u32> {
        let pid = self.pid().context("redis-server is not running")?;
        if self.paused {
            bail!("redis-server (pid {pid}) is already paused");
        }
        procs::signal(pid, Signal::SIGSTOP);
        self.paused = true;
        Ok(pid)
    }

    /// SIGCONT.
    pub fn resume(&mut self) -> Result<u32> {
        let pid = self.pid().context("redis-server is not running")?;
        if !self.paused {
            bail!("redis-server (pid {pid}) is not paused");
        }
        procs::signal(pid, Signal::SIGCONT);
        self.paused = false;
        Ok(pid)
    }

    /// SIGTERM (after SIGCONT if paused), SIGKILL after `grace`.
    pub async fn stop(&mut self, grace: Duration) -> Option<String> {
        let child = self.child.as_mut()?;
        child.signal(Signal::SIGCONT);
        child.terminate();
        let deadline = Instant::now() + grace;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                self.child = None;
                return Some(procs::describe_exit(status));
            }
            if Instant::now() > deadline {
                child.signal(Signal::SIGKILL);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_redacted() {
        assert_eq!(
            redact("postgres://u:secret@127.0.0.1:5432/postgres"),
            "postgres://u:***@127.0.0.1:5432/postgres"
        );
        assert_eq!(
            redact("postgres://postgres@127.0.0.1/postgres"),
            "postgres://postgres@127.0.0.1/postgres"
        );
    }

    #[tokio::test]
    async fn the_private_redis_restarts_empty_on_its_port_and_pauses() {
        let Some(binary) = PrivateRedis::binary() else {
            panic!("redis-server is not installed: apt-get install redis-server");
        };
        let dir = tempfile::tempdir().unwrap();
        let mut redis = PrivateRedis::start(binary, dir.path()).await.unwrap();
        let port = redis.port;
        let first = redis.pid().unwrap();
        assert!(redis_pong(port, Duration::from_secs(1)).await);
        redis.pause().unwrap();
        assert!(!redis_pong(port, Duration::from_millis(200)).await);
        assert!(redis.pause().is_err());
        redis.resume().unwrap();
        assert!(redis_pong(port, Duration::from_secs(1)).await);
        redis.restart().await.unwrap();
        assert_ne!(redis.pid().unwrap(), first);
        assert_eq!(redis.port, port);
        assert!(redis_pong(port, Duration::from_secs(1)).await);
        assert_eq!(redis.reap(), None);
        assert!(redis.stop(Duration::from_secs(5)).await.is_some());
        assert!(!procs::alive(first));
    }
}
