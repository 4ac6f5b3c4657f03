//! Scheduled jobs: `/api/v1/job…` (`system:job:*`) and `/api/v1/job-group…`
//! (`system:jobgroup:*`).
//!
//! Every job write goes through [`lina_scheduler::JobStore`], which
//! validates it (fields named in the API's spelling), saves it and bumps the
//! `scheduler-jobs` revision, so every node reloads its schedule without a
//! restart. Log rows are written by the scheduler of each node into the
//! shared database, so every node lists the same rows. A manual trigger runs
//! the job on the node that answers the request.
//!
//! The literal paths `/job/log`, `/job/handler` and `/job/cron-preview` are
//! registered before `/job/{id}`, so they are never read as ids.

use std::collections::{BTreeSet, HashMap};

use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, Utc};
use lina_scheduler::{
    Concurrency, Error as SchedulerError, GroupSpec, Job, JobFilter, JobGroup, JobScope, JobSpec,
    JobStatus, LogFilter, MisfirePolicy, Page, RunStatus, Schedule, Trigger, parse_timezone,
};
use serde::Serialize;
use serde_json::{Value, json};

use super::auth::AuthUser;
use super::error::{ApiError, ok};
use super::request::{
    Fields, MAX_IDS, check_len, check_range, kind, paging, parse_body, parse_id, query_int,
    query_str,
};
use super::{AppState, RouteDoc};

/// Fire times a cron preview lists by default.
const PREVIEW_DEFAULT: i64 = 5;
/// Most fire times one cron preview lists.
const PREVIEW_MAX: i64 = 50;

/// The routes of this module, for `/api.json`.
pub const ROUTES: &[RouteDoc] = &[
    RouteDoc {
        method: "GET",
        path: "/api/v1/job",
        permission: Some("system:job:list"),
        summary: "list jobs (filters groupId, name, status, handlerRef; paging pageNum, pageSize)",
    },
    RouteDoc {
        method: "POST",
        path: "/api/v1/job",
        permission: Some("system:job:add"),
        summary: "create a job (name, handlerRef, cronExpr required); returns {id}",
    },
    RouteDoc {
        method: "DELETE",
        path: "/api/v1/job",
        permission: Some("system:job:remove"),
        summary: "delete jobs by ids[] in the query or {ids} in the body (not built-in jobs; their logs stay)",
    },
    RouteDoc {
        method: "GET",
        path: "/api/v1/job/log",
        permission: Some("system:job:list"),
        summary: "job log rows, newest first (filters jobId, status, trigger, nodeId, beginTime, endTime; paging pageNum, pageSize)",
    },
    RouteDoc {
        method: "DELETE",
        path: "/api/v1/job/log",
        permission: Some("system:job:remove"),
        summary: "delete log rows by ids[] in the query or {ids} in the body (running rows are kept)",
    },
    RouteDoc {
        method: "GET",
        path: "/api/v1/job/log/{id}",
        permission: Some("system:job:list"),
        summary: "one job log row",
    },
    RouteDoc {
        method: "GET",
        path: "/api/v1/job/handler",
        permission: Some("system:job:list"),
        summary: "registered job handlers with the JSON Schema of their params",
    },
    RouteDoc {
        method: "GET",
        path: "/api/v1/job/cron-preview",
        permission: Some("system:job:list"),
        summary: "next fire times of expr in timezone (count 1-50, default 5), as Unix ms and ISO-8601",
    },
    RouteDoc {
        method: "GET",
        path: "/api/v1/job/{id}",
        permission: Some("system:job:list"),
        summary: "one job",
    },
    RouteDoc {
        method: "PUT",
        path: "/api/v1/job/{id}",
        permission: Some("system:job:edit"),
        summary: "update a job (absent fields are kept; a built-in job keeps its name and handler)",
    },
    RouteDoc {
        method: "PUT",
        path: "/api/v1/job/{id}/status",
        permission: Some("system:job:status"),
        summary: "enable or disable a job: {status: \"enabled\" | \"disabled\"} (or 1 / 0)",
    },
    RouteDoc {
        method: "POST",
        path: "/api/v1/job/{id}/trigger",
        permission: Some("system:job:trigger"),
        summary: "run a job now on this node; returns {logId}",
    },
    RouteDoc {
        method: "GET",
        path: "/api/v1/job-group",
        permission: Some("system:jobgroup:list"),
        summary: "job groups by sort order (filter name; paging pageNum, pageSize, all when absent)",
    },
    RouteDoc {
        method: "POST",
        path: "/api/v1/job-group",
        permission: Some("system:jobgroup:add"),
        summary: "create a job group (name required); returns {id}",
    },
    RouteDoc {
        method: "DELETE",
        path: "/api/v1/job-group",
        permission: Some("system:jobgroup:remove"),
        summary: "delete job groups by ids[] or {ids} (not the default group, not groups holding jobs)",
    },
    RouteDoc {
        method: "GET",
        path: "/api/v1/job-group/{id}",
        permission: Some("system:jobgroup:list"),
        summary: "one job group",
    },
    RouteDoc {
        method: "PUT",
        path: "/api/v1/job-group/{id}",
        permission: Some("system:jobgroup:edit"),
        summary: "update a job group (absent fields are kept; the default group keeps its code)",
    },
];

