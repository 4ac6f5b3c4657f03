//! Menu administration: `/api/v1/menu…` (`system:menu:*`).
//!
//! Directories (`D`), pages (`M`) and buttons (`B`) form one tree under the
//! virtual root `0`. Writes keep it a tree: a parent is `0` or an existing
//! directory or page, a menu never becomes its own ancestor, a menu with
//! children cannot be deleted. Writes of the whole cluster take the
//! `menu-admin` lock, so two concurrent edits cannot build a cycle or
//! orphan a subtree, and every write bumps the permission topology so each
//! node reloads menus and permission codes.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use actix_web::{HttpRequest, HttpResponse, web};
use lina_coord_api::{LockGuard, LockOptions, unix_millis};
use sea_orm::{
    ActiveModelTrait,
    ActiveValue::{NotSet, Set},
    ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, TransactionTrait,
};
use serde::Deserialize;
use serde_json::{Value, json};

use super::auth::AuthUser;
use super::error::{ApiError, ok};
use super::permission::ALL_PERMISSIONS;
use super::request::{parse_body, parse_id};
use super::{AppState, RouteDoc};
use crate::entity::{menu, role, role_menu};

/// The routes of this module, for `/api.json`.
pub const ROUTES: &[RouteDoc] = &[
    RouteDoc {
        method: "GET",
        path: "/api/v1/menu",
        permission: Some("system:menu:query"),
        summary: "menu tree incl. buttons (`{list}`), filters name, status, visible",
    },
    RouteDoc {
        method: "POST",
        path: "/api/v1/menu",
        permission: Some("system:menu:add"),
        summary: "create a directory, page or button; returns {id}",
    },
    RouteDoc {
        method: "GET",
        path: "/api/v1/menu/treeselect",
        permission: Some("system:menu:query"),
        summary: "menu tree of {id, parentId, label, type, icon, children} for select boxes",
    },
    RouteDoc {
        method: "GET",
        path: "/api/v1/menu/role/{roleId}",
        permission: Some("system:menu:query"),
        summary: "{checkedKeys, menus}: the role's menu ids and the select tree",
    },
    RouteDoc {
        method: "GET",
        path: "/api/v1/menu/{id}",
        permission: Some("system:menu:query"),
        summary: "one menu",
    },
    RouteDoc {
        method: "PUT",
        path: "/api/v1/menu/{id}",
        permission: Some("system:menu:edit"),
        summary: "update a menu (fields given replace the stored ones)",
    },
    RouteDoc {
        method: "DELETE",
        path: "/api/v1/menu/{id}",
        permission: Some("system:menu:remove"),
        summary: "delete a menu without children and its role assignments",
    },
];

/// Registers the routes of this module (under `/api/v1`).
pub fn register(cfg: &mut web::ServiceConfig) {
    cfg.route("/menu", web::get().to(list))
        .route("/menu", web::post().to(create))
        .route("/menu/treeselect", web::get().to(treeselect))
        .route("/menu/role/{roleId}", web::get().to(role_menus))
        .route("/menu/{id}", web::get().to(get))
        .route("/menu/{id}", web::put().to(update))
        .route("/menu/{id}", web::delete().to(remove));
}

/// Name of the cluster lock that serialises menu writes.
const LOCK: &str = "menu-admin";

/// Column lengths of `sys_menu` (characters).
const LIMITS: [(&str, usize); 9] = [
    ("name", 64),
    ("path", 255),
    ("component", 255),
    ("redirect", 255),
    ("perms", 128),
    ("icon", 64),
    ("queryParam", 255),
    ("i18nKey", 128),
    ("remark", 500),
];

/// Query of `GET /menu`; empty values mean "no filter".
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListQuery {
    name: Option<String>,
    status: Option<String>,
    visible: Option<String>,
}

/// Body of `POST /menu` and `PUT /menu/{id}`: on create, missing fields take
/// their defaults; on update, missing fields keep their stored values.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct MenuBody {
    parent_id: Option<i64>,
    name: Option<String>,
    path: Option<String>,
    component: Option<String>,
    redirect: Option<String>,
    perms: Option<String>,
    icon: Option<String>,
    #[serde(rename = "type")]
    menu_type: Option<String>,
    sort: Option<i32>,
    visible: Option<i16>,
    status: Option<i16>,
    is_frame: Option<i16>,
    is_cache: Option<i16>,
    query_param: Option<String>,
    remark: Option<String>,
    i18n_key: Option<String>,
}

