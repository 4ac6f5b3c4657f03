//! Fresh PostgreSQL databases per test, and the shared throwaway cluster.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection};

use crate::error::{Error, Result};
use crate::net::free_port;
use crate::sys;

/// How long connecting to a server may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long dropping a database on [`TestDatabase`]'s drop may take.
const DROP_TIMEOUT: Duration = Duration::from_secs(15);

/// A new, uniquely named, empty database on the discovered PostgreSQL server.
///
/// The database name is `lina_t_<unix seconds>_<pid>_<random>`. It is dropped
/// (`DROP DATABASE … WITH (FORCE)`, best effort, bounded in time) when this
/// value is dropped, also when the test panics.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> lina_testkit::Result<()> {
/// let db = lina_testkit::fresh_database().await?;
/// assert!(db.url().starts_with("postgres://"));
/// assert!(db.url().ends_with(db.name()));
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct TestDatabase {
    name: String,
    url: String,
    admin_url: String,
    keep: bool,
}

impl TestDatabase {
    /// `postgres://…/<name>`: the URL of the new database.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The database name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Keeps the database after the test (for debugging); it is not dropped.
    pub fn keep(mut self) -> Self {
        self.keep = true;
        self
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if self.keep {
            return;
        }
        let admin_url = self.admin_url.clone();
        let name = self.name.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        // A thread with its own runtime, so this works inside or outside tokio.
        let spawned = std::thread::Builder::new()
            .name("lina-testkit-dropdb".into())
            .spawn(move || {
                let result = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| e.to_string())
                    .and_then(|rt| {
                        rt.block_on(async {
                            tokio::time::timeout(DROP_TIMEOUT, drop_database(&admin_url, &name))
                                .await
                                .map_err(|_| "timed out".to_string())?
                                .map_err(|e| e.to_string())
                        })
                    });
                let _ = tx.send(result);
            });
        if spawned.is_ok() {
            match rx.recv_timeout(DROP_TIMEOUT + Duration::from_secs(2)) {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    tracing::warn!(database = %self.name, error = %e, "drop test database failed")
                }
                Err(_) => tracing::warn!(database = %self.name, "drop test database timed out"),
            }
        }
    }
}

/// Creates a new uniquely named database on the discovered server
/// (see [`Discovery`](crate::Discovery) for how the server is found).
pub async fn fresh_database() -> Result<TestDatabase> {
    let admin_url = crate::discovery::postgres_admin_url().await?;
    create_database(&admin_url).await
}

/// Creates a new uniquely named database on the server of `admin_url`.
pub async fn create_database(admin_url: &str) -> Result<TestDatabase> {
    let name = unique_name();
    let url = with_database(admin_url, &name)?;
    let conn = connect(admin_url).await?;
    let sql = format!("CREATE DATABASE \"{name}\"");
    let mut attempt = 0;
    let created = loop {
        attempt += 1;
        match conn.execute_unprepared(&sql).await {
            Ok(_) => break Ok(()),
            // Concurrent CREATE DATABASE from template1 can collide; try again.
            Err(e) if attempt < 5 && e.to_string().contains("being accessed by other users") => {
                tokio::time::sleep(Duration::from_millis(50 * attempt)).await;
            }
            Err(e) => break Err(Error::db(format!("create database {name}"), e)),
        }
    };
    let _ = conn.close().await;
    created?;
    Ok(TestDatabase {
        name,
        url,
        admin_url: admin_url.to_string(),
        keep: false,
    })
}

async fn drop_database(admin_url: &str, name: &str) -> Result<()> {
    let conn = connect(admin_url).await?;
    let result = conn
        .execute_unprepared(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
        .await;
    let _ = conn.close().await;
    result
        .map(|_| ())
        .map_err(|e| Error::db(format!("drop database {name}"), e))
}

fn unique_name() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    format!(
        "lina_t_{secs}_{}_{:08x}",
        std::process::id(),
        rand::random::<u32>()
    )
}

/// `url` with its path replaced by `/<database>`.
pub(crate) fn with_database(url: &str, database: &str) -> Result<String> {
    let mut parsed = url::Url::parse(url).map_err(|e| Error::Url {
        url: redact(url),
        detail: e.to_string(),
    })?;
    parsed.set_path(&format!("/{database}"));
    Ok(parsed.to_string())
}

/// `url` without its password, for messages.
pub(crate) fn redact(url: &str) -> String {
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

/// Connects with one connection and a short timeout.
pub(crate) async fn connect(url: &str) -> Result<DatabaseConnection> {
    let mut opts = ConnectOptions::new(url.to_string());
    opts.max_connections(1)
        .min_connections(0)
        .connect_timeout(CONNECT_TIMEOUT)
        .acquire_timeout(CONNECT_TIMEOUT)
        .sqlx_logging(false);
    Database::connect(opts)
        .await
        .map_err(|e| Error::db(format!("connect to {}", redact(url)), e))
}

/// Whether `url` accepts a connection and answers `SELECT 1`.
pub(crate) async fn answers(url: &str) -> bool {
    let attempt = async {
        let conn = connect(url).await.ok()?;
        let ok = conn.execute_unprepared("SELECT 1").await.is_ok();
        let _ = conn.close().await;
        Some(ok)
    };
    matches!(
        tokio::time::timeout(CONNECT_TIMEOUT, attempt).await,
        Ok(Some(true))
    )
}

/// The directory holding `initdb` and `pg_ctl` of the newest installed PostgreSQL.
pub(crate) fn postgres_bin_dir() -> Option<PathBuf> {
    let mut versioned: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse::<u32>().ok()?;
            Some((version, e.path().join("bin")))
        })
        .collect();
    versioned.sort();
    let from_lib = versioned.into_iter().rev().map(|(_, dir)| dir);
    let from_path = sys::find_binary("initdb", &[PathBuf::from("/usr/local/bin")])
        .and_then(|p| std::fs::canonicalize(p).ok())
        .and_then(|p| p.parent().map(Path::to_path_buf));
    from_path
        .into_iter()
        .chain(from_lib)
        .find(|dir| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file())
}

