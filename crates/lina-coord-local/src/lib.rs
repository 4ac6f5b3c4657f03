//! In-process coordination backend of Lina's single-node mode.
//!
//! [`LocalCoordinator`] implements the whole [`Coordinator`] contract inside
//! one process: locks with TTL expiry and fencing counters, a key-value
//! store with TTLs, revisions with an epoch, events over an in-process
//! broadcast, membership and leader election. A single-node server uses
//! [`LocalCoordinator::single`]: it is always the leader, under term 1.
//!
//! Several coordinators can share one [`LocalHub`] to act as several nodes of
//! one deployment; the conformance suite and multi-node tests of the crates
//! above use this, so code tested on this backend behaves the same on Redis.
//!
//! # Example
//!
//! ```
//! use lina_coord_api::{Coordinator, NodeId, NodeInfo};
//! use lina_coord_local::LocalCoordinator;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> lina_coord_api::Result<()> {
//! let node = NodeInfo::new(NodeId::new("laptop:9120")?, "127.0.0.1:9120");
//! let coordinator = LocalCoordinator::single(node).await;
//! assert_eq!(coordinator.election().leader_term(), Some(1));
//! let revision = coordinator.revisions().bump("i18n", "fr-FR").await?;
//! assert_eq!(revision.value, 1);
//! coordinator.shutdown().await?;
//! # Ok(())
//! # }
//! ```

mod hub;
#[cfg(feature = "testsuite")]
pub mod testing;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use lina_coord_api::{
    AcquireOutcome, BackendKind, Coordinator, Election, ElectionConfig, Epoch, Error, Event,
    Events, HealthSnapshot, KeyTtl, Kv, KvKey, Leadership, LeaseBackend, LeaseElection,
    LockAttempt, LockBackend, LockService, Locks, Member, Membership, NodeId, NodeInfo, OwnerToken,
    REVISION_EVENT, Result, Revision, RevisionKey, Revisions, Role, Subscription,
    check_revision_key, unix_millis,
};
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use hub::LocalHub;

/// Timing of a node on a shared hub.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalSettings {
    /// Lease timing of the in-process election.
    pub election: ElectionConfig,
    /// Membership heartbeat period (also how often expired entries are purged).
    pub heartbeat: Duration,
    /// Members not seen for this long are not listed.
    pub member_ttl: Duration,
}

impl LocalSettings {
    /// Settings of a lone single-node process: a lease that never lapses in
    /// practice, so the node leads under term 1 for its whole life.
    pub fn single() -> Self {
        let day = Duration::from_secs(24 * 3600);
        LocalSettings {
            election: ElectionConfig::new(365 * day, day).expect("static lease is valid"),
            heartbeat: Duration::from_secs(5),
            member_ttl: Duration::from_secs(30),
        }
    }
}

struct View {
    hub: Arc<LocalHub>,
    node: NodeInfo,
    instance: u64,
    member_ttl: Duration,
    closed: AtomicBool,
}

impl View {
    fn open(&self) -> Result<&LocalHub> {
        if self.closed.load(Ordering::Acquire) {
            Err(Error::Closed)
        } else {
            Ok(&self.hub)
        }
    }
}

/// The in-process [`Coordinator`].
pub struct LocalCoordinator {
    view: Arc<View>,
    election: LeaseElection,
    locks: LockService,
    heartbeat: std::sync::Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for LocalCoordinator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalCoordinator")
            .field("node", &self.view.node.node_id)
            .finish()
    }
}

impl LocalCoordinator {
    /// The coordinator of a single-node process, on a hub of its own. It
    /// leads under term 1 when this returns.
    pub async fn single(node: NodeInfo) -> Self {
        LocalCoordinator::join(Arc::new(LocalHub::new()), node, LocalSettings::single()).await
    }

    /// A node of the deployment `hub`. Returns once the first election
    /// attempt has been answered.
    pub async fn join(hub: Arc<LocalHub>, node: NodeInfo, settings: LocalSettings) -> Self {
        let view = Arc::new(View {
            instance: hub.new_instance(),
            hub,
            node,
            member_ttl: settings.member_ttl,
            closed: AtomicBool::new(false),
        });
        // Subscribers are registered per instance up front, so events
        // published before the first subscribe() are buffered.
        drop(view.hub.subscribe(view.instance));
        let election = LeaseElection::start(
            view.node.node_id.clone(),
            settings.election,
            Arc::new(HubLease(view.hub.clone())),
        )
        .await;
        let locks = LockService::new(Arc::new(HubLocks(view.hub.clone())));
        let role = election.leadership().borrow().role();
        view.hub.heartbeat(member(&view.node, role));
        let heartbeat = tokio::spawn(heartbeat(view.clone(), election.leadership(), settings));
        LocalCoordinator {
            view,
            election,
            locks,
            heartbeat: std::sync::Mutex::new(Some(heartbeat)),
        }
    }

