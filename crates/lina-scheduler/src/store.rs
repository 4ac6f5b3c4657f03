//! [`JobStore`]: jobs, groups, logs and fire claims in the shared database.
//! Every change to jobs bumps the `scheduler-jobs` revision, so every node's
//! schedule follows without a restart.

use std::sync::Arc;

use chrono_tz::Tz;
use lina_cache::RevisionedCache;
use lina_coord_api::unix_millis;
use sea_orm::sea_query::{Expr, Func, LikeExpr};
use sea_orm::{
    ActiveValue::{NotSet, Set},
    ColumnTrait, ConnectionTrait, DatabaseConnection, DbBackend, EntityTrait, PaginatorTrait,
    QueryFilter, QueryOrder, Statement, Value as DbValue,
};
use serde_json::Value;

use crate::entity::{job, job_group, job_log};
use crate::error::{Error, Result};
use crate::handler::HandlerRegistry;
use crate::model::{
    Concurrency, GroupSpec, Job, JobFilter, JobGroup, JobLog, JobScope, JobSpec, JobStatus,
    LogFilter, MisfirePolicy, Page, PageResult, RunStatus, Trigger,
};
use crate::schedule::{Schedule, parse_timezone};

/// Domain of the revisioned cache holding every node's job list.
pub const JOBS_DOMAIN: &str = "scheduler-jobs";
/// Its only scope.
pub const JOBS_SCOPE: &str = "global";

/// The job list every node schedules from.
pub type JobsCache = RevisionedCache<Arc<Vec<Job>>>;

/// Jobs, groups and logs in the database.
#[derive(Clone)]
pub struct JobStore {
    db: DatabaseConnection,
    jobs: JobsCache,
    handlers: Arc<HandlerRegistry>,
    default_timezone: Tz,
}

impl std::fmt::Debug for JobStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobStore")
            .field("default_timezone", &self.default_timezone)
            .finish()
    }
}

/// A new log row.
#[derive(Debug, Clone)]
pub(crate) struct NewLog<'a> {
    pub job: &'a Job,
    pub node_id: &'a str,
    pub trigger: Trigger,
    pub scheduled_at: i64,
    pub status: RunStatus,
    pub start_at: Option<i64>,
    pub err_msg: String,
    pub term: Option<u64>,
}

fn check_len(field: &str, value: &str, min: usize, max: usize) -> Result<()> {
    let n = value.chars().count();
    if n < min || n > max {
        return Err(Error::invalid(
            field,
            format!("must be {min} to {max} characters, got {n}"),
        ));
    }
    Ok(())
}

impl JobStore {
    /// A store over `db`; `jobs` is the `scheduler-jobs` domain.
    pub fn new(
        db: DatabaseConnection,
        jobs: JobsCache,
        handlers: Arc<HandlerRegistry>,
        default_timezone: Tz,
    ) -> Self {
        JobStore {
            db,
            jobs,
            handlers,
            default_timezone,
        }
    }

    /// The database.
    pub fn db(&self) -> &DatabaseConnection {
        &self.db
    }

    /// The time zone of jobs without one.
    pub fn default_timezone(&self) -> Tz {
        self.default_timezone
    }

    /// The job's time zone (its own, or the default).
    pub fn timezone_of(&self, job: &Job) -> Tz {
        if job.timezone.is_empty() {
            self.default_timezone
        } else {
            job.timezone.parse().unwrap_or(self.default_timezone)
        }
    }

    async fn changed(&self) {
        if let Err(error) = self.jobs.bump(JOBS_SCOPE).await {
            // The sweep converges every node anyway; say so.
            tracing::warn!(%error, "job change saved but not announced; nodes converge at the next revision sweep");
        }
    }

    /// Every job, for the schedule (through the revisioned cache).
    pub async fn cached_jobs(&self) -> Result<Arc<Vec<Job>>> {
        let db = self.db.clone();
        self.jobs
            .get_or_load(JOBS_SCOPE, || async move {
                let models = job::Entity::find()
                    .order_by_asc(job::Column::Id)
                    .all(&db)
                    .await?;
                let jobs = models
                    .into_iter()
                    .map(Job::try_from)
                    .collect::<Result<Vec<_>>>()?;
                Ok::<_, Error>(Arc::new(jobs))
            })
            .await
            .map_err(|e| match e {
                lina_cache::CacheError::Load { source, .. } => source,
                other => Error::Coordination(lina_coord_api::Error::Unavailable(other.to_string())),
            })
    }

