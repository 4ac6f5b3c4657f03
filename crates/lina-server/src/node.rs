//! Composition: builds one node's components from configuration. The only
//! place where the coordination backend is chosen.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow};
use lina_cache::{CacheRegistry, CacheSettings};
use lina_config::{Config, DatabaseLink};
use lina_coord_api::{Coordinator, LockOptions, NodeId, NodeInfo};
use lina_coord_local::LocalCoordinator;
use lina_coord_redis::{RedisCoordinator, RedisSettings};
use lina_scheduler::{HandlerRegistry, Scheduler, SchedulerSettings};
use sea_orm::{ConnectOptions, Database, DatabaseConnection};
use tokio_util::sync::CancellationToken;

use crate::plugin::{PluginSetup, Plugins, SourcePlugin};

/// One running node: configuration, identity, coordinator, database,
/// caches and scheduler.
pub struct Node {
    /// The effective configuration.
    pub config: Arc<Config>,
    /// This node's id.
    pub node_id: NodeId,
    /// The coordination backend chosen by `cluster.enabled`.
    pub coordinator: Arc<dyn Coordinator>,
    /// The database of `database.default.link`.
    pub db: DatabaseConnection,
    /// This node's revisioned caches.
    pub caches: CacheRegistry,
    /// This node's scheduler.
    pub scheduler: Scheduler,
    /// This node's plugin registry and lifecycle.
    pub plugins: Plugins,
    /// When the node started (monotonic).
    pub started: Instant,
    /// Stops the node's background watchers.
    stop: CancellationToken,
}

/// Name of the cluster lock held while migrations and seeding run.
pub const MIGRATIONS_LOCK: &str = "migrations";

/// Runs the migrations and the one-time seed under the cluster lock, so
/// nodes starting together do it once.
async fn migrate(coordinator: &dyn Coordinator, db: &DatabaseConnection) -> anyhow::Result<()> {
    let guard = coordinator
        .locks()
        .acquire(
            MIGRATIONS_LOCK,
            LockOptions::ttl(Duration::from_secs(30))
                .wait(Duration::from_secs(120))
                .watchdog(),
        )
        .await
        .context("cannot take the migrations lock")?;
    let result = async {
        lina_migration::migrate(db)
            .await
            .context("database migrations failed")?;
        crate::seed::seed(db)
            .await
            .context("seeding failed")
            .map(|_| ())
    }
    .await;
    if let Err(error) = guard.release().await {
        tracing::warn!(%error, "migrations lock was lost before its release");
    }
    result
}

impl Node {
    /// Starts a node with the source plugins of this build
    /// ([`crate::plugin::builtin`]).
    pub async fn start(config: Config) -> anyhow::Result<Node> {
        Node::start_with_plugins(config, crate::plugin::builtin()).await
    }

    /// Opens the database, starts the coordinator, migrates, starts the
    /// caches and the scheduler, then discovers plugins (`plugin.autoEnable`
    /// included) and starts the plugin watcher.
    pub async fn start_with_plugins(
        config: Config,
        sources: Vec<Arc<dyn SourcePlugin>>,
    ) -> anyhow::Result<Node> {
        let started = Instant::now();
        let node_id = NodeId::new(node_id(&config)).context("invalid node id")?;
        let address = advertised_address(&config);
        let info = NodeInfo::new(node_id.clone(), address);
        let coordinator: Arc<dyn Coordinator> = if config.cluster.enabled {
            Arc::new(connect_redis(&config, info).await?)
        } else {
            Arc::new(LocalCoordinator::single(info).await)
        };
        let db = open_database(&config.database.default.link).await?;
        migrate(&*coordinator, &db).await?;
        let caches = CacheRegistry::start(
            coordinator.clone(),
            CacheSettings {
                revision_poll: config.cache.revision_poll,
                max_stale: config.cache.max_stale,
            },
        );
        let default_timezone = lina_scheduler::parse_timezone(&config.scheduler.default_timezone)
            .map_err(|e| anyhow!("scheduler.defaultTimezone: {e}"))?;
        let handlers = Arc::new(HandlerRegistry::default());
        let scheduler = Scheduler::start(
            coordinator.clone(),
            db.clone(),
            &caches,
            handlers.clone(),
            SchedulerSettings {
                default_timezone,
                misfire_threshold: config.scheduler.misfire_threshold,
                shutdown_grace: config.shutdown.timeout / 2,
                session_cleanup_interval: config.session.cleanup_interval,
                session_timeout: config.session.timeout,
                singleton_ttl: (config.cluster.election.lease / 3).max(Duration::from_secs(1)),
                ..SchedulerSettings::default()
            },
        )
        .await
        .context("the scheduler did not start")?;
        let plugins = Plugins::new(
            PluginSetup {
                db: db.clone(),
                coordinator: coordinator.clone(),
                caches: &caches,
                handlers,
                jobs: scheduler.store().clone(),
                storage: config.plugin.dynamic.storage_path.clone().into(),
            },
            sources,
        )?;
        plugins.sync().await.context("plugin discovery failed")?;
        let auto: Vec<String> = config
            .plugin
            .auto_enable
            .iter()
            .map(|p| p.id.clone())
            .collect();
        plugins.auto_enable(&auto).await;
        let stop = CancellationToken::new();
        plugins.watch(config.cache.revision_poll, stop.clone());
        tracing::info!(
            node = %node_id,
            backend = %coordinator.backend(),
            database = %config.database.default.link.redacted(),
            "node started"
        );
        Ok(Node {
            config: Arc::new(config),
            node_id,
            coordinator,
            db,
            caches,
            scheduler,
            plugins,
            started,
            stop,
        })
    }