/// Registers the routes of this module (under `/api/v1`). Literal paths
/// come before `/job/{id}`.
pub fn register(cfg: &mut web::ServiceConfig) {
    cfg.route("/job", web::get().to(list_jobs))
        .route("/job", web::post().to(create_job))
        .route("/job", web::delete().to(delete_jobs))
        .route("/job/log", web::get().to(list_logs))
        .route("/job/log", web::delete().to(delete_logs))
        .route("/job/log/{id}", web::get().to(get_log))
        .route("/job/handler", web::get().to(handlers))
        .route("/job/cron-preview", web::get().to(cron_preview))
        .route("/job/{id}", web::get().to(get_job))
        .route("/job/{id}", web::put().to(update_job))
        .route("/job/{id}/status", web::put().to(set_status))
        .route("/job/{id}/trigger", web::post().to(trigger))
        .route("/job-group", web::get().to(list_groups))
        .route("/job-group", web::post().to(create_group))
        .route("/job-group", web::delete().to(delete_groups))
        .route("/job-group/{id}", web::get().to(get_group))
        .route("/job-group/{id}", web::put().to(update_group));
}

// ---------------------------------------------------------------------------
// Request helpers.
// ---------------------------------------------------------------------------

/// The query as a map (last value wins), read after the permission check.
fn query_map(req: &HttpRequest) -> Result<HashMap<String, String>, ApiError> {
    web::Query::<HashMap<String, String>>::from_query(req.query_string())
        .map(web::Query::into_inner)
        .map_err(|e| ApiError::invalid_parameter(format!("invalid query: {e}")))
}

/// Whether a query key names the `ids` array: `ids`, `ids[]`, `ids[3]`.
fn is_ids_key(key: &str) -> bool {
    key == "ids"
        || key
            .strip_prefix("ids[")
            .and_then(|rest| rest.strip_suffix(']'))
            .is_some_and(|index| index.chars().all(|c| c.is_ascii_digit()))
}

/// The ids of a bulk delete: `ids[]=1&ids[]=2` (or `ids=1,2`) in the query
/// and/or `{"ids": [1, 2]}` in the body; deduplicated and sorted.
fn delete_ids(req: &HttpRequest, body: &[u8]) -> Result<Vec<i64>, ApiError> {
    let pairs = web::Query::<Vec<(String, String)>>::from_query(req.query_string())
        .map_err(|e| ApiError::invalid_parameter(format!("invalid query: {e}")))?
        .into_inner();
    let mut ids = BTreeSet::new();
    for (_, value) in pairs.iter().filter(|(key, _)| is_ids_key(key)) {
        for part in value.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let id = part.parse::<i64>().map_err(|_| {
                ApiError::invalid_parameter(format!("ids: {part:?} is not an integer"))
            })?;
            ids.insert(id);
        }
    }
    if body.iter().any(|b| !b.is_ascii_whitespace()) {
        let fields = Fields::new(parse_body(body)?)?;
        ids.extend(fields.ids("ids")?.unwrap_or_default());
    }
    if ids.is_empty() {
        return Err(ApiError::validation(
            "ids is required: ids[]=… in the query or {\"ids\": […]} in the body",
        ));
    }
    if ids.len() > MAX_IDS {
        return Err(ApiError::validation(format!(
            "ids may hold at most {MAX_IDS} ids, got {}",
            ids.len()
        )));
    }
    Ok(ids.into_iter().collect())
}