    async fn validate(&self, spec: &JobSpec, existing: Option<&Job>) -> Result<job::ActiveModel> {
        check_len("name", spec.name.trim(), 1, 128)?;
        check_len("description", &spec.description, 0, 500)?;
        check_len("cronExpr", &spec.cron_expr, 1, 128)?;
        Schedule::parse(&spec.cron_expr)?;
        if !spec.timezone.is_empty() {
            parse_timezone(&spec.timezone)?;
        }
        let params = spec
            .params
            .clone()
            .unwrap_or_else(|| Value::Object(Default::default()));
        if !params.is_object() {
            return Err(Error::invalid("params", "must be a JSON object"));
        }
        if let Some(existing) = existing
            && existing.is_builtin
            && (existing.handler_ref != spec.handler_ref || existing.name != spec.name.trim())
        {
            return Err(Error::Conflict(format!(
                "job {} is built in: its name and handler cannot change",
                existing.id
            )));
        }
        self.handlers.validate(&spec.handler_ref, &params)?;
        if spec.timeout_seconds > 86_400 {
            return Err(Error::invalid(
                "timeoutSeconds",
                "must be at most 86400 (one day)",
            ));
        }
        let max_concurrency = spec.max_concurrency.unwrap_or(1);
        if !(1..=100).contains(&max_concurrency) {
            return Err(Error::invalid(
                "maxConcurrency",
                format!("{max_concurrency} must be between 1 and 100"),
            ));
        }
        let group_id = match spec.group_id {
            Some(id) => match self.group(id).await {
                Ok(_) => id,
                Err(Error::NotFound { .. }) => {
                    return Err(Error::invalid(
                        "groupId",
                        format!("job group {id} does not exist"),
                    ));
                }
                Err(error) => return Err(error),
            },
            None => self.default_group().await?.id,
        };
        let duplicate = job::Entity::find()
            .filter(job::Column::Name.eq(spec.name.trim()))
            .one(&self.db)
            .await?;
        if let Some(other) = duplicate
            && Some(other.id) != existing.map(|e| e.id)
        {
            return Err(Error::Conflict(format!(
                "a job named {:?} already exists (id {})",
                spec.name.trim(),
                other.id
            )));
        }
        let now = unix_millis();
        Ok(job::ActiveModel {
            id: NotSet,
            group_id: Set(group_id),
            name: Set(spec.name.trim().to_string()),
            description: Set(spec.description.clone()),
            handler_ref: Set(spec.handler_ref.clone()),
            params: Set(params.to_string()),
            timeout_seconds: Set(spec.timeout_seconds as i32),
            cron_expr: Set(spec.cron_expr.trim().to_string()),
            timezone: Set(spec.timezone.clone()),
            scope: Set(spec.scope.unwrap_or(JobScope::MasterOnly).as_str().into()),
            concurrency: Set(spec
                .concurrency
                .unwrap_or(Concurrency::Singleton)
                .as_str()
                .into()),
            max_concurrency: Set(max_concurrency as i32),
            misfire_policy: Set(spec
                .misfire_policy
                .unwrap_or(MisfirePolicy::FireOnce)
                .as_str()
                .into()),
            status: Set(spec.status.unwrap_or(JobStatus::Enabled).as_str().into()),
            is_builtin: Set(existing.map(|e| e.is_builtin as i16).unwrap_or(0)),
            plugin_id: existing
                .map(|e| Set(e.plugin_id.clone()))
                .unwrap_or(Set(None)),
            created_at: existing.map(|e| Set(e.created_at)).unwrap_or(Set(now)),
            updated_at: Set(now),
        })
    }

    /// Creates a job; returns its id.
    pub async fn create_job(&self, spec: &JobSpec) -> Result<i64> {
        let model = self.validate(spec, None).await?;
        let id = job::Entity::insert(model)
            .exec(&self.db)
            .await?
            .last_insert_id;
        self.changed().await;
        Ok(id)
    }

