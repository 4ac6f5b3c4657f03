//! Harness of the conformance suite on the local backend: each cluster is a
//! fresh [`LocalHub`]. Crates above the contract use it to run several
//! in-process nodes.

use std::sync::Arc;

use async_trait::async_trait;
use lina_coord_api::NodeInfo;
use lina_coord_api::testsuite::{Harness, NodeSettings, TestCluster, TestNode};

use crate::{LocalCoordinator, LocalHub, LocalSettings};

/// Makes local test deployments.
#[derive(Debug, Default, Clone, Copy)]
pub struct LocalHarness;

/// One local test deployment.
#[derive(Debug, Default)]
pub struct LocalTestCluster {
    hub: Arc<LocalHub>,
}

impl LocalTestCluster {
    /// The deployment's hub.
    pub fn hub(&self) -> &Arc<LocalHub> {
        &self.hub
    }

    /// A node of this deployment as a concrete [`LocalCoordinator`].
    pub async fn local_node(&self, settings: NodeSettings) -> Arc<LocalCoordinator> {
        let node = NodeInfo::new(settings.node_id, "127.0.0.1:0");
        Arc::new(
            LocalCoordinator::join(
                self.hub.clone(),
                node,
                LocalSettings {
                    election: settings.election,
                    heartbeat: settings.heartbeat,
                    member_ttl: settings.member_ttl,
                },
            )
            .await,
        )
    }
}

#[async_trait]
impl TestCluster for LocalTestCluster {
    async fn node(&self, settings: NodeSettings) -> TestNode {
        let coordinator = self.local_node(settings).await;
        let crashed = coordinator.clone();
        TestNode {
            coordinator,
            crash: Box::new(move || crashed.crash()),
        }
    }

    async fn break_lock(&self, name: &str) {
        self.hub.break_lock(name);
    }
}

#[async_trait]
impl Harness for LocalHarness {
    async fn cluster(&self) -> Box<dyn TestCluster> {
        Box::new(LocalTestCluster::default())
    }
}
