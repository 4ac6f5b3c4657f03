//! The Lina core service.
//!
//! One binary that runs as a single node by default (in-process
//! coordination, SQLite or PostgreSQL) and as one of many identical nodes
//! when `cluster.enabled: true`. This crate is the only one that knows HTTP
//! and the wire format, and the only place where the coordination backend is
//! chosen from configuration. It stays thin: load config ([`cli`]), build
//! and wire the components ([`node`]), serve ([`http`]).
//!
//! ```text
//! lina-server [serve] [--config FILE]      start the service (the default)
//! lina-server check-config [--config FILE] print the effective config, or
//!                                          every problem and exit with 2
//! ```
//!
//! # Example
//!
//! Building a node from configuration in code, as the binary does:
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! let loaded = lina_config::load(None)?;
//! let node = lina_server::node::Node::start(loaded.config).await?;
//! println!("node {} is up", node.node_id);
//! node.stop().await;
//! # Ok(())
//! # }
//! ```

pub mod api;
pub mod cli;
pub mod entity;
pub mod http;
mod logging;
pub mod node;
pub mod password;
pub mod plugin;
pub mod seed;
