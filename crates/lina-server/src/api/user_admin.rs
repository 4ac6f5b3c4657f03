//! User administration: `/api/v1/user…` (`system:user:*`).
//!
//! Every write bumps the permission topology ([`Permissions::changed`]), so
//! every node sees new users, status changes and role assignments at once.
//! Disabling or deleting a user also ends all of its sessions on every node.
//! The `admin` user cannot be deleted, disabled or renamed, and nobody can
//! delete or disable themselves.
//!
//! [`Permissions::changed`]: super::permission::Permissions::changed

use std::collections::{BTreeSet, HashMap};

use actix_web::{HttpResponse, web};
use lina_coord_api::unix_millis;
use sea_orm::sea_query::{Alias, Expr, ExprTrait, Query};
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
use super::{AppState, RouteDoc};
use crate::entity::{role, user, user_role};

/// The routes of this module, for `/api.json`.
pub const ROUTES: &[RouteDoc] = &[
    RouteDoc {
        method: "GET",
        path: "/api/v1/user",
        permission: Some("system:user:query"),
        summary: "list users (filters username, status; paging pageNum, pageSize)",
    },
    RouteDoc {
        method: "POST",
        path: "/api/v1/user",
        permission: Some("system:user:add"),
        summary: "create a user with its roles; returns {id}",
    },
    RouteDoc {
        method: "GET",
        path: "/api/v1/user/{id}",
        permission: Some("system:user:query"),
        summary: "one user with its role ids",
    },
    RouteDoc {
        method: "PUT",
        path: "/api/v1/user/{id}",
        permission: Some("system:user:edit"),
        summary: "update a user (absent fields are kept; roleIds replaces the roles; a password resets the default-password flag)",
    },
    RouteDoc {
        method: "DELETE",
        path: "/api/v1/user/{id}",
        permission: Some("system:user:remove"),
        summary: "delete a user, its role assignments and its sessions (not admin)",
    },
    RouteDoc {
        method: "PUT",
        path: "/api/v1/user/{id}/status",
        permission: Some("system:user:edit"),
        summary: "enable (1) or disable (0) a user; disabling ends its sessions (not admin)",
    },
];

/// Registers the routes of this module (under `/api/v1`).
pub fn register(cfg: &mut web::ServiceConfig) {
    cfg.route("/user", web::get().to(list))
        .route("/user", web::post().to(create))
        .route("/user/{id}", web::get().to(get))
        .route("/user/{id}", web::put().to(update))
        .route("/user/{id}", web::delete().to(delete))
        .route("/user/{id}/status", web::put().to(set_status));
}

/// The list item of a user (never the password hash).
pub(crate) fn user_item(u: &user::Model, role_ids: &[i64]) -> Value {
    json!({
        "id": u.id,
        "username": u.username,
        "nickname": u.nickname,
        "email": u.email,
        "phone": u.phone,
        "sex": u.sex,
        "avatar": u.avatar,
        "status": u.status,
        "remark": u.remark,
        "roleIds": role_ids,
        "createdAt": u.created_at,
        "updatedAt": u.updated_at,
    })
}

/// The list items of `users`, with their role ids.
pub(crate) async fn user_items(
    db: &impl ConnectionTrait,
    users: &[user::Model],
) -> Result<Vec<Value>, ApiError> {
    let mut roles: HashMap<i64, Vec<i64>> = HashMap::new();
    if !users.is_empty() {
        let links = user_role::Entity::find()
            .filter(user_role::Column::UserId.is_in(users.iter().map(|u| u.id)))
            .order_by_asc(user_role::Column::RoleId)
            .all(db)
            .await?;
        for link in links {
            roles.entry(link.user_id).or_default().push(link.role_id);
        }
    }
    Ok(users
        .iter()
        .map(|u| user_item(u, roles.get(&u.id).map(Vec::as_slice).unwrap_or(&[])))
        .collect())
}

/// Ends every session of `user_id` on every node: the shared-store session
/// of each token listed in `sys_online_session`, then the rows themselves.
pub(crate) async fn revoke_sessions(state: &AppState, user_id: i64) -> Result<usize, ApiError> {
    let db = &state.node.db;
    let table = Alias::new("sys_online_session");
    let select = Query::select()
        .column(Alias::new("token_id"))
        .from(table.clone())
        .and_where(Expr::col(Alias::new("user_id")).eq(user_id))
        .to_owned();
    let rows = db.query_all(&select).await?;
    let mut revoked = 0;
    for row in rows {
        let token_id: String = row.try_get("", "token_id")?;
        state.auth.revoke(db, &token_id).await?;
        revoked += 1;
    }
    let delete = Query::delete()
        .from_table(table)
        .and_where(Expr::col(Alias::new("user_id")).eq(user_id))
        .to_owned();
    db.execute(&delete).await?;
    Ok(revoked)
}