/// The scheduler's paging from `pageNum` / `pageSize` (default 1 of 10).
fn page(query: &HashMap<String, String>) -> Result<Page, ApiError> {
    let p = paging(query, &["pageNum"], &["pageSize"])?;
    Ok(Page {
        num: p.num,
        size: p.size,
    })
}

/// A job status from the text `enabled` / `disabled` or the flag 1 / 0.
fn status_from_text(name: &str, text: &str) -> Result<JobStatus, ApiError> {
    match text.trim() {
        "1" => Ok(JobStatus::Enabled),
        "0" => Ok(JobStatus::Disabled),
        other => Ok(JobStatus::parse(name, other)?),
    }
}

/// A job status field: `"enabled"` / `"disabled"` or 1 / 0.
fn status_field(f: &Fields, name: &str) -> Result<Option<JobStatus>, ApiError> {
    match f.value(name) {
        None => Ok(None),
        Some(Value::String(s)) => status_from_text(name, s).map(Some),
        Some(Value::Number(n)) => match n.as_i64() {
            Some(1) => Ok(Some(JobStatus::Enabled)),
            Some(0) => Ok(Some(JobStatus::Disabled)),
            _ => Err(ApiError::validation(format!(
                "{name} must be \"enabled\" or \"disabled\" (or 1 / 0), got {n}"
            ))),
        },
        Some(other) => Err(ApiError::invalid_parameter(format!(
            "{name} must be a string, got {}",
            kind(other)
        ))),
    }
}

/// A text enum field (`scope`, `concurrency`, `misfirePolicy`).
fn enum_field<T>(
    f: &Fields,
    name: &str,
    parse: fn(&str, &str) -> lina_scheduler::Result<T>,
) -> Result<Option<T>, ApiError> {
    f.string(name)?
        .map(|s| parse(name, s.trim()).map_err(ApiError::from))
        .transpose()
}

fn to_json(value: &impl Serialize) -> Result<Value, ApiError> {
    serde_json::to_value(value).map_err(ApiError::internal)
}

// ---------------------------------------------------------------------------
// Jobs.
// ---------------------------------------------------------------------------

/// The fields of a job create or update body; `None` when absent.
#[derive(Debug, Default)]
struct JobInput {
    group_id: Option<i64>,
    name: Option<String>,
    description: Option<String>,
    handler_ref: Option<String>,
    params: Option<Value>,
    timeout_seconds: Option<u32>,
    cron_expr: Option<String>,
    timezone: Option<String>,
    scope: Option<JobScope>,
    concurrency: Option<Concurrency>,
    max_concurrency: Option<u32>,
    misfire_policy: Option<MisfirePolicy>,
    status: Option<JobStatus>,
}

impl JobInput {
    /// Reads the body's fields and checks their types and ranges; the
    /// store checks the rest (handler, params, cron, zone, uniqueness).
    fn parse(f: &Fields) -> Result<JobInput, ApiError> {
        let group_id = f.int("groupId")?;
        if let Some(id) = group_id.filter(|id| *id < 1) {
            return Err(ApiError::validation(format!(
                "groupId must be a positive id, got {id}"
            )));
        }
        let params = match f.value("params") {
            None => None,
            Some(Value::Object(map)) => Some(Value::Object(map.clone())),
            // Forms often send the parameters as JSON text.
            Some(Value::String(text)) if text.trim().is_empty() => Some(json!({})),
            Some(Value::String(text)) => match serde_json::from_str::<Value>(text) {
                Ok(v @ Value::Object(_)) => Some(v),
                _ => {
                    return Err(ApiError::validation(
                        "params must be a JSON object (or a string holding one)",
                    ));
                }
            },
            Some(other) => {
                return Err(ApiError::validation(format!(
                    "params must be a JSON object, got {}",
                    kind(other)
                )));
            }
        };
        let timeout_seconds = f
            .int("timeoutSeconds")?
            .map(|v| check_range("timeoutSeconds", v, 0, 86_400).map(|()| v as u32))
            .transpose()?;
        let max_concurrency = f
            .int("maxConcurrency")?
            .map(|v| check_range("maxConcurrency", v, 1, 100).map(|()| v as u32))
            .transpose()?;
        let timezone = f.string("timezone")?.map(|s| s.trim().to_string());
        if let Some(tz) = &timezone {
            check_len("timezone", tz, 0, 64)?;
        }
        Ok(JobInput {
            group_id,
            name: f.string("name")?,
            description: f.string("description")?,
            handler_ref: f.string("handlerRef")?.map(|s| s.trim().to_string()),
            params,
            timeout_seconds,
            cron_expr: f.string("cronExpr")?,
            timezone,
            scope: enum_field(f, "scope", JobScope::parse)?,
            concurrency: enum_field(f, "concurrency", Concurrency::parse)?,
            max_concurrency,
            misfire_policy: enum_field(f, "misfirePolicy", MisfirePolicy::parse)?,
            status: status_field(f, "status")?,
        })
    }