    /// Creates a built-in job (or plugin job) once: if a job with this name
    /// exists it is left alone. Returns its id.
    pub async fn ensure_builtin(&self, spec: &JobSpec, plugin_id: Option<&str>) -> Result<i64> {
        if let Some(id) = self.job_id_by_name(spec.name.trim()).await? {
            return Ok(id);
        }
        let inserted = match self.validate(spec, None).await {
            Ok(mut model) => {
                model.is_builtin = Set(1);
                model.plugin_id = Set(plugin_id.map(str::to_string));
                job::Entity::insert(model)
                    .exec(&self.db)
                    .await
                    .map(|r| r.last_insert_id)
                    .map_err(Error::from)
            }
            Err(error) => Err(error),
        };
        match inserted {
            Ok(id) => {
                self.changed().await;
                Ok(id)
            }
            // Another node created it at the same moment: its duplicate-name
            // check or the unique index refused ours. Use theirs.
            Err(error @ (Error::Conflict(_) | Error::Database(_))) => {
                match self.job_id_by_name(spec.name.trim()).await? {
                    Some(id) => Ok(id),
                    None => Err(error),
                }
            }
            Err(error) => Err(error),
        }
    }

    async fn job_id_by_name(&self, name: &str) -> Result<Option<i64>> {
        Ok(job::Entity::find()
            .filter(job::Column::Name.eq(name))
            .one(&self.db)
            .await?
            .map(|j| j.id))
    }

    /// Replaces a job's fields.
    pub async fn update_job(&self, id: i64, spec: &JobSpec) -> Result<()> {
        let existing = self.job(id).await?;
        let mut model = self.validate(spec, Some(&existing)).await?;
        model.id = Set(id);
        job::Entity::update(model).exec(&self.db).await?;
        self.changed().await;
        Ok(())
    }

    /// Enables or disables a job.
    pub async fn set_status(&self, id: i64, status: JobStatus) -> Result<()> {
        self.job(id).await?;
        job::Entity::update_many()
            .col_expr(job::Column::Status, Expr::value(status.as_str()))
            .col_expr(job::Column::UpdatedAt, Expr::value(unix_millis()))
            .filter(job::Column::Id.eq(id))
            .exec(&self.db)
            .await?;
        self.changed().await;
        Ok(())
    }

    /// Deletes jobs (their logs stay); built-in jobs are refused.
    pub async fn delete_jobs(&self, ids: &[i64]) -> Result<u64> {
        if ids.is_empty() {
            return Err(Error::invalid("ids", "must name at least one job"));
        }
        for id in ids {
            let job = self.job(*id).await?;
            if job.is_builtin {
                return Err(Error::Conflict(format!(
                    "job {} ({}) is built in and cannot be deleted; disable it instead",
                    job.id, job.name
                )));
            }
        }
        let deleted = job::Entity::delete_many()
            .filter(job::Column::Id.is_in(ids.iter().copied()))
            .exec(&self.db)
            .await?
            .rows_affected;
        self.changed().await;
        Ok(deleted)
    }

    /// Deletes every job of plugin `plugin_id`, built-in ones included (the
    /// plugin is being uninstalled); their logs stay. Returns how many.
    pub async fn delete_plugin_jobs(&self, plugin_id: &str) -> Result<u64> {
        let deleted = job::Entity::delete_many()
            .filter(job::Column::PluginId.eq(plugin_id))
            .exec(&self.db)
            .await?
            .rows_affected;
        if deleted > 0 {
            self.changed().await;
        }
        Ok(deleted)
    }

    /// One job.
    pub async fn job(&self, id: i64) -> Result<Job> {
        job::Entity::find_by_id(id)
            .one(&self.db)
            .await?
            .ok_or(Error::NotFound { what: "job", id })?
            .try_into()
    }

    /// Jobs, newest last, optionally of one group, status or name fragment.
    pub async fn list_jobs(
        &self,
        group_id: Option<i64>,
        status: Option<JobStatus>,
        name: Option<&str>,
        page: Page,
    ) -> Result<PageResult<Job>> {
        let filter = JobFilter {
            group_id,
            status,
            name: name.map(str::to_string),
            handler_ref: None,
        };
        self.find_jobs(&filter, page).await
    }

