//! The host's built-in handlers and jobs.

use std::sync::Arc;
use std::time::Duration;

use lina_cache::CacheRegistry;
use lina_coord_api::unix_millis;
use sea_orm::{ConnectionTrait, DbBackend, Statement};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::error::Result;
use crate::handler::{HandlerInfo, HandlerRegistry, JobContext, JobError, typed};
use crate::model::{JobScope, JobSpec, MisfirePolicy};
use crate::store::JobStore;

/// `host:wait`: sleeps `ms` milliseconds (diagnostics), honouring cancellation.
pub const WAIT: &str = "host:wait";
/// `host:cleanup-job-logs`: deletes finished log rows and claims older than `retentionDays`.
pub const CLEANUP_JOB_LOGS: &str = "host:cleanup-job-logs";
/// `host:session-cleanup`: deletes online-session rows idle past `timeoutSeconds`.
pub const SESSION_CLEANUP: &str = "host:session-cleanup";
/// `host:cache-self-check`: sweeps this node's cache revisions and reports each domain.
pub const CACHE_SELF_CHECK: &str = "host:cache-self-check";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WaitParams {
    #[serde(default)]
    ms: u64,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CleanupParams {
    #[serde(default = "thirty")]
    retention_days: u32,
}

fn thirty() -> u32 {
    30
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SessionParams {
    /// Default: the node's `session.timeout`.
    #[serde(default)]
    timeout_seconds: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NoParams {}

fn info(name: &str, description: &str, schema: Value, scope: JobScope) -> HandlerInfo {
    HandlerInfo {
        name: name.to_string(),
        description: description.to_string(),
        params_schema: schema,
        default_scope: scope,
        source: "host".to_string(),
    }
}

/// Registers the built-in handlers (skipping any already registered).
pub(crate) fn register(
    handlers: &HandlerRegistry,
    store: &JobStore,
    caches: &CacheRegistry,
    session_timeout: Duration,
) -> Result<()> {
    if !handlers.contains(WAIT) {
        handlers.register(
            info(
                WAIT,
                "sleeps for the given milliseconds (diagnostics)",
                json!({"type": "object", "properties": {"ms": {"type": "integer", "minimum": 0, "default": 0}}, "additionalProperties": false}),
                JobScope::MasterOnly,
            ),
            Arc::new(typed(|p: WaitParams, ctx: JobContext| async move {
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(p.ms)) => Ok(json!({"sleptMs": p.ms})),
                    _ = ctx.cancel.cancelled() => Err(JobError::new("cancelled while waiting")),
                }
            })),
        )?;
    }
    if !handlers.contains(CLEANUP_JOB_LOGS) {
        let store = store.clone();
        handlers.register(
            info(
                CLEANUP_JOB_LOGS,
                "deletes finished job logs and fire claims older than the retention",
                json!({"type": "object", "properties": {"retentionDays": {"type": "integer", "minimum": 0, "default": 30}}, "additionalProperties": false}),
                JobScope::MasterOnly,
            ),
            Arc::new(typed(move |p: CleanupParams, _ctx: JobContext| {
                let store = store.clone();
                async move {
                    let before = unix_millis() - p.retention_days as i64 * 86_400_000;
                    let deleted = store.cleanup_logs(before).await.map_err(JobError::new)?;
                    Ok(json!({"deleted": deleted, "before": before}))
                }
            })),
        )?;
    }
    if !handlers.contains(SESSION_CLEANUP) {
        let db = store.db().clone();
        handlers.register(
            info(
                SESSION_CLEANUP,
                "deletes online sessions idle for longer than the session timeout",
                json!({"type": "object", "properties": {"timeoutSeconds": {"type": "integer", "minimum": 1, "description": "default: session.timeout"}}, "additionalProperties": false}),
                JobScope::MasterOnly,
            ),
            Arc::new(typed(move |p: SessionParams, _ctx: JobContext| {
                let db = db.clone();
                async move {
                    let timeout = p.timeout_seconds.unwrap_or(session_timeout.as_secs()).max(1);
                    let before = unix_millis() - (timeout as i64).saturating_mul(1000);
                    let backend = db.get_database_backend();
                    let sql = match backend {
                        DbBackend::Postgres => "DELETE FROM sys_online_session WHERE last_active_time < $1",
                        _ => "DELETE FROM sys_online_session WHERE last_active_time < ?",
                    };
                    let result = db
                        .execute_raw(Statement::from_sql_and_values(backend, sql, [before.into()]))
                        .await
                        .map_err(JobError::new)?;
                    Ok(json!({"deleted": result.rows_affected()}))
                }
            })),
        )?;
    }
    if !handlers.contains(CACHE_SELF_CHECK) {
        let caches = caches.clone();
        handlers.register(
            info(
                CACHE_SELF_CHECK,
                "re-reads this node's cache revisions and reports every domain",
                json!({"type": "object", "additionalProperties": false}),
                JobScope::AllNode,
            ),
            Arc::new(typed(move |_: NoParams, _ctx: JobContext| {
                let caches = caches.clone();
                async move {
                    caches.sweep().await;
                    let domains: Vec<Value> = caches
                        .stats()
                        .into_iter()
                        .map(|d| {
                            json!({
                                "domain": d.domain,
                                "entries": d.entries,
                                "fresh": d.scopes.iter().filter(|s| s.fresh).count(),
                                "lastConfirmedMs": d.last_confirmed_ms,
                            })
                        })
                        .collect();
                    Ok(json!({"domains": domains}))
                }
            })),
        )?;
    }
    Ok(())
}

/// Creates the built-in jobs once (cluster-safe): daily log cleanup,
/// session cleanup every `session_interval`, and a cache self-check on every
/// node every five minutes.
pub(crate) async fn ensure_jobs(store: &JobStore, session_interval: Duration) -> Result<()> {
    let minutes = (session_interval.as_secs() / 60).clamp(1, 59);
    let jobs = [
        (
            CLEANUP_JOB_LOGS,
            "Clean up job logs",
            "0 3 * * *".to_string(),
            JobScope::MasterOnly,
            json!({"retentionDays": 30}),
        ),
        (
            SESSION_CLEANUP,
            "Clean up online sessions",
            format!("*/{minutes} * * * *"),
            JobScope::MasterOnly,
            json!({}),
        ),
        (
            CACHE_SELF_CHECK,
            "Cache self-check",
            "*/5 * * * *".to_string(),
            JobScope::AllNode,
            json!({}),
        ),
    ];
    for (handler, name, cron, scope, params) in jobs {
        let spec = JobSpec {
            name: name.to_string(),
            description: format!("built in: {handler}"),
            handler_ref: handler.to_string(),
            params: Some(params),
            timeout_seconds: 600,
            cron_expr: cron,
            scope: Some(scope),
            misfire_policy: Some(MisfirePolicy::Skip),
            ..JobSpec::default()
        };
        store.ensure_builtin(&spec, None).await?;
    }
    Ok(())
}
