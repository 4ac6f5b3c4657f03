//! Leader election: the [`Election`] capability and [`LeaseElection`], the
//! lease protocol every backend shares. A backend provides the atomic
//! primitives ([`LeaseBackend`]); the protocol (local deadline, step-down,
//! fast retries, followers waking at the key's expiry or on a release
//! announcement) lives here once.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::{sleep, sleep_until, timeout, timeout_at};
use tokio_util::sync::CancellationToken;

use crate::error::{Error, Result};
use crate::types::{Leadership, NodeId, OwnerToken, Term};

/// Leader election as seen by one node.
#[async_trait]
pub trait Election: Send + Sync {
    /// A watch channel of this node's leadership. The value may be stale
    /// after a stall: call [`Election::leader_term`] right before acting.
    fn leadership(&self) -> watch::Receiver<Leadership>;

    /// The current term if this node leads *at this instant*: the lease
    /// deadline is compared with the monotonic clock on every call.
    fn leader_term(&self) -> Option<Term>;

    /// Whether this node leads at this instant (see [`Election::leader_term`]).
    fn is_leader(&self) -> bool {
        self.leader_term().is_some()
    }

    /// Gives up leadership (if held) with an announcement so a follower
    /// takes over at once, and stops campaigning. Used at shutdown, after
    /// leader-only work has stopped.
    async fn release(&self) -> Result<()>;
}

/// Lease timing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ElectionConfig {
    /// How long a lease lives without renewal.
    pub lease: Duration,
    /// How often the leader renews (recommended `lease / 3`).
    pub renew_interval: Duration,
}

impl ElectionConfig {
    /// Validated timing: `renew_interval` must be positive and below `lease`.
    pub fn new(lease: Duration, renew_interval: Duration) -> Result<Self> {
        if renew_interval.is_zero() || renew_interval >= lease {
            return Err(Error::invalid(format!(
                "renew interval {renew_interval:?} must be positive and below lease {lease:?}"
            )));
        }
        Ok(ElectionConfig {
            lease,
            renew_interval,
        })
    }

    /// Safety margin subtracted from the lease: `max(lease/10, 200ms)`,
    /// capped at half the lease for very short test leases.
    pub fn guard(&self) -> Duration {
        (self.lease / 10)
            .max(Duration::from_millis(200))
            .min(self.lease / 2)
    }

    /// Delay between retries of a failed call: about `renew_interval / 3`.
    pub fn retry_interval(&self) -> Duration {
        (self.renew_interval / 3).max(Duration::from_millis(5))
    }
}

/// Outcome of one acquire attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AcquireOutcome {
    /// This node now holds the lease under a new term.
    Acquired {
        /// The new term.
        term: Term,
    },
    /// Another node holds the lease.
    Held {
        /// The holder, when known.
        leader: Option<NodeId>,
        /// The holder's term, when known.
        term: Option<Term>,
        /// The lease's remaining life, when known.
        remaining: Option<Duration>,
    },
}

/// Atomic lease primitives a backend provides.
#[async_trait]
pub trait LeaseBackend: Send + Sync + 'static {
    /// Takes the lease if it is free or already holds `token`, for `lease`;
    /// on success raises and returns the term.
    async fn try_acquire(
        &self,
        node: &NodeId,
        token: &OwnerToken,
        lease: Duration,
    ) -> Result<AcquireOutcome>;

    /// Extends the lease if it still holds `token`; false on a mismatch.
    async fn renew(&self, token: &OwnerToken, lease: Duration) -> Result<bool>;

    /// Deletes the lease if it holds `token` and announces the release;
    /// false when it held another token.
    async fn release(&self, node: &NodeId, token: &OwnerToken) -> Result<bool>;

    /// A counter that changes whenever some node announces a release.
    fn release_signal(&self) -> watch::Receiver<u64>;
}

#[derive(Debug, Clone, Copy)]
struct Held {
    term: Term,
    deadline: Instant,
}

struct Shared {
    node: NodeId,
    token: OwnerToken,
    config: ElectionConfig,
    backend: Arc<dyn LeaseBackend>,
    held: Mutex<Option<Held>>,
    tx: watch::Sender<Leadership>,
    stop: CancellationToken,
}

/// The lease election protocol over a [`LeaseBackend`].
pub struct LeaseElection {
    shared: Arc<Shared>,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl LeaseElection {
    /// Starts campaigning in the background and returns once the first
    /// attempt has been answered (or failed), so a lone node is leader when
    /// this returns.
    pub async fn start(
        node: NodeId,
        config: ElectionConfig,
        backend: Arc<dyn LeaseBackend>,
    ) -> Self {
        let (tx, _) = watch::channel(Leadership::Follower {
            leader: None,
            term: None,
        });
        let shared = Arc::new(Shared {
            node,
            token: OwnerToken::random(),
            config,
            backend,
            held: Mutex::new(None),
            tx,
            stop: CancellationToken::new(),
        });
        let (first_tx, first_rx) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(run(shared.clone(), first_tx));
        let _ = timeout(config.lease, first_rx).await;
        LeaseElection {
            shared,
            task: Mutex::new(Some(task)),
        }
    }

    /// Stops the campaign without releasing the lease, as a crash would
    /// (for tests of failover).
    pub fn abort(&self) {
        if let Some(task) = self.task.lock().expect("election task lock").take() {
            task.abort();
        }
        *self.shared.held.lock().expect("election state lock") = None;
        self.shared.tx.send_replace(Leadership::Follower {
            leader: None,
            term: None,
        });
    }
}

impl Drop for LeaseElection {
    fn drop(&mut self) {
        self.shared.stop.cancel();
    }
}

#[async_trait]
impl Election for LeaseElection {
    fn leadership(&self) -> watch::Receiver<Leadership> {
        self.shared.tx.subscribe()
    }

