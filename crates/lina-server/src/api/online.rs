//! Online sessions: `/api/v1/monitor/online…` (`monitor:online:*`).
//!
//! The listing reads the `sys_online_session` projection (shared by every
//! node through the database) and shows the rows active within
//! `session.timeout`; the session itself lives in the shared key-value
//! store, so a forced logout ends it on every node at once.

use std::time::Duration;

use actix_web::{HttpRequest, HttpResponse, web};
use lina_coord_api::unix_millis;
use sea_orm::sea_query::{Expr, ExprTrait, LikeExpr};
use sea_orm::{
    ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, Select,
};
use serde::Deserialize;
use serde_json::{Value, json};

use super::auth::AuthUser;
use super::error::{ApiError, ok};
use super::{AppState, RouteDoc};

/// The routes of this module, for `/api.json`.
pub const ROUTES: &[RouteDoc] = &[
    RouteDoc {
        method: "GET",
        path: "/api/v1/monitor/online",
        permission: Some("monitor:online:query"),
        summary: "online sessions ({items, total}), filters username, ip, paging pageNum/pageSize",
    },
    RouteDoc {
        method: "DELETE",
        path: "/api/v1/monitor/online/{tokenId}",
        permission: Some("monitor:online:forceLogout"),
        summary: "force logout: ends the session on every node",
    },
];

/// Registers the routes of this module (under `/api/v1`).
pub fn register(cfg: &mut web::ServiceConfig) {
    cfg.route("/monitor/online", web::get().to(list))
        .route("/monitor/online/{tokenId}", web::delete().to(force_logout));
}

/// The `sys_online_session` projection (written by login and logout in
/// [`super::auth`]).
mod projection {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "sys_online_session")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub token_id: String,
        pub user_id: i64,
        pub username: String,
        pub client_type: String,
        pub ip: String,
        pub browser: String,
        pub os: String,
        pub login_time: i64,
        pub last_active_time: i64,
        pub node_id: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

const DEFAULT_PAGE_SIZE: u64 = 10;
const MAX_PAGE_SIZE: u64 = 1000;
/// Pages past this one are empty anyway; keeps the offset small.
const MAX_PAGE_NUM: u64 = 1_000_000;

/// Query of `GET /monitor/online`; empty values mean "no filter".
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListQuery {
    username: Option<String>,
    ip: Option<String>,
    page_num: Option<String>,
    page_size: Option<String>,
}

fn number(name: &str, raw: Option<String>, default: u64) -> Result<u64, ApiError> {
    let value = match raw.as_deref().map(str::trim) {
        None | Some("") => return Ok(default),
        Some(value) => value,
    };
    match value.parse::<u64>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(ApiError::invalid_parameter(format!(
            "{name} {value:?} must be a positive integer"
        ))),
    }
}

/// `%value%` with `LIKE` wildcards in `value` taken literally.
fn contains(value: &str) -> LikeExpr {
    let mut pattern = String::with_capacity(value.len() + 2);
    pattern.push('%');
    for c in value.chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    LikeExpr::new(pattern).escape('\\')
}

fn filtered(
    mut select: Select<projection::Entity>,
    column: projection::Column,
    value: Option<String>,
) -> Select<projection::Entity> {
    if let Some(value) = value.as_deref().map(str::trim).filter(|v| !v.is_empty()) {
        select = select.filter(ExprTrait::like(Expr::col(column), contains(value)));
    }
    select
}

fn item(s: &projection::Model) -> Value {
    json!({
        "tokenId": s.token_id,
        "userId": s.user_id,
        "username": s.username,
        "clientType": s.client_type,
        "ip": s.ip,
        "browser": s.browser,
        "os": s.os,
        "loginTime": s.login_time,
        "lastActiveTime": s.last_active_time,
        "nodeId": s.node_id,
    })
}

/// `GET /api/v1/monitor/online`.
async fn list(
    state: web::Data<AppState>,
    auth: AuthUser,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    state
        .permissions
        .require(auth.user_id, "monitor:online:query")
        .await?;
    let query = web::Query::<ListQuery>::from_query(req.query_string())
        .map_err(|e| ApiError::invalid_parameter(format!("invalid query: {e}")))?
        .into_inner();
    let page_num = Ord::min(number("pageNum", query.page_num, 1)?, MAX_PAGE_NUM);
    let page_size = number("pageSize", query.page_size, DEFAULT_PAGE_SIZE)?;
    if page_size > MAX_PAGE_SIZE {
        return Err(ApiError::invalid_parameter(format!(
            "pageSize {page_size} must be at most {MAX_PAGE_SIZE}"
        )));
    }
    // The same floor as the session TTL of `auth::Auth`.
    let timeout = state
        .node
        .config
        .session
        .timeout
        .max(Duration::from_secs(60));
    let cutoff = unix_millis().saturating_sub(timeout.as_millis() as i64);
    let mut select =
        projection::Entity::find().filter(projection::Column::LastActiveTime.gte(cutoff));
    select = filtered(select, projection::Column::Username, query.username);
    select = filtered(select, projection::Column::Ip, query.ip);
    let db = &state.node.db;
    let total = select.clone().count(db).await?;
    let rows = select
        .order_by_desc(projection::Column::LastActiveTime)
        .order_by_asc(projection::Column::TokenId)
        .offset((page_num - 1) * page_size)
        .limit(page_size)
        .all(db)
        .await?;
    ok(json!({
        "items": rows.iter().map(item).collect::<Vec<_>>(),
        "total": total,
    }))
}

/// `DELETE /api/v1/monitor/online/{tokenId}`.
async fn force_logout(
    state: web::Data<AppState>,
    auth: AuthUser,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    state
        .permissions
        .require(auth.user_id, "monitor:online:forceLogout")
        .await?;
    let token_id = path.into_inner();
    // Token ids are hex; anything else cannot name a session (and must not
    // reach the key-value store, which rejects some characters).
    if token_id.is_empty()
        || token_id.len() > 64
        || !token_id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(ApiError::not_found(format!(
            "session {token_id:?} does not exist"
        )));
    }
    let db = &state.node.db;
    let projected = projection::Entity::find_by_id(token_id.clone())
        .one(db)
        .await?;
    let existed = state.auth.revoke(db, &token_id).await?;
    if !existed && projected.is_none() {
        return Err(ApiError::not_found(format!(
            "session {token_id} does not exist"
        )));
    }
    tracing::info!(
        session = %token_id,
        user = projected.as_ref().map(|p| p.username.as_str()).unwrap_or(""),
        by = %auth.username,
        "session force-logged out"
    );
    ok(Value::Null)
}
