//! The coordination contract of Lina.
//!
//! One [`Coordinator`] per process bundles leader election, locks with
//! fencing tokens, a key-value store, revision counters with epochs, events
//! and membership. Two backends implement it: `lina-coord-local` (in
//! process, single-node mode) and `lina-coord-redis` (cluster mode). Code
//! above this crate — caches, the scheduler, the server, plugins — sees only
//! these traits and runs unchanged on either backend.
//!
//! This crate knows nothing of Redis, SQL or HTTP. Besides the traits it
//! holds the protocols every backend shares, written once over small atomic
//! primitives: [`LeaseElection`] over a [`LeaseBackend`] and
//! [`LockService`] over a [`LockBackend`]. With the `testsuite` feature it
//! exports the conformance suite (module `testsuite`) that every backend runs.
//!
//! # Example
//!
//! Taking a lock with a watchdog and stopping the protected work when it is
//! lost (with any backend's coordinator):
//!
//! ```
//! use std::time::Duration;
//! use lina_coord_api::{Coordinator, LockOptions, Result};
//!
//! async fn rebuild_index(coordinator: &dyn Coordinator) -> Result<()> {
//!     let options = LockOptions::ttl(Duration::from_secs(10))
//!         .wait(Duration::from_secs(5))
//!         .watchdog();
//!     let guard = coordinator.locks().acquire("index-rebuild", options).await?;
//!     tokio::select! {
//!         _ = guard.lost() => tracing::warn!("lost the lock, stopping"),
//!         _ = do_the_work(guard.fencing_token()) => {}
//!     }
//!     guard.release().await
//! }
//! # async fn do_the_work(_fence: u64) {}
//! ```

mod coordinator;
mod election;
mod error;
mod event;
mod key;
mod kv;
mod lock;
mod membership;
mod revision;
mod types;

#[cfg(feature = "testsuite")]
pub mod testsuite;

pub use coordinator::Coordinator;
pub use election::{AcquireOutcome, Election, ElectionConfig, LeaseBackend, LeaseElection};
pub use error::{Error, Result};
pub use event::{Event, EventItem, Events, Subscription};
pub use key::{KvKey, Owner, Scope, check_lock_name, check_revision_key};
pub use kv::{KeyTtl, Kv};
pub use lock::{
    LockAttempt, LockBackend, LockGuard, LockOptions, LockService, LockStats, Locks, ReleaseSignals,
};
pub use membership::Membership;
pub use revision::{REVISION_EVENT, RevisionKey, Revisions};
pub use types::{
    BackendKind, Epoch, FencingToken, HealthSnapshot, Leadership, Member, NodeId, NodeInfo,
    OwnerToken, Revision, Role, Term, random_hex128, unix_millis,
};