// ---------------------------------------------------------------------------
// Users.
// ---------------------------------------------------------------------------

/// The fields of a create or update body, validated.
#[derive(Debug, Default)]
struct UserInput {
    username: Option<String>,
    password: Option<String>,
    nickname: Option<String>,
    email: Option<String>,
    phone: Option<String>,
    sex: Option<i16>,
    avatar: Option<String>,
    status: Option<i16>,
    remark: Option<String>,
    role_ids: Option<Vec<i64>>,
}

impl UserInput {
    /// Reads and validates; `create` requires `username` and `password`.
    fn parse(f: &Fields, create: bool) -> Result<UserInput, ApiError> {
        let username = f.string("username")?.map(|s| s.trim().to_string());
        match &username {
            Some(name) => {
                check_len("username", name, 2, 64)?;
                if name.chars().any(|c| c.is_whitespace() || c.is_control()) {
                    return Err(ApiError::validation(format!(
                        "username must not contain spaces or control characters, got {name:?}"
                    )));
                }
            }
            None if create => return Err(ApiError::validation("username is required")),
            None => {}
        }
        let password = f.string("password")?;
        match &password {
            Some(p) => check_len("password", p, 6, 32)?,
            None if create => return Err(ApiError::validation("password is required")),
            None => {}
        }
        let nickname = f.string("nickname")?.map(|s| s.trim().to_string());
        if let Some(n) = &nickname {
            check_len("nickname", n, 0, 64)?;
        }
        let email = f.string("email")?.map(|s| s.trim().to_string());
        if let Some(e) = &email {
            check_len("email", e, 0, 128)?;
            let valid = e.is_empty()
                || (e.split('@').count() == 2
                    && !e.starts_with('@')
                    && !e.ends_with('@')
                    && !e.chars().any(char::is_whitespace));
            if !valid {
                return Err(ApiError::validation(format!(
                    "email must be an email address, got {e:?}"
                )));
            }
        }
        let phone = f.string("phone")?.map(|s| s.trim().to_string());
        if let Some(p) = &phone {
            check_len("phone", p, 0, 32)?;
            if !p
                .chars()
                .all(|c| c.is_ascii_digit() || matches!(c, '+' | '-' | ' ' | '(' | ')'))
            {
                return Err(ApiError::validation(format!(
                    "phone may hold only digits, spaces and + - ( ), got {p:?}"
                )));
            }
        }
        let sex = f
            .int("sex")?
            .map(|v| check_range("sex", v, 0, 2).map(|()| v as i16))
            .transpose()?;
        let avatar = f.string("avatar")?.map(|s| s.trim().to_string());
        if let Some(a) = &avatar {
            check_len("avatar", a, 0, 255)?;
        }
        let status = f.status("status")?;
        let remark = f.string("remark")?;
        if let Some(r) = &remark {
            check_len("remark", r, 0, 500)?;
        }
        let role_ids = f.ids("roleIds")?;
        Ok(UserInput {
            username,
            password,
            nickname,
            email,
            phone,
            sex,
            avatar,
            status,
            remark,
            role_ids,
        })
    }
}

/// 400 naming the first id of `ids` that is not a role.
async fn check_roles(db: &impl ConnectionTrait, ids: &[i64]) -> Result<(), ApiError> {
    if ids.is_empty() {
        return Ok(());
    }
    let found: BTreeSet<i64> = role::Entity::find()
        .filter(role::Column::Id.is_in(ids.iter().copied()))
        .all(db)
        .await?
        .into_iter()
        .map(|r| r.id)
        .collect();
    match ids.iter().find(|id| !found.contains(id)) {
        Some(missing) => Err(ApiError::validation(format!(
            "roleIds: unknown role id {missing}"
        ))),
        None => Ok(()),
    }
}

/// 409 when `username` is taken by another user than `except`.
async fn check_username_free(
    db: &impl ConnectionTrait,
    username: &str,
    except: Option<i64>,
) -> Result<(), ApiError> {
    let taken = user::Entity::find()
        .filter(user::Column::Username.eq(username))
        .one(db)
        .await?
        .is_some_and(|u| Some(u.id) != except);
    if taken {
        return Err(ApiError::conflict(format!(
            "user name {username} already exists"
        )));
    }
    Ok(())
}

