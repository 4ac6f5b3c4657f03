//! Jobs, groups and log rows as the API sees them (field names of LinaPro's
//! contract), and the enums stored as text.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::entity;
use crate::error::{Error, Result};

macro_rules! text_enum {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident = $text:literal),* $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum $name {
            $($(#[$vdoc])* #[serde(rename = $text)] $variant),*
        }

        impl $name {
            /// The stored and wire spelling.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),* }
            }

            /// Parses the stored and wire spelling.
            pub fn parse(field: &str, text: &str) -> Result<Self> {
                match text {
                    $($text => Ok($name::$variant),)*
                    other => Err(Error::invalid(field, format!(
                        "{other:?} is not one of {}",
                        [$($text),*].join(", ")
                    ))),
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

text_enum!(
    /// Where a job runs.
    JobScope {
        /// Only the leader runs it; followers record a skip.
        MasterOnly = "master_only",
        /// Every node runs it.
        AllNode = "all_node",
    }
);

text_enum!(
    /// Whether runs of one job may overlap.
    Concurrency {
        /// One run at a time (cluster-wide for master_only jobs).
        Singleton = "singleton",
        /// Up to `maxConcurrency` runs at a time on a node.
        Parallel = "parallel",
    }
);

text_enum!(
    /// What a new leader (or restarted node) does with fires it missed.
    MisfirePolicy {
        /// Run each missed fire of the last `misfireThreshold` once.
        FireOnce = "fire_once",
        /// Ignore missed fires.
        Skip = "skip",
    }
);

text_enum!(
    /// Whether a job is scheduled.
    JobStatus {
        /// Scheduled.
        Enabled = "enabled",
        /// Not scheduled (manual triggers still work).
        Disabled = "disabled",
    }
);

text_enum!(
    /// What started a run.
    Trigger {
        /// Its schedule.
        Cron = "cron",
        /// An operator.
        Manual = "manual",
    }
);

text_enum!(
    /// Outcome of a run, as recorded in `sys_job_log.status`.
    RunStatus {
        /// Started, not finished.
        Running = "running",
        /// Finished without error.
        Success = "success",
        /// The handler failed (or the node died while it ran).
        Failed = "failed",
        /// The handler ran past its timeout and was cancelled.
        Timeout = "timeout",
        /// Cancelled at shutdown.
        Cancelled = "cancelled",
        /// This node was not the leader at a master_only fire.
        SkippedNotPrimary = "skipped_not_primary",
        /// A singleton job was still running.
        SkippedSingleton = "skipped_singleton",
        /// The job's parallel limit was reached.
        SkippedMaxConcurrency = "skipped_max_concurrency",
    }
);

/// A scheduled job.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Job {
    /// Id.
    pub id: i64,
    /// Group id.
    pub group_id: i64,
    /// Unique name.
    pub name: String,
    /// Free text.
    pub description: String,
    /// Name of the registered handler (`host:wait`, `plugin-x:sync`, …).
    pub handler_ref: String,
    /// Handler parameters (a JSON object).
    pub params: Value,
    /// Seconds before the run is cancelled; 0 for none.
    pub timeout_seconds: u32,
    /// Cron expression or `@every`.
    pub cron_expr: String,
    /// Time zone of the expression; empty for `scheduler.defaultTimezone`.
    pub timezone: String,
    /// Where it runs.
    pub scope: JobScope,
    /// Overlap policy.
    pub concurrency: Concurrency,
    /// Parallel limit (per node).
    pub max_concurrency: u32,
    /// Missed-fire policy.
    pub misfire_policy: MisfirePolicy,
    /// Enabled or disabled.
    pub status: JobStatus,
    /// Built in (cannot be deleted).
    pub is_builtin: bool,
    /// Owning plugin, if any.
    pub plugin_id: Option<String>,
    /// Unix ms.
    pub created_at: i64,
    /// Unix ms.
    pub updated_at: i64,
}

impl TryFrom<entity::job::Model> for Job {
    type Error = Error;

    fn try_from(m: entity::job::Model) -> Result<Job> {
        Ok(Job {
            params: serde_json::from_str(&m.params).unwrap_or(Value::Object(Default::default())),
            scope: JobScope::parse("scope", &m.scope)?,
            concurrency: Concurrency::parse("concurrency", &m.concurrency)?,
            misfire_policy: MisfirePolicy::parse("misfirePolicy", &m.misfire_policy)?,
            status: JobStatus::parse("status", &m.status)?,
            id: m.id,
            group_id: m.group_id,
            name: m.name,
            description: m.description,
            handler_ref: m.handler_ref,
            timeout_seconds: m.timeout_seconds.max(0) as u32,
            cron_expr: m.cron_expr,
            timezone: m.timezone,
            max_concurrency: m.max_concurrency.max(1) as u32,
            is_builtin: m.is_builtin != 0,
            plugin_id: m.plugin_id,
            created_at: m.created_at,
            updated_at: m.updated_at,
        })
    }
}

/// The fields of a job as given by a create or update request (API
/// spelling); omitted optional fields take their defaults.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JobSpec {
    /// Group (default group when omitted).
    #[serde(default)]
    pub group_id: Option<i64>,
    /// Unique name, 1–128 characters.
    pub name: String,
    /// Free text.
    #[serde(default)]
    pub description: String,
    /// Registered handler name.
    pub handler_ref: String,
    /// JSON object of handler parameters.
    #[serde(default)]
    pub params: Option<Value>,
    /// Seconds before cancellation; 0 for none (at most one day).
    #[serde(default)]
    pub timeout_seconds: u32,
    /// Cron expression or `@every`.
    pub cron_expr: String,
    /// Time zone; empty for the default.
    #[serde(default)]
    pub timezone: String,
    /// Default `master_only`.
    #[serde(default)]
    pub scope: Option<JobScope>,
    /// Default `singleton`.
    #[serde(default)]
    pub concurrency: Option<Concurrency>,
    /// Default 1; 1–100.
    #[serde(default)]
    pub max_concurrency: Option<u32>,
    /// Default `fire_once`.
    #[serde(default)]
    pub misfire_policy: Option<MisfirePolicy>,
    /// Default `enabled`.
    #[serde(default)]
    pub status: Option<JobStatus>,
}

/// A job group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct JobGroup {
    /// Id.
    pub id: i64,
    /// Stable code.
    pub code: String,
    /// Display name.
    pub name: String,
    /// Sort order.
    pub sort: i32,
    /// Free text.
    pub remark: String,
    /// The protected default group.
    pub is_default: bool,
    /// Unix ms.
    pub created_at: i64,
    /// Unix ms.
    pub updated_at: i64,
}

impl From<entity::job_group::Model> for JobGroup {
    fn from(m: entity::job_group::Model) -> Self {
        JobGroup {
            id: m.id,
            code: m.code,
            name: m.name,
            sort: m.sort,
            remark: m.remark,
            is_default: m.is_default != 0,
            created_at: m.created_at,
            updated_at: m.updated_at,
        }
    }
}

/// The fields of a group as given by a request.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GroupSpec {
    /// Stable code (defaults to the name, lowercased).
    #[serde(default)]
    pub code: Option<String>,
    /// Display name, 1–64 characters.
    pub name: String,
    /// Sort order.
    #[serde(default)]
    pub sort: i32,
    /// Free text.
    #[serde(default)]
    pub remark: String,
}

