//! The event capability: at-most-once broadcast to every node.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use crate::error::Result;
use crate::types::{NodeId, Revision, random_hex128, unix_millis};

/// A change announcement. Delivery is at most once: consumers tolerate loss
/// (revisions are re-checked by polling) and duplicates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    /// Random id.
    pub id: String,
    /// What happened (`revision` for bumps, or an application kind).
    pub kind: String,
    /// Domain the event is about.
    pub domain: String,
    /// Scope within the domain.
    pub scope: String,
    /// Tenant, when the event concerns one.
    pub tenant: Option<String>,
    /// Revision after the change, for revision events.
    pub revision: Option<Revision>,
    /// Node that published the event.
    pub source_node: NodeId,
    /// Unix milliseconds of publication (display only).
    pub time_ms: i64,
}

impl Event {
    /// A new event with a random id, stamped now.
    pub fn new(kind: &str, domain: &str, scope: &str, source_node: NodeId) -> Self {
        Event {
            id: random_hex128(),
            kind: kind.to_string(),
            domain: domain.to_string(),
            scope: scope.to_string(),
            tenant: None,
            revision: None,
            source_node,
            time_ms: unix_millis(),
        }
    }

    /// The same event for one tenant.
    pub fn with_tenant(mut self, tenant: &str) -> Self {
        self.tenant = Some(tenant.to_string());
        self
    }

    /// The same event carrying a revision.
    pub fn with_revision(mut self, revision: Revision) -> Self {
        self.revision = Some(revision);
        self
    }
}

/// What a subscription yields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventItem {
    /// An event.
    Event(Event),
    /// Events may have been missed (the subscriber reconnected, or this
    /// consumer fell behind): re-check every tracked revision now.
    Resync {
        /// Why, for logs.
        reason: String,
    },
}

/// A stream of [`EventItem`]s for one consumer.
#[derive(Debug)]
pub struct Subscription {
    rx: broadcast::Receiver<EventItem>,
}

impl Subscription {
    /// Wraps a broadcast receiver (for backends).
    pub fn new(rx: broadcast::Receiver<EventItem>) -> Self {
        Subscription { rx }
    }

    /// The next item; `None` once the coordinator has shut down. Falling
    /// behind the broadcast buffer yields a [`EventItem::Resync`].
    pub async fn recv(&mut self) -> Option<EventItem> {
        match self.rx.recv().await {
            Ok(item) => Some(item),
            Err(broadcast::error::RecvError::Lagged(missed)) => Some(EventItem::Resync {
                reason: format!("consumer fell behind by {missed} events"),
            }),
            Err(broadcast::error::RecvError::Closed) => None,
        }
    }

    /// The next item if one is ready, without waiting.
    pub fn try_recv(&mut self) -> Option<EventItem> {
        match self.rx.try_recv() {
            Ok(item) => Some(item),
            Err(broadcast::error::TryRecvError::Lagged(missed)) => Some(EventItem::Resync {
                reason: format!("consumer fell behind by {missed} events"),
            }),
            Err(_) => None,
        }
    }
}

/// Publish and subscribe.
#[async_trait]
pub trait Events: Send + Sync {
    /// Publishes `event` to every node's subscribers (this node's included).
    async fn publish(&self, event: Event) -> Result<()>;

    /// A new subscription receiving every event published from now on.
    fn subscribe(&self) -> Subscription;
}