    /// Jobs matching `filter`, by id.
    pub async fn find_jobs(&self, filter: &JobFilter, page: Page) -> Result<PageResult<Job>> {
        // Here only: its blanket `max` would shadow `Ord::max` elsewhere.
        use sea_orm::sea_query::ExprTrait;
        let mut query = job::Entity::find().order_by_asc(job::Column::Id);
        if let Some(group_id) = filter.group_id {
            query = query.filter(job::Column::GroupId.eq(group_id));
        }
        if let Some(status) = filter.status {
            query = query.filter(job::Column::Status.eq(status.as_str()));
        }
        if let Some(name) = filter.name.as_deref().filter(|n| !n.is_empty()) {
            let escaped = name
                .to_lowercase()
                .replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_");
            query = query.filter(
                Expr::expr(Func::lower(job::Column::Name.into_expr()))
                    .like(LikeExpr::new(format!("%{escaped}%")).escape('\\')),
            );
        }
        if let Some(handler) = filter.handler_ref.as_deref().filter(|h| !h.is_empty()) {
            query = query.filter(job::Column::HandlerRef.eq(handler));
        }
        let paginator = query.paginate(&self.db, page.size);
        let total = paginator.num_items().await?;
        let list = paginator
            .fetch_page(page.num - 1)
            .await?
            .into_iter()
            .map(Job::try_from)
            .collect::<Result<_>>()?;
        Ok(PageResult { list, total })
    }

    // ---- groups ----

    /// The protected default group.
    pub async fn default_group(&self) -> Result<JobGroup> {
        job_group::Entity::find()
            .filter(job_group::Column::IsDefault.eq(1))
            .one(&self.db)
            .await?
            .map(JobGroup::from)
            .ok_or_else(|| {
                Error::Conflict("the default job group is missing; run the migrations".into())
            })
    }

    /// One group.
    pub async fn group(&self, id: i64) -> Result<JobGroup> {
        job_group::Entity::find_by_id(id)
            .one(&self.db)
            .await?
            .map(JobGroup::from)
            .ok_or(Error::NotFound {
                what: "job group",
                id,
            })
    }

    /// Every group by sort order.
    pub async fn list_groups(&self) -> Result<Vec<JobGroup>> {
        Ok(job_group::Entity::find()
            .order_by_asc(job_group::Column::Sort)
            .order_by_asc(job_group::Column::Id)
            .all(&self.db)
            .await?
            .into_iter()
            .map(JobGroup::from)
            .collect())
    }

    async fn group_model(
        &self,
        spec: &GroupSpec,
        existing: Option<&JobGroup>,
    ) -> Result<job_group::ActiveModel> {
        check_len("name", spec.name.trim(), 1, 64)?;
        check_len("remark", &spec.remark, 0, 500)?;
        let code = match (&spec.code, existing) {
            (Some(code), _) => code.trim().to_string(),
            (None, Some(existing)) => existing.code.clone(),
            (None, None) => spec
                .name
                .trim()
                .to_lowercase()
                .replace(char::is_whitespace, "-"),
        };
        check_len("code", &code, 1, 64)?;
        if let Some(existing) = existing
            && existing.is_default
            && code != existing.code
        {
            return Err(Error::Conflict(
                "the default job group's code cannot change".into(),
            ));
        }
        for (column, value, field) in [
            (
                job_group::Column::Name,
                spec.name.trim().to_string(),
                "name",
            ),
            (job_group::Column::Code, code.clone(), "code"),
        ] {
            if let Some(other) = job_group::Entity::find()
                .filter(column.eq(value.clone()))
                .one(&self.db)
                .await?
                && Some(other.id) != existing.map(|e| e.id)
            {
                return Err(Error::Conflict(format!(
                    "a job group with {field} {value:?} already exists"
                )));
            }
        }
        let now = unix_millis();
        Ok(job_group::ActiveModel {
            id: existing.map(|e| Set(e.id)).unwrap_or(NotSet),
            code: Set(code),
            name: Set(spec.name.trim().to_string()),
            sort: Set(spec.sort),
            remark: Set(spec.remark.clone()),
            is_default: Set(existing.map(|e| e.is_default as i16).unwrap_or(0)),
            created_at: existing.map(|e| Set(e.created_at)).unwrap_or(Set(now)),
            updated_at: Set(now),
        })
    }

    /// Creates a group; returns its id.
    pub async fn create_group(&self, spec: &GroupSpec) -> Result<i64> {
        let model = self.group_model(spec, None).await?;
        Ok(job_group::Entity::insert(model)
            .exec(&self.db)
            .await?
            .last_insert_id)
    }

    /// Updates a group.
    pub async fn update_group(&self, id: i64, spec: &GroupSpec) -> Result<()> {
        let existing = self.group(id).await?;
        let model = self.group_model(spec, Some(&existing)).await?;
        job_group::Entity::update(model).exec(&self.db).await?;
        Ok(())
    }

