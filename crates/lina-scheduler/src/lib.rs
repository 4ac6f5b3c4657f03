//! Persistent scheduled jobs for Lina.
//!
//! Jobs live in the shared database (`sys_job_group`, `sys_job`,
//! `sys_job_log`, `sys_job_fire`, created by `lina-migration`). Every node
//! runs a [`Scheduler`] that loads every enabled job (through the
//! `scheduler-jobs` revisioned cache, so a change on any node reaches every
//! schedule without a restart) and computes fire instants itself, in the
//! job's time zone. Then:
//!
//! - `master_only`: at each fire the node that leads *at that instant*
//!   claims `(job, scheduled_at)` by insert, fenced by its term, and only the
//!   node whose insert succeeds runs the job — one run per fire holds in the
//!   database even if two nodes briefly both believe they lead. Followers
//!   record `skipped_not_primary`.
//! - `all_node`: every node claims its own `(job, scheduled_at, node)` and runs.
//! - `singleton` (cluster-wide lock for master_only) or `parallel` up to
//!   `maxConcurrency`; timeouts cancel the handler's token; misfires of the
//!   last `misfireThreshold` run once on a new leader (`fire_once`).
//!
//! This crate sees only `lina-coord-api` and `lina-cache`: it runs unchanged
//! on the local backend and on Redis.
//!
//! # Example: a plugin job with typed parameters
//!
//! ```
//! use std::sync::Arc;
//! use lina_scheduler::{HandlerInfo, HandlerRegistry, JobContext, JobError, JobScope, typed};
//! use serde::Deserialize;
//! use serde_json::json;
//!
//! #[derive(Deserialize)]
//! struct SyncParams { batch: u32 }
//!
//! let handlers = HandlerRegistry::default();
//! handlers.register(
//!     HandlerInfo {
//!         name: "demo:sync".into(),
//!         description: "syncs the demo plugin's data".into(),
//!         params_schema: json!({"type": "object", "properties": {"batch": {"type": "integer"}}}),
//!         default_scope: JobScope::MasterOnly,
//!         source: "demo".into(),
//!     },
//!     Arc::new(typed(|p: SyncParams, ctx: JobContext| async move {
//!         if ctx.cancel.is_cancelled() {
//!             return Err(JobError::new("cancelled"));
//!         }
//!         Ok(json!({"synced": p.batch}))
//!     })),
//! )?;
//! assert!(handlers.validate("demo:sync", &json!({"batch": 10})).is_ok());
//! assert!(handlers.validate("demo:sync", &json!({"batch": "ten"})).is_err());
//! # Ok::<(), lina_scheduler::Error>(())
//! ```

pub mod builtin;
mod engine;
pub mod entity;
mod error;
mod handler;
mod model;
mod schedule;
mod store;

pub use engine::{PausedJob, Scheduler, SchedulerSettings, ShutdownReport};
pub use error::{Error, Result};
pub use handler::{HandlerInfo, HandlerRegistry, JobContext, JobError, JobHandler, Typed, typed};
pub use model::{
    Concurrency, GroupSpec, Job, JobFilter, JobGroup, JobLog, JobScope, JobSpec, JobStatus,
    LogFilter, MisfirePolicy, Page, PageResult, RunStatus, Trigger,
};
pub use schedule::{Schedule, parse_timezone};
pub use store::{JOBS_DOMAIN, JOBS_SCOPE, JobStore, JobsCache};
