//! `demo`: the worked example of a source plugin, written only against
//! what any plugin crate can use (this module's imports are the whole API a
//! plugin needs): [`SourcePlugin`], [`PluginContext`] (locks through the
//! coordinator, the plugin's own [`lina_cache::KvCache`] scope, the
//! database), the scheduler's typed handlers, and the host's `AuthUser`
//! and permission check.
//!
//! It contributes:
//! - a menu directory with one page and a button (`demo:greeting:query`,
//!   `demo:counter:add`) and their titles in `en-US` and `zh-CN`;
//! - `GET /x/demo/api/v1/greeting`: a greeting cached cluster-wide in the KV
//!   cache for a minute (`cached` says whether this answer came from it);
//! - `POST /x/demo/api/v1/counter`: a read-modify-write of a counter under
//!   the cluster lock `demo:counter`, whose fencing token is stored with the
//!   value so a stale writer could be detected;
//! - the job handler `demo:tick` (adds one to a KV counter) and the job
//!   `demo: tick` running it every minute on the leader.
//!
//! Everything disappears on every node while the plugin is disabled: the
//! routes answer 404, the menus leave `/menus/all`, the job pauses.

use std::sync::Arc;
use std::time::Duration;

use actix_web::{HttpResponse, web};
use lina_coord_api::LockOptions;
use lina_scheduler::{HandlerInfo, JobHandler, JobScope, JobSpec, typed};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{PluginContext, PluginManifest, PluginMenu, SourcePlugin};
use crate::api::AppState;
use crate::api::auth::AuthUser;
use crate::api::error::{ApiError, ok};

/// The demo plugin.
#[derive(Debug, Default, Clone, Copy)]
pub struct Demo;

/// The plugin's id.
pub const ID: &str = "demo";
const GREETING_TTL: Duration = Duration::from_secs(60);
const COUNTER_TTL: Duration = Duration::from_secs(24 * 3600);

fn menu(name: &str, kind: &str, path: &str, perms: &str, key: &str) -> PluginMenu {
    PluginMenu {
        name: name.into(),
        path: path.into(),
        component: if kind == "M" {
            "demo/index".into()
        } else {
            String::new()
        },
        perms: perms.into(),
        menu_type: kind.into(),
        icon: if kind == "B" {
            String::new()
        } else {
            "lucide:flask-conical".into()
        },
        sort: 90,
        i18n_key: key.into(),
        children: Vec::new(),
    }
}

impl SourcePlugin for Demo {
    fn manifest(&self) -> PluginManifest {
        let mut page = menu(
            "Demo",
            "M",
            "/demo/index",
            "demo:greeting:query",
            "menu.demo.index",
        );
        page.children.push(menu(
            "Add to counter",
            "B",
            "",
            "demo:counter:add",
            "menu.demo.counter",
        ));
        let mut dir = menu("Demo", "D", "/demo", "", "menu.demo.title");
        dir.children.push(page);
        PluginManifest {
            id: ID.into(),
            name: "Demo plugin".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Worked example: KV cache, cluster lock, job handler".into(),
            menus: vec![dir],
        }
    }