    /// The given fields over `base`.
    fn over(self, base: JobSpec) -> JobSpec {
        JobSpec {
            group_id: self.group_id.or(base.group_id),
            name: self.name.unwrap_or(base.name),
            description: self.description.unwrap_or(base.description),
            handler_ref: self.handler_ref.unwrap_or(base.handler_ref),
            params: self.params.or(base.params),
            timeout_seconds: self.timeout_seconds.unwrap_or(base.timeout_seconds),
            cron_expr: self.cron_expr.unwrap_or(base.cron_expr),
            timezone: self.timezone.unwrap_or(base.timezone),
            scope: self.scope.or(base.scope),
            concurrency: self.concurrency.or(base.concurrency),
            max_concurrency: self.max_concurrency.or(base.max_concurrency),
            misfire_policy: self.misfire_policy.or(base.misfire_policy),
            status: self.status.or(base.status),
        }
    }
}

/// The spec that saves `job` unchanged.
fn spec_of(job: &Job) -> JobSpec {
    JobSpec {
        group_id: Some(job.group_id),
        name: job.name.clone(),
        description: job.description.clone(),
        handler_ref: job.handler_ref.clone(),
        params: Some(job.params.clone()),
        timeout_seconds: job.timeout_seconds,
        cron_expr: job.cron_expr.clone(),
        timezone: job.timezone.clone(),
        scope: Some(job.scope),
        concurrency: Some(job.concurrency),
        max_concurrency: Some(job.max_concurrency),
        misfire_policy: Some(job.misfire_policy),
        status: Some(job.status),
    }
}

/// A job as the API shows it: the stored fields plus its group's name.
/// A job as the API shows it, with its group's name and, when this node
/// has paused it (its handler is not registered here, e.g. its plugin is
/// disabled), why.
fn job_item(
    job: &Job,
    groups: &HashMap<i64, String>,
    paused: &HashMap<i64, String>,
) -> Result<Value, ApiError> {
    let mut item = to_json(job)?;
    item["groupName"] = json!(groups.get(&job.group_id));
    item["pausedReason"] = json!(paused.get(&job.id));
    Ok(item)
}

fn paused_jobs(state: &AppState) -> HashMap<i64, String> {
    state
        .node
        .scheduler
        .paused()
        .into_iter()
        .map(|p| (p.job_id, p.reason))
        .collect()
}

async fn group_names(state: &AppState) -> Result<HashMap<i64, String>, ApiError> {
    Ok(state
        .node
        .scheduler
        .store()
        .list_groups()
        .await?
        .into_iter()
        .map(|g| (g.id, g.name))
        .collect())
}

/// `GET /api/v1/job` (`system:job:list`).
async fn list_jobs(
    state: web::Data<AppState>,
    auth: AuthUser,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    state
        .permissions
        .require(auth.user_id, "system:job:list")
        .await?;
    let query = query_map(&req)?;
    let page = page(&query)?;
    let filter = JobFilter {
        group_id: query_int(&query, "groupId")?,
        status: query_str(&query, "status")
            .map(|s| status_from_text("status", s))
            .transpose()?,
        name: query_str(&query, "name").map(str::to_string),
        handler_ref: query_str(&query, "handlerRef").map(str::to_string),
    };
    let found = state
        .node
        .scheduler
        .store()
        .find_jobs(&filter, page)
        .await?;
    let groups = group_names(&state).await?;
    let paused = paused_jobs(&state);
    let list = found
        .list
        .iter()
        .map(|job| job_item(job, &groups, &paused))
        .collect::<Result<Vec<_>, _>>()?;
    ok(json!({"list": list, "total": found.total}))
}