/// Replaces the roles of `user_id` by `role_ids`.
async fn replace_roles(
    db: &impl ConnectionTrait,
    user_id: i64,
    role_ids: &[i64],
) -> Result<(), DbErr> {
    user_role::Entity::delete_many()
        .filter(user_role::Column::UserId.eq(user_id))
        .exec(db)
        .await?;
    user_role::Entity::insert_many(role_ids.iter().map(|role_id| user_role::ActiveModel {
        user_id: Set(user_id),
        role_id: Set(*role_id),
    }))
    .exec_without_returning(db)
    .await?;
    Ok(())
}

/// argon2 off the async runtime.
async fn hash_password(password: String) -> Result<String, ApiError> {
    web::block(move || crate::password::hash(&password))
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)
}

async fn find_user(db: &impl ConnectionTrait, id: i64) -> Result<user::Model, ApiError> {
    user::Entity::find_by_id(id)
        .one(db)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("user {id} not found")))
}

/// 409 unless `target` may be disabled or deleted by `actor`.
fn guard_protected(target: &user::Model, actor: &AuthUser, action: &str) -> Result<(), ApiError> {
    if target.username == "admin" {
        return Err(ApiError::conflict(format!(
            "the admin user cannot be {action}"
        )));
    }
    if target.id == actor.user_id {
        return Err(ApiError::conflict(format!(
            "the signed-in user cannot be {action} by itself"
        )));
    }
    Ok(())
}

/// `GET /api/v1/user` (`system:user:query`).
async fn list(
    state: web::Data<AppState>,
    auth: AuthUser,
    query: web::Query<HashMap<String, String>>,
) -> Result<HttpResponse, ApiError> {
    state
        .permissions
        .require(auth.user_id, "system:user:query")
        .await?;
    let page = paging(&query, &["pageNum"], &["pageSize"])?;
    let mut select = user::Entity::find();
    if let Some(name) = query_str(&query, "username") {
        select = select.filter(contains(user::Column::Username, name));
    }
    if let Some(status) = query_int(&query, "status")? {
        select = select.filter(user::Column::Status.eq(check_status("status", status)?));
    }
    let db = &state.node.db;
    let total = select.clone().count(db).await?;
    let users = select
        .order_by_asc(user::Column::Id)
        .offset(page.offset())
        .limit(page.size)
        .all(db)
        .await?;
    ok(json!({"list": user_items(db, &users).await?, "total": total}))
}

/// `GET /api/v1/user/{id}` (`system:user:query`).
async fn get(
    state: web::Data<AppState>,
    auth: AuthUser,
    path: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    state
        .permissions
        .require(auth.user_id, "system:user:query")
        .await?;
    let db = &state.node.db;
    let found = find_user(db, path.into_inner()).await?;
    let mut items = user_items(db, std::slice::from_ref(&found)).await?;
    ok(items.pop())
}

/// `POST /api/v1/user` (`system:user:add`).
async fn create(
    state: web::Data<AppState>,
    auth: AuthUser,
    body: web::Json<Value>,
) -> Result<HttpResponse, ApiError> {
    state
        .permissions
        .require(auth.user_id, "system:user:add")
        .await?;
    let input = UserInput::parse(&Fields::new(body.into_inner())?, true)?;
    let (Some(username), Some(password)) = (input.username, input.password) else {
        return Err(ApiError::validation("username and password are required"));
    };
    let role_ids = input.role_ids.unwrap_or_default();
    let db = &state.node.db;
    check_roles(db, &role_ids).await?;
    check_username_free(db, &username, None).await?;
    let password_hash = hash_password(password).await?;
    let now = unix_millis();
    let txn = db.begin().await?;
    let id = user::Entity::insert(user::ActiveModel {
        id: NotSet,
        username: Set(username.clone()),
        password_hash: Set(password_hash),
        nickname: Set(input.nickname.unwrap_or_else(|| username.clone())),
        email: Set(input.email.unwrap_or_default()),
        phone: Set(input.phone.unwrap_or_default()),
        sex: Set(input.sex.unwrap_or(0)),
        avatar: Set(input.avatar.unwrap_or_default()),
        status: Set(input.status.unwrap_or(1)),
        remark: Set(input.remark.unwrap_or_default()),
        default_password: Set(0),
        created_at: Set(now),
        updated_at: Set(now),
    })
    .exec(&txn)
    .await
    .map_err(|e| unique_conflict(e, || format!("user name {username} already exists")))?
    .last_insert_id;
    replace_roles(&txn, id, &role_ids).await?;
    txn.commit().await?;
    state.permissions.changed().await?;
    tracing::info!(user_id = id, by = auth.user_id, "user created");
    ok(json!({ "id": id }))
}

