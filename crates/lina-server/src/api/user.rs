//! `GET /api/v1/user/info` and `GET /api/v1/menus/all`.

use actix_web::{HttpResponse, web};
use serde_json::{Value, json};

use super::AppState;
use super::auth::AuthUser;
use super::error::ApiError;
use super::permission::{ALL_PERMISSIONS, Topology, UserAccess};
use crate::entity::menu;

/// The route tree (directories and pages, buttons excluded) the user sees.
fn routes(topology: &Topology, access: &UserAccess, parent: i64) -> Vec<Value> {
    topology
        .menus
        .iter()
        .filter(|m| m.parent_id == parent && m.menu_type != "B" && access.menus.contains(&m.id))
        .map(|m| route(topology, access, m))
        .collect()
}

fn route(topology: &Topology, access: &UserAccess, m: &menu::Model) -> Value {
    let children = routes(topology, access, m.id);
    let authority: Vec<&str> = if m.perms.is_empty() {
        vec![]
    } else {
        vec![m.perms.as_str()]
    };
    let mut value = json!({
        "id": m.id,
        "parentId": m.parent_id,
        "name": m.name,
        "path": m.path,
        "component": if m.menu_type == "D" && m.component.is_empty() { "BasicLayout" } else { m.component.as_str() },
        "meta": {
            "title": m.name,
            "icon": m.icon,
            "i18nKey": m.i18n_key,
            "hideInMenu": m.visible == 0,
            "keepAlive": m.is_cache == 1,
            "order": m.sort,
            "authority": authority,
        },
    });
    if !m.redirect.is_empty() {
        value["redirect"] = json!(m.redirect);
    }
    if !children.is_empty() {
        value["children"] = json!(children);
    }
    value
}

/// Answers with the body rendered for this user from the current
/// topology, rendering it once per topology.
fn rendered(
    topology: &Topology,
    user_id: i64,
    route: &'static str,
    render: impl FnOnce() -> serde_json::Value,
) -> HttpResponse {
    let body = topology
        .rendered
        .entry((user_id, route))
        .or_insert_with(|| {
            let envelope = json!({"code": 0, "message": "ok", "data": render()});
            web::Bytes::from(serde_json::to_vec(&envelope).unwrap_or_default())
        })
        .clone();
    HttpResponse::Ok()
        .content_type("application/json")
        .body(body)
}

/// `GET /api/v1/user/info`.
pub async fn info(state: web::Data<AppState>, auth: AuthUser) -> Result<HttpResponse, ApiError> {
    let access = state.permissions.access(auth.user_id).await?;
    let topology = state.permissions.topology().await?;
    Ok(rendered(&topology, auth.user_id, "info", || {
        info_body(&topology, &access, auth.user_id)
    }))
}

fn info_body(topology: &Topology, access: &UserAccess, user_id: i64) -> serde_json::Value {
    let mut permissions: Vec<String> = if access.superuser {
        vec![ALL_PERMISSIONS.to_string()]
    } else {
        access.permissions.iter().cloned().collect()
    };
    permissions.sort();
    json!({
        "userId": user_id,
        "username": access.username,
        "realName": access.nickname,
        "email": access.email,
        "avatar": access.avatar,
        "roles": access.roles,
        "homePath": "/dashboard",
        "menus": routes(topology, access, 0),
        "permissions": permissions,
        "defaultPassword": access.default_password,
    })
}

/// `GET /api/v1/menus/all`.
pub async fn menus(state: web::Data<AppState>, auth: AuthUser) -> Result<HttpResponse, ApiError> {
    let access = state.permissions.access(auth.user_id).await?;
    let topology = state.permissions.topology().await?;
    Ok(rendered(
        &topology,
        auth.user_id,
        "menus",
        || json!({ "list": routes(&topology, &access, 0) }),
    ))
}
