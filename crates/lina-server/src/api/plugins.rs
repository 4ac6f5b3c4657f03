//! Plugin management `/api/v1/plugins…` (`plugin:*`), the public
//! `/api/v1/plugins/dynamic`, dynamic plugins' files under `/x/{id}/assets/…`
//! and `/x/{id}/wasm`, and the gate in front of source plugins' routes
//! `/x/{id}/api/v1/…` (404 on every node while the plugin is not enabled).
//!
//! Lifecycle answers: `data = {executed, plugin}`, where `executed` says
//! whether this request changed anything. A request that finds another
//! node executing a lifecycle step for the plugin gets 409
//! `PLUGIN_OPERATION_IN_PROGRESS` with the plugin's current state.

use actix_web::body::{BoxBody, EitherBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::middleware::Next;
use actix_web::{HttpResponse, ResponseError, web};
use serde_json::{Value, json};

use super::auth::AuthUser;
use super::error::{ApiError, ok};
use super::request::no_body;
use super::{AppState, RouteDoc};
use crate::plugin::{Outcome, PluginError, PluginState, package};

/// The routes of this module, for `/api.json`.
pub const ROUTES: &[RouteDoc] = &[
    RouteDoc {
        method: "GET",
        path: "/api/v1/plugins",
        permission: Some("plugin:query"),
        summary: "every known plugin with its state",
    },
    RouteDoc {
        method: "GET",
        path: "/api/v1/plugins/dynamic",
        permission: None,
        summary: "plugin runtime state as this node sees it",
    },
    RouteDoc {
        method: "POST",
        path: "/api/v1/plugins/sync",
        permission: Some("plugin:install"),
        summary: "discover source plugins and packages in plugin.dynamic.storagePath",
    },
    RouteDoc {
        method: "GET",
        path: "/api/v1/plugins/{id}",
        permission: Some("plugin:query"),
        summary: "one plugin",
    },
    RouteDoc {
        method: "POST",
        path: "/api/v1/plugins/{id}/install",
        permission: Some("plugin:install"),
        summary: "install and enable (one node executes; others get 409 in progress)",
    },
    RouteDoc {
        method: "PUT",
        path: "/api/v1/plugins/{id}/enable",
        permission: Some("plugin:enable"),
        summary: "enable on every node",
    },
    RouteDoc {
        method: "PUT",
        path: "/api/v1/plugins/{id}/disable",
        permission: Some("plugin:disable"),
        summary: "disable on every node (routes, menus and jobs disappear)",
    },
    RouteDoc {
        method: "POST",
        path: "/api/v1/plugins/{id}/upgrade",
        permission: Some("plugin:install"),
        summary: "upgrade to the discovered version (one node executes)",
    },
    RouteDoc {
        method: "DELETE",
        path: "/api/v1/plugins/{id}",
        permission: Some("plugin:uninstall"),
        summary: "uninstall: menus, jobs and stored files are removed",
    },
    RouteDoc {
        method: "GET",
        path: "/x/{id}/assets/{path}",
        permission: None,
        summary: "a dynamic plugin's frontend file (installed version, while enabled)",
    },
    RouteDoc {
        method: "GET",
        path: "/x/{id}/wasm",
        permission: None,
        summary: "a dynamic plugin's wasm module (installed version, while enabled)",
    },
];

/// Registers the `/api/v1/plugins…` routes (inside the `/api/v1` scope).
pub fn register(cfg: &mut web::ServiceConfig) {
    cfg.route("/plugins", web::get().to(list))
        .route("/plugins/dynamic", web::get().to(dynamic))
        .route("/plugins/sync", web::post().to(sync))
        .route("/plugins/{id}", web::get().to(get))
        .route("/plugins/{id}", web::delete().to(step(Step::Uninstall)))
        .route("/plugins/{id}/install", web::post().to(step(Step::Install)))
        .route("/plugins/{id}/enable", web::put().to(step(Step::Enable)))
        .route("/plugins/{id}/disable", web::put().to(step(Step::Disable)))
        .route("/plugins/{id}/upgrade", web::post().to(step(Step::Upgrade)));
}

/// The handler of one lifecycle step.
fn step(
    step: Step,
) -> impl actix_web::Handler<
    (web::Data<AppState>, AuthUser, web::Path<String>, web::Bytes),
    Output = Result<HttpResponse, ApiError>,
> {
    move |state, auth, path, body| lifecycle(state, auth, path, body, step)
}

/// Registers `/x/{id}/…`: every source plugin's routes behind the enabled
/// gate, then dynamic plugins' files.
pub fn register_plugin_routes(cfg: &mut web::ServiceConfig, plugins: &crate::plugin::Plugins) {
    for (id, source, ctx) in plugins.sources() {
        let id = id.to_string();
        let source = source.clone();
        let ctx = web::Data::new(ctx.clone());
        cfg.service(
            web::scope(&format!("/x/{id}/api/v1"))
                .app_data(ctx)
                .app_data(web::Data::new(GateId(id.clone())))
                .wrap(actix_web::middleware::from_fn(gate))
                .configure(move |scope| source.routes(scope))
                .default_service(web::to(|| async {
                    Err::<HttpResponse, _>(ApiError::not_found("no such route"))
                })),
        );
    }
    cfg.route("/x/{id}/assets/{path:.*}", web::get().to(asset))
        .route("/x/{id}/wasm", web::get().to(wasm));
}

/// The plugin a gated scope belongs to.
struct GateId(String);

/// 404 for a source plugin's routes while it is not enabled on this node's
/// view (from memory while fresh; hidden when its state cannot be confirmed).
async fn gate(
    req: ServiceRequest,
    next: Next<BoxBody>,
) -> Result<ServiceResponse<EitherBody<BoxBody>>, actix_web::Error> {
    let enabled = match (
        req.app_data::<web::Data<AppState>>(),
        req.app_data::<web::Data<GateId>>(),
    ) {
        (Some(state), Some(id)) => state.node.plugins.is_enabled(&id.0).await,
        _ => false,
    };
    if !enabled {
        let response = ApiError::not_found("the plugin is not enabled").error_response();
        return Ok(req.into_response(response).map_into_right_body());
    }
    next.call(req)
        .await
        .map(ServiceResponse::map_into_left_body)
}

fn flag(value: bool) -> u8 {
    u8::from(value)
}

/// The API's plugin item.
pub fn item(s: &PluginState) -> Value {
    json!({
        "id": s.id,
        "name": s.name,
        "version": s.version,
        "type": s.plugin_type,
        "description": s.description,
        "installed": flag(s.installed),
        "enabled": flag(s.enabled),
        "runtimeState": s.runtime_state,
        "effectiveVersion": s.effective_version,
        "discoveredVersion": s.discovered_version,
        "upgradeAvailable": flag(s.upgrade_available),
        "installedAt": s.installed_at,
        "generation": s.generation,
        "lastError": s.last_error,
    })
}

impl From<PluginError> for ApiError {
    fn from(error: PluginError) -> Self {
        match error {
            PluginError::NotFound(_) => ApiError::not_found(error.to_string()),
            PluginError::Conflict(message) => ApiError::conflict(message),
            PluginError::Invalid(message) => ApiError::validation(message),
            PluginError::Coordination(e) => e.into(),
            PluginError::Database(e) => e.into(),
            PluginError::Cache(message) => ApiError::unavailable(message),
            PluginError::Scheduler(e) => e.into(),
        }
    }
}

fn outcome(result: Outcome) -> Result<HttpResponse, ApiError> {
    match result {
        Outcome::Done(state) => ok(json!({"executed": true, "plugin": item(&state)})),
        Outcome::Unchanged(state) => ok(json!({"executed": false, "plugin": item(&state)})),
        Outcome::InProgress(state) => Ok(HttpResponse::build(StatusCode::CONFLICT).json(json!({
            "code": 60,
            "message": "another node is running a lifecycle step of this plugin; its state follows",
            "errorCode": "PLUGIN_OPERATION_IN_PROGRESS",
            "messageKey": "error.plugin.operation.in.progress",
            "data": {"executed": false, "plugin": state.as_ref().map(item)},
        }))),
    }
}

fn plugin_id(raw: &str) -> Result<String, ApiError> {
    crate::plugin::check_id(raw).map_err(ApiError::invalid_parameter)?;
    Ok(raw.to_string())
}

/// `GET /api/v1/plugins`.
async fn list(state: web::Data<AppState>, auth: AuthUser) -> Result<HttpResponse, ApiError> {
    state
        .permissions
        .require(auth.user_id, "plugin:query")
        .await?;
    let list: Vec<Value> = state
        .node
        .plugins
        .list()
        .await?
        .iter()
        .map(|s| item(s))
        .collect();
    ok(json!({"total": list.len(), "list": list}))
}

/// `GET /api/v1/plugins/dynamic` (public): this node's view.
async fn dynamic(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let list: Vec<Value> = state
        .node
        .plugins
        .list()
        .await?
        .iter()
        .map(|s| {
            json!({
                "id": s.id,
                "installed": flag(s.installed),
                "enabled": flag(s.enabled),
                "version": s.effective_version,
                "generation": s.generation,
                "runtimeState": s.runtime_state,
            })
        })
        .collect();
    ok(json!({"list": list}))
}

/// `GET /api/v1/plugins/{id}`.
async fn get(
    state: web::Data<AppState>,
    auth: AuthUser,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    state
        .permissions
        .require(auth.user_id, "plugin:query")
        .await?;
    let id = plugin_id(&path)?;
    match state.node.plugins.state(&id).await? {
        Some(s) => ok(item(&s)),
        None => Err(PluginError::NotFound(id).into()),
    }
}

/// `POST /api/v1/plugins/sync`.
async fn sync(
    state: web::Data<AppState>,
    auth: AuthUser,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    state
        .permissions
        .require(auth.user_id, "plugin:install")
        .await?;
    no_body(&body)?;
    let list: Vec<Value> = state.node.plugins.sync().await?.iter().map(item).collect();
    ok(json!({"total": list.len(), "list": list}))
}

async fn lifecycle(
    state: web::Data<AppState>,
    auth: AuthUser,
    path: web::Path<String>,
    body: web::Bytes,
    step: Step,
) -> Result<HttpResponse, ApiError> {
    state
        .permissions
        .require(auth.user_id, step.permission())
        .await?;
    let id = plugin_id(&path)?;
    no_body(&body)?;
    let plugins = &state.node.plugins;
    let result = match step {
        Step::Install => plugins.install(&id).await?,
        Step::Upgrade => plugins.upgrade(&id).await?,
        Step::Uninstall => plugins.uninstall(&id).await?,
        Step::Enable => plugins.set_enabled(&id, true).await?,
        Step::Disable => plugins.set_enabled(&id, false).await?,
    };
    tracing::info!(plugin = %id, step = ?step, user = %auth.username, executed = matches!(result, Outcome::Done(_)), "plugin lifecycle request");
    outcome(result)
}

#[derive(Debug, Clone, Copy)]
enum Step {
    Install,
    Upgrade,
    Uninstall,
    Enable,
    Disable,
}

impl Step {
    /// The permission code the step needs.
    fn permission(self) -> &'static str {
        match self {
            Step::Install | Step::Upgrade => "plugin:install",
            Step::Uninstall => "plugin:uninstall",
            Step::Enable => "plugin:enable",
            Step::Disable => "plugin:disable",
        }
    }
}

/// `GET /x/{id}/assets/{path}`.
async fn asset(
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (id, file) = path.into_inner();
    let file = if file.is_empty() {
        "index.html".to_string()
    } else {
        file
    };
    match state.node.plugins.asset(&id, &file).await? {
        Some(bytes) => Ok(HttpResponse::Ok()
            .content_type(package::content_type(&file))
            .insert_header(("Cache-Control", "no-cache"))
            .body(bytes)),
        None => Err(ApiError::not_found(format!(
            "no file {file:?} in an enabled plugin {id:?}"
        ))),
    }
}

/// `GET /x/{id}/wasm`.
async fn wasm(
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    match state.node.plugins.wasm(&id).await? {
        Some(bytes) => Ok(HttpResponse::Ok()
            .content_type("application/wasm")
            .insert_header(("Cache-Control", "no-cache"))
            .body(bytes)),
        None => Err(ApiError::not_found(format!(
            "plugin {id:?} is not an enabled plugin with a wasm module"
        ))),
    }
}
