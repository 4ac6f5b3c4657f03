//! Test-only helpers for Lina: real Redis and PostgreSQL servers for tests,
//! temporary SQLite files, free ports and polling with a deadline.
//!
//! No test is skipped for want of a service: each helper finds one or starts
//! one, or fails with a message that says what to install.
//!
//! - [`shared_redis`]: a Redis shared by all tests; use a unique key prefix, never flush.
//! - [`RedisServer`]: a private `redis-server` per test, to kill, pause or restart.
//! - [`RedisClusterServer`]: a private Redis Cluster of N masters per test.
//! - [`fresh_database`]: a new, uniquely named PostgreSQL database, dropped on drop.
//! - [`temp_sqlite`]: a SQLite file in a temporary directory.
//! - [`free_port`], [`wait_until`]: poll with a deadline, never sleep and hope.
//! - [`Discovery`], [`ensure_services_blocking`]: how the shared services are
//!   found (`LINA_TEST_REDIS_URL` / `LINA_TEST_DATABASE_URL`, then the default
//!   local ports 6379 and 5432, then throwaway servers started from the
//!   installed `redis-server`, `initdb` and `pg_ctl`, shared by all test
//!   processes through a file lock).
//!
//! ```
//! use std::time::Duration;
//! use tokio::io::{AsyncReadExt, AsyncWriteExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> lina_testkit::Result<()> {
//! let redis = lina_testkit::RedisServer::start().await?;
//! let mut conn = tokio::net::TcpStream::connect((redis.host(), redis.port())).await.unwrap();
//! conn.write_all(b"PING\r\n").await.unwrap();
//! let mut buf = [0u8; 7];
//! conn.read_exact(&mut buf).await.unwrap();
//! assert_eq!(&buf, b"+PONG\r\n");
//!
//! redis.kill()?;
//! let gone = lina_testkit::wait_until(Duration::from_secs(5), Duration::from_millis(5), || async {
//!     !redis.is_running()
//! })
//! .await;
//! assert!(gone);
//! # Ok(())
//! # }
//! ```

mod discovery;
mod error;
mod net;
mod postgres;
mod redis;
mod redis_cluster;
mod sqlite;
mod sys;

pub use discovery::{
    DATABASE_URL_ENV, Discovered, Discovery, PG_PORT_PROBE_ENV, REDIS_PORT_PROBE_ENV,
    REDIS_URL_ENV, STATE_DIR_ENV, ServiceSource, Services, ensure_services_blocking, shared_redis,
    stop_throwaways_blocking,
};
pub use error::{Error, Result};
pub use net::{free_port, wait_until};
pub use postgres::{TestDatabase, create_database, fresh_database};
pub use redis::{RedisSentinel, RedisServer, RedisServerBuilder, redis_sentinel_available};
pub use redis_cluster::RedisClusterServer;
pub use sqlite::{TempSqlite, temp_sqlite};
