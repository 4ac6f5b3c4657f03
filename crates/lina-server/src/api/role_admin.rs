//! Role administration: `/api/v1/role…` (`system:role:*`).
//!
//! Every write bumps the permission topology ([`Permissions::changed`]), so
//! a change of a role's menus, status or holders reaches every node at once.
//! The `admin` role (key `admin`) cannot be deleted or disabled and keeps
//! its key.
//!
//! [`Permissions::changed`]: super::permission::Permissions::changed

use std::collections::{BTreeSet, HashMap};

use actix_web::{HttpResponse, web};
use lina_coord_api::unix_millis;
use sea_orm::sea_query::Query;
use sea_orm::{
    ActiveModelTrait,
    ActiveValue::{NotSet, Set},
    ColumnTrait, ConnectionTrait, DbErr, EntityTrait, IntoActiveModel, PaginatorTrait, QueryFilter,
    QueryOrder, QuerySelect, TransactionTrait,
};
use serde_json::{Value, json};

use super::auth::AuthUser;
use super::error::{ApiError, ok};
use super::request::{
    Fields, check_len, check_range, check_status, contains, paging, query_int, query_str,
    unique_conflict,
};
use super::user_admin::user_items;
use super::{AppState, RouteDoc};
use crate::entity::{menu, role, role_menu, user, user_role};

/// Key of the protected role.
const ADMIN_KEY: &str = "admin";

/// The routes of this module, for `/api.json`.
pub const ROUTES: &[RouteDoc] = &[
    RouteDoc {
        method: "GET",
        path: "/api/v1/role",
        permission: Some("system:role:query"),
        summary: "list roles (filters name, key, status; paging page, size)",
    },
    RouteDoc {
        method: "POST",
        path: "/api/v1/role",
        permission: Some("system:role:add"),
        summary: "create a role with its menus; returns {id}",
    },
    RouteDoc {
        method: "GET",
        path: "/api/v1/role/options",
        permission: Some("system:role:query"),
        summary: "every enabled role as {id, name, key}, for select boxes",
    },
    RouteDoc {
        method: "GET",
        path: "/api/v1/role/{id}",
        permission: Some("system:role:query"),
        summary: "one role with its menu ids",
    },
    RouteDoc {
        method: "PUT",
        path: "/api/v1/role/{id}",
        permission: Some("system:role:edit"),
        summary: "update a role (absent fields are kept; menuIds replaces the menus)",
    },
    RouteDoc {
        method: "DELETE",
        path: "/api/v1/role/{id}",
        permission: Some("system:role:remove"),
        summary: "delete a role with its menu links and assignments (not the admin role)",
    },
    RouteDoc {
        method: "PUT",
        path: "/api/v1/role/{id}/status",
        permission: Some("system:role:edit"),
        summary: "enable (1) or disable (0) a role (not the admin role)",
    },
    RouteDoc {
        method: "GET",
        path: "/api/v1/role/{id}/users",
        permission: Some("system:role:auth"),
        summary: "users holding the role (filter username; paging page, size)",
    },
    RouteDoc {
        method: "POST",
        path: "/api/v1/role/{id}/users",
        permission: Some("system:role:auth"),
        summary: "assign the role to {userIds}",
    },
    RouteDoc {
        method: "DELETE",
        path: "/api/v1/role/{id}/users/{userId}",
        permission: Some("system:role:auth"),
        summary: "take the role from one user",
    },
];

/// Registers the routes of this module (under `/api/v1`). `/role/options`
/// comes before `/role/{id}`, so `options` is not read as an id.
pub fn register(cfg: &mut web::ServiceConfig) {
    cfg.route("/role", web::get().to(list))
        .route("/role", web::post().to(create))
        .route("/role/options", web::get().to(options))
        .route("/role/{id}", web::get().to(get))
        .route("/role/{id}", web::put().to(update))
        .route("/role/{id}", web::delete().to(delete))
        .route("/role/{id}/status", web::put().to(set_status))
        .route("/role/{id}/users", web::get().to(users))
        .route("/role/{id}/users", web::post().to(assign))
        .route("/role/{id}/users/{userId}", web::delete().to(unassign));
}

/// The fields of a create or update body, validated.
#[derive(Debug, Default)]
struct RoleInput {
    name: Option<String>,
    key: Option<String>,
    sort: Option<i32>,
    data_scope: Option<i16>,
    status: Option<i16>,
    remark: Option<String>,
    menu_ids: Option<Vec<i64>>,
}

