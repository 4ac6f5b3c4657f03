//! Caches that stay coherent across the nodes of a deployment.
//!
//! - [`RevisionedCache`]: per-node, in-memory values per `(domain, scope)`
//!   that are served without any round trip while fresh and converge on
//!   every node when a scope changes: a bump on one node announces the new
//!   revision and every node drops just that scope; the [`CacheRegistry`]'s
//!   sweep re-reads all tracked revisions every `revisionPoll` in one round
//!   trip (at once after a `Resync`), so a lost event costs at most one poll
//!   interval; a changed backend epoch drops everything. Invalidation is
//!   always scoped: changing French messages never evicts German.
//! - [`KvCache`]: typed JSON values with TTLs in the shared store, scoped by
//!   tenant and owner, with size limits, for plugin authors.
//!
//! This crate depends only on `lina-coord-api`: it runs unchanged on the
//! in-process backend and on Redis.
//!
//! # Example: a plugin caching its own data
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//! use lina_cache::{CacheRegistry, CacheSettings, KvCache, StalePolicy};
//! use lina_coord_api::{Coordinator, NodeId, NodeInfo};
//! use lina_coord_local::LocalCoordinator;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let node = NodeInfo::new(NodeId::new("demo:9120")?, "127.0.0.1:9120");
//! let coordinator: Arc<dyn Coordinator> = Arc::new(LocalCoordinator::single(node).await);
//!
//! // Revisioned: the plugin's price list per tenant, loaded once per node.
//! let registry = CacheRegistry::start(coordinator.clone(), CacheSettings::default());
//! let prices = registry.domain::<Arc<Vec<u32>>>("demo-prices", StalePolicy::ServeStale)?;
//! let loaded = prices
//!     .get_or_load("tenant-1", || async { Ok::<_, std::io::Error>(Arc::new(vec![100, 250])) })
//!     .await?;
//! assert_eq!(*loaded, vec![100, 250]);
//! // An admin changed the prices: every node drops tenant-1 only.
//! prices.bump("tenant-1").await?;
//! assert!(!prices.is_loaded("tenant-1"));
//!
//! // Key-value: short-lived shared state under the plugin's own scope.
//! let kv = KvCache::for_plugin(coordinator.clone(), "demo")?.with_tenant("tenant-1")?;
//! kv.set("quotes", "latest", &vec!["EUR", "USD"], Duration::from_secs(60)).await?;
//! let latest: Option<Vec<String>> = kv.get("quotes", "latest").await?;
//! assert_eq!(latest.unwrap(), ["EUR", "USD"]);
//! assert_eq!(kv.incr("hits", "today", 1, Duration::from_secs(86_400)).await?, 1);
//! # Ok(())
//! # }
//! ```

mod error;
mod kv;
mod registry;
mod revisioned;

pub use error::{CacheError, KvCacheError};
pub use kv::{KvCache, KvLimits};
pub use registry::{CacheRegistry, CacheSettings, DomainStats, ScopeStats, StalePolicy};
pub use revisioned::RevisionedCache;
