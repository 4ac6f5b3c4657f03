//! One scenario's environment: a private redis-server, a database (a fresh
//! one on the found PostgreSQL, or one on a private PostgreSQL), the three
//! nodes, a database connection for the checks, and the helpers the
//! scenarios share (admin login, test job, roles, users, fire accounting).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use lina_testkit::{RedisServer, TestDatabase};
use reqwest::Method;
use sea_orm::{ConnectOptions, Database, DatabaseConnection};
use serde_json::{Value, json};

use super::api::{Api, flatten_menus};
use super::cluster::{Cluster, Settings, Wiring};
use super::fires::{self, FireAccounting, FireWindow, Kill};
use super::load::{Load, LoadConfig, Targets};
use super::pg::PrivatePostgres;
use super::util::{Clock, Secrets};

/// The seeded administrator (API.md).
pub const ADMIN: &str = "admin";
/// Its seeded password.
pub const ADMIN_PASSWORD: &str = "admin123";
/// Nodes per cluster.
pub const NODES: usize = 3;

/// What every scenario gets from the runner.
#[derive(Clone)]
pub struct Ctx {
    /// Scenario number.
    pub id: u8,
    /// `target/chaos/<id>-<name>`.
    pub dir: PathBuf,
    /// The server binary.
    pub binary: PathBuf,
    /// `--short`.
    pub short: bool,
    /// Load tasks.
    pub concurrency: usize,
    /// Load requests/s.
    pub rate: u32,
    /// Secrets of the whole run.
    pub secrets: Secrets,
    /// Node timings.
    pub settings: Settings,
    /// The scenario's clock.
    pub clock: Clock,
    /// Control requests.
    pub api: Api,
    /// The nodes' JWT secret.
    pub jwt_secret: String,
    /// The directories of every scenario of this run (for the log scan).
    pub run_dirs: Vec<PathBuf>,
}

/// Where the database lives.
enum Store {
    Shared(TestDatabase),
    Private {
        _database: TestDatabase,
        server: PrivatePostgres,
    },
}

/// Options of [`Env::start`].
#[derive(Debug, Clone, Default)]
pub struct EnvOptions {
    /// Require this password on the private redis-server.
    pub redis_password: Option<String>,
    /// Use a private PostgreSQL server instead of the found one.
    pub private_postgres: bool,
}

/// Redis, database and nodes of one scenario. Dropped in field order: the
/// nodes stop before Redis and the database go.
pub struct Env {
    /// The three nodes.
    pub cluster: Cluster,
    /// The private redis-server.
    pub redis: RedisServer,
    /// A connection of our own to the nodes' database.
    pub db: DatabaseConnection,
    store: Store,
    /// The scenario's context.
    pub ctx: Ctx,
}

impl Env {
    /// Starts Redis, creates the database and starts the nodes.
    pub async fn start(ctx: &Ctx, options: EnvOptions) -> Result<Env> {
        let redis = match &options.redis_password {
            Some(password) => {
                RedisServer::builder()
                    .password(password.clone())
                    .start()
                    .await
            }
            None => RedisServer::start().await,
        }
        .context("start a private redis-server")?;
        let store = if options.private_postgres {
            let server = PrivatePostgres::start().await?;
            let database = lina_testkit::create_database(server.admin_url())
                .await
                .context("create a database on the private PostgreSQL")?
                // The whole server is destroyed at the end.
                .keep();
            Store::Private {
                _database: database,
                server,
            }
        } else {
            Store::Shared(
                lina_testkit::fresh_database()
                    .await
                    .context("create a fresh PostgreSQL database")?,
            )
        };
        let database_url = match &store {
            Store::Shared(d) | Store::Private { _database: d, .. } => d.url().to_string(),
        };
        let cluster = Cluster::start(
            Wiring {
                binary: &ctx.binary,
                dir: &ctx.dir,
                redis_port: redis.port(),
                redis_password: options.redis_password.as_deref(),
                database_url: &database_url,
                jwt_secret: &ctx.jwt_secret,
            },
            &ctx.settings,
            NODES,
        )
        .await?;
        let mut connect = ConnectOptions::new(database_url);
        connect
            .max_connections(2)
            .min_connections(0)
            .connect_timeout(Duration::from_secs(5))
            .acquire_timeout(Duration::from_secs(10))
            .sqlx_logging(false);
        let db = Database::connect(connect)
            .await
            .context("connect to the nodes' database")?;
        Ok(Env {
            cluster,
            redis,
            db,
            store,
            ctx: ctx.clone(),
        })
    }

    /// The private PostgreSQL, when the scenario asked for one.
    pub fn private_postgres(&self) -> Option<&PrivatePostgres> {
        match &self.store {
            Store::Private { server, .. } => Some(server),
            Store::Shared(_) => None,
        }
    }

    /// Base URL of node `i`.
    pub fn base(&self, i: usize) -> String {
        self.cluster.nodes[i].base.clone()
    }

    /// Logs the admin in on node `i`.
    pub async fn admin(&self, i: usize) -> Result<String> {
        self.ctx.secrets.add("admin password", ADMIN_PASSWORD);
        self.ctx
            .api
            .login(&self.base(i), ADMIN, ADMIN_PASSWORD)
            .await
    }

    /// Starts the load as the admin.
    pub async fn load(&self, targets: Targets, phase: &str) -> Result<Load> {
        Load::start(
            self.ctx.clock,
            targets,
            LoadConfig {
                concurrency: self.ctx.concurrency,
                rate: self.ctx.rate,
                username: ADMIN.into(),
                password: ADMIN_PASSWORD.into(),
            },
            self.ctx.api.clone(),
            phase,
        )
        .await
    }