/// `GET /api/v1/job/{id}` (`system:job:list`).
async fn get_job(
    state: web::Data<AppState>,
    auth: AuthUser,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    state
        .permissions
        .require(auth.user_id, "system:job:list")
        .await?;
    let id = parse_id(&path, "job id")?;
    let job = state.node.scheduler.store().job(id).await?;
    ok(job_item(
        &job,
        &group_names(&state).await?,
        &paused_jobs(&state),
    )?)
}

/// `POST /api/v1/job` (`system:job:add`).
async fn create_job(
    state: web::Data<AppState>,
    auth: AuthUser,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    state
        .permissions
        .require(auth.user_id, "system:job:add")
        .await?;
    let input = JobInput::parse(&Fields::new(parse_body(&body)?)?)?;
    for (field, given) in [
        ("name", input.name.is_some()),
        ("handlerRef", input.handler_ref.is_some()),
        ("cronExpr", input.cron_expr.is_some()),
    ] {
        if !given {
            return Err(ApiError::validation(format!("{field} is required")));
        }
    }
    let spec = input.over(JobSpec::default());
    let id = state.node.scheduler.store().create_job(&spec).await?;
    tracing::info!(job = id, handler = %spec.handler_ref, by = %auth.username, "job created");
    ok(json!({ "id": id }))
}

/// `PUT /api/v1/job/{id}` (`system:job:edit`): absent fields keep their
/// value.
async fn update_job(
    state: web::Data<AppState>,
    auth: AuthUser,
    path: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    state
        .permissions
        .require(auth.user_id, "system:job:edit")
        .await?;
    let id = parse_id(&path, "job id")?;
    let input = JobInput::parse(&Fields::new(parse_body(&body)?)?)?;
    let store = state.node.scheduler.store();
    let existing = store.job(id).await?;
    store
        .update_job(id, &input.over(spec_of(&existing)))
        .await?;
    tracing::info!(job = id, by = %auth.username, "job updated");
    ok(Value::Null)
}

/// `DELETE /api/v1/job` (`system:job:remove`), ids in the query or body.
async fn delete_jobs(
    state: web::Data<AppState>,
    auth: AuthUser,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    state
        .permissions
        .require(auth.user_id, "system:job:remove")
        .await?;
    let ids = delete_ids(&req, &body)?;
    let deleted = state.node.scheduler.store().delete_jobs(&ids).await?;
    tracing::info!(?ids, deleted, by = %auth.username, "jobs deleted");
    ok(json!({ "deleted": deleted }))
}

/// `PUT /api/v1/job/{id}/status` (`system:job:status`), body `{status}`.
async fn set_status(
    state: web::Data<AppState>,
    auth: AuthUser,
    path: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    state
        .permissions
        .require(auth.user_id, "system:job:status")
        .await?;
    let id = parse_id(&path, "job id")?;
    let fields = Fields::new(parse_body(&body)?)?;
    let status = status_field(&fields, "status")?
        .ok_or_else(|| ApiError::validation("status is required"))?;
    state.node.scheduler.store().set_status(id, status).await?;
    tracing::info!(job = id, %status, by = %auth.username, "job status changed");
    ok(Value::Null)
}

/// `POST /api/v1/job/{id}/trigger` (`system:job:trigger`): runs the job now
/// on this node. An optional body must be a JSON object (it carries
/// nothing yet).
async fn trigger(
    state: web::Data<AppState>,
    auth: AuthUser,
    path: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    state
        .permissions
        .require(auth.user_id, "system:job:trigger")
        .await?;
    let id = parse_id(&path, "job id")?;
    if body.iter().any(|b| !b.is_ascii_whitespace()) {
        Fields::new(parse_body(&body)?)?;
    }
    let log_id = state.node.scheduler.trigger(id).await?;
    tracing::info!(job = id, log = log_id, by = %auth.username, "job triggered");
    ok(json!({ "logId": log_id }))
}

/// `GET /api/v1/job/handler` (`system:job:list`).
async fn handlers(state: web::Data<AppState>, auth: AuthUser) -> Result<HttpResponse, ApiError> {
    state
        .permissions
        .require(auth.user_id, "system:job:list")
        .await?;
    let list: Vec<Value> = state
        .node
        .scheduler
        .handlers()
        .list()
        .into_iter()
        .map(|h| {
            let plugin_id = (h.source != "host").then(|| h.source.clone());
            json!({
                "name": h.name,
                "description": h.description,
                "paramsSchema": h.params_schema,
                "defaultScope": h.default_scope,
                "source": h.source,
                "pluginId": plugin_id,
            })
        })
        .collect();
    ok(json!({"total": list.len(), "list": list}))
}