/// A menu's editable fields, after merging a body into defaults or the
/// stored row.
#[derive(Debug, Clone)]
struct Fields {
    parent_id: i64,
    name: String,
    path: String,
    component: String,
    redirect: String,
    perms: String,
    icon: String,
    menu_type: String,
    sort: i32,
    visible: i16,
    status: i16,
    is_frame: i16,
    is_cache: i16,
    query_param: String,
    remark: String,
    i18n_key: String,
}

impl Fields {
    fn defaults() -> Fields {
        Fields {
            parent_id: 0,
            name: String::new(),
            path: String::new(),
            component: String::new(),
            redirect: String::new(),
            perms: String::new(),
            icon: String::new(),
            menu_type: String::new(),
            sort: 0,
            visible: 1,
            status: 1,
            is_frame: 0,
            is_cache: 0,
            query_param: String::new(),
            remark: String::new(),
            i18n_key: String::new(),
        }
    }

    fn of(m: &menu::Model) -> Fields {
        Fields {
            parent_id: m.parent_id,
            name: m.name.clone(),
            path: m.path.clone(),
            component: m.component.clone(),
            redirect: m.redirect.clone(),
            perms: m.perms.clone(),
            icon: m.icon.clone(),
            menu_type: m.menu_type.clone(),
            sort: m.sort,
            visible: m.visible,
            status: m.status,
            is_frame: m.is_frame,
            is_cache: m.is_cache,
            query_param: m.query_param.clone(),
            remark: m.remark.clone(),
            i18n_key: m.i18n_key.clone(),
        }
    }

    /// Applies the fields present in `body` (strings trimmed).
    fn apply(mut self, body: MenuBody) -> Fields {
        fn set(target: &mut String, value: Option<String>) {
            if let Some(value) = value {
                *target = value.trim().to_string();
            }
        }
        if let Some(parent_id) = body.parent_id {
            self.parent_id = parent_id;
        }
        set(&mut self.name, body.name);
        set(&mut self.path, body.path);
        set(&mut self.component, body.component);
        set(&mut self.redirect, body.redirect);
        set(&mut self.perms, body.perms);
        set(&mut self.icon, body.icon);
        set(&mut self.menu_type, body.menu_type);
        set(&mut self.query_param, body.query_param);
        set(&mut self.remark, body.remark);
        set(&mut self.i18n_key, body.i18n_key);
        self.sort = body.sort.unwrap_or(self.sort);
        self.visible = body.visible.unwrap_or(self.visible);
        self.status = body.status.unwrap_or(self.status);
        self.is_frame = body.is_frame.unwrap_or(self.is_frame);
        self.is_cache = body.is_cache.unwrap_or(self.is_cache);
        self
    }

    fn string(&self, field: &str) -> &str {
        match field {
            "name" => &self.name,
            "path" => &self.path,
            "component" => &self.component,
            "redirect" => &self.redirect,
            "perms" => &self.perms,
            "icon" => &self.icon,
            "queryParam" => &self.query_param,
            "i18nKey" => &self.i18n_key,
            _ => &self.remark,
        }
    }

    /// Field rules that need no other menu.
    fn check(&self) -> Result<(), ApiError> {
        if !matches!(self.menu_type.as_str(), "D" | "M" | "B") {
            return Err(ApiError::validation(format!(
                "type {:?} must be D (directory), M (page) or B (button)",
                self.menu_type
            )));
        }
        if self.name.is_empty() {
            return Err(ApiError::validation("name is required"));
        }
        for (field, max) in LIMITS {
            let len = self.string(field).chars().count();
            if len > max {
                return Err(ApiError::validation(format!(
                    "{field} has {len} characters, at most {max} are allowed"
                )));
            }
        }
        if self.menu_type == "B" && self.perms.is_empty() {
            return Err(ApiError::validation("a button (type B) requires perms"));
        }
        if self.menu_type != "B" && self.path.is_empty() {
            return Err(ApiError::validation(format!(
                "a {} requires a path",
                if self.menu_type == "D" {
                    "directory (type D)"
                } else {
                    "page (type M)"
                }
            )));
        }
        for (field, value) in [
            ("visible", self.visible),
            ("status", self.status),
            ("isFrame", self.is_frame),
            ("isCache", self.is_cache),
        ] {
            if value != 0 && value != 1 {
                return Err(ApiError::validation(format!(
                    "{field} {value} must be 0 or 1"
                )));
            }
        }
        Ok(())
    }
}

