//! The HTTP API: LinaPro's contract (API.md) plus health, readiness and
//! system info. Every JSON answer under `/api/v1` uses the envelope of
//! [`error::ok`] / [`error::ApiError`].

pub mod auth;
pub mod docs;
pub mod error;
pub mod i18n;
pub mod jobs;
pub mod menu_admin;
pub mod metrics;
pub mod online;
pub mod permission;
pub mod plugins;
pub mod public_config;
pub mod request;
pub mod role_admin;
pub mod system;
pub mod user;
pub mod user_admin;

/// One documented route, for `/api.json` (each API module lists its own).
#[derive(Debug, Clone, Copy)]
pub struct RouteDoc {
    /// `GET`, `POST`, `PUT`, `DELETE`.
    pub method: &'static str,
    /// Path with `{param}` placeholders.
    pub path: &'static str,
    /// `None`: public; `Some("")`: login only; else the permission code.
    pub permission: Option<&'static str>,
    /// What it does.
    pub summary: &'static str,
}

use std::sync::Arc;

use actix_web::{HttpResponse, web};

use crate::node::Node;

/// Shared state of every request handler.
pub struct AppState {
    /// The node serving the request.
    pub node: Arc<Node>,
    /// Tokens and sessions.
    pub auth: auth::Auth,
    /// The permission topology.
    pub permissions: permission::Permissions,
    /// Request counters for `/metrics`.
    pub metrics: metrics::HttpMetrics,
    /// Runtime message bundles per locale.
    pub i18n: i18n::I18n,
    /// The public frontend settings.
    pub public_config: public_config::PublicConfig,
}

impl AppState {
    /// Builds the API's state on a started node.
    pub fn new(node: Arc<Node>) -> anyhow::Result<AppState> {
        Ok(AppState {
            auth: auth::Auth::new(&node)?,
            permissions: permission::Permissions::new(&node.caches, node.db.clone())?,
            metrics: metrics::HttpMetrics::default(),
            i18n: i18n::I18n::new(&node, vec![Arc::new(node.plugins.clone())])?,
            public_config: public_config::PublicConfig::new(&node.config)?,
            node,
        })
    }
}

async fn not_found() -> Result<HttpResponse, error::ApiError> {
    Err(error::ApiError::not_found("no such route"))
}

/// Registers every route.
pub fn routes(cfg: &mut web::ServiceConfig) {
    error::extractor_config(cfg);
    cfg.route("/health", web::get().to(system::health))
        .route("/ready", web::get().to(system::ready))
        .route("/metrics", web::get().to(metrics::metrics))
        .route("/api.json", web::get().to(docs::api_json))
        .service(
            web::scope("/api/v1")
                .wrap(actix_web::middleware::from_fn(i18n::content_language))
                .route("/auth/login", web::post().to(auth::login))
                .route("/auth/refresh", web::post().to(auth::refresh))
                .route("/auth/logout", web::post().to(auth::logout))
                .route("/user/info", web::get().to(user::info))
                .route("/menus/all", web::get().to(user::menus))
                .route("/system/info", web::get().to(system::info))
                .configure(user_admin::register)
                .configure(role_admin::register)
                .configure(menu_admin::register)
                .configure(online::register)
                .configure(plugins::register)
                .configure(i18n::register)
                .configure(public_config::register)
                .configure(jobs::register)
                .default_service(web::to(not_found)),
        );
}