    /// Stops the scheduler (running jobs finish within the grace period),
    /// then releases leadership, leaves the membership and closes the
    /// database.
    pub async fn stop(&self) {
        self.stop.cancel();
        let report = self.scheduler.shutdown().await;
        tracing::info!(
            finished = report.finished,
            cancelled = report.cancelled,
            "scheduler stopped"
        );
        if let Err(error) = self.coordinator.shutdown().await {
            tracing::warn!(%error, "coordinator did not shut down cleanly");
        }
        if let Err(error) = self.db.clone().close().await {
            tracing::warn!(%error, "database did not close cleanly");
        }
        tracing::info!(node = %self.node_id, "node stopped");
    }
}

/// `cluster.nodeId` (or `LINA_NODE_ID`), else host name and listen port, so
/// several nodes on one host never share an id.
pub fn node_id(config: &Config) -> String {
    if let Some(id) = config.cluster.node_id() {
        return id.to_string();
    }
    let host = nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_string());
    format!("{host}:{}", config.server.bind_addr().port())
}

/// How long startup waits for Redis to answer: ten connect timeouts.
const REDIS_WAIT_CONNECTS: u32 = 10;

/// Connects to Redis, retrying transient failures for a bounded time, so a
/// node started alongside Redis waits for it; anything else (bad password,
/// bad settings) fails at once.
async fn connect_redis(config: &Config, info: NodeInfo) -> anyhow::Result<RedisCoordinator> {
    let redis = &config.cluster.redis;
    let settings = RedisSettings::from_config(redis, &config.cluster.election)
        .context("invalid cluster.redis settings")?;
    let wait = redis.connect_timeout * REDIS_WAIT_CONNECTS;
    let deadline = Instant::now() + wait;
    let target = match &redis.sentinel {
        Some(s) => format!("sentinel {} at {}", s.service_name, s.addresses.join(",")),
        None if !redis.cluster_nodes.is_empty() => redis.cluster_nodes.join(","),
        None => redis.address.clone(),
    };
    loop {
        match RedisCoordinator::connect(settings.clone(), info.clone()).await {
            Ok(coordinator) => return Ok(coordinator),
            Err(error) if error.is_retryable() && Instant::now() < deadline => {
                tracing::warn!(redis = %target, %error, "waiting for redis");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(error) => {
                return Err(anyhow!(error)).with_context(|| {
                    format!("redis at {target} is required in cluster mode and did not answer within {wait:?}")
                });
            }
        }
    }
}

/// The address this node announces to the membership: the bound IP, or,
/// when bound to every interface, the IP of the interface that routes
/// outward (found by connecting a UDP socket, which sends nothing), so
/// other nodes and operators see a reachable address; `127.0.0.1` only
/// when the host has no route at all.
pub fn advertised_address(config: &Config) -> String {
    let addr = config.server.bind_addr();
    if !addr.ip().is_unspecified() {
        return addr.to_string();
    }
    let outward = std::net::UdpSocket::bind(("0.0.0.0", 0))
        .and_then(|socket| {
            socket.connect(("192.0.2.1", 9))?;
            socket.local_addr()
        })
        .map(|local| local.ip())
        .ok()
        .filter(|ip| !ip.is_unspecified());
    match outward {
        Some(ip) => std::net::SocketAddr::new(ip, addr.port()).to_string(),
        None => format!("127.0.0.1:{}", addr.port()),
    }
}

/// Connects to the database; a SQLite file and its directory are created on
/// first start.
async fn open_database(link: &DatabaseLink) -> anyhow::Result<DatabaseConnection> {
    if let DatabaseLink::Sqlite { path, .. } = link
        && path != ":memory:"
        && let Some(dir) = std::path::Path::new(path).parent()
        && !dir.as_os_str().is_empty()
    {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create the database directory {}", dir.display()))?;
    }
    let mut options = ConnectOptions::new(link.connection_url().expose().to_string());
    options
        .connect_timeout(Duration::from_secs(10))
        .sqlx_logging(false);
    let db = Database::connect(options)
        .await
        .with_context(|| format!("cannot open the database {}", link.redacted()))?;
    db.ping()
        .await
        .with_context(|| format!("database {} does not answer", link.redacted()))?;
    Ok(db)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_bound_to_every_interface_announces_a_reachable_address() {
        let mut config = Config::default();
        config.server.address = "127.0.0.1:9130".parse().unwrap();
        assert_eq!(advertised_address(&config), "127.0.0.1:9130");
        config.server.address = ":9131".parse().unwrap();
        let announced: std::net::SocketAddr = advertised_address(&config).parse().unwrap();
        assert_eq!(announced.port(), 9131);
        assert!(!announced.ip().is_unspecified(), "{announced}");
    }
}
