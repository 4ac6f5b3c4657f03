//! The membership capability.

use async_trait::async_trait;

use crate::error::Result;
use crate::types::Member;

/// Live members of the deployment. Every coordinator heartbeats its own
/// [`crate::NodeInfo`] in the background; members that stop heartbeating are
/// pruned by age, and a coordinator that shuts down leaves at once.
#[async_trait]
pub trait Membership: Send + Sync {
    /// Live members, sorted by node id.
    async fn members(&self) -> Result<Vec<Member>>;
}
