//! `GET /api.json`: an OpenAPI 3 document of every route, generated from
//! the same route tables the modules register.

use actix_web::{HttpResponse, web};
use serde_json::{Map, Value, json};

use super::RouteDoc;

/// Routes of the core modules (health, auth, user info, system).
pub const CORE_ROUTES: &[RouteDoc] = &[
    RouteDoc {
        method: "GET",
        path: "/health",
        permission: None,
        summary: "liveness; touches nothing",
    },
    RouteDoc {
        method: "GET",
        path: "/ready",
        permission: None,
        summary: "database (and Redis in cluster mode) answer",
    },
    RouteDoc {
        method: "GET",
        path: "/metrics",
        permission: None,
        summary: "Prometheus metrics",
    },
    RouteDoc {
        method: "GET",
        path: "/api.json",
        permission: None,
        summary: "this OpenAPI document",
    },
    RouteDoc {
        method: "POST",
        path: "/api/v1/auth/login",
        permission: None,
        summary: "log in; returns accessToken and refreshToken",
    },
    RouteDoc {
        method: "POST",
        path: "/api/v1/auth/refresh",
        permission: None,
        summary: "new tokens for a refresh token",
    },
    RouteDoc {
        method: "POST",
        path: "/api/v1/auth/logout",
        permission: Some(""),
        summary: "end this session on every node",
    },
    RouteDoc {
        method: "GET",
        path: "/api/v1/user/info",
        permission: Some(""),
        summary: "the user, roles, menus and permission codes",
    },
    RouteDoc {
        method: "GET",
        path: "/api/v1/menus/all",
        permission: Some(""),
        summary: "the user's route tree (no buttons)",
    },
    RouteDoc {
        method: "GET",
        path: "/api/v1/system/info",
        permission: Some("about:system:list"),
        summary: "node, cluster and cache state",
    },
];

/// Every documented route.
pub fn all_routes() -> Vec<RouteDoc> {
    [
        CORE_ROUTES,
        super::user_admin::ROUTES,
        super::role_admin::ROUTES,
        super::menu_admin::ROUTES,
        super::online::ROUTES,
        super::plugins::ROUTES,
        super::i18n::ROUTES,
        super::public_config::ROUTES,
        super::jobs::ROUTES,
    ]
    .concat()
}

/// The OpenAPI document.
pub fn openapi() -> Value {
    let mut paths = Map::new();
    for route in all_routes() {
        let params: Vec<Value> = route
            .path
            .split('/')
            .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .map(|name| json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}}))
            .collect();
        let mut op = json!({
            "summary": route.summary,
            "parameters": params,
            "responses": {
                "200": {"description": "ok: {code: 0, message, data}"},
                "400": {"description": "invalid request (envelope with errorCode)"},
                "401": {"description": "missing, invalid, expired or revoked token"},
                "403": {"description": "permission missing"},
                "503": {"description": "a dependency is unavailable"},
            },
        });
        match route.permission {
            None => {}
            Some(code) => {
                op["security"] = json!([{"bearer": []}]);
                if !code.is_empty() {
                    op["x-permission"] = json!(code);
                }
            }
        }
        if matches!(route.method, "POST" | "PUT" | "DELETE") {
            op["requestBody"] = json!({"required": false, "content": {"application/json": {"schema": {"type": "object"}}}});
        }
        let entry = paths
            .entry(route.path.to_string())
            .or_insert_with(|| json!({}));
        entry[route.method.to_lowercase()] = op;
    }
    json!({
        "openapi": "3.0.3",
        "info": {"title": "Lina", "version": env!("CARGO_PKG_VERSION")},
        "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}}},
        "paths": paths,
    })
}

/// `GET /api.json`.
pub async fn api_json(_: web::Data<super::AppState>) -> HttpResponse {
    HttpResponse::Ok().json(openapi())
}