/// A throwaway PostgreSQL cluster that outlives this process.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct PgCluster {
    pub(crate) port: u16,
    pub(crate) root: PathBuf,
    pub(crate) bin_dir: PathBuf,
}

impl PgCluster {
    pub(crate) fn admin_url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    fn data_dir(&self) -> PathBuf {
        self.root.join("data")
    }

    fn log(&self) -> PathBuf {
        self.root.join("postgres.log")
    }

    /// Runs a PostgreSQL tool, as the `postgres` OS user when we are root
    /// (initdb and postgres refuse to run as root). Output goes to `log`
    /// (never to our stdout, which a test runner may be waiting on).
    async fn run_tool(&self, tool: &str, args: &[String], log: &Path) -> Result<bool> {
        let program = self.bin_dir.join(tool);
        let mut cmd = if sys::is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&program);
            c
        } else {
            Command::new(&program)
        };
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .map_err(|e| Error::io(format!("open {}", log.display()), e))?;
        let err = out
            .try_clone()
            .map_err(|e| Error::io(format!("open {}", log.display()), e))?;
        cmd.args(args)
            .current_dir(&self.root)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        let status = tokio::process::Command::from(cmd)
            .status()
            .await
            .map_err(|e| Error::io(format!("run {}", program.display()), e))?;
        Ok(status.success())
    }

    /// `initdb` + `pg_ctl start` on a free port under `state_dir/postgres`.
    pub(crate) async fn init_and_start(state_dir: &Path, bin_dir: PathBuf) -> Result<PgCluster> {
        let root = state_dir.join("postgres");
        if root.exists() {
            std::fs::remove_dir_all(&root)
                .map_err(|e| Error::io(format!("remove stale {}", root.display()), e))?;
        }
        sys::ensure_dir(&root)?;
        if sys::is_root() {
            let user = nix::unistd::User::from_name("postgres")
                .ok()
                .flatten()
                .ok_or_else(|| {
                    Error::Unavailable(
                        "running as root and there is no `postgres` OS user to run initdb as: \
                         install postgresql (apt-get install postgresql) or set \
                         LINA_TEST_DATABASE_URL"
                            .into(),
                    )
                })?;
            nix::unistd::chown(&root, Some(user.uid), Some(user.gid)).map_err(|e| {
                Error::io(
                    format!("chown {} to postgres", root.display()),
                    std::io::Error::from(e),
                )
            })?;
        }
        let mut cluster = PgCluster {
            port: 0,
            root,
            bin_dir,
        };
        let setup_log = cluster.root.join("setup.log");
        let data = cluster.data_dir().display().to_string();
        let initdb = [
            "-D",
            &data,
            "-U",
            "postgres",
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",
            "--no-sync",
        ]
        .map(String::from);
        if !cluster.run_tool("initdb", &initdb, &setup_log).await? {
            return Err(Error::StartFailed {
                what: format!("initdb -D {data}"),
                detail: sys::log_tail(&setup_log, 1200),
            });
        }
        let mut last_err = None;
        for _ in 0..3 {
            cluster.port = free_port();
            let server_opts = format!(
                "-p {} -c listen_addresses=127.0.0.1 -c unix_socket_directories='{}' \
                 -c fsync=off -c synchronous_commit=off -c full_page_writes=off \
                 -c max_connections=300",
                cluster.port,
                cluster.root.display()
            );
            let start = [
                "-D".to_string(),
                data.clone(),
                "-l".to_string(),
                cluster.log().display().to_string(),
                "-w".to_string(),
                "-t".to_string(),
                "60".to_string(),
                "-o".to_string(),
                server_opts,
                "start".to_string(),
            ];
            if cluster.run_tool("pg_ctl", &start, &setup_log).await?
                && answers(&cluster.admin_url()).await
            {
                return Ok(cluster);
            }
            cluster.stop().await;
            last_err = Some(Error::StartFailed {
                what: format!("postgres on port {}", cluster.port),
                detail: format!(
                    "{}; {}",
                    sys::log_tail(&setup_log, 600),
                    sys::log_tail(&cluster.log(), 600)
                ),
            });
        }
        Err(last_err.expect("at least one start attempt"))
    }

    /// `pg_ctl stop -m immediate`, best effort, then removes the directory.
    pub(crate) async fn stop(&self) {
        let args = [
            "-D",
            &self.data_dir().display().to_string(),
            "-m",
            "immediate",
            "-w",
            "stop",
        ]
        .map(String::from);
        let _ = self
            .run_tool("pg_ctl", &args, &self.root.join("setup.log"))
            .await;
    }

    /// Stops the cluster and removes its files.
    pub(crate) async fn destroy(&self) {
        self.stop().await;
        let _ = std::fs::remove_dir_all(&self.root);
    }
}