    /// Deletes groups; the default group and groups with jobs are refused.
    pub async fn delete_groups(&self, ids: &[i64]) -> Result<u64> {
        if ids.is_empty() {
            return Err(Error::invalid("ids", "must name at least one group"));
        }
        for id in ids {
            let group = self.group(*id).await?;
            if group.is_default {
                return Err(Error::Conflict("the default job group is protected".into()));
            }
            let jobs = job::Entity::find()
                .filter(job::Column::GroupId.eq(*id))
                .count(&self.db)
                .await?;
            if jobs > 0 {
                return Err(Error::Conflict(format!(
                    "job group {id} still has {jobs} jobs; move or delete them first"
                )));
            }
        }
        Ok(job_group::Entity::delete_many()
            .filter(job_group::Column::Id.is_in(ids.iter().copied()))
            .exec(&self.db)
            .await?
            .rows_affected)
    }

    // ---- logs ----

    /// Log rows matching `filter`, newest first.
    pub async fn list_logs(&self, filter: &LogFilter, page: Page) -> Result<PageResult<JobLog>> {
        let mut query = job_log::Entity::find().order_by_desc(job_log::Column::Id);
        if let Some(job_id) = filter.job_id {
            query = query.filter(job_log::Column::JobId.eq(job_id));
        }
        if let Some(status) = filter.status {
            query = query.filter(job_log::Column::Status.eq(status.as_str()));
        }
        if let Some(trigger) = filter.trigger {
            query = query.filter(job_log::Column::TriggerType.eq(trigger.as_str()));
        }
        if let Some(node) = &filter.node_id {
            query = query.filter(job_log::Column::NodeId.eq(node.clone()));
        }
        if let Some(begin) = filter.begin_time {
            query = query.filter(job_log::Column::ScheduledAt.gte(begin));
        }
        if let Some(end) = filter.end_time {
            query = query.filter(job_log::Column::ScheduledAt.lte(end));
        }
        let paginator = query.paginate(&self.db, page.size);
        let total = paginator.num_items().await?;
        let list = paginator
            .fetch_page(page.num - 1)
            .await?
            .into_iter()
            .map(JobLog::try_from)
            .collect::<Result<_>>()?;
        Ok(PageResult { list, total })
    }

    /// One log row.
    pub async fn log(&self, id: i64) -> Result<JobLog> {
        job_log::Entity::find_by_id(id)
            .one(&self.db)
            .await?
            .ok_or(Error::NotFound {
                what: "job log",
                id,
            })?
            .try_into()
    }

    /// Deletes log rows by id; running rows are kept.
    pub async fn delete_logs(&self, ids: &[i64]) -> Result<u64> {
        if ids.is_empty() {
            return Err(Error::invalid("ids", "must name at least one log"));
        }
        Ok(job_log::Entity::delete_many()
            .filter(job_log::Column::Id.is_in(ids.iter().copied()))
            .filter(job_log::Column::Status.ne(RunStatus::Running.as_str()))
            .exec(&self.db)
            .await?
            .rows_affected)
    }

    /// Deletes finished log rows and fire claims scheduled before `before`
    /// (Unix ms); returns the number of log rows removed.
    pub async fn cleanup_logs(&self, before: i64) -> Result<u64> {
        let logs = job_log::Entity::delete_many()
            .filter(job_log::Column::ScheduledAt.lt(before))
            .filter(job_log::Column::Status.ne(RunStatus::Running.as_str()))
            .exec(&self.db)
            .await?
            .rows_affected;
        crate::entity::job_fire::Entity::delete_many()
            .filter(crate::entity::job_fire::Column::ScheduledAt.lt(before))
            .exec(&self.db)
            .await?;
        Ok(logs)
    }

    // ---- runs ----

