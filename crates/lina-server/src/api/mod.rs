//! The HTTP API: LinaPro's contract (API.md) plus health, readiness and
//! system info. Every JSON answer under `/api/v1` uses the envelope of
//! [`error::ok`] / [`error::ApiError`].

pub mod auth;
pub mod error;
pub mod permission;
pub mod system;
pub mod user;

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
}

impl AppState {
    /// Builds the API's state on a started node.
    pub fn new(node: Arc<Node>) -> anyhow::Result<AppState> {
        Ok(AppState {
            auth: auth::Auth::new(&node)?,
            permissions: permission::Permissions::new(&node.caches, node.db.clone())?,
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
        .service(
            web::scope("/api/v1")
                .route("/auth/login", web::post().to(auth::login))
                .route("/auth/refresh", web::post().to(auth::refresh))
                .route("/auth/logout", web::post().to(auth::logout))
                .route("/user/info", web::get().to(user::info))
                .route("/menus/all", web::get().to(user::menus))
                .route("/system/info", web::get().to(system::info))
                .default_service(web::to(not_found)),
        );
}
