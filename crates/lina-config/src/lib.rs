//! Configuration of Lina.
//!
//! Three layers, later ones winning: built-in defaults ← a YAML file
//! (`config.yaml`, LinaPro's `config.template.yaml` keys and formats, so a
//! LinaPro operator's file works unchanged) ← `LINA_*` environment variables
//! (`__` between levels, e.g. `LINA_CLUSTER__ENABLED=true`; each level matches
//! the camelCase key ignoring case and `_`, so `LINA_CLUSTER__ELECTION__RENEW_INTERVAL`
//! and `LINA_CLUSTER__ELECTION__RENEWINTERVAL` both set
//! `cluster.election.renewInterval`; `LINA_NODE_ID` sets `cluster.nodeId`).
//!
//! - Durations are Go strings (`30s`, `5m`, `1h30m`, `500ms`, plus `d`) read
//!   into [`std::time::Duration`]; a bare number is a problem.
//! - `database.default.link` accepts GoFrame links (`pgsql:user:pass@tcp(host:port)/db?…`,
//!   `sqlite::@file(./x.db)`) and URLs (`postgres://…`, `sqlite://…`), parsed
//!   into [`DatabaseLink`]; MySQL is refused.
//! - Unknown keys, in the file or the environment, are warnings naming their
//!   full path; nothing is silently ignored.
//! - Validation reports every problem at once, each with its key path, in
//!   [`ConfigError::Invalid`].
//! - Secrets ([`Secret`]) print as `***` in `Debug`, `Display`, `Serialize`
//!   and [`Config::effective_yaml`].
//!
//! This crate knows nothing of HTTP, Redis or SQL clients: it hands the
//! server typed values ([`ServerConfig::bind_addr`], [`DatabaseLink::connection_url`],
//! [`ElectionConfig`] durations) and stops there.
//!
//! ```
//! use std::time::Duration;
//!
//! let yaml = r#"
//! server:
//!   address: ":8080"
//! database:
//!   default:
//!     link: "pgsql:postgres:postgres@tcp(127.0.0.1:5432)/linapro?sslmode=disable"
//! cluster:
//!   election:
//!     lease: 30s
//!     renewInterval: 10s
//! "#;
//! let env = [("LINA_CLUSTER__ELECTION__LEASE".to_string(), "45s".to_string())];
//! let loaded = lina_config::load_from(Some(yaml), env)?;
//! let config = &loaded.config;
//!
//! assert_eq!(config.server.bind_addr().to_string(), "0.0.0.0:8080");
//! assert_eq!(config.cluster.election.lease, Duration::from_secs(45));
//! assert_eq!(
//!     config.database.default.link.connection_url().expose(),
//!     "postgres://postgres:postgres@127.0.0.1:5432/linapro?sslmode=disable"
//! );
//! // The LinaPro default JWT secret is only a warning in single-node mode.
//! assert!(loaded.warnings.iter().any(|w| w.path == "jwt.secret"));
//! assert!(!config.effective_yaml().contains(lina_config::DEFAULT_JWT_SECRET));
//!
//! // Every problem at once, each with its path.
//! let err = lina_config::load_from(
//!     Some("cluster:\n  enabled: true\n  election:\n    renewInterval: 40s\n"),
//!     std::iter::empty(),
//! )
//! .unwrap_err();
//! let paths: Vec<&str> = err.problems().iter().map(|p| p.path.as_str()).collect();
//! assert_eq!(paths, ["cluster.election.renewInterval", "jwt.secret", "database.default.link"]);
//! # Ok::<(), lina_config::ConfigError>(())
//! ```

mod addr;
pub mod duration;
mod link;
mod load;
mod model;
mod problem;
mod schema;
mod secret;
mod validate;

pub use addr::{AddrError, ListenAddr};
pub use link::{DEFAULT_LINK, DEFAULT_POSTGRES_PORT, DatabaseLink, LinkError};
pub use load::{DEFAULT_CONFIG_FILE, Loaded, load, load_file, load_from};
pub use model::{
    AutoEnablePlugin, CacheConfig, ClusterConfig, Config, DEFAULT_JWT_SECRET, DatabaseConfig,
    DatabaseGroup, DynamicPluginConfig, ElectionConfig, HealthConfig, I18nConfig, JwtConfig,
    LocaleEntry, LogFormat, LoggerConfig, LoggerExtensions, MIN_CLUSTER_JWT_SECRET_CHARS,
    MonitorConfig, PluginConfig, RedisConfig, RedisTls, SchedulerConfig, SentinelConfig,
    ServerConfig, ServerExtensions, SessionConfig, ShutdownConfig, UploadConfig, WorkspaceConfig,
};
pub use problem::{ConfigError, Problem, Result};
pub use schema::{IGNORED_ENV_PREFIX, IGNORED_ENV_VARS};
pub use secret::{REDACTED, Secret};
