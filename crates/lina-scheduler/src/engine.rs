//! [`Scheduler`]: the per-node engine. Every node loads every enabled job
//! and computes fire instants itself; a master_only fire runs only on the
//! node whose claim insert succeeds (the leader, fenced by its term), the
//! other nodes record `skipped_not_primary`; an all_node fire runs on every
//! node.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use chrono_tz::Tz;
use dashmap::DashMap;
use lina_cache::{CacheRegistry, StalePolicy};
use lina_coord_api::{Coordinator, Error as CoordError, LockOptions, NodeId, unix_millis};
use sea_orm::DatabaseConnection;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::error::{Error, Result};
use crate::handler::{HandlerRegistry, JobContext};
use crate::model::{Concurrency, Job, JobScope, JobStatus, MisfirePolicy, RunStatus, Trigger};
use crate::schedule::Schedule;
use crate::store::{JOBS_DOMAIN, JobStore, NewLog};

/// Timing of a scheduler.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SchedulerSettings {
    /// Time zone of jobs without one (`scheduler.defaultTimezone`).
    pub default_timezone: Tz,
    /// How far back a new leader (or restarted node) runs missed fires
    /// (`scheduler.misfireThreshold`).
    pub misfire_threshold: Duration,
    /// How long shutdown waits for running jobs before cancelling them.
    pub shutdown_grace: Duration,
    /// Longest sleep between looks at the job list (bounds how fast a job
    /// change is picked up once the cache has dropped the old list).
    pub tick: Duration,
    /// Create the built-in jobs (log cleanup, session cleanup, cache
    /// self-check) if they do not exist.
    pub builtin_jobs: bool,
    /// Period of the session cleanup job (`session.cleanupInterval`).
    pub session_cleanup_interval: Duration,
    /// Idle time after which the session cleanup job deletes a session row
    /// (`session.timeout`), unless the job's `timeoutSeconds` says otherwise.
    pub session_timeout: Duration,
    /// TTL of the cluster-wide lock of a running master_only singleton job
    /// (renewed by its watchdog). A node that dies mid-run blocks the job
    /// for at most this long; keep it below the election lease so a new
    /// leader never finds it still held by a dead one.
    pub singleton_ttl: Duration,
}

impl Default for SchedulerSettings {
    fn default() -> Self {
        SchedulerSettings {
            default_timezone: Tz::UTC,
            misfire_threshold: Duration::from_secs(60),
            shutdown_grace: Duration::from_secs(30),
            tick: Duration::from_millis(200),
            builtin_jobs: true,
            session_cleanup_interval: Duration::from_secs(300),
            session_timeout: Duration::from_secs(86_400),
            singleton_ttl: Duration::from_secs(10),
        }
    }
}

/// Why the scheduler stopped a job without running it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PausedJob {
    /// The job.
    pub job_id: i64,
    /// Why.
    pub reason: String,
}

struct Inner {
    coordinator: Arc<dyn Coordinator>,
    store: JobStore,
    handlers: Arc<HandlerRegistry>,
    settings: SchedulerSettings,
    node_id: NodeId,
    running_per_job: DashMap<i64, usize>,
    paused: DashMap<i64, String>,
    /// Runs and skips recorded by this node, by final status.
    outcomes: DashMap<&'static str, u64>,
    /// Stops firing (first step of shutdown).
    stop: CancellationToken,
    /// Cancels running handlers (after the grace period).
    abort: CancellationToken,
    runs: TaskTracker,
}

/// The scheduler of one node.
pub struct Scheduler {
    inner: Arc<Inner>,
    task: std::sync::Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for Scheduler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scheduler")
            .field("node", &self.inner.node_id)
            .field("settings", &self.inner.settings)
            .finish()
    }
}

/// What shutdown did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShutdownReport {
    /// Runs that finished within the grace period.
    pub finished: usize,
    /// Runs cancelled after it.
    pub cancelled: usize,
}

struct Planned {
    schedule: Schedule,
    tz: Tz,
    fingerprint: (String, String, i64),
    next: DateTime<Utc>,
}

fn millis(at: DateTime<Utc>) -> i64 {
    at.timestamp_millis()
}