/// `PUT /api/v1/user/{id}` (`system:user:edit`): absent fields keep their
/// value; `roleIds` replaces the roles; a new password clears the
/// default-password flag.
async fn update(
    state: web::Data<AppState>,
    auth: AuthUser,
    path: web::Path<i64>,
    body: web::Json<Value>,
) -> Result<HttpResponse, ApiError> {
    state
        .permissions
        .require(auth.user_id, "system:user:edit")
        .await?;
    let input = UserInput::parse(&Fields::new(body.into_inner())?, false)?;
    let db = &state.node.db;
    let existing = find_user(db, path.into_inner()).await?;
    let id = existing.id;
    if let Some(name) = &input.username
        && *name != existing.username
    {
        if existing.username == "admin" {
            return Err(ApiError::conflict("the admin user cannot be renamed"));
        }
        check_username_free(db, name, Some(id)).await?;
    }
    let disabling = input.status == Some(0) && existing.status != 0;
    if disabling {
        guard_protected(&existing, &auth, "disabled")?;
    }
    if let Some(role_ids) = &input.role_ids {
        check_roles(db, role_ids).await?;
    }
    let password_hash = match input.password {
        Some(password) => Some(hash_password(password).await?),
        None => None,
    };
    let mut model = existing.clone().into_active_model();
    if let Some(v) = input.username.clone() {
        model.username = Set(v);
    }
    if let Some(v) = password_hash {
        model.password_hash = Set(v);
        model.default_password = Set(0);
    }
    if let Some(v) = input.nickname {
        model.nickname = Set(v);
    }
    if let Some(v) = input.email {
        model.email = Set(v);
    }
    if let Some(v) = input.phone {
        model.phone = Set(v);
    }
    if let Some(v) = input.sex {
        model.sex = Set(v);
    }
    if let Some(v) = input.avatar {
        model.avatar = Set(v);
    }
    if let Some(v) = input.status {
        model.status = Set(v);
    }
    if let Some(v) = input.remark {
        model.remark = Set(v);
    }
    model.updated_at = Set(unix_millis());
    let txn = db.begin().await?;
    model.update(&txn).await.map_err(|e| {
        unique_conflict(e, || {
            format!(
                "user name {} already exists",
                input.username.as_deref().unwrap_or_default()
            )
        })
    })?;
    if let Some(role_ids) = &input.role_ids {
        replace_roles(&txn, id, role_ids).await?;
    }
    txn.commit().await?;
    state.permissions.changed().await?;
    if disabling {
        let sessions = revoke_sessions(&state, id).await?;
        tracing::info!(user_id = id, sessions, "user disabled, sessions revoked");
    }
    ok(Value::Null)
}

/// `DELETE /api/v1/user/{id}` (`system:user:remove`).
async fn delete(
    state: web::Data<AppState>,
    auth: AuthUser,
    path: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    state
        .permissions
        .require(auth.user_id, "system:user:remove")
        .await?;
    let db = &state.node.db;
    let existing = find_user(db, path.into_inner()).await?;
    guard_protected(&existing, &auth, "deleted")?;
    let txn = db.begin().await?;
    user_role::Entity::delete_many()
        .filter(user_role::Column::UserId.eq(existing.id))
        .exec(&txn)
        .await?;
    user::Entity::delete_by_id(existing.id).exec(&txn).await?;
    txn.commit().await?;
    state.permissions.changed().await?;
    let sessions = revoke_sessions(&state, existing.id).await?;
    tracing::info!(
        user_id = existing.id,
        by = auth.user_id,
        sessions,
        "user deleted"
    );
    ok(Value::Null)
}

/// `PUT /api/v1/user/{id}/status` (`system:user:edit`), body `{status}`.
async fn set_status(
    state: web::Data<AppState>,
    auth: AuthUser,
    path: web::Path<i64>,
    body: web::Json<Value>,
) -> Result<HttpResponse, ApiError> {
    state
        .permissions
        .require(auth.user_id, "system:user:edit")
        .await?;
    let fields = Fields::new(body.into_inner())?;
    let status = fields
        .status("status")?
        .ok_or_else(|| ApiError::validation("status is required"))?;
    let db = &state.node.db;
    let existing = find_user(db, path.into_inner()).await?;
    if status == 0 {
        guard_protected(&existing, &auth, "disabled")?;
    }
    let id = existing.id;
    let mut model = existing.into_active_model();
    model.status = Set(status);
    model.updated_at = Set(unix_millis());
    model.update(db).await?;
    state.permissions.changed().await?;
    if status == 0 {
        let sessions = revoke_sessions(&state, id).await?;
        tracing::info!(user_id = id, sessions, "user disabled, sessions revoked");
    }
    ok(Value::Null)
}