/// `GET /api/v1/job/cron-preview?expr=&timezone=&count=` (`system:job:list`).
async fn cron_preview(
    state: web::Data<AppState>,
    auth: AuthUser,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    state
        .permissions
        .require(auth.user_id, "system:job:list")
        .await?;
    let query = query_map(&req)?;
    let expr = query_str(&query, "expr").ok_or_else(|| ApiError::validation("expr is required"))?;
    check_len("expr", expr, 1, 128)?;
    let count = query_int(&query, "count")?.unwrap_or(PREVIEW_DEFAULT);
    check_range("count", count, 1, PREVIEW_MAX)?;
    let store = state.node.scheduler.store();
    let tz = match query_str(&query, "timezone") {
        Some(name) => parse_timezone(name)?,
        None => store.default_timezone(),
    };
    let schedule = Schedule::parse(expr).map_err(|e| match e {
        SchedulerError::Invalid { message, .. } => ApiError::validation(format!("expr: {message}")),
        other => other.into(),
    })?;
    let list: Vec<Value> = schedule
        .preview(Utc::now(), tz, count as usize)
        .into_iter()
        .map(|at: DateTime<Utc>| {
            json!({
                "time": at.timestamp_millis(),
                "iso": at
                    .with_timezone(&tz)
                    .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, false),
            })
        })
        .collect();
    ok(json!({"expr": expr, "timezone": tz.name(), "list": list}))
}

// ---------------------------------------------------------------------------
// Logs.
// ---------------------------------------------------------------------------

/// `GET /api/v1/job/log` (`system:job:list`).
async fn list_logs(
    state: web::Data<AppState>,
    auth: AuthUser,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    state
        .permissions
        .require(auth.user_id, "system:job:list")
        .await?;
    let query = query_map(&req)?;
    let page = page(&query)?;
    let filter = LogFilter {
        job_id: query_int(&query, "jobId")?,
        status: query_str(&query, "status")
            .map(|s| RunStatus::parse("status", s))
            .transpose()?,
        trigger: query_str(&query, "trigger")
            .map(|s| Trigger::parse("trigger", s))
            .transpose()?,
        node_id: query_str(&query, "nodeId").map(str::to_string),
        begin_time: query_int(&query, "beginTime")?,
        end_time: query_int(&query, "endTime")?,
    };
    let found = state
        .node
        .scheduler
        .store()
        .list_logs(&filter, page)
        .await?;
    ok(to_json(&found)?)
}

/// `GET /api/v1/job/log/{id}` (`system:job:list`).
async fn get_log(
    state: web::Data<AppState>,
    auth: AuthUser,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    state
        .permissions
        .require(auth.user_id, "system:job:list")
        .await?;
    let id = parse_id(&path, "job log id")?;
    ok(to_json(&state.node.scheduler.store().log(id).await?)?)
}

/// `DELETE /api/v1/job/log` (`system:job:remove`), ids in the query or body.
async fn delete_logs(
    state: web::Data<AppState>,
    auth: AuthUser,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    state
        .permissions
        .require(auth.user_id, "system:job:remove")
        .await?;
    let ids = delete_ids(&req, &body)?;
    let deleted = state.node.scheduler.store().delete_logs(&ids).await?;
    tracing::info!(rows = ids.len(), deleted, by = %auth.username, "job logs deleted");
    ok(json!({ "deleted": deleted }))
}

// ---------------------------------------------------------------------------
// Groups.
// ---------------------------------------------------------------------------

/// The fields of a group create or update body; `None` when absent.
#[derive(Debug, Default)]
struct GroupInput {
    code: Option<String>,
    name: Option<String>,
    sort: Option<i32>,
    remark: Option<String>,
}

impl GroupInput {
    fn parse(f: &Fields) -> Result<GroupInput, ApiError> {
        let sort = f
            .int("sort")?
            .map(|v| check_range("sort", v, 0, 999_999).map(|()| v as i32))
            .transpose()?;
        Ok(GroupInput {
            code: f.string("code")?,
            name: f.string("name")?,
            sort,
            remark: f.string("remark")?,
        })
    }

