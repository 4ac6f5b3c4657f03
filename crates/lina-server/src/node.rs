//! Composition: builds one node's components from configuration. The only
//! place where the coordination backend is chosen.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use lina_config::{Config, DatabaseLink};
use lina_coord_api::{Coordinator, NodeId, NodeInfo};
use lina_coord_local::LocalCoordinator;
use sea_orm::{ConnectOptions, Database, DatabaseConnection};

/// One running node: configuration, identity, coordinator and database.
pub struct Node {
    /// The effective configuration.
    pub config: Arc<Config>,
    /// This node's id.
    pub node_id: NodeId,
    /// The coordination backend chosen by `cluster.enabled`.
    pub coordinator: Arc<dyn Coordinator>,
    /// The database of `database.default.link`.
    pub db: DatabaseConnection,
    /// When the node started (monotonic).
    pub started: Instant,
}

impl Node {
    /// Opens the database and starts the coordinator.
    pub async fn start(config: Config) -> anyhow::Result<Node> {
        let started = Instant::now();
        let node_id = NodeId::new(node_id(&config)).context("invalid node id")?;
        let address = advertised_address(&config);
        let coordinator: Arc<dyn Coordinator> = if config.cluster.enabled {
            bail!(
                "cluster mode needs the redis coordination backend, which this build does not include yet; set cluster.enabled: false"
            );
        } else {
            Arc::new(LocalCoordinator::single(NodeInfo::new(node_id.clone(), address)).await)
        };
        let db = open_database(&config.database.default.link).await?;
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
            started,
        })
    }

    /// Releases leadership, leaves the membership and closes the database.
    pub async fn stop(&self) {
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

fn advertised_address(config: &Config) -> String {
    let addr = config.server.bind_addr();
    if addr.ip().is_unspecified() {
        format!("127.0.0.1:{}", addr.port())
    } else {
        addr.to_string()
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