    /// Claims a fire: one row per `(job, scheduled_at, claim_scope)`. For
    /// master_only claims (`claim_scope = "*"`) a claim under a term older
    /// than one already recorded for the job is refused too (fencing).
    /// True when this call made the claim.
    pub(crate) async fn claim_fire(
        &self,
        job_id: i64,
        scheduled_at: i64,
        claim_scope: &str,
        node_id: &str,
        term: u64,
    ) -> Result<bool> {
        let backend = self.db.get_database_backend();
        let now = unix_millis();
        let term = term as i64;
        let (sql, values): (&str, Vec<DbValue>) = match backend {
            DbBackend::Postgres => (
                "INSERT INTO sys_job_fire (job_id, scheduled_at, claim_scope, node_id, term, claimed_at) \
                 SELECT $1, $2, $3, $4, $5, $6 \
                 WHERE NOT EXISTS (SELECT 1 FROM sys_job_fire WHERE job_id = $1 AND claim_scope = '*' AND $3 = '*' AND term > $5) \
                 ON CONFLICT DO NOTHING",
                vec![
                    job_id.into(),
                    scheduled_at.into(),
                    claim_scope.into(),
                    node_id.into(),
                    term.into(),
                    now.into(),
                ],
            ),
            _ => (
                "INSERT INTO sys_job_fire (job_id, scheduled_at, claim_scope, node_id, term, claimed_at) \
                 SELECT ?, ?, ?, ?, ?, ? \
                 WHERE NOT EXISTS (SELECT 1 FROM sys_job_fire WHERE job_id = ? AND claim_scope = '*' AND ? = '*' AND term > ?) \
                 ON CONFLICT DO NOTHING",
                vec![
                    job_id.into(),
                    scheduled_at.into(),
                    claim_scope.into(),
                    node_id.into(),
                    term.into(),
                    now.into(),
                    job_id.into(),
                    claim_scope.into(),
                    term.into(),
                ],
            ),
        };
        let result = self
            .db
            .execute_raw(Statement::from_sql_and_values(backend, sql, values))
            .await?;
        Ok(result.rows_affected() == 1)
    }

    /// Whether a master_only fire has been claimed.
    pub(crate) async fn is_claimed(&self, job_id: i64, scheduled_at: i64) -> Result<bool> {
        use crate::entity::job_fire;
        Ok(job_fire::Entity::find()
            .filter(job_fire::Column::JobId.eq(job_id))
            .filter(job_fire::Column::ScheduledAt.eq(scheduled_at))
            .filter(job_fire::Column::ClaimScope.eq("*"))
            .count(&self.db)
            .await?
            > 0)
    }

    /// Writes a log row; returns its id.
    pub(crate) async fn insert_log(&self, log: NewLog<'_>) -> Result<i64> {
        let model = job_log::ActiveModel {
            id: NotSet,
            job_id: Set(log.job.id),
            job_name: Set(log.job.name.clone()),
            handler_ref: Set(log.job.handler_ref.clone()),
            node_id: Set(log.node_id.to_string()),
            trigger_type: Set(log.trigger.as_str().into()),
            scheduled_at: Set(log.scheduled_at),
            start_at: Set(log.start_at),
            end_at: Set(if log.status == RunStatus::Running {
                None
            } else {
                log.start_at
            }),
            duration_ms: Set(if log.status == RunStatus::Running {
                None
            } else {
                Some(0)
            }),
            status: Set(log.status.as_str().into()),
            err_msg: Set(log.err_msg),
            result_json: Set(None),
            term: Set(log.term.map(|t| t as i64)),
        };
        Ok(job_log::Entity::insert(model)
            .exec(&self.db)
            .await?
            .last_insert_id)
    }

    /// Records a run's outcome.
    pub(crate) async fn finish_log(
        &self,
        id: i64,
        status: RunStatus,
        start_at: i64,
        err_msg: &str,
        result: Option<&Value>,
    ) -> Result<()> {
        let end = unix_millis();
        job_log::Entity::update_many()
            .col_expr(job_log::Column::Status, Expr::value(status.as_str()))
            .col_expr(job_log::Column::EndAt, Expr::value(end))
            .col_expr(
                job_log::Column::DurationMs,
                Expr::value((end - start_at).max(0)),
            )
            .col_expr(job_log::Column::ErrMsg, Expr::value(err_msg))
            .col_expr(
                job_log::Column::ResultJson,
                Expr::value(result.map(|r| r.to_string())),
            )
            .filter(job_log::Column::Id.eq(id))
            .exec(&self.db)
            .await?;
        Ok(())
    }

    /// Marks rows this node left `running` (its previous process died) as
    /// failed; returns how many.
    pub(crate) async fn fail_abandoned(&self, node_id: &str) -> Result<u64> {
        let now = unix_millis();
        Ok(job_log::Entity::update_many()
            .col_expr(
                job_log::Column::Status,
                Expr::value(RunStatus::Failed.as_str()),
            )
            .col_expr(job_log::Column::EndAt, Expr::value(now))
            .col_expr(
                job_log::Column::ErrMsg,
                Expr::value("the node restarted while the job was running"),
            )
            .filter(job_log::Column::NodeId.eq(node_id))
            .filter(job_log::Column::Status.eq(RunStatus::Running.as_str()))
            .exec(&self.db)
            .await?
            .rows_affected)
    }
}