    fn leader_term(&self) -> Option<Term> {
        let held = *self.shared.held.lock().expect("election state lock");
        held.filter(|h| Instant::now() < h.deadline).map(|h| h.term)
    }

    async fn release(&self) -> Result<()> {
        self.shared.stop.cancel();
        let task = self.task.lock().expect("election task lock").take();
        if let Some(task) = task {
            // The task releases the lease itself on the way out.
            let limit = self.shared.config.lease;
            if timeout(limit, task).await.is_err() {
                return Err(Error::Timeout(limit));
            }
        }
        Ok(())
    }
}

impl Shared {
    fn set_leader(&self, term: Term, deadline: Instant) {
        *self.held.lock().expect("election state lock") = Some(Held { term, deadline });
        tracing::info!(node = %self.node, term, "became leader");
        self.tx.send_replace(Leadership::Leader {
            term,
            since: Instant::now(),
        });
    }

    fn extend(&self, deadline: Instant) {
        if let Some(held) = self.held.lock().expect("election state lock").as_mut() {
            held.deadline = deadline;
        }
    }

    fn step_down(&self, reason: &str) {
        let was = self.held.lock().expect("election state lock").take();
        match was {
            Some(held) if self.stop.is_cancelled() => {
                tracing::info!(node = %self.node, term = held.term, reason, "stepped down");
            }
            Some(held) => {
                tracing::warn!(node = %self.node, term = held.term, reason, "stepped down");
            }
            None => {}
        }
        self.tx.send_replace(Leadership::Follower {
            leader: None,
            term: None,
        });
    }

    fn follow(&self, leader: Option<NodeId>, term: Option<Term>) {
        self.tx.send_if_modified(|current| {
            let next = Leadership::Follower { leader, term };
            if *current == next {
                false
            } else {
                *current = next;
                true
            }
        });
    }

    fn deadline_after(&self, sent: Instant) -> Instant {
        sent + self.config.lease - self.config.guard()
    }
}

async fn run(shared: Arc<Shared>, first: tokio::sync::oneshot::Sender<()>) {
    let mut first = Some(first);
    let mut releases = shared.backend.release_signal();
    let config = shared.config;
    while !shared.stop.is_cancelled() {
        releases.borrow_and_update();
        let sent = Instant::now();
        let attempt = tokio::select! {
            _ = shared.stop.cancelled() => break,
            r = timeout(config.lease - config.guard(), shared.backend.try_acquire(&shared.node, &shared.token, config.lease)) => r,
        };
        if let Some(first) = first.take() {
            let _ = first.send(());
        }
        let wait = match attempt {
            Ok(Ok(AcquireOutcome::Acquired { term })) => {
                let deadline = shared.deadline_after(sent);
                if Instant::now() < deadline {
                    shared.set_leader(term, deadline);
                    lead(&shared, deadline, sent).await;
                }
                if shared.stop.is_cancelled() {
                    break;
                }
                config.retry_interval()
            }
            Ok(Ok(AcquireOutcome::Held {
                leader,
                term,
                remaining,
            })) => {
                shared.follow(leader, term);
                // Try again just after the holder's lease would expire.
                remaining
                    .map(|r| r + Duration::from_millis(2))
                    .unwrap_or(config.renew_interval)
                    .min(config.renew_interval)
            }
            Ok(Err(error)) => {
                tracing::debug!(node = %shared.node, %error, "election attempt failed");
                shared.follow(None, None);
                config.retry_interval()
            }
            Err(_) => {
                tracing::debug!(node = %shared.node, "election attempt timed out");
                shared.follow(None, None);
                config.retry_interval()
            }
        };
        tokio::select! {
            _ = shared.stop.cancelled() => break,
            _ = sleep(wait) => {}
            _ = changed(&mut releases) => {}
        }
    }
    if let Some(first) = first.take() {
        let _ = first.send(());
    }
}

/// Resolves when the counter changes; never when its sender is gone.
pub(crate) async fn changed(rx: &mut watch::Receiver<u64>) {
    if rx.changed().await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Holds the lease until it is lost or the campaign stops; on stop, releases
/// it with an announcement.
async fn lead(shared: &Shared, mut deadline: Instant, sent: Instant) {
    let config = shared.config;
    let mut next_renew = sent + config.renew_interval;
    loop {
        tokio::select! {
            _ = shared.stop.cancelled() => {
                shared.step_down("shutting down");
                let released = timeout(
                    config.lease,
                    shared.backend.release(&shared.node, &shared.token),
                )
                .await;
                if !matches!(released, Ok(Ok(_))) {
                    tracing::warn!(node = %shared.node, "could not release the leader lease; it will expire");
                }
                return;
            }
            _ = sleep_until(next_renew.min(deadline).into()) => {}
        }
        let now = Instant::now();
        if now >= deadline {
            shared.step_down("lease deadline passed without renewal");
            return;
        }
        let renewed = timeout_at(
            deadline.into(),
            shared.backend.renew(&shared.token, config.lease),
        )
        .await;
        match renewed {
            Ok(Ok(true)) => {
                deadline = shared.deadline_after(now);
                shared.extend(deadline);
                next_renew = now + config.renew_interval;
            }
            Ok(Ok(false)) => {
                shared.step_down("lease token mismatch");
                return;
            }
            Ok(Err(error)) => {
                tracing::debug!(node = %shared.node, %error, "lease renewal failed, retrying");
                next_renew = now + config.retry_interval();
            }
            Err(_) => {
                shared.step_down("lease deadline passed while renewing");
                return;
            }
        }
    }
}