impl RoleInput {
    /// Reads and validates; `create` requires `name` and `key`.
    fn parse(f: &Fields, create: bool) -> Result<RoleInput, ApiError> {
        let name = f.string("name")?.map(|s| s.trim().to_string());
        match &name {
            Some(n) => check_len("name", n, 1, 64)?,
            None if create => return Err(ApiError::validation("name is required")),
            None => {}
        }
        let key = f.string("key")?.map(|s| s.trim().to_string());
        match &key {
            Some(k) => {
                check_len("key", k, 1, 64)?;
                if k.chars().any(|c| c.is_whitespace() || c.is_control()) {
                    return Err(ApiError::validation(format!(
                        "key must not contain spaces or control characters, got {k:?}"
                    )));
                }
            }
            None if create => return Err(ApiError::validation("key is required")),
            None => {}
        }
        let sort = f
            .int("sort")?
            .map(|v| check_range("sort", v, 0, 999_999).map(|()| v as i32))
            .transpose()?;
        let data_scope = f
            .int("dataScope")?
            .map(|v| check_range("dataScope", v, 1, 5).map(|()| v as i16))
            .transpose()?;
        let status = f.status("status")?;
        let remark = f.string("remark")?;
        if let Some(r) = &remark {
            check_len("remark", r, 0, 500)?;
        }
        let menu_ids = f.ids("menuIds")?;
        Ok(RoleInput {
            name,
            key,
            sort,
            data_scope,
            status,
            remark,
            menu_ids,
        })
    }
}

fn role_item(r: &role::Model, menu_ids: &[i64]) -> Value {
    json!({
        "id": r.id,
        "name": r.name,
        "key": r.role_key,
        "sort": r.sort,
        "dataScope": r.data_scope,
        "status": r.status,
        "remark": r.remark,
        "menuIds": menu_ids,
        "createdAt": r.created_at,
        "updatedAt": r.updated_at,
    })
}

async fn role_items(
    db: &impl ConnectionTrait,
    roles: &[role::Model],
) -> Result<Vec<Value>, ApiError> {
    let mut menus: HashMap<i64, Vec<i64>> = HashMap::new();
    if !roles.is_empty() {
        let links = role_menu::Entity::find()
            .filter(role_menu::Column::RoleId.is_in(roles.iter().map(|r| r.id)))
            .order_by_asc(role_menu::Column::MenuId)
            .all(db)
            .await?;
        for link in links {
            menus.entry(link.role_id).or_default().push(link.menu_id);
        }
    }
    Ok(roles
        .iter()
        .map(|r| role_item(r, menus.get(&r.id).map(Vec::as_slice).unwrap_or(&[])))
        .collect())
}

async fn find_role(db: &impl ConnectionTrait, id: i64) -> Result<role::Model, ApiError> {
    role::Entity::find_by_id(id)
        .one(db)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("role {id} not found")))
}

/// 400 naming the first id of `ids` that is not a menu.
async fn check_menus(db: &impl ConnectionTrait, ids: &[i64]) -> Result<(), ApiError> {
    if ids.is_empty() {
        return Ok(());
    }
    let found: BTreeSet<i64> = menu::Entity::find()
        .filter(menu::Column::Id.is_in(ids.iter().copied()))
        .all(db)
        .await?
        .into_iter()
        .map(|m| m.id)
        .collect();
    match ids.iter().find(|id| !found.contains(id)) {
        Some(missing) => Err(ApiError::validation(format!(
            "menuIds: unknown menu id {missing}"
        ))),
        None => Ok(()),
    }
}

/// 409 when another role than `except` has this name or key.
async fn check_unique(
    db: &impl ConnectionTrait,
    name: Option<&str>,
    key: Option<&str>,
    except: Option<i64>,
) -> Result<(), ApiError> {
    if let Some(name) = name {
        let taken = role::Entity::find()
            .filter(role::Column::Name.eq(name))
            .one(db)
            .await?
            .is_some_and(|r| Some(r.id) != except);
        if taken {
            return Err(ApiError::conflict(format!(
                "role name {name} already exists"
            )));
        }
    }
    if let Some(key) = key {
        let taken = role::Entity::find()
            .filter(role::Column::RoleKey.eq(key))
            .one(db)
            .await?
            .is_some_and(|r| Some(r.id) != except);
        if taken {
            return Err(ApiError::conflict(format!("role key {key} already exists")));
        }
    }
    Ok(())
}