    /// Creates the scenario's master_only job: `host:wait` (0 ms) `@every
    /// 1s`, parallel (so the claim alone, not the singleton lock, must keep
    /// each fire to one run), misfire policy fire_once; returns its id.
    pub async fn create_job(&self, token: &str) -> Result<i64> {
        let handlers = self
            .ctx
            .api
            .ok(
                Method::GET,
                &self.base(0),
                "/api/v1/job/handler",
                Some(token),
                None,
            )
            .await?;
        if !handlers.to_string().contains("host:wait") {
            bail!("handler host:wait is not registered: {handlers}");
        }
        let data = self
            .ctx
            .api
            .ok(
                Method::POST,
                &self.base(0),
                "/api/v1/job",
                Some(token),
                Some(&json!({
                    "name": format!("chaos-every-second-{}", self.ctx.id),
                    "handlerRef": "host:wait",
                    "params": {"ms": 0},
                    "cronExpr": "@every 1s",
                    "scope": "master_only",
                    "concurrency": "parallel",
                    "maxConcurrency": 5,
                    "misfirePolicy": "fire_once",
                    "timeoutSeconds": 10,
                    "status": "enabled",
                })),
            )
            .await?;
        data["id"]
            .as_i64()
            .ok_or_else(|| anyhow!("no id in the job creation answer: {data}"))
    }

    /// Waits until the job has a successful cron run; returns its instant.
    pub async fn wait_for_runs(&self, job: i64) -> Result<i64> {
        let deadline = self.ctx.clock.now() + Duration::from_secs(30);
        loop {
            let (logs, _) = fires::job_rows(&self.db, job).await?;
            if let Some(first) = logs
                .iter()
                .filter(|l| l.trigger == "cron" && l.status == "success")
                .map(|l| l.scheduled_at)
                .min()
            {
                return Ok(first);
            }
            if self.ctx.clock.now() > deadline {
                bail!("job {job} has not run within 30 s: {logs:?}");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The fire accounting of `job` over `[from, to)` (Unix ms).
    pub async fn fires(
        &self,
        job: i64,
        from: i64,
        to: i64,
        kills: &[Kill],
    ) -> Result<FireAccounting> {
        let (logs, claims) = fires::job_rows(&self.db, job).await?;
        Ok(fires::account(
            FireWindow {
                from,
                to,
                period: 1000,
                late_after: 500,
                kill_grace: 1000,
            },
            &logs,
            &claims,
            kills,
        ))
    }

    /// Menu ids by permission code (every menu with a code).
    pub async fn menus_by_perm(&self, token: &str) -> Result<BTreeMap<String, i64>> {
        let data = self
            .ctx
            .api
            .ok(
                Method::GET,
                &self.base(0),
                "/api/v1/menu",
                Some(token),
                None,
            )
            .await?;
        let mut menus = Vec::new();
        flatten_menus(&data["list"], &mut menus);
        Ok(menus
            .into_iter()
            .filter(|(_, perms)| !perms.is_empty())
            .map(|(id, perms)| (perms, id))
            .collect())
    }

    /// Creates a role with these menus; returns its id.
    pub async fn create_role(&self, token: &str, key: &str, menus: &[i64]) -> Result<i64> {
        let data = self
            .ctx
            .api
            .ok(
                Method::POST,
                &self.base(0),
                "/api/v1/role",
                Some(token),
                Some(&json!({"name": key, "key": key, "menuIds": menus})),
            )
            .await?;
        data["id"]
            .as_i64()
            .ok_or_else(|| anyhow!("no id in the role creation answer: {data}"))
    }

    /// Creates a user (random password, remembered as a secret) in `roles`;
    /// returns its id and password.
    pub async fn create_user(
        &self,
        token: &str,
        username: &str,
        roles: &[i64],
    ) -> Result<(i64, String)> {
        let password = format!("Pw-{}", super::util::random_string(20));
        self.ctx
            .secrets
            .add(&format!("password of {username}"), &password);
        let data = self
            .ctx
            .api
            .ok(
                Method::POST,
                &self.base(0),
                "/api/v1/user",
                Some(token),
                Some(&json!({
                    "username": username,
                    "password": password,
                    "nickname": username,
                    "status": 1,
                    "roleIds": roles,
                })),
            )
            .await?;
        let id = data["id"]
            .as_i64()
            .ok_or_else(|| anyhow!("no id in the user creation answer: {data}"))?;
        Ok((id, password))
    }

    /// Replaces a role's menus through node `i`; returns the answer.
    pub async fn set_role_menus(
        &self,
        i: usize,
        token: &str,
        role: i64,
        menus: &[i64],
    ) -> Result<super::api::Answer> {
        self.ctx
            .api
            .call(
                Method::PUT,
                &self.base(i),
                &format!("/api/v1/role/{role}"),
                Some(token),
                Some(&json!({ "menuIds": menus })),
            )
            .await
    }

    /// The menu ids of a role as the database holds them (via the API).
    pub async fn role_menus(&self, i: usize, token: &str, role: i64) -> Result<Vec<i64>> {
        let data: Value = self
            .ctx
            .api
            .ok(
                Method::GET,
                &self.base(i),
                &format!("/api/v1/role/{role}"),
                Some(token),
                None,
            )
            .await?;
        Ok(data["menuIds"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_i64).collect())
            .unwrap_or_default())
    }
}