    fn messages(&self, locale: &str) -> Vec<(String, String)> {
        let pairs: &[(&str, &str)] = match locale {
            "zh-CN" => &[
                ("menu.demo.title", "演示"),
                ("menu.demo.index", "演示页面"),
                ("menu.demo.counter", "计数加一"),
            ],
            "en-US" => &[
                ("menu.demo.title", "Demo"),
                ("menu.demo.index", "Demo page"),
                ("menu.demo.counter", "Add to counter"),
            ],
            _ => &[],
        };
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn handlers(&self, ctx: &PluginContext) -> Vec<(HandlerInfo, Arc<dyn JobHandler>)> {
        let kv = ctx.kv.clone();
        let tick = typed(move |params: TickParams, _job| {
            let kv = kv.clone();
            async move {
                let value = kv
                    .incr("counter", "ticks", params.step, COUNTER_TTL)
                    .await
                    .map_err(lina_scheduler::JobError::new)?;
                Ok(json!({ "ticks": value }))
            }
        });
        vec![(
            HandlerInfo {
                name: "demo:tick".into(),
                description: "Adds `step` (default 1) to the demo plugin's tick counter".into(),
                params_schema: json!({
                    "type": "object",
                    "properties": {"step": {"type": "integer", "minimum": 1, "maximum": 1000}},
                }),
                default_scope: JobScope::MasterOnly,
                source: ID.into(),
            },
            Arc::new(tick),
        )]
    }

    fn jobs(&self) -> Vec<JobSpec> {
        vec![JobSpec {
            group_id: None,
            name: "demo: tick".into(),
            description: "The demo plugin's job: one tick a minute on the leader".into(),
            handler_ref: "demo:tick".into(),
            params: Some(json!({"step": 1})),
            timeout_seconds: 30,
            cron_expr: "0 * * * * *".into(),
            timezone: String::new(),
            scope: Some(JobScope::MasterOnly),
            concurrency: None,
            max_concurrency: None,
            misfire_policy: None,
            status: None,
        }]
    }

    fn routes(&self, cfg: &mut web::ServiceConfig) {
        cfg.route("/greeting", web::get().to(greeting))
            .route("/counter", web::post().to(counter));
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TickParams {
    #[serde(default = "one")]
    step: i64,
}

fn one() -> i64 {
    1
}

fn kv_error(error: lina_cache::KvCacheError) -> ApiError {
    match error {
        lina_cache::KvCacheError::Coordination(e) => e.into(),
        other => ApiError::internal(other),
    }
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Greeting {
    text: String,
    created_by: String,
    created_at: i64,
}

/// `GET /x/demo/api/v1/greeting` (login): the cluster-wide cached greeting.
async fn greeting(
    state: web::Data<AppState>,
    ctx: web::Data<PluginContext>,
    auth: AuthUser,
) -> Result<HttpResponse, ApiError> {
    state
        .permissions
        .require(auth.user_id, "demo:greeting:query")
        .await?;
    if let Some(cached) = ctx
        .kv
        .get::<Greeting>("greeting", "text")
        .await
        .map_err(kv_error)?
    {
        return ok(json!({"greeting": cached, "cached": true}));
    }
    let fresh = Greeting {
        text: format!("Hello, {}, from the demo plugin", auth.username),
        created_by: state.node.node_id.to_string(),
        created_at: lina_coord_api::unix_millis(),
    };
    // Only the first writer's greeting is kept; everyone serves that one.
    let stored = ctx
        .kv
        .set_if_absent("greeting", "text", &fresh, GREETING_TTL)
        .await
        .map_err(kv_error)?;
    let shown = if stored {
        fresh
    } else {
        ctx.kv
            .get::<Greeting>("greeting", "text")
            .await
            .map_err(kv_error)?
            .unwrap_or(fresh)
    };
    ok(json!({"greeting": shown, "cached": !stored}))
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Counter {
    value: i64,
    fencing_token: u64,
}

/// `POST /x/demo/api/v1/counter` (`demo:counter:add`): read, add one and
/// write back under the cluster lock `demo:counter`.
async fn counter(
    state: web::Data<AppState>,
    ctx: web::Data<PluginContext>,
    auth: AuthUser,
) -> Result<HttpResponse, ApiError> {
    state
        .permissions
        .require(auth.user_id, "demo:counter:add")
        .await?;
    let guard = ctx
        .coordinator
        .locks()
        .acquire(
            "demo:counter",
            LockOptions::ttl(Duration::from_secs(5)).wait(Duration::from_secs(5)),
        )
        .await?;
    let result = async {
        let mut current: Counter = ctx
            .kv
            .get("counter", "value")
            .await
            .map_err(kv_error)?
            .unwrap_or_default();
        if current.fencing_token >= guard.fencing_token() {
            return Err(ApiError::conflict(
                "the counter was written under a newer lock; retry",
            ));
        }
        current.value += 1;
        current.fencing_token = guard.fencing_token();
        ctx.kv
            .set("counter", "value", &current, COUNTER_TTL)
            .await
            .map_err(kv_error)?;
        Ok::<Value, ApiError>(
            json!({"value": current.value, "fencingToken": current.fencing_token}),
        )
    }
    .await;
    if let Err(error) = guard.release().await {
        tracing::warn!(%error, "demo:counter lock was lost before its release");
    }
    ok(result?)
}
