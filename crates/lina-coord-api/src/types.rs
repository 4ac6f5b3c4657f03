//! Plain value types shared by every capability.

use std::fmt;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Identity of one node of a deployment (from `cluster.nodeId`, `LINA_NODE_ID`,
/// or host name and listen port).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct NodeId(String);

impl NodeId {
    /// Builds a node id; it must be 1–128 characters without whitespace or
    /// control characters.
    pub fn new(id: impl Into<String>) -> Result<Self> {
        let id = id.into();
        if id.is_empty() || id.len() > 128 {
            return Err(Error::invalid(format!(
                "node id {id:?} must be 1 to 128 characters"
            )));
        }
        if id.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(Error::invalid(format!(
                "node id {id:?} must not contain whitespace or control characters"
            )));
        }
        Ok(NodeId(id))
    }

    /// The id as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Which backend a coordinator runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    /// In-process backend of single-node mode.
    Local,
    /// Redis backend of cluster mode.
    Redis,
}

impl BackendKind {
    /// `local` or `redis`.
    pub fn as_str(self) -> &'static str {
        match self {
            BackendKind::Local => "local",
            BackendKind::Redis => "redis",
        }
    }
}

impl fmt::Display for BackendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Leader term: a fencing number that rises with every change of leader.
pub type Term = u64;

/// Fencing token of one lock acquisition: strictly rising per lock name.
pub type FencingToken = u64;

/// Random identity of one backend dataset. A changed epoch means the backend
/// lost its data and every cache built on it must be dropped.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Epoch(pub String);

impl fmt::Display for Epoch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A revision of one `(domain, scope)`: rises with every bump, within an epoch.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Revision {
    /// Dataset the number belongs to.
    pub epoch: Epoch,
    /// Revision number; 0 when the scope was never bumped.
    pub value: u64,
}

/// Random owner token (128 bits, hex): identifies one holder of a lock or lease.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct OwnerToken(String);

impl OwnerToken {
    /// A fresh random token of 128 bits.
    pub fn random() -> Self {
        OwnerToken(random_hex128())
    }

    /// Wraps a token read back from a backend.
    pub fn from_string(token: String) -> Self {
        OwnerToken(token)
    }

    /// The token as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for OwnerToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Tokens are capabilities: show only a prefix.
        write!(f, "OwnerToken({}…)", &self.0[..self.0.len().min(8)])
    }
}

/// 128 random bits as 32 lowercase hex digits.
pub fn random_hex128() -> String {
    format!("{:032x}", rand::random::<u128>())
}

/// This node's view of leadership, as published on the watch channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Leadership {
    /// This node leads under `term` since `since`.
    Leader {
        /// Fencing term of this leadership.
        term: Term,
        /// Monotonic instant the leadership began.
        since: Instant,
    },
    /// Another node (if known) leads.
    Follower {
        /// The current leader, when known.
        leader: Option<NodeId>,
        /// The leader's term as last seen (at most a `renewInterval` old).
        term: Option<Term>,
    },
}

impl Leadership {
    /// Whether this value says leader (the watch value may be stale: use
    /// [`crate::Election::is_leader`] before acting).
    pub fn is_leader(&self) -> bool {
        matches!(self, Leadership::Leader { .. })
    }

    /// This node's role.
    pub fn role(&self) -> Role {
        if self.is_leader() {
            Role::Leader
        } else {
            Role::Follower
        }
    }
}

/// Role of a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Holds the leader lease.
    Leader,
    /// Does not hold the leader lease.
    Follower,
}

impl Role {
    /// `leader` or `follower`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Leader => "leader",
            Role::Follower => "follower",
        }
    }
}

/// Point-in-time health of a coordinator's backend connection.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HealthSnapshot {
    /// Whether the last call to the backend succeeded.
    pub healthy: bool,
    /// Unix milliseconds of the last successful backend call.
    pub last_success_ms: Option<i64>,
    /// Unix milliseconds and message of the last failed backend call.
    pub last_error: Option<(i64, String)>,
    /// Whether the event subscriber is running.
    pub subscriber_running: bool,
    /// Unix milliseconds of the last event received.
    pub last_event_ms: Option<i64>,
}

/// A live member of the deployment, as listed by [`crate::Membership::members`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Member {
    /// The member's node id.
    pub node_id: NodeId,
    /// Address the member serves on (`host:port`).
    pub address: String,
    /// Software version the member runs.
    pub version: String,
    /// Unix milliseconds the member's process started.
    pub started_at_ms: i64,
    /// Role at its last heartbeat.
    pub role: Role,
    /// Unix milliseconds of its last heartbeat.
    pub last_seen_ms: i64,
}

/// What a node announces about itself in its membership heartbeats.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeInfo {
    /// The node's id.
    pub node_id: NodeId,
    /// Address the node serves on (`host:port`).
    pub address: String,
    /// Software version.
    pub version: String,
    /// Unix milliseconds the process started.
    pub started_at_ms: i64,
}

impl NodeInfo {
    /// Node info for a process started now, with this crate's version.
    pub fn new(node_id: NodeId, address: impl Into<String>) -> Self {
        NodeInfo {
            node_id,
            address: address.into(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            started_at_ms: unix_millis(),
        }
    }
}

/// Wall-clock Unix milliseconds, for display and listings only (never for
/// safety decisions, which use [`Instant`]).
pub fn unix_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