impl Scheduler {
    /// Starts the scheduler of this node: registers the `scheduler-jobs`
    /// cache domain, marks rows this node left `running` as failed, and
    /// starts firing.
    pub async fn start(
        coordinator: Arc<dyn Coordinator>,
        db: DatabaseConnection,
        caches: &CacheRegistry,
        handlers: Arc<HandlerRegistry>,
        settings: SchedulerSettings,
    ) -> Result<Scheduler> {
        let jobs = caches.domain(JOBS_DOMAIN, StalePolicy::ServeStale)?;
        let store = JobStore::new(db, jobs, handlers.clone(), settings.default_timezone);
        let node_id = coordinator.node_id().clone();
        crate::builtin::register(&handlers, &store, caches, settings.session_timeout)?;
        if settings.builtin_jobs {
            crate::builtin::ensure_jobs(&store, settings.session_cleanup_interval).await?;
        }
        let abandoned = store.fail_abandoned(node_id.as_str()).await?;
        if abandoned > 0 {
            tracing::warn!(node = %node_id, rows = abandoned, "marked runs left by the previous process as failed");
        }
        let inner = Arc::new(Inner {
            coordinator,
            store,
            handlers,
            settings,
            node_id,
            running_per_job: DashMap::new(),
            paused: DashMap::new(),
            outcomes: DashMap::new(),
            stop: CancellationToken::new(),
            abort: CancellationToken::new(),
            runs: TaskTracker::new(),
        });
        let task = tokio::spawn(run_loop(inner.clone()));
        Ok(Scheduler {
            inner,
            task: std::sync::Mutex::new(Some(task)),
        })
    }

    /// The job store (CRUD, logs) of this node.
    pub fn store(&self) -> &JobStore {
        &self.inner.store
    }

    /// The handler registry.
    pub fn handlers(&self) -> &Arc<HandlerRegistry> {
        &self.inner.handlers
    }

    /// Runs `job_id` now on this node (`trigger = manual`) and returns the
    /// log id at once; the run continues in the background.
    pub async fn trigger(&self, job_id: i64) -> Result<i64> {
        if self.inner.stop.is_cancelled() {
            return Err(Error::ShuttingDown);
        }
        let job = self.inner.store.job(job_id).await?;
        if !self.inner.handlers.contains(&job.handler_ref) {
            return Err(Error::Conflict(format!(
                "handler {} of job {} is not registered on node {}",
                job.handler_ref, job.id, self.inner.node_id
            )));
        }
        let term = self.inner.coordinator.election().leader_term();
        start_run(
            &self.inner,
            Arc::new(job),
            unix_millis(),
            Trigger::Manual,
            term,
            None,
        )
        .await
    }