/// Every menu, by id.
async fn all_menus(db: &DatabaseConnection) -> Result<HashMap<i64, menu::Model>, ApiError> {
    Ok(menu::Entity::find()
        .all(db)
        .await?
        .into_iter()
        .map(|m| (m.id, m))
        .collect())
}

/// The parent rules: `parentId` is `0` or an existing directory or page,
/// and not the menu itself or one of its descendants; a menu with children
/// cannot become a button.
fn check_parent(
    fields: &Fields,
    id: Option<i64>,
    menus: &HashMap<i64, menu::Model>,
) -> Result<(), ApiError> {
    if let Some(id) = id
        && fields.menu_type == "B"
        && menus.values().any(|m| m.parent_id == id)
    {
        return Err(ApiError::validation(format!(
            "menu {id} has children, so it cannot become a button"
        )));
    }
    if fields.parent_id == 0 {
        return Ok(());
    }
    let Some(parent) = menus.get(&fields.parent_id) else {
        return Err(ApiError::validation(format!(
            "parentId {} is not an existing menu",
            fields.parent_id
        )));
    };
    if parent.menu_type == "B" {
        return Err(ApiError::validation(format!(
            "parentId {} is a button; a button cannot have children",
            parent.id
        )));
    }
    if let Some(id) = id {
        // Walk up from the new parent; meeting `id` means a cycle.
        let mut seen = HashSet::new();
        let mut current = fields.parent_id;
        while current != 0 && seen.insert(current) {
            if current == id {
                return Err(ApiError::validation(format!(
                    "parentId {} would make menu {id} its own ancestor",
                    fields.parent_id
                )));
            }
            current = menus.get(&current).map_or(0, |m| m.parent_id);
        }
    }
    Ok(())
}

/// Only a superuser may hand out `*:*:*` through a menu.
fn check_grant(fields: &Fields, superuser: bool) -> Result<(), ApiError> {
    if fields.perms == ALL_PERMISSIONS && !superuser {
        return Err(ApiError::forbidden(ALL_PERMISSIONS));
    }
    Ok(())
}

/// A menu as the API shows it.
fn item(m: &menu::Model) -> Value {
    json!({
        "id": m.id,
        "parentId": m.parent_id,
        "name": m.name,
        "path": m.path,
        "component": m.component,
        "redirect": m.redirect,
        "perms": m.perms,
        "icon": m.icon,
        "type": m.menu_type,
        "sort": m.sort,
        "visible": m.visible,
        "status": m.status,
        "isFrame": m.is_frame,
        "isCache": m.is_cache,
        "queryParam": m.query_param,
        "remark": m.remark,
        "i18nKey": m.i18n_key,
        "pluginId": m.plugin_id,
        "createdAt": m.created_at,
        "updatedAt": m.updated_at,
    })
}

/// A select-box node.
fn select_node(m: &menu::Model) -> Value {
    json!({
        "id": m.id,
        "parentId": m.parent_id,
        "label": m.name,
        "type": m.menu_type,
        "icon": m.icon,
    })
}

/// Builds a tree of `menus` (ordered by `sort`, then `id`): a menu whose
/// parent is not among them is a root; every node gets a `children` array.
fn tree(menus: &[&menu::Model], node: fn(&menu::Model) -> Value) -> Vec<Value> {
    let mut sorted = menus.to_vec();
    sorted.sort_by_key(|m| (m.sort, m.id));
    let ids: HashSet<i64> = sorted.iter().map(|m| m.id).collect();
    let mut children: HashMap<i64, Vec<&menu::Model>> = HashMap::new();
    let mut roots = Vec::new();
    for m in sorted {
        if m.parent_id != m.id && ids.contains(&m.parent_id) {
            children.entry(m.parent_id).or_default().push(m);
        } else {
            roots.push(m);
        }
    }
    fn build(
        m: &menu::Model,
        children: &HashMap<i64, Vec<&menu::Model>>,
        node: fn(&menu::Model) -> Value,
        seen: &mut HashSet<i64>,
    ) -> Value {
        let mut value = node(m);
        let mut kids = Vec::new();
        if seen.insert(m.id) {
            for child in children.get(&m.id).into_iter().flatten() {
                kids.push(build(child, children, node, seen));
            }
        }
        value["children"] = Value::Array(kids);
        value
    }
    let mut seen = HashSet::new();
    roots
        .into_iter()
        .map(|m| build(m, &children, node, &mut seen))
        .collect()
}

