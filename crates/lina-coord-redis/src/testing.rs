//! Harness of the conformance suite on Redis: one private `redis-server`
//! (from `lina-testkit`, with `FLUSHALL`, `FLUSHDB` and `KEYS` renamed away)
//! per harness, one fresh namespace per test cluster.

use std::sync::Arc;

use async_trait::async_trait;
use fred::prelude::{Builder, Client, ClientLike, KeysInterface};
use lina_coord_api::testsuite::{Harness, NodeSettings, TestCluster, TestNode};
use lina_coord_api::{NodeInfo, random_hex128};
use lina_testkit::RedisServer;
use tokio::sync::OnceCell;

use crate::{Keys, RedisCoordinator, RedisSettings};

/// Makes Redis test deployments on a private server started on first use.
#[derive(Default, Clone)]
pub struct RedisHarness {
    server: Arc<OnceCell<Arc<RedisServer>>>,
}

impl RedisHarness {
    /// A harness whose clusters live on `server`.
    pub fn on(server: Arc<RedisServer>) -> Self {
        RedisHarness {
            server: Arc::new(OnceCell::new_with(Some(server))),
        }
    }

    /// The private server (started on first call).
    pub async fn server(&self) -> Arc<RedisServer> {
        self.server
            .get_or_init(|| async {
                Arc::new(
                    RedisServer::start()
                        .await
                        .expect("cannot start a private redis-server for the tests"),
                )
            })
            .await
            .clone()
    }

    /// A new deployment in a fresh namespace.
    pub async fn redis_cluster(&self) -> RedisTestCluster {
        let server = self.server().await;
        let namespace = format!("t{}", &random_hex128()[..12]);
        let settings = RedisSettings::from_url(&server.url(), &namespace)
            .expect("testkit gives a valid redis url");
        let admin = Builder::from_config(settings.fred_config().expect("valid config"))
            .build()
            .expect("admin client builds");
        admin.init().await.expect("admin client connects");
        RedisTestCluster {
            server,
            settings,
            admin,
        }
    }
}

/// One Redis test deployment: a namespace on the private server.
pub struct RedisTestCluster {
    server: Arc<RedisServer>,
    settings: RedisSettings,
    admin: Client,
}

impl RedisTestCluster {
    /// The server the deployment lives on.
    pub fn server(&self) -> &Arc<RedisServer> {
        &self.server
    }

    /// Connection settings of this deployment (namespace included).
    pub fn settings(&self) -> &RedisSettings {
        &self.settings
    }

    /// A plain client for fault injection.
    pub fn admin(&self) -> &Client {
        &self.admin
    }

    /// A node of this deployment as a concrete [`RedisCoordinator`].
    pub async fn redis_node(&self, settings: NodeSettings) -> Arc<RedisCoordinator> {
        let mut redis = self.settings.clone();
        redis.election = settings.election;
        redis.heartbeat = settings.heartbeat;
        redis.member_ttl = settings.member_ttl;
        let node = NodeInfo::new(settings.node_id, "127.0.0.1:0");
        Arc::new(
            RedisCoordinator::connect(redis, node)
                .await
                .expect("test node connects"),
        )
    }

    /// The backend key of lock `name`.
    pub fn lock_key(&self, name: &str) -> String {
        Keys::new(&self.settings.namespace).lock(name)
    }
}

#[async_trait]
impl TestCluster for RedisTestCluster {
    async fn node(&self, settings: NodeSettings) -> TestNode {
        let coordinator = self.redis_node(settings).await;
        let crashed = coordinator.clone();
        TestNode {
            coordinator,
            crash: Box::new(move || crashed.crash()),
        }
    }

    async fn break_lock(&self, name: &str) {
        let _: i64 = self
            .admin
            .del(self.lock_key(name))
            .await
            .expect("delete the lock key");
    }
}

#[async_trait]
impl Harness for RedisHarness {
    async fn cluster(&self) -> Box<dyn TestCluster> {
        Box::new(self.redis_cluster().await)
    }
}
