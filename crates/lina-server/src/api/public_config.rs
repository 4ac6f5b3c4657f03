//! `GET /api/v1/config/public/frontend` (public): what the admin frontend
//! needs before anyone logs in, in LinaPro's shape (`app`, `auth`, `cron`,
//! `workspace`, plus `i18n` and `cluster`). Nothing secret. It comes from
//! the configuration alone, so the answer is rendered once at start and
//! served from memory.

use std::time::Duration;

use actix_web::http::header;
use actix_web::{HttpResponse, web};
use lina_config::Config;
use serde_json::json;

use super::i18n::Locales;
use super::{AppState, RouteDoc};

/// The application's name as the frontend shows it.
pub const APP_NAME: &str = "Lina";

/// The routes of this module, for `/api.json`.
pub const ROUTES: &[RouteDoc] = &[RouteDoc {
    method: "GET",
    path: "/api/v1/config/public/frontend",
    permission: None,
    summary: "boot settings of the frontend: app {name, version}, i18n {enabled, default, locales}, auth {tokenExpireSeconds, sessionTimeoutSeconds, refreshEnabled, captchaEnabled}, cron {timezone}, workspace {basePath}, cluster {enabled}",
}];

/// Registers the routes of this module (under `/api/v1`).
pub fn register(cfg: &mut web::ServiceConfig) {
    cfg.route("/config/public/frontend", web::get().to(frontend));
}

/// The rendered answer.
pub struct PublicConfig {
    body: web::Bytes,
}

impl PublicConfig {
    /// Renders the answer from the configuration.
    pub fn new(config: &Config) -> anyhow::Result<PublicConfig> {
        let locales = Locales::from_config(&config.i18n)?;
        let default = &locales.default_locale().code;
        let items: Vec<_> = locales
            .list()
            .iter()
            .map(|l| {
                json!({
                    "locale": l.code,
                    "nativeName": if l.native_name.is_empty() { l.code.as_str() } else { l.native_name.as_str() },
                    "isDefault": l.code == *default,
                })
            })
            .collect();
        // Same floor as the token issuer (`auth::Auth`).
        let token_expire = config.jwt.expire.max(Duration::from_secs(60));
        let session_timeout = config.session.timeout.max(Duration::from_secs(60));
        let data = json!({
            "app": {
                "name": APP_NAME,
                "version": env!("CARGO_PKG_VERSION"),
            },
            "i18n": {
                "enabled": config.i18n.enabled,
                "default": default,
                "locales": items,
            },
            "auth": {
                "tokenExpireSeconds": token_expire.as_secs(),
                "sessionTimeoutSeconds": session_timeout.as_secs(),
                "refreshEnabled": true,
                "captchaEnabled": false,
            },
            "cron": {
                "timezone": {"current": config.scheduler.default_timezone},
            },
            "workspace": {
                "basePath": config.workspace.base_path,
            },
            "cluster": {
                "enabled": config.cluster.enabled,
            },
        });
        let envelope = json!({"code": 0, "message": "ok", "data": data});
        Ok(PublicConfig {
            body: web::Bytes::from(serde_json::to_vec(&envelope)?),
        })
    }
}

/// `GET /api/v1/config/public/frontend` (public).
async fn frontend(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .content_type("application/json")
        .body(state.public_config.body.clone())
}