/// An optional numeric filter; empty means none.
fn filter_flag(name: &str, raw: Option<String>) -> Result<Option<i16>, ApiError> {
    match raw.as_deref().map(str::trim) {
        None | Some("") => Ok(None),
        Some(value) => value.parse().map(Some).map_err(|_| {
            ApiError::invalid_parameter(format!("{name} {value:?} is not an integer"))
        }),
    }
}

/// Takes the cluster-wide menu write lock.
async fn lock(state: &AppState) -> Result<LockGuard, ApiError> {
    Ok(state
        .node
        .coordinator
        .locks()
        .acquire(
            LOCK,
            LockOptions::ttl(Duration::from_secs(15))
                .wait(Duration::from_secs(5))
                .watchdog(),
        )
        .await?)
}

/// Releases the lock; a lost lock is only worth a warning once the write
/// is committed.
async fn unlock(guard: LockGuard) {
    if let Err(error) = guard.release().await {
        tracing::warn!(%error, lock = LOCK, "menu lock was lost before its release");
    }
}

/// `GET /api/v1/menu`.
async fn list(
    state: web::Data<AppState>,
    auth: AuthUser,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    state
        .permissions
        .require(auth.user_id, "system:menu:query")
        .await?;
    let query = web::Query::<ListQuery>::from_query(req.query_string())
        .map_err(|e| ApiError::invalid_parameter(format!("invalid query: {e}")))?
        .into_inner();
    let name = query
        .name
        .map(|n| n.trim().to_lowercase())
        .filter(|n| !n.is_empty());
    let status = filter_flag("status", query.status)?;
    let visible = filter_flag("visible", query.visible)?;
    let menus = menu::Entity::find().all(&state.node.db).await?;
    let matching: Vec<&menu::Model> = menus
        .iter()
        .filter(|m| {
            name.as_ref()
                .is_none_or(|n| m.name.to_lowercase().contains(n))
                && status.is_none_or(|s| m.status == s)
                && visible.is_none_or(|v| m.visible == v)
        })
        .collect();
    ok(json!({ "list": tree(&matching, item) }))
}

/// `GET /api/v1/menu/{id}`.
async fn get(
    state: web::Data<AppState>,
    auth: AuthUser,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    state
        .permissions
        .require(auth.user_id, "system:menu:query")
        .await?;
    let id = parse_id(&path, "menu id")?;
    let found = menu::Entity::find_by_id(id).one(&state.node.db).await?;
    let m = found.ok_or_else(|| ApiError::not_found(format!("menu {id} does not exist")))?;
    ok(item(&m))
}

/// `POST /api/v1/menu`.
async fn create(
    state: web::Data<AppState>,
    auth: AuthUser,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let access = state
        .permissions
        .require(auth.user_id, "system:menu:add")
        .await?;
    let fields = Fields::defaults().apply(parse_body(&body)?);
    fields.check()?;
    check_grant(&fields, access.superuser)?;
    let guard = lock(&state).await?;
    let result = async {
        let menus = all_menus(&state.node.db).await?;
        check_parent(&fields, None, &menus)?;
        let now = unix_millis();
        let id = menu::Entity::insert(menu::ActiveModel {
            id: NotSet,
            parent_id: Set(fields.parent_id),
            name: Set(fields.name),
            path: Set(fields.path),
            component: Set(fields.component),
            redirect: Set(fields.redirect),
            perms: Set(fields.perms),
            icon: Set(fields.icon),
            menu_type: Set(fields.menu_type),
            sort: Set(fields.sort),
            visible: Set(fields.visible),
            status: Set(fields.status),
            is_frame: Set(fields.is_frame),
            is_cache: Set(fields.is_cache),
            query_param: Set(fields.query_param),
            i18n_key: Set(fields.i18n_key),
            remark: Set(fields.remark),
            plugin_id: Set(None),
            created_at: Set(now),
            updated_at: Set(now),
        })
        .exec(&state.node.db)
        .await?
        .last_insert_id;
        state.permissions.changed().await?;
        Ok::<_, ApiError>(id)
    }
    .await;
    unlock(guard).await;
    let id = result?;
    tracing::info!(menu = id, by = %auth.username, "menu created");
    ok(json!({ "id": id }))
}