/// Replaces the menus of `role_id` by `menu_ids`.
async fn replace_menus(
    db: &impl ConnectionTrait,
    role_id: i64,
    menu_ids: &[i64],
) -> Result<(), DbErr> {
    role_menu::Entity::delete_many()
        .filter(role_menu::Column::RoleId.eq(role_id))
        .exec(db)
        .await?;
    role_menu::Entity::insert_many(menu_ids.iter().map(|menu_id| role_menu::ActiveModel {
        role_id: Set(role_id),
        menu_id: Set(*menu_id),
    }))
    .exec_without_returning(db)
    .await?;
    Ok(())
}

/// `GET /api/v1/role` (`system:role:query`).
async fn list(
    state: web::Data<AppState>,
    auth: AuthUser,
    query: web::Query<HashMap<String, String>>,
) -> Result<HttpResponse, ApiError> {
    state
        .permissions
        .require(auth.user_id, "system:role:query")
        .await?;
    let page = paging(&query, &["page", "pageNum"], &["size", "pageSize"])?;
    let mut select = role::Entity::find();
    if let Some(name) = query_str(&query, "name") {
        select = select.filter(contains(role::Column::Name, name));
    }
    if let Some(key) = query_str(&query, "key") {
        select = select.filter(contains(role::Column::RoleKey, key));
    }
    if let Some(status) = query_int(&query, "status")? {
        select = select.filter(role::Column::Status.eq(check_status("status", status)?));
    }
    let db = &state.node.db;
    let total = select.clone().count(db).await?;
    let roles = select
        .order_by_asc(role::Column::Sort)
        .order_by_asc(role::Column::Id)
        .offset(page.offset())
        .limit(page.size)
        .all(db)
        .await?;
    ok(json!({"list": role_items(db, &roles).await?, "total": total}))
}

/// `GET /api/v1/role/options` (`system:role:query`).
async fn options(state: web::Data<AppState>, auth: AuthUser) -> Result<HttpResponse, ApiError> {
    state
        .permissions
        .require(auth.user_id, "system:role:query")
        .await?;
    let roles = role::Entity::find()
        .filter(role::Column::Status.eq(1))
        .order_by_asc(role::Column::Sort)
        .order_by_asc(role::Column::Id)
        .all(&state.node.db)
        .await?;
    let list: Vec<Value> = roles
        .iter()
        .map(|r| json!({"id": r.id, "name": r.name, "key": r.role_key}))
        .collect();
    ok(json!({ "list": list }))
}

/// `GET /api/v1/role/{id}` (`system:role:query`).
async fn get(
    state: web::Data<AppState>,
    auth: AuthUser,
    path: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    state
        .permissions
        .require(auth.user_id, "system:role:query")
        .await?;
    let db = &state.node.db;
    let found = find_role(db, path.into_inner()).await?;
    let mut items = role_items(db, std::slice::from_ref(&found)).await?;
    ok(items.pop())
}

/// `POST /api/v1/role` (`system:role:add`).
async fn create(
    state: web::Data<AppState>,
    auth: AuthUser,
    body: web::Json<Value>,
) -> Result<HttpResponse, ApiError> {
    state
        .permissions
        .require(auth.user_id, "system:role:add")
        .await?;
    let input = RoleInput::parse(&Fields::new(body.into_inner())?, true)?;
    let (Some(name), Some(key)) = (input.name, input.key) else {
        return Err(ApiError::validation("name and key are required"));
    };
    let menu_ids = input.menu_ids.unwrap_or_default();
    let db = &state.node.db;
    check_menus(db, &menu_ids).await?;
    check_unique(db, Some(&name), Some(&key), None).await?;
    let now = unix_millis();
    let txn = db.begin().await?;
    let id = role::Entity::insert(role::ActiveModel {
        id: NotSet,
        name: Set(name.clone()),
        role_key: Set(key.clone()),
        sort: Set(input.sort.unwrap_or(0)),
        data_scope: Set(input.data_scope.unwrap_or(1)),
        status: Set(input.status.unwrap_or(1)),
        remark: Set(input.remark.unwrap_or_default()),
        created_at: Set(now),
        updated_at: Set(now),
    })
    .exec(&txn)
    .await
    .map_err(|e| {
        unique_conflict(e, || {
            format!("role name {name} or key {key} already exists")
        })
    })?
    .last_insert_id;
    replace_menus(&txn, id, &menu_ids).await?;
    txn.commit().await?;
    state.permissions.changed().await?;
    tracing::info!(role_id = id, by = auth.user_id, "role created");
    ok(json!({ "id": id }))
}

