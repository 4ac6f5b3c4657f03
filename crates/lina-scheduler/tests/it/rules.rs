//! Single node on SQLite: runs, timeouts, concurrency, pauses, manual
//! triggers, recovery and shutdown.

use std::sync::Arc;
use std::time::Duration;

use lina_coord_api::unix_millis;
use lina_scheduler::{
    Concurrency, Error, GroupSpec, HandlerInfo, JobContext, JobError, JobFilter, JobScope, JobSpec,
    JobStatus, Page, RunStatus, Trigger, typed,
};
use sea_orm::{ConnectionTrait, DbBackend, Statement};
use serde_json::json;

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn single_node_on_sqlite_runs_every_fire_as_leader() {
    let (db, _file) = sqlite().await;
    let n = node(single("solo").await, &db, settings()).await;
    let id = n
        .scheduler
        .store()
        .create_job(&every_second("solo-job", "host:wait"))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(3500)).await;
    n.scheduler.shutdown().await;
    let logs = logs(&n.scheduler, id).await;
    let successes: Vec<_> = logs
        .iter()
        .filter(|l| l.status == RunStatus::Success)
        .collect();
    assert!(successes.len() >= 3, "{logs:?}");
    assert!(
        successes
            .iter()
            .all(|l| l.term == Some(1) && l.trigger == Trigger::Cron)
    );
    let fires = by_fire(&logs);
    assert!(fires.values().all(|rows| rows.len() == 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn timeouts_cancel_and_manual_triggers_return_the_log_id() {
    let (db, _file) = sqlite().await;
    let n = node(single("solo").await, &db, settings()).await;
    let spec = JobSpec {
        name: "slow".into(),
        handler_ref: "host:wait".into(),
        params: Some(json!({"ms": 10_000})),
        timeout_seconds: 1,
        cron_expr: "0 0 1 1 *".into(),
        ..JobSpec::default()
    };
    let id = n.scheduler.store().create_job(&spec).await.unwrap();
    let started = std::time::Instant::now();
    let log_id = n.scheduler.trigger(id).await.unwrap();
    let log = n.scheduler.store().log(log_id).await.unwrap();
    assert_eq!(log.trigger, Trigger::Manual);
    assert_eq!(log.status, RunStatus::Running);
    assert!(
        eventually(Duration::from_secs(4), || async {
            n.scheduler.store().log(log_id).await.unwrap().status == RunStatus::Timeout
        })
        .await
    );
    assert!(started.elapsed() < Duration::from_secs(3));
    let log = n.scheduler.store().log(log_id).await.unwrap();
    assert!(log.err_msg.contains("timeout"), "{log:?}");
    assert!(log.duration_ms.unwrap() >= 1000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn singleton_skips_and_parallel_limits() {
    let (db, _file) = sqlite().await;
    let n = node(single("solo").await, &db, settings()).await;
    let store = n.scheduler.store();
    let single_id = store
        .create_job(&JobSpec {
            name: "long-singleton".into(),
            handler_ref: "host:wait".into(),
            params: Some(json!({"ms": 2500})),
            cron_expr: "@every 1s".into(),
            ..JobSpec::default()
        })
        .await
        .unwrap();
    let parallel_id = store
        .create_job(&JobSpec {
            name: "long-parallel".into(),
            handler_ref: "host:wait".into(),
            params: Some(json!({"ms": 2500})),
            cron_expr: "@every 1s".into(),
            scope: Some(JobScope::AllNode),
            concurrency: Some(Concurrency::Parallel),
            max_concurrency: Some(2),
            ..JobSpec::default()
        })
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(4500)).await;
    n.scheduler.shutdown().await;
    let single = logs(&n.scheduler, single_id).await;
    assert!(
        single
            .iter()
            .any(|l| l.status == RunStatus::SkippedSingleton),
        "{single:?}"
    );
    let parallel = logs(&n.scheduler, parallel_id).await;
    assert!(
        parallel
            .iter()
            .any(|l| l.status == RunStatus::SkippedMaxConcurrency),
        "{parallel:?}"
    );
    // Never more than two at once: runs overlapping any instant <= 2.
    let runs: Vec<(i64, i64)> = parallel
        .iter()
        .filter(|l| l.status == RunStatus::Success)
        .map(|l| (l.start_at.unwrap(), l.end_at.unwrap()))
        .collect();
    for (start, _) in &runs {
        let overlapping = runs.iter().filter(|(s, e)| s <= start && start < e).count();
        assert!(overlapping <= 2, "{overlapping} runs at {start}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn missing_handler_pauses_and_registration_resumes() {
    let (db, _file) = sqlite().await;
    let n = node(single("solo").await, &db, settings()).await;
    let info = HandlerInfo {
        name: "test:late".into(),
        description: "registered late".into(),
        params_schema: json!({"type": "object"}),
        default_scope: JobScope::MasterOnly,
        source: "test".into(),
    };
    let handler = || {
        Arc::new(typed(|_: serde_json::Value, _ctx: JobContext| async {
            Ok::<_, JobError>(json!("ran"))
        }))
    };
    n.scheduler
        .handlers()
        .register(info.clone(), handler())
        .unwrap();
    let id = n
        .scheduler
        .store()
        .create_job(&every_second("late-job", "test:late"))
        .await
        .unwrap();
    n.scheduler.handlers().unregister("test:late");
    assert!(
        eventually(Duration::from_secs(2), || async {
            n.scheduler
                .paused()
                .iter()
                .any(|p| p.job_id == id && p.reason.contains("test:late"))
        })
        .await,
        "job paused"
    );
    let paused_at = unix_millis();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let during: Vec<_> = logs(&n.scheduler, id)
        .await
        .into_iter()
        .filter(|l| l.scheduled_at > paused_at + 200)
        .collect();
    assert!(during.is_empty(), "a paused job ran or failed: {during:?}");
    n.scheduler.handlers().register(info, handler()).unwrap();
    assert!(
        eventually(Duration::from_secs(3), || async {
            logs(&n.scheduler, id)
                .await
                .iter()
                .any(|l| l.status == RunStatus::Success && l.result_json == Some(json!("ran")))
        })
        .await,
        "job resumed"
    );
    assert!(n.scheduler.paused().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rows_left_running_are_failed_on_start_and_shutdown_cancels() {
    let (db, _file) = sqlite().await;
    let n = node(single("restarting").await, &db, settings()).await;
    let spec = JobSpec {
        name: "very-slow".into(),
        handler_ref: "host:wait".into(),
        params: Some(json!({"ms": 60_000})),
        cron_expr: "0 0 1 1 *".into(),
        ..JobSpec::default()
    };
    let id = n.scheduler.store().create_job(&spec).await.unwrap();
    let cancelled = n.scheduler.trigger(id).await.unwrap();
    let report = n.scheduler.shutdown().await;
    assert_eq!(report.cancelled, 1);
    assert_eq!(
        n.scheduler.store().log(cancelled).await.unwrap().status,
        RunStatus::Cancelled
    );
    assert!(matches!(
        n.scheduler.trigger(id).await,
        Err(Error::ShuttingDown)
    ));

    // A row a dead process left behind.
    db.execute_raw(Statement::from_string(
        DbBackend::Sqlite,
        format!(
            "INSERT INTO sys_job_log (job_id, node_id, trigger_type, scheduled_at, start_at, status) \
             VALUES ({id}, 'restarting', 'cron', {now}, {now}, 'running')",
            now = unix_millis()
        ),
    ))
    .await
    .unwrap();
    let again = node(single("restarting").await, &db, settings()).await;
    let logs = logs(&again.scheduler, id).await;
    let recovered = logs.iter().find(|l| l.trigger == Trigger::Cron).unwrap();
    assert_eq!(recovered.status, RunStatus::Failed);
    assert!(recovered.err_msg.contains("restarted"), "{recovered:?}");
    again.scheduler.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn invalid_jobs_are_refused_with_the_field() {
    let (db, _file) = sqlite().await;
    let n = node(single("solo").await, &db, settings()).await;
    let store = n.scheduler.store();
    let base = every_second("valid", "host:wait");
    let cases: Vec<(JobSpec, &str)> = vec![
        (
            JobSpec {
                cron_expr: "* * *".into(),
                ..base.clone()
            },
            "cronExpr",
        ),
        (
            JobSpec {
                timezone: "Mars/Base".into(),
                ..base.clone()
            },
            "timezone",
        ),
        (
            JobSpec {
                handler_ref: "nope".into(),
                ..base.clone()
            },
            "handlerRef",
        ),
        (
            JobSpec {
                params: Some(json!({"ms": "x"})),
                ..base.clone()
            },
            "params",
        ),
        (
            JobSpec {
                params: Some(json!([1])),
                ..base.clone()
            },
            "params",
        ),
        (
            JobSpec {
                max_concurrency: Some(0),
                ..base.clone()
            },
            "maxConcurrency",
        ),
        (
            JobSpec {
                name: String::new(),
                ..base.clone()
            },
            "name",
        ),
        (
            JobSpec {
                group_id: Some(9999),
                ..base.clone()
            },
            "groupId",
        ),
    ];
    for (spec, field) in cases {
        match store.create_job(&spec).await {
            Err(Error::Invalid { field: got, .. }) => assert_eq!(got, field),
            other => panic!("{field}: expected invalid, got {other:?}"),
        }
    }
    store.create_job(&base).await.unwrap();
    assert!(matches!(
        store.create_job(&base).await,
        Err(Error::Conflict(_))
    ));
    let default = store.default_group().await.unwrap();
    assert!(matches!(
        store.delete_groups(&[default.id]).await,
        Err(Error::Conflict(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn jobs_filter_by_group_status_name_and_handler() {
    let (db, _file) = sqlite().await;
    let n = node(single("solo").await, &db, settings()).await;
    let store = n.scheduler.store();
    let group = store
        .create_group(&GroupSpec {
            name: "Reports".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let disabled = |spec: JobSpec| JobSpec {
        status: Some(JobStatus::Disabled),
        ..spec
    };
    let wait = store
        .create_job(&disabled(every_second("Nightly_Wait", "host:wait")))
        .await
        .unwrap();
    let cleanup = store
        .create_job(&JobSpec {
            group_id: Some(group),
            ..disabled(every_second("nightly cleanup", "host:cleanup-job-logs"))
        })
        .await
        .unwrap();
    let other = store
        .create_job(&every_second("NightlyXWait", "host:wait"))
        .await
        .unwrap();
    let ids = |filter: JobFilter| async move {
        let page = store
            .find_jobs(&filter, Page::new(1, 100).unwrap())
            .await
            .unwrap();
        assert_eq!(page.total as usize, page.list.len());
        page.list.iter().map(|j| j.id).collect::<Vec<_>>()
    };
    assert_eq!(
        ids(JobFilter {
            name: Some("NIGHTLY".into()),
            ..JobFilter::default()
        })
        .await,
        vec![wait, cleanup, other],
        "names match case-insensitively"
    );
    assert_eq!(
        ids(JobFilter {
            name: Some("y_w".into()),
            ..JobFilter::default()
        })
        .await,
        vec![wait],
        "_ is literal"
    );
    assert_eq!(
        ids(JobFilter {
            handler_ref: Some("host:wait".into()),
            ..JobFilter::default()
        })
        .await,
        vec![wait, other]
    );
    assert_eq!(
        ids(JobFilter {
            group_id: Some(group),
            ..JobFilter::default()
        })
        .await,
        vec![cleanup]
    );
    assert_eq!(
        ids(JobFilter {
            status: Some(JobStatus::Disabled),
            handler_ref: Some("host:wait".into()),
            ..JobFilter::default()
        })
        .await,
        vec![wait]
    );
    n.scheduler.shutdown().await;
}

/// The session cleanup job deletes rows idle past `session.timeout` (the
/// node's setting) unless the job names its own `timeoutSeconds`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn session_cleanup_defaults_to_the_session_timeout() {
    let (db, _file) = sqlite().await;
    let n = node(
        single("solo").await,
        &db,
        lina_scheduler::SchedulerSettings {
            session_timeout: Duration::from_secs(3600),
            ..settings()
        },
    )
    .await;
    let now = unix_millis();
    for (id, idle_secs) in [("fresh", 60_i64), ("stale", 7200)] {
        let at = now - idle_secs * 1000;
        db.execute_raw(Statement::from_string(
            DbBackend::Sqlite,
            format!(
                "INSERT INTO sys_online_session (token_id, user_id, username, client_type, ip, \
                 browser, os, login_time, last_active_time, node_id) VALUES \
                 ('{id}', 1, 'u', 'web', '', '', '', {at}, {at}, 'n')"
            ),
        ))
        .await
        .unwrap();
    }
    let spec = JobSpec {
        name: "sessions".into(),
        handler_ref: "host:session-cleanup".into(),
        params: Some(json!({})),
        cron_expr: "0 0 1 1 *".into(),
        ..JobSpec::default()
    };
    let id = n.scheduler.store().create_job(&spec).await.unwrap();
    let log_id = n.scheduler.trigger(id).await.unwrap();
    assert!(
        eventually(Duration::from_secs(4), || async {
            n.scheduler.store().log(log_id).await.unwrap().status == RunStatus::Success
        })
        .await
    );
    let log = n.scheduler.store().log(log_id).await.unwrap();
    assert_eq!(log.result_json.as_ref().unwrap()["deleted"], 1, "{log:?}");
    let left = db
        .query_one_raw(Statement::from_string(
            DbBackend::Sqlite,
            "SELECT token_id FROM sys_online_session",
        ))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(left.try_get::<String>("", "token_id").unwrap(), "fresh");
}