/// `PUT /api/v1/menu/{id}`.
async fn update(
    state: web::Data<AppState>,
    auth: AuthUser,
    path: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let access = state
        .permissions
        .require(auth.user_id, "system:menu:edit")
        .await?;
    let id = parse_id(&path, "menu id")?;
    let body: MenuBody = parse_body(&body)?;
    let guard = lock(&state).await?;
    let result = async {
        let menus = all_menus(&state.node.db).await?;
        let current = menus
            .get(&id)
            .ok_or_else(|| ApiError::not_found(format!("menu {id} does not exist")))?;
        let fields = Fields::of(current).apply(body);
        fields.check()?;
        check_grant(&fields, access.superuser)?;
        check_parent(&fields, Some(id), &menus)?;
        let mut active: menu::ActiveModel = current.clone().into();
        active.parent_id = Set(fields.parent_id);
        active.name = Set(fields.name);
        active.path = Set(fields.path);
        active.component = Set(fields.component);
        active.redirect = Set(fields.redirect);
        active.perms = Set(fields.perms);
        active.icon = Set(fields.icon);
        active.menu_type = Set(fields.menu_type);
        active.sort = Set(fields.sort);
        active.visible = Set(fields.visible);
        active.status = Set(fields.status);
        active.is_frame = Set(fields.is_frame);
        active.is_cache = Set(fields.is_cache);
        active.query_param = Set(fields.query_param);
        active.i18n_key = Set(fields.i18n_key);
        active.remark = Set(fields.remark);
        active.updated_at = Set(unix_millis());
        active.update(&state.node.db).await?;
        state.permissions.changed().await?;
        Ok::<_, ApiError>(())
    }
    .await;
    unlock(guard).await;
    result?;
    tracing::info!(menu = id, by = %auth.username, "menu updated");
    ok(Value::Null)
}

/// `DELETE /api/v1/menu/{id}`.
async fn remove(
    state: web::Data<AppState>,
    auth: AuthUser,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    state
        .permissions
        .require(auth.user_id, "system:menu:remove")
        .await?;
    let id = parse_id(&path, "menu id")?;
    let guard = lock(&state).await?;
    let result = async {
        let db = &state.node.db;
        if menu::Entity::find_by_id(id).one(db).await?.is_none() {
            return Err(ApiError::not_found(format!("menu {id} does not exist")));
        }
        let children = menu::Entity::find()
            .filter(menu::Column::ParentId.eq(id))
            .all(db)
            .await?;
        if !children.is_empty() {
            return Err(ApiError::conflict(format!(
                "menu {id} has {} children; delete or move them first",
                children.len()
            )));
        }
        let txn = db.begin().await?;
        role_menu::Entity::delete_many()
            .filter(role_menu::Column::MenuId.eq(id))
            .exec(&txn)
            .await?;
        menu::Entity::delete_by_id(id).exec(&txn).await?;
        txn.commit().await?;
        state.permissions.changed().await?;
        Ok(())
    }
    .await;
    unlock(guard).await;
    result?;
    tracing::info!(menu = id, by = %auth.username, "menu deleted");
    ok(Value::Null)
}

/// `GET /api/v1/menu/treeselect`.
async fn treeselect(state: web::Data<AppState>, auth: AuthUser) -> Result<HttpResponse, ApiError> {
    state
        .permissions
        .require(auth.user_id, "system:menu:query")
        .await?;
    let menus = menu::Entity::find().all(&state.node.db).await?;
    let all: Vec<&menu::Model> = menus.iter().collect();
    ok(json!({ "list": tree(&all, select_node) }))
}

/// `GET /api/v1/menu/role/{roleId}`.
async fn role_menus(
    state: web::Data<AppState>,
    auth: AuthUser,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    state
        .permissions
        .require(auth.user_id, "system:menu:query")
        .await?;
    let role_id = parse_id(&path, "role id")?;
    let db = &state.node.db;
    if role::Entity::find_by_id(role_id).one(db).await?.is_none() {
        return Err(ApiError::not_found(format!(
            "role {role_id} does not exist"
        )));
    }
    let menus = menu::Entity::find().all(db).await?;
    let ids: HashSet<i64> = menus.iter().map(|m| m.id).collect();
    let mut checked: Vec<i64> = role_menu::Entity::find()
        .filter(role_menu::Column::RoleId.eq(role_id))
        .all(db)
        .await?
        .into_iter()
        .map(|rm| rm.menu_id)
        .filter(|id| ids.contains(id))
        .collect();
    checked.sort_unstable();
    let all: Vec<&menu::Model> = menus.iter().collect();
    ok(json!({
        "checkedKeys": checked,
        "menus": tree(&all, select_node),
    }))
}