    fn over(self, base: GroupSpec) -> GroupSpec {
        GroupSpec {
            code: self.code.or(base.code),
            name: self.name.unwrap_or(base.name),
            sort: self.sort.unwrap_or(base.sort),
            remark: self.remark.unwrap_or(base.remark),
        }
    }
}

/// `GET /api/v1/job-group` (`system:jobgroup:list`): every group unless
/// `pageNum` or `pageSize` is given.
async fn list_groups(
    state: web::Data<AppState>,
    auth: AuthUser,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    state
        .permissions
        .require(auth.user_id, "system:jobgroup:list")
        .await?;
    let query = query_map(&req)?;
    let paged = query_str(&query, "pageNum").is_some() || query_str(&query, "pageSize").is_some();
    let page = page(&query)?;
    let name = query_str(&query, "name").map(str::to_lowercase);
    let groups: Vec<JobGroup> = state
        .node
        .scheduler
        .store()
        .list_groups()
        .await?
        .into_iter()
        .filter(|g| {
            name.as_ref()
                .is_none_or(|n| g.name.to_lowercase().contains(n))
        })
        .collect();
    let total = groups.len();
    let list: Vec<JobGroup> = if paged {
        groups
            .into_iter()
            .skip(((page.num - 1) * page.size) as usize)
            .take(page.size as usize)
            .collect()
    } else {
        groups
    };
    ok(json!({"list": to_json(&list)?, "total": total}))
}

/// `GET /api/v1/job-group/{id}` (`system:jobgroup:list`).
async fn get_group(
    state: web::Data<AppState>,
    auth: AuthUser,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    state
        .permissions
        .require(auth.user_id, "system:jobgroup:list")
        .await?;
    let id = parse_id(&path, "job group id")?;
    ok(to_json(&state.node.scheduler.store().group(id).await?)?)
}

/// `POST /api/v1/job-group` (`system:jobgroup:add`).
async fn create_group(
    state: web::Data<AppState>,
    auth: AuthUser,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    state
        .permissions
        .require(auth.user_id, "system:jobgroup:add")
        .await?;
    let input = GroupInput::parse(&Fields::new(parse_body(&body)?)?)?;
    if input.name.is_none() {
        return Err(ApiError::validation("name is required"));
    }
    let spec = input.over(GroupSpec::default());
    let id = state.node.scheduler.store().create_group(&spec).await?;
    tracing::info!(group = id, by = %auth.username, "job group created");
    ok(json!({ "id": id }))
}

/// `PUT /api/v1/job-group/{id}` (`system:jobgroup:edit`): absent fields
/// keep their value.
async fn update_group(
    state: web::Data<AppState>,
    auth: AuthUser,
    path: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    state
        .permissions
        .require(auth.user_id, "system:jobgroup:edit")
        .await?;
    let id = parse_id(&path, "job group id")?;
    let input = GroupInput::parse(&Fields::new(parse_body(&body)?)?)?;
    let store = state.node.scheduler.store();
    let existing = store.group(id).await?;
    let base = GroupSpec {
        code: Some(existing.code),
        name: existing.name,
        sort: existing.sort,
        remark: existing.remark,
    };
    store.update_group(id, &input.over(base)).await?;
    tracing::info!(group = id, by = %auth.username, "job group updated");
    ok(Value::Null)
}

/// `DELETE /api/v1/job-group` (`system:jobgroup:remove`), ids in the query
/// or body.
async fn delete_groups(
    state: web::Data<AppState>,
    auth: AuthUser,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    state
        .permissions
        .require(auth.user_id, "system:jobgroup:remove")
        .await?;
    let ids = delete_ids(&req, &body)?;
    let deleted = state.node.scheduler.store().delete_groups(&ids).await?;
    tracing::info!(?ids, deleted, by = %auth.username, "job groups deleted");
    ok(json!({ "deleted": deleted }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_keys() {
        for key in ["ids", "ids[]", "ids[0]", "ids[12]"] {
            assert!(is_ids_key(key), "{key}");
        }
        for key in ["id", "ids[x]", "ids[", "idsx", "xids[]"] {
            assert!(!is_ids_key(key), "{key}");
        }
    }
}
