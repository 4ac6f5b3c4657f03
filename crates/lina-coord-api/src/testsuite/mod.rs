//! The conformance suite: every behaviour the contract promises, as a test
//! function over a backend [`Harness`]. Each backend runs all of them with
//! [`conformance_tests!`](crate::conformance_tests):
//!
//! ```text
//! lina_coord_api::conformance_tests!(my_backend::TestHarness::new());
//! ```
//!
//! Timings use short leases and TTLs and poll with deadlines; bounds have
//! slack for a loaded two-core machine but still fail a backend that does
//! not honour the contract.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::{Coordinator, ElectionConfig, NodeId};

mod coordination;
mod data;

pub use coordination::*;
pub use data::*;

/// Settings of one test node.
#[derive(Debug, Clone)]
pub struct NodeSettings {
    /// The node's id.
    pub node_id: NodeId,
    /// Lease timing.
    pub election: ElectionConfig,
    /// Membership heartbeat period.
    pub heartbeat: Duration,
    /// Members not seen for this long are pruned.
    pub member_ttl: Duration,
}

impl NodeSettings {
    /// Short test timings: lease 600 ms, renew 200 ms, heartbeat 100 ms,
    /// member TTL 1 s.
    pub fn short(node_id: &str) -> Self {
        NodeSettings {
            node_id: NodeId::new(node_id).expect("valid test node id"),
            election: ElectionConfig::new(Duration::from_millis(600), Duration::from_millis(200))
                .expect("valid test lease"),
            heartbeat: Duration::from_millis(100),
            member_ttl: Duration::from_secs(1),
        }
    }
}

/// A node made by a [`TestCluster`].
pub struct TestNode {
    /// The coordinator.
    pub coordinator: Arc<dyn Coordinator>,
    /// Stops the node as a crash would: no release, no announcement, no
    /// leaving the membership; its leases and locks simply expire.
    pub crash: Box<dyn Fn() + Send + Sync>,
}

/// One isolated deployment of a backend (its own namespace or hub): nodes
/// made from it share state, nodes of different clusters never do.
#[async_trait]
pub trait TestCluster: Send + Sync {
    /// Starts a node of this deployment.
    async fn node(&self, settings: NodeSettings) -> TestNode;

    /// Deletes the backend key of lock `name` behind its holder's back.
    async fn break_lock(&self, name: &str);
}

/// A backend under test.
#[async_trait]
pub trait Harness: Send + Sync {
    /// A new isolated deployment.
    async fn cluster(&self) -> Box<dyn TestCluster>;
}

/// Polls `check` every 5 ms until it holds or `limit` passes; true when it held.
pub async fn eventually<F: FnMut() -> bool>(limit: Duration, mut check: F) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if check() {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Generates one `#[tokio::test]` per conformance test, each calling the
/// test with the harness built by the given expression.
#[macro_export]
macro_rules! conformance_tests {
    ($harness:expr) => {
        $crate::conformance_tests!(@each $harness;
            lock_exclusion_under_contention,
            lock_busy_without_wait,
            lock_release_and_extend_check_the_token,
            leaked_lock_expires,
            fencing_tokens_strictly_rise,
            watchdog_keeps_lock_alive,
            lost_fires_when_lock_key_vanishes,
            lost_fires_at_deadline_without_watchdog,
            release_wakes_waiter_without_polling,
            invalid_arguments_are_refused,
            kv_basic_operations,
            kv_ttls,
            kv_incr_by_is_atomic_with_fixed_window_ttl,
            scoped_keys_never_collide,
            revisions_rise_and_are_published,
            events_reach_every_node,
            one_leader_and_fast_failover_on_release,
            failover_after_crash_within_lease,
            leader_term_rises_and_watch_follows,
            membership_lists_live_nodes,
        );
    };
    (@each $harness:expr; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $name() {
                let harness = $harness;
                $crate::testsuite::$name(&harness).await;
            }
        )*
    };
}
