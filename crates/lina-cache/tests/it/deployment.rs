//! Test deployments of three nodes on either backend, with fault injection.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use lina_coord_api::testsuite::NodeSettings;
use lina_coord_api::{
    BackendKind, Coordinator, Election, Epoch, Error, Event, EventItem, Events, HealthSnapshot, Kv,
    Locks, Membership, NodeId, Result, Revision, RevisionKey, Revisions, Subscription,
};
use lina_coord_local::testing::LocalTestCluster;
use lina_coord_redis::testing::{RedisHarness, RedisTestCluster};
use tokio::sync::broadcast;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Local,
    Redis,
}

/// Generates `mod $name { local, redis }` tests calling `$name(Kind)`.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn local() {
                    super::$name($crate::deployment::Kind::Local).await;
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn redis() {
                    super::$name($crate::deployment::Kind::Redis).await;
                }
            }
        )*
    };
}

/// A coordinator whose events can be suppressed and whose revision reads
/// can be made to fail, on any backend.
pub struct Faulty {
    inner: Arc<dyn Coordinator>,
    faults: Arc<Faults>,
    events: FaultyEvents,
    revisions: FaultyRevisions,
}

#[derive(Default)]
pub struct Faults {
    pub drop_events: AtomicBool,
    pub fail_revisions: AtomicBool,
}

struct FaultyEvents {
    inner: Arc<dyn Coordinator>,
    faults: Arc<Faults>,
}

struct FaultyRevisions {
    inner: Arc<dyn Coordinator>,
    faults: Arc<Faults>,
}

impl Faulty {
    pub fn wrap(inner: Arc<dyn Coordinator>) -> Arc<Faulty> {
        let faults = Arc::new(Faults::default());
        Arc::new(Faulty {
            events: FaultyEvents {
                inner: inner.clone(),
                faults: faults.clone(),
            },
            revisions: FaultyRevisions {
                inner: inner.clone(),
                faults: faults.clone(),
            },
            inner,
            faults,
        })
    }

    pub fn faults(&self) -> &Faults {
        &self.faults
    }
}

#[async_trait]
impl Events for FaultyEvents {
    async fn publish(&self, event: Event) -> Result<()> {
        self.inner.events().publish(event).await
    }

    fn subscribe(&self) -> Subscription {
        let mut upstream = self.inner.events().subscribe();
        let (tx, rx) = broadcast::channel(4096);
        let faults = self.faults.clone();
        tokio::spawn(async move {
            while let Some(item) = upstream.recv().await {
                let drop = faults.drop_events.load(Ordering::SeqCst)
                    && matches!(item, EventItem::Event(_));
                if !drop && tx.send(item).is_err() {
                    return;
                }
            }
        });
        Subscription::new(rx)
    }
}

impl FaultyRevisions {
    fn check(&self) -> Result<()> {
        if self.faults.fail_revisions.load(Ordering::SeqCst) {
            Err(Error::Unavailable("injected outage".into()))
        } else {
            Ok(())
        }
    }
}

#[async_trait]
impl Revisions for FaultyRevisions {
    async fn bump(&self, domain: &str, scope: &str) -> Result<Revision> {
        self.check()?;
        self.inner.revisions().bump(domain, scope).await
    }

    async fn current(&self, domain: &str, scope: &str) -> Result<Revision> {
        self.check()?;
        self.inner.revisions().current(domain, scope).await
    }

    async fn current_many(&self, keys: &[RevisionKey]) -> Result<Vec<Revision>> {
        self.check()?;
        self.inner.revisions().current_many(keys).await
    }

    async fn epoch(&self) -> Result<Epoch> {
        self.check()?;
        self.inner.revisions().epoch().await
    }
}

#[async_trait]
impl Coordinator for Faulty {
    fn node_id(&self) -> &NodeId {
        self.inner.node_id()
    }
    fn backend(&self) -> BackendKind {
        self.inner.backend()
    }
    fn health(&self) -> HealthSnapshot {
        self.inner.health()
    }
    fn election(&self) -> &dyn Election {
        self.inner.election()
    }
    fn locks(&self) -> &dyn Locks {
        self.inner.locks()
    }
    fn kv(&self) -> &dyn Kv {
        self.inner.kv()
    }
    fn revisions(&self) -> &dyn Revisions {
        &self.revisions
    }
    fn events(&self) -> &dyn Events {
        &self.events
    }
    fn membership(&self) -> &dyn Membership {
        self.inner.membership()
    }
    async fn shutdown(&self) -> Result<()> {
        self.inner.shutdown().await
    }
}

enum Backing {
    Local(LocalTestCluster),
    Redis(RedisTestCluster),
}

/// Three (or n) nodes of one deployment.
pub struct Deployment {
    pub nodes: Vec<Arc<Faulty>>,
    backing: Backing,
}

impl Deployment {
    pub async fn new(kind: Kind, n: usize) -> Self {
        let backing = match kind {
            Kind::Local => Backing::Local(LocalTestCluster::default()),
            Kind::Redis => Backing::Redis(RedisHarness::default().redis_cluster().await),
        };
        let mut nodes = Vec::new();
        for i in 0..n {
            let settings = NodeSettings::short(&format!("n{i}"));
            let inner: Arc<dyn Coordinator> = match &backing {
                Backing::Local(c) => c.local_node(settings).await,
                Backing::Redis(c) => c.redis_node(settings).await,
            };
            nodes.push(Faulty::wrap(inner));
        }
        Deployment { nodes, backing }
    }

    pub fn node(&self, i: usize) -> Arc<dyn Coordinator> {
        self.nodes[i].clone()
    }

    /// The shared state is lost (Redis restarted empty / the hub's data dropped).
    pub async fn lose_data(&self) {
        match &self.backing {
            Backing::Local(c) => c.hub().lose_data(),
            Backing::Redis(c) => c.server().restart().await.expect("redis restarts"),
        }
    }

    /// Revisions become unreadable on every node (Redis paused with SIGSTOP).
    pub async fn outage_start(&self) {
        match &self.backing {
            Backing::Local(_) => {
                for node in &self.nodes {
                    node.faults().fail_revisions.store(true, Ordering::SeqCst);
                }
            }
            Backing::Redis(c) => c.server().pause().await.expect("redis pauses"),
        }
    }

    pub async fn outage_end(&self) {
        match &self.backing {
            Backing::Local(_) => {
                for node in &self.nodes {
                    node.faults().fail_revisions.store(false, Ordering::SeqCst);
                }
            }
            Backing::Redis(c) => c.server().resume().await.expect("redis resumes"),
        }
    }
}

/// Polls `check` every millisecond until it holds; the time it took.
pub async fn within(limit: Duration, mut check: impl FnMut() -> bool) -> Option<Duration> {
    let started = std::time::Instant::now();
    loop {
        if check() {
            return Some(started.elapsed());
        }
        if started.elapsed() >= limit {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}