    /// Runs and skips this node recorded since it started, by final status
    /// (`success`, `failed`, `timeout`, `cancelled`, `skipped_*`), sorted.
    pub fn run_counts(&self) -> Vec<(&'static str, u64)> {
        let mut counts: Vec<(&'static str, u64)> = self
            .inner
            .outcomes
            .iter()
            .map(|e| (*e.key(), *e.value()))
            .collect();
        counts.sort_unstable();
        counts
    }

    /// Jobs paused on this node, with the reason.
    pub fn paused(&self) -> Vec<PausedJob> {
        let mut paused: Vec<PausedJob> = self
            .inner
            .paused
            .iter()
            .map(|e| PausedJob {
                job_id: *e.key(),
                reason: e.value().clone(),
            })
            .collect();
        paused.sort_by_key(|p| p.job_id);
        paused
    }

    /// Runs in progress on this node.
    pub fn running(&self) -> usize {
        self.inner.running_per_job.iter().map(|e| *e.value()).sum()
    }

    /// Stops at once as a crashed process would: no more fires, no waiting,
    /// no bookkeeping (for failover tests and tools).
    pub fn kill(&self) {
        self.inner.stop.cancel();
        if let Some(task) = self.task.lock().expect("scheduler task lock").take() {
            task.abort();
        }
    }

    /// Stops firing, lets running jobs finish within the grace period, then
    /// cancels the rest (recorded as `cancelled`). Call it before the node
    /// releases leadership.
    pub async fn shutdown(&self) -> ShutdownReport {
        self.inner.stop.cancel();
        let task = self.task.lock().expect("scheduler task lock").take();
        if let Some(task) = task {
            let _ = task.await;
        }
        let before = self.running();
        self.inner.runs.close();
        let finished_in_time =
            tokio::time::timeout(self.inner.settings.shutdown_grace, self.inner.runs.wait())
                .await
                .is_ok();
        let mut report = ShutdownReport {
            finished: before,
            cancelled: 0,
        };
        if !finished_in_time {
            report.cancelled = self.running();
            report.finished = before.saturating_sub(report.cancelled);
            self.inner.abort.cancel();
            // The runs record `cancelled` themselves; give them a moment.
            let _ = tokio::time::timeout(Duration::from_secs(5), self.inner.runs.wait()).await;
        }
        tracing::info!(node = %self.inner.node_id, finished = report.finished, cancelled = report.cancelled, "scheduler stopped");
        report
    }
}

async fn run_loop(inner: Arc<Inner>) {
    let mut planned: HashMap<i64, Planned> = HashMap::new();
    let mut jobs: Arc<Vec<Job>> = Arc::new(Vec::new());
    let mut leadership = inner.coordinator.election().leadership();
    let mut handler_changes = inner.handlers.changes();
    let mut was_leader = false;
    loop {
        if inner.stop.is_cancelled() {
            return;
        }
        match inner.store.cached_jobs().await {
            Ok(latest) => jobs = latest,
            Err(error) => {
                tracing::warn!(%error, "cannot load the job list; keeping the previous one")
            }
        }
        let now = Utc::now();
        reconcile(&inner, &jobs, &mut planned, now);

        let leader = inner.coordinator.election().is_leader();
        if leader && !was_leader {
            recover_misfires(&inner, &jobs, now);
        }
        was_leader = leader;

        let by_id: HashMap<i64, &Job> = jobs.iter().map(|j| (j.id, j)).collect();
        for (id, plan) in planned.iter_mut() {
            let Some(job) = by_id.get(id) else { continue };
            let mut due = 0;
            while plan.next <= now && due < 100 {
                if !inner.paused.contains_key(id) {
                    fire(&inner, Arc::new((*job).clone()), plan.next);
                }
                due += 1;
                match plan.schedule.next_after(plan.next, plan.tz) {
                    Some(next) => plan.next = next,
                    None => break,
                }
            }
            if plan.next <= now {
                // Far behind (a long stall): resume from now.
                if let Some(next) = plan.schedule.next_after(now, plan.tz) {
                    plan.next = next;
                }
            }
        }

        let earliest = planned.values().map(|p| p.next).min();
        let tick = chrono::Duration::from_std(inner.settings.tick).unwrap_or_default();
        let wake = earliest.map_or(now + tick, |e| e.min(now + tick));
        let sleep = (wake - Utc::now()).to_std().unwrap_or(Duration::ZERO);
        tokio::select! {
            _ = inner.stop.cancelled() => return,
            _ = tokio::time::sleep(sleep) => {}
            _ = leadership.changed() => {}
            _ = handler_changes.changed() => {}
        }
    }
}

/// Brings the plan in line with the job list: new and changed jobs get a
/// fresh next fire, removed or disabled ones are dropped, jobs whose
/// handler is missing are paused (and resumed once it is registered).
fn reconcile(inner: &Inner, jobs: &[Job], planned: &mut HashMap<i64, Planned>, now: DateTime<Utc>) {
    let mut live = Vec::with_capacity(jobs.len());
    for job in jobs.iter().filter(|j| j.status == JobStatus::Enabled) {
        live.push(job.id);
        if inner.handlers.contains(&job.handler_ref) {
            if inner.paused.remove(&job.id).is_some() {
                tracing::info!(job = job.id, handler = %job.handler_ref, "handler registered: job resumed");
            }
        } else if !inner.paused.contains_key(&job.id) {
            let reason = format!(
                "handler {} is not registered on node {}",
                job.handler_ref, inner.node_id
            );
            tracing::warn!(job = job.id, %reason, "job paused");
            inner.paused.insert(job.id, reason);
        }
        let fingerprint = (job.cron_expr.clone(), job.timezone.clone(), job.updated_at);
        if planned
            .get(&job.id)
            .is_some_and(|p| p.fingerprint == fingerprint)
        {
            continue;
        }
        let tz = inner.store.timezone_of(job);
        match Schedule::parse(&job.cron_expr) {
            Ok(schedule) => {
                if let Some(next) = schedule.next_after(now, tz) {
                    planned.insert(
                        job.id,
                        Planned {
                            schedule,
                            tz,
                            fingerprint,
                            next,
                        },
                    );
                }
            }
            Err(error) => {
                tracing::warn!(job = job.id, %error, "job has an invalid schedule; not scheduled");
                planned.remove(&job.id);
            }
        }
    }
    planned.retain(|id, _| live.contains(id));
    inner.paused.retain(|id, _| live.contains(id));
}

/// A node that just became leader runs, once, each master_only fire of the
/// last `misfireThreshold` that nobody claimed (policy `fire_once`).
fn recover_misfires(inner: &Arc<Inner>, jobs: &[Job], now: DateTime<Utc>) {
    let threshold =
        chrono::Duration::from_std(inner.settings.misfire_threshold).unwrap_or_default();
    for job in jobs.iter().filter(|j| {
        j.status == JobStatus::Enabled
            && j.scope == JobScope::MasterOnly
            && j.misfire_policy == MisfirePolicy::FireOnce
            && inner.handlers.contains(&j.handler_ref)
    }) {
        let Ok(schedule) = Schedule::parse(&job.cron_expr) else {
            continue;
        };
        let tz = inner.store.timezone_of(job);
        let since = Utc
            .timestamp_millis_opt(job.updated_at)
            .single()
            .unwrap_or(now)
            .max(now - threshold);
        // Fires strictly before now: the one at `now` is the loop's.
        let missed: Vec<DateTime<Utc>> = schedule
            .fires_between(since, now, tz, 100)
            .into_iter()
            .filter(|at| *at < now)
            .collect();
        if missed.is_empty() {
            continue;
        }
        let inner = inner.clone();
        let job = Arc::new(job.clone());
        inner.clone().runs.spawn(async move {
            for at in missed {
                match inner.store.is_claimed(job.id, millis(at)).await {
                    Ok(true) => {}
                    Ok(false) => {
                        tracing::info!(job = job.id, scheduled_at = %at, "running a missed fire");
                        run_master_fire(&inner, job.clone(), at, true).await;
                    }
                    Err(error) => {
                        tracing::warn!(job = job.id, %error, "cannot check a missed fire")
                    }
                }
            }
        });
    }
}

fn fire(inner: &Arc<Inner>, job: Arc<Job>, at: DateTime<Utc>) {
    let inner = inner.clone();
    inner.clone().runs.spawn(async move {
        match job.scope {
            JobScope::MasterOnly => run_master_fire(&inner, job, at, false).await,
            JobScope::AllNode => {
                let node = inner.node_id.to_string();
                match inner
                    .store
                    .claim_fire(job.id, millis(at), &node, &node, 0)
                    .await
                {
                    Ok(true) => {
                        if let Err(error) =
                            start_run(&inner, job.clone(), millis(at), Trigger::Cron, None, None)
                                .await
                        {
                            tracing::warn!(job = job.id, %error, "cannot start a run");
                        }
                    }
                    Ok(false) => {}
                    Err(error) => {
                        tracing::warn!(job = job.id, %error, "cannot claim an all_node fire")
                    }
                }
            }
        }
    });
}

/// A master_only fire: claim it under the current term right before
/// running; a follower records the skip.
async fn run_master_fire(inner: &Arc<Inner>, job: Arc<Job>, at: DateTime<Utc>, wait: bool) {
    let at_ms = millis(at);
    // Checked at the moment of acting, not from the (possibly stale) watch.
    let Some(term) = inner.coordinator.election().leader_term() else {
        let log = NewLog {
            job: &job,
            node_id: inner.node_id.as_str(),
            trigger: Trigger::Cron,
            scheduled_at: at_ms,
            status: RunStatus::SkippedNotPrimary,
            start_at: Some(unix_millis()),
            err_msg: String::new(),
            term: None,
        };
        if let Err(error) = inner.store.insert_log(log).await {
            tracing::warn!(job = job.id, %error, "cannot record a skipped fire");
        }
        return;
    };
    match inner
        .store
        .claim_fire(job.id, at_ms, "*", inner.node_id.as_str(), term)
        .await
    {
        Ok(true) => {
            let (done, finished) = match wait {
                true => {
                    let (tx, rx) = tokio::sync::oneshot::channel();
                    (Some(tx), Some(rx))
                }
                false => (None, None),
            };
            match start_run(inner, job.clone(), at_ms, Trigger::Cron, Some(term), done).await {
                Ok(_) => {
                    if let Some(finished) = finished {
                        // Recovered fires run one after another, so a
                        // singleton job's missed fires do not skip each other.
                        let _ = finished.await;
                    }
                }
                Err(error) => tracing::warn!(job = job.id, %error, "cannot start a run"),
            }
        }
        Ok(false) => {
            tracing::debug!(
                job = job.id,
                scheduled_at = at_ms,
                term,
                "fire already claimed"
            );
        }
        Err(error) => tracing::warn!(job = job.id, %error, "cannot claim a fire"),
    }
}

async fn skip(
    inner: &Inner,
    job: &Job,
    at: i64,
    trigger: Trigger,
    status: RunStatus,
    term: Option<u64>,
    why: String,
) -> Result<i64> {
    *inner.outcomes.entry(status.as_str()).or_default() += 1;
    inner
        .store
        .insert_log(NewLog {
            job,
            node_id: inner.node_id.as_str(),
            trigger,
            scheduled_at: at,
            status,
            start_at: Some(unix_millis()),
            err_msg: why,
            term,
        })
        .await
}

/// Applies the job's concurrency policy, records the run and starts it in
/// the background; returns the log id (of the run, or of the skip).
async fn start_run(
    inner: &Arc<Inner>,
    job: Arc<Job>,
    scheduled_at: i64,
    trigger: Trigger,
    term: Option<u64>,
    done: Option<tokio::sync::oneshot::Sender<()>>,
) -> Result<i64> {
    let mut singleton = None;
    {
        let running = inner.running_per_job.get(&job.id).map(|r| *r).unwrap_or(0);
        match job.concurrency {
            Concurrency::Singleton if job.scope == JobScope::MasterOnly => {
                let ttl = inner.settings.singleton_ttl;
                match inner
                    .coordinator
                    .locks()
                    .acquire(&format!("job:{}", job.id), LockOptions::ttl(ttl).watchdog())
                    .await
                {
                    Ok(guard) => singleton = Some(guard),
                    Err(CoordError::LockBusy { .. }) => {
                        return skip(
                            inner,
                            &job,
                            scheduled_at,
                            trigger,
                            RunStatus::SkippedSingleton,
                            term,
                            "the previous run is still running".into(),
                        )
                        .await;
                    }
                    Err(error) => return Err(error.into()),
                }
            }
            Concurrency::Singleton if running > 0 => {
                return skip(
                    inner,
                    &job,
                    scheduled_at,
                    trigger,
                    RunStatus::SkippedSingleton,
                    term,
                    "the previous run is still running on this node".into(),
                )
                .await;
            }
            Concurrency::Parallel if running >= job.max_concurrency as usize => {
                return skip(
                    inner,
                    &job,
                    scheduled_at,
                    trigger,
                    RunStatus::SkippedMaxConcurrency,
                    term,
                    format!("{running} runs in progress (max {})", job.max_concurrency),
                )
                .await;
            }
            _ => {}
        }
    }
    let start_at = unix_millis();
    let log_id = inner
        .store
        .insert_log(NewLog {
            job: &job,
            node_id: inner.node_id.as_str(),
            trigger,
            scheduled_at,
            status: RunStatus::Running,
            start_at: Some(start_at),
            err_msg: String::new(),
            term,
        })
        .await?;
    *inner.running_per_job.entry(job.id).or_insert(0) += 1;
    let inner2 = inner.clone();
    inner.runs.spawn(async move {
        let inner = inner2;
        let cancel = CancellationToken::new();
        let ctx = JobContext {
            job_id: job.id,
            log_id,
            params: job.params.clone(),
            cancel: cancel.clone(),
            node_id: inner.node_id.clone(),
            term,
            scheduled_at,
            trigger,
        };
        let (status, err, result) = match inner.handlers.get(&job.handler_ref) {
            None => (
                RunStatus::Failed,
                format!("handler {} is not registered on node {}", job.handler_ref, inner.node_id),
                None,
            ),
            Some(handler) => {
                let timeout = async {
                    if job.timeout_seconds == 0 {
                        std::future::pending::<()>().await
                    } else {
                        tokio::time::sleep(Duration::from_secs(job.timeout_seconds as u64)).await
                    }
                };
                let lost = async {
                    match &singleton {
                        Some(guard) => guard.lost().await,
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    outcome = handler.run(ctx) => match outcome {
                        Ok(value) => (RunStatus::Success, String::new(), Some(value)),
                        Err(error) => (RunStatus::Failed, error.0, None),
                    },
                    _ = timeout => {
                        cancel.cancel();
                        (RunStatus::Timeout, format!("cancelled after the {}s timeout", job.timeout_seconds), None)
                    }
                    _ = inner.abort.cancelled() => {
                        cancel.cancel();
                        (RunStatus::Cancelled, "cancelled at shutdown".to_string(), None)
                    }
                    _ = lost => {
                        cancel.cancel();
                        (RunStatus::Failed, "lost the job's singleton lock".to_string(), None)
                    }
                }
            }
        };
        *inner.outcomes.entry(status.as_str()).or_default() += 1;
        if let Err(error) = inner
            .store
            .finish_log(log_id, status, start_at, &err, result.as_ref().filter(|v| !v.is_null()))
            .await
        {
            tracing::warn!(job = job.id, log = log_id, %error, "cannot record the outcome of a run");
        }
        if let Some(mut count) = inner.running_per_job.get_mut(&job.id) {
            *count = count.saturating_sub(1);
        }
        if let Some(guard) = singleton
            && let Err(error) = guard.release().await
        {
            tracing::debug!(job = job.id, %error, "singleton lock already gone");
        }
        if let Some(done) = done {
            let _ = done.send(());
        }
    });
    Ok(log_id)
}