    /// The deployment this node belongs to.
    pub fn hub(&self) -> &Arc<LocalHub> {
        &self.view.hub
    }

    /// Stops the node as a crash would: no release, no leaving; its lease
    /// and locks expire on their own (for failover tests).
    pub fn crash(&self) {
        self.election.abort();
        self.stop_heartbeat();
        self.view.closed.store(true, Ordering::Release);
        self.view.hub.close_instance(self.view.instance);
    }

    fn stop_heartbeat(&self) {
        if let Some(task) = self.heartbeat.lock().expect("heartbeat lock").take() {
            task.abort();
        }
    }
}

fn member(node: &NodeInfo, role: Role) -> Member {
    Member {
        node_id: node.node_id.clone(),
        address: node.address.clone(),
        version: node.version.clone(),
        started_at_ms: node.started_at_ms,
        role,
        last_seen_ms: unix_millis(),
    }
}

async fn heartbeat(
    view: Arc<View>,
    leadership: watch::Receiver<Leadership>,
    settings: LocalSettings,
) {
    let mut leadership = leadership;
    loop {
        let role = leadership.borrow_and_update().role();
        view.hub.heartbeat(member(&view.node, role));
        view.hub.purge_expired();
        tokio::select! {
            _ = tokio::time::sleep(settings.heartbeat) => {}
            changed = leadership.changed() => if changed.is_err() { return },
        }
    }
}

#[async_trait]
impl Coordinator for LocalCoordinator {
    fn node_id(&self) -> &NodeId {
        &self.view.node.node_id
    }

    fn backend(&self) -> BackendKind {
        BackendKind::Local
    }

    fn health(&self) -> HealthSnapshot {
        let open = !self.view.closed.load(Ordering::Acquire);
        HealthSnapshot {
            healthy: open,
            last_success_ms: Some(unix_millis()),
            last_error: None,
            subscriber_running: open,
            last_event_ms: self.view.hub.last_event_ms(),
        }
    }

    fn election(&self) -> &dyn Election {
        &self.election
    }

    fn locks(&self) -> &dyn Locks {
        &self.locks
    }

    fn kv(&self) -> &dyn Kv {
        &*self.view
    }

    fn revisions(&self) -> &dyn Revisions {
        &*self.view
    }

    fn events(&self) -> &dyn Events {
        &*self.view
    }

    fn membership(&self) -> &dyn Membership {
        &*self.view
    }

    async fn shutdown(&self) -> Result<()> {
        if self.view.closed.load(Ordering::Acquire) {
            return Ok(());
        }
        let released = self.election.release().await;
        self.stop_heartbeat();
        self.view.hub.leave(&self.view.node.node_id);
        self.view.closed.store(true, Ordering::Release);
        self.view.hub.close_instance(self.view.instance);
        released
    }
}

#[async_trait]
impl Kv for View {
    async fn get(&self, key: &KvKey) -> Result<Option<Vec<u8>>> {
        Ok(self.open()?.kv_get(&key.render()))
    }

    async fn set(&self, key: &KvKey, value: &[u8], ttl: Option<Duration>) -> Result<()> {
        check_ttl(ttl)?;
        self.open()?.kv_set(&key.render(), value, ttl);
        Ok(())
    }

    async fn set_nx(&self, key: &KvKey, value: &[u8], ttl: Option<Duration>) -> Result<bool> {
        check_ttl(ttl)?;
        Ok(self.open()?.kv_set_nx(&key.render(), value, ttl))
    }

    async fn delete(&self, key: &KvKey) -> Result<bool> {
        Ok(self.open()?.kv_delete(&key.render()))
    }

    async fn compare_and_delete(&self, key: &KvKey, expected: &[u8]) -> Result<bool> {
        Ok(self.open()?.kv_compare_and_delete(&key.render(), expected))
    }