/// `PUT /api/v1/role/{id}` (`system:role:edit`): absent fields keep their
/// value; `menuIds` replaces the menus.
async fn update(
    state: web::Data<AppState>,
    auth: AuthUser,
    path: web::Path<i64>,
    body: web::Json<Value>,
) -> Result<HttpResponse, ApiError> {
    state
        .permissions
        .require(auth.user_id, "system:role:edit")
        .await?;
    let input = RoleInput::parse(&Fields::new(body.into_inner())?, false)?;
    let db = &state.node.db;
    let existing = find_role(db, path.into_inner()).await?;
    let id = existing.id;
    if existing.role_key == ADMIN_KEY {
        if input.key.as_deref().is_some_and(|k| k != ADMIN_KEY) {
            return Err(ApiError::conflict("the admin role keeps its key"));
        }
        if input.status == Some(0) {
            return Err(ApiError::conflict("the admin role cannot be disabled"));
        }
    }
    check_unique(db, input.name.as_deref(), input.key.as_deref(), Some(id)).await?;
    if let Some(menu_ids) = &input.menu_ids {
        check_menus(db, menu_ids).await?;
    }
    let mut model = existing.into_active_model();
    if let Some(v) = input.name.clone() {
        model.name = Set(v);
    }
    if let Some(v) = input.key.clone() {
        model.role_key = Set(v);
    }
    if let Some(v) = input.sort {
        model.sort = Set(v);
    }
    if let Some(v) = input.data_scope {
        model.data_scope = Set(v);
    }
    if let Some(v) = input.status {
        model.status = Set(v);
    }
    if let Some(v) = input.remark {
        model.remark = Set(v);
    }
    model.updated_at = Set(unix_millis());
    let txn = db.begin().await?;
    model
        .update(&txn)
        .await
        .map_err(|e| unique_conflict(e, || "role name or key already exists".to_string()))?;
    if let Some(menu_ids) = &input.menu_ids {
        replace_menus(&txn, id, menu_ids).await?;
    }
    txn.commit().await?;
    state.permissions.changed().await?;
    ok(Value::Null)
}

/// `DELETE /api/v1/role/{id}` (`system:role:remove`).
async fn delete(
    state: web::Data<AppState>,
    auth: AuthUser,
    path: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    state
        .permissions
        .require(auth.user_id, "system:role:remove")
        .await?;
    let db = &state.node.db;
    let existing = find_role(db, path.into_inner()).await?;
    if existing.role_key == ADMIN_KEY {
        return Err(ApiError::conflict("the admin role cannot be deleted"));
    }
    let txn = db.begin().await?;
    role_menu::Entity::delete_many()
        .filter(role_menu::Column::RoleId.eq(existing.id))
        .exec(&txn)
        .await?;
    user_role::Entity::delete_many()
        .filter(user_role::Column::RoleId.eq(existing.id))
        .exec(&txn)
        .await?;
    role::Entity::delete_by_id(existing.id).exec(&txn).await?;
    txn.commit().await?;
    state.permissions.changed().await?;
    tracing::info!(role_id = existing.id, by = auth.user_id, "role deleted");
    ok(Value::Null)
}

/// `PUT /api/v1/role/{id}/status` (`system:role:edit`), body `{status}`.
async fn set_status(
    state: web::Data<AppState>,
    auth: AuthUser,
    path: web::Path<i64>,
    body: web::Json<Value>,
) -> Result<HttpResponse, ApiError> {
    state
        .permissions
        .require(auth.user_id, "system:role:edit")
        .await?;
    let fields = Fields::new(body.into_inner())?;
    let status = fields
        .status("status")?
        .ok_or_else(|| ApiError::validation("status is required"))?;
    let db = &state.node.db;
    let existing = find_role(db, path.into_inner()).await?;
    if status == 0 && existing.role_key == ADMIN_KEY {
        return Err(ApiError::conflict("the admin role cannot be disabled"));
    }
    let mut model = existing.into_active_model();
    model.status = Set(status);
    model.updated_at = Set(unix_millis());
    model.update(db).await?;
    state.permissions.changed().await?;
    ok(Value::Null)
}

