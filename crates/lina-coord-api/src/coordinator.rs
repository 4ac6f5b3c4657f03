//! The bundle of capabilities one process uses.

use async_trait::async_trait;

use crate::election::Election;
use crate::error::Result;
use crate::event::Events;
use crate::kv::Kv;
use crate::lock::Locks;
use crate::membership::Membership;
use crate::revision::Revisions;
use crate::types::{BackendKind, HealthSnapshot, NodeId};

/// One per process: every coordination capability of one backend.
#[async_trait]
pub trait Coordinator: Send + Sync {
    /// This node's id.
    fn node_id(&self) -> &NodeId;

    /// Which backend this is.
    fn backend(&self) -> BackendKind;

    /// Health of the backend connection.
    fn health(&self) -> HealthSnapshot;

    /// Leader election.
    fn election(&self) -> &dyn Election;

    /// Locks with fencing tokens.
    fn locks(&self) -> &dyn Locks;

    /// Key-value store.
    fn kv(&self) -> &dyn Kv;

    /// Revision counters.
    fn revisions(&self) -> &dyn Revisions;

    /// Events.
    fn events(&self) -> &dyn Events;

    /// Membership.
    fn membership(&self) -> &dyn Membership;

    /// Graceful stop: releases leadership (announcing it), leaves the
    /// membership and stops background work. Idempotent.
    async fn shutdown(&self) -> Result<()>;
}
