//! A private throwaway PostgreSQL cluster for the restart scenario, started
//! by lina-testkit's own code (`Discovery::postgres` with a state directory
//! of its own and a probe port nothing listens on: `initdb` + `pg_ctl start`
//! from `/usr/lib/postgresql/*/bin`, as the `postgres` user when we are
//! root), restarted here with `pg_ctl restart -m fast` the same way, and
//! destroyed on drop. The shared PostgreSQL is never touched.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use lina_testkit::{Discovery, ServiceSource};

use super::util::tail;

/// What lina-testkit records about the cluster it started (`postgres.json`).
#[derive(Debug, serde::Deserialize)]
struct State {
    port: u16,
    root: PathBuf,
    bin_dir: PathBuf,
}

/// A private PostgreSQL server, destroyed on drop.
pub struct PrivatePostgres {
    discovery: Discovery,
    admin_url: String,
    state: State,
    _dir: tempfile::TempDir,
}

impl PrivatePostgres {
    /// `initdb` and start a new cluster on a free port.
    pub async fn start() -> Result<PrivatePostgres> {
        let dir = tempfile::Builder::new()
            .prefix("lina-chaos-pg-")
            .tempdir()
            .context("create a directory for the private PostgreSQL")?;
        let discovery = Discovery {
            use_env: false,
            redis_probe: SocketAddr::from(([127, 0, 0, 1], lina_testkit::free_port())),
            postgres_probe: SocketAddr::from(([127, 0, 0, 1], lina_testkit::free_port())),
            state_dir: dir.path().to_path_buf(),
        };
        let found = discovery
            .postgres()
            .await
            .context("start a private PostgreSQL (initdb + pg_ctl, via lina-testkit)")?;
        if found.source != (ServiceSource::Throwaway { started: true }) {
            bail!(
                "expected a new private PostgreSQL, got one {:?}",
                found.source
            );
        }
        let state_file = dir.path().join("postgres.json");
        let state: State = serde_json::from_slice(
            &std::fs::read(&state_file)
                .with_context(|| format!("read {}", state_file.display()))?,
        )
        .context("parse postgres.json")?;
        Ok(PrivatePostgres {
            discovery,
            admin_url: found.url,
            state,
            _dir: dir,
        })
    }

    /// `postgres://postgres@127.0.0.1:PORT/postgres`.
    pub fn admin_url(&self) -> &str {
        &self.admin_url
    }

    /// The server's port.
    pub fn port(&self) -> u16 {
        self.state.port
    }

    /// The server log.
    pub fn log(&self) -> PathBuf {
        self.state.root.join("postgres.log")
    }

    /// `pg_ctl restart -m fast -w`; returns how long the command took.
    pub async fn restart_fast(&self) -> Result<Duration> {
        self.pg_ctl(&["-m", "fast", "restart"]).await
    }

    /// `pg_ctl stop -m fast -w`: down until [`PrivatePostgres::start_again`].
    pub async fn stop_fast(&self) -> Result<Duration> {
        self.pg_ctl(&["-m", "fast", "stop"]).await
    }

    /// `pg_ctl start -w` with the options lina-testkit started it with
    /// (port, socket directory, no fsync).
    pub async fn start_again(&self) -> Result<Duration> {
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -c unix_socket_directories='{}' \
             -c fsync=off -c synchronous_commit=off -c full_page_writes=off \
             -c max_connections=300",
            self.state.port,
            self.state.root.display()
        );
        self.pg_ctl(&["-o", &options, "start"]).await
    }

    async fn pg_ctl(&self, action: &[&str]) -> Result<Duration> {
        let data = self.state.root.join("data");
        let log = self.log();
        let mut args = vec![
            "-D".to_string(),
            data.display().to_string(),
            "-l".into(),
            log.display().to_string(),
            "-w".into(),
            "-t".into(),
            "60".into(),
        ];
        args.extend(action.iter().map(|a| a.to_string()));
        let started = Instant::now();
        let ok = run_pg_tool(
            &self.state.bin_dir.join("pg_ctl"),
            &self.state.root,
            &args,
            &self.state.root.join("pg_ctl.log"),
        )
        .await?;
        if !ok {
            bail!(
                "pg_ctl {} failed: {}; {}",
                action.join(" "),
                tail(&self.state.root.join("pg_ctl.log"), 600),
                tail(&log, 600)
            );
        }
        Ok(started.elapsed())
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let discovery = self.discovery.clone();
        // A thread with its own runtime: this may run inside a runtime.
        let _ = std::thread::spawn(move || {
            if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                let _ = rt.block_on(discovery.stop_throwaways());
            }
        })
        .join();
    }
}

/// Runs a PostgreSQL tool as the `postgres` OS user when we are root (the
/// server refuses to run as root), as lina-testkit does; output to `log`.
async fn run_pg_tool(program: &Path, cwd: &Path, args: &[String], log: &Path) -> Result<bool> {
    let mut cmd = if nix::unistd::geteuid().is_root() {
        let mut c = std::process::Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        std::process::Command::new(program)
    };
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .with_context(|| format!("open {}", log.display()))?;
    let err = out.try_clone()?;
    cmd.args(args)
        .current_dir(cwd)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err);
    let status = tokio::process::Command::from(cmd)
        .status()
        .await
        .with_context(|| format!("run {}", program.display()))?;
    Ok(status.success())
}