/// `GET /api/v1/role/{id}/users` (`system:role:auth`).
async fn users(
    state: web::Data<AppState>,
    auth: AuthUser,
    path: web::Path<i64>,
    query: web::Query<HashMap<String, String>>,
) -> Result<HttpResponse, ApiError> {
    state
        .permissions
        .require(auth.user_id, "system:role:auth")
        .await?;
    let page = paging(&query, &["page", "pageNum"], &["size", "pageSize"])?;
    let db = &state.node.db;
    let found = find_role(db, path.into_inner()).await?;
    let holders = Query::select()
        .column(user_role::Column::UserId)
        .from(user_role::Entity)
        .and_where(user_role::Column::RoleId.eq(found.id))
        .to_owned();
    let mut select = user::Entity::find().filter(user::Column::Id.in_subquery(holders));
    if let Some(name) = query_str(&query, "username") {
        select = select.filter(contains(user::Column::Username, name));
    }
    let total = select.clone().count(db).await?;
    let list = select
        .order_by_asc(user::Column::Id)
        .offset(page.offset())
        .limit(page.size)
        .all(db)
        .await?;
    ok(json!({"list": user_items(db, &list).await?, "total": total}))
}

/// `POST /api/v1/role/{id}/users` (`system:role:auth`), body `{userIds}`;
/// users who already hold the role are skipped.
async fn assign(
    state: web::Data<AppState>,
    auth: AuthUser,
    path: web::Path<i64>,
    body: web::Json<Value>,
) -> Result<HttpResponse, ApiError> {
    state
        .permissions
        .require(auth.user_id, "system:role:auth")
        .await?;
    let fields = Fields::new(body.into_inner())?;
    let user_ids = fields
        .ids("userIds")?
        .ok_or_else(|| ApiError::validation("userIds is required"))?;
    if user_ids.is_empty() {
        return Err(ApiError::validation("userIds must not be empty"));
    }
    let db = &state.node.db;
    let found = find_role(db, path.into_inner()).await?;
    let known: BTreeSet<i64> = user::Entity::find()
        .filter(user::Column::Id.is_in(user_ids.iter().copied()))
        .all(db)
        .await?
        .into_iter()
        .map(|u| u.id)
        .collect();
    if let Some(missing) = user_ids.iter().find(|id| !known.contains(id)) {
        return Err(ApiError::validation(format!(
            "userIds: unknown user id {missing}"
        )));
    }
    let txn = db.begin().await?;
    let holding: BTreeSet<i64> = user_role::Entity::find()
        .filter(user_role::Column::RoleId.eq(found.id))
        .filter(user_role::Column::UserId.is_in(user_ids.iter().copied()))
        .all(&txn)
        .await?
        .into_iter()
        .map(|l| l.user_id)
        .collect();
    let added: Vec<i64> = user_ids
        .into_iter()
        .filter(|id| !holding.contains(id))
        .collect();
    user_role::Entity::insert_many(added.iter().map(|user_id| user_role::ActiveModel {
        user_id: Set(*user_id),
        role_id: Set(found.id),
    }))
    .exec_without_returning(&txn)
    .await
    .map_err(|e| unique_conflict(e, || "the role was assigned concurrently; retry".into()))?;
    txn.commit().await?;
    state.permissions.changed().await?;
    ok(json!({ "added": added.len() }))
}

/// `DELETE /api/v1/role/{id}/users/{userId}` (`system:role:auth`).
async fn unassign(
    state: web::Data<AppState>,
    auth: AuthUser,
    path: web::Path<(i64, i64)>,
) -> Result<HttpResponse, ApiError> {
    state
        .permissions
        .require(auth.user_id, "system:role:auth")
        .await?;
    let (role_id, user_id) = path.into_inner();
    let db = &state.node.db;
    let found = find_role(db, role_id).await?;
    let removed = user_role::Entity::delete_many()
        .filter(user_role::Column::RoleId.eq(found.id))
        .filter(user_role::Column::UserId.eq(user_id))
        .exec(db)
        .await?
        .rows_affected;
    if removed == 0 {
        return Err(ApiError::not_found(format!(
            "user {user_id} does not hold role {role_id}"
        )));
    }
    state.permissions.changed().await?;
    ok(Value::Null)
}