    async fn incr_by(&self, key: &KvKey, delta: i64, ttl: Option<Duration>) -> Result<i64> {
        check_ttl(ttl)?;
        self.open()?
            .kv_incr_by(&key.render(), delta, ttl)
            .map_err(Error::InvalidArgument)
    }

    async fn expire(&self, key: &KvKey, ttl: Duration) -> Result<bool> {
        check_ttl(Some(ttl))?;
        Ok(self.open()?.kv_expire(&key.render(), ttl))
    }

    async fn ttl(&self, key: &KvKey) -> Result<KeyTtl> {
        Ok(self.open()?.kv_ttl(&key.render()))
    }
}

fn check_ttl(ttl: Option<Duration>) -> Result<()> {
    match ttl {
        Some(t) if t < Duration::from_millis(1) => {
            Err(Error::invalid(format!("ttl {t:?} must be at least 1ms")))
        }
        _ => Ok(()),
    }
}

#[async_trait]
impl Revisions for View {
    async fn bump(&self, domain: &str, scope: &str) -> Result<Revision> {
        check_revision_key(domain, scope)?;
        let hub = self.open()?;
        let revision = Revision {
            epoch: hub.epoch(),
            value: hub.revision_bump(domain, scope),
        };
        hub.publish(
            Event::new(REVISION_EVENT, domain, scope, self.node.node_id.clone())
                .with_revision(revision.clone()),
        );
        Ok(revision)
    }

    async fn current(&self, domain: &str, scope: &str) -> Result<Revision> {
        check_revision_key(domain, scope)?;
        let hub = self.open()?;
        Ok(Revision {
            epoch: hub.epoch(),
            value: hub.revision_current(domain, scope),
        })
    }

    async fn current_many(&self, keys: &[RevisionKey]) -> Result<Vec<Revision>> {
        let hub = self.open()?;
        keys.iter()
            .map(|k| {
                check_revision_key(&k.domain, &k.scope)?;
                Ok(Revision {
                    epoch: hub.epoch(),
                    value: hub.revision_current(&k.domain, &k.scope),
                })
            })
            .collect()
    }

    async fn epoch(&self) -> Result<Epoch> {
        Ok(self.open()?.epoch())
    }
}

#[async_trait]
impl Events for View {
    async fn publish(&self, event: Event) -> Result<()> {
        self.open()?.publish(event);
        Ok(())
    }

    fn subscribe(&self) -> Subscription {
        Subscription::new(self.hub.subscribe(self.instance))
    }
}

#[async_trait]
impl Membership for View {
    async fn members(&self) -> Result<Vec<Member>> {
        Ok(self.open()?.members(self.member_ttl))
    }
}

struct HubLease(Arc<LocalHub>);

#[async_trait]
impl LeaseBackend for HubLease {
    async fn try_acquire(
        &self,
        node: &NodeId,
        token: &OwnerToken,
        lease: Duration,
    ) -> Result<AcquireOutcome> {
        Ok(match self.0.lease_try_acquire(node, token, lease) {
            Ok(term) => AcquireOutcome::Acquired { term },
            Err((leader, term, remaining)) => AcquireOutcome::Held {
                leader,
                term: Some(term),
                remaining: Some(remaining),
            },
        })
    }

    async fn renew(&self, token: &OwnerToken, lease: Duration) -> Result<bool> {
        Ok(self.0.lease_renew(token, lease))
    }

    async fn release(&self, _node: &NodeId, token: &OwnerToken) -> Result<bool> {
        Ok(self.0.lease_release(token))
    }

    fn release_signal(&self) -> watch::Receiver<u64> {
        self.0.lease_signal()
    }
}

struct HubLocks(Arc<LocalHub>);

#[async_trait]
impl LockBackend for HubLocks {
    async fn try_acquire(
        &self,
        name: &str,
        token: &OwnerToken,
        ttl: Duration,
        _waiting: Option<Duration>,
    ) -> Result<LockAttempt> {
        Ok(self.0.lock_try_acquire(name, token, ttl))
    }

    async fn release(&self, name: &str, token: &OwnerToken) -> Result<bool> {
        Ok(self.0.lock_release(name, token))
    }

    async fn extend(&self, name: &str, token: &OwnerToken, ttl: Duration) -> Result<bool> {
        Ok(self.0.lock_extend(name, token, ttl))
    }

    fn release_signal(&self, name: &str) -> watch::Receiver<u64> {
        self.0.lock_signal(name)
    }
}