/// One run (or skip) of a job on one node.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct JobLog {
    /// Id.
    pub id: i64,
    /// The job.
    pub job_id: i64,
    /// The job's name when it ran.
    pub job_name: String,
    /// The handler.
    pub handler_ref: String,
    /// The node that wrote the row.
    pub node_id: String,
    /// `cron` or `manual`.
    pub trigger: Trigger,
    /// The fire instant (Unix ms).
    pub scheduled_at: i64,
    /// Handler start (Unix ms).
    pub start_at: Option<i64>,
    /// Handler end (Unix ms).
    pub end_at: Option<i64>,
    /// Run time.
    pub duration_ms: Option<i64>,
    /// Outcome.
    pub status: RunStatus,
    /// Error message, empty on success.
    pub err_msg: String,
    /// What the handler returned.
    pub result_json: Option<Value>,
    /// Leader term under which a master_only run was claimed.
    pub term: Option<i64>,
}

impl TryFrom<entity::job_log::Model> for JobLog {
    type Error = Error;

    fn try_from(m: entity::job_log::Model) -> Result<JobLog> {
        Ok(JobLog {
            trigger: Trigger::parse("trigger", &m.trigger_type)?,
            status: RunStatus::parse("status", &m.status)?,
            result_json: m.result_json.and_then(|r| serde_json::from_str(&r).ok()),
            id: m.id,
            job_id: m.job_id,
            job_name: m.job_name,
            handler_ref: m.handler_ref,
            node_id: m.node_id,
            scheduled_at: m.scheduled_at,
            start_at: m.start_at,
            end_at: m.end_at,
            duration_ms: m.duration_ms,
            err_msg: m.err_msg,
            term: m.term,
        })
    }
}

/// Filters of a job query (all optional).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobFilter {
    /// One group.
    pub group_id: Option<i64>,
    /// One status.
    pub status: Option<JobStatus>,
    /// Name contains this (case-insensitive; `%` and `_` taken literally).
    pub name: Option<String>,
    /// One handler (exact name).
    pub handler_ref: Option<String>,
}

/// Filters of a log query (all optional).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogFilter {
    /// One job.
    pub job_id: Option<i64>,
    /// One status.
    pub status: Option<RunStatus>,
    /// One trigger.
    pub trigger: Option<Trigger>,
    /// One node.
    pub node_id: Option<String>,
    /// Scheduled at or after (Unix ms).
    pub begin_time: Option<i64>,
    /// Scheduled at or before (Unix ms).
    pub end_time: Option<i64>,
}

/// A page request: 1-based page number and size (1–500).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    /// 1-based page number.
    pub num: u64,
    /// Rows per page.
    pub size: u64,
}

impl Page {
    /// Validated paging.
    pub fn new(num: u64, size: u64) -> Result<Page> {
        if num == 0 {
            return Err(Error::invalid("pageNum", "must be 1 or more"));
        }
        if size == 0 || size > 500 {
            return Err(Error::invalid(
                "pageSize",
                format!("{size} must be between 1 and 500"),
            ));
        }
        Ok(Page { num, size })
    }
}

impl Default for Page {
    fn default() -> Self {
        Page { num: 1, size: 20 }
    }
}

/// One page of results.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PageResult<T> {
    /// The rows.
    pub list: Vec<T>,
    /// Rows matching the query in all.
    pub total: u64,
}
