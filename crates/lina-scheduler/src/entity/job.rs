//! `sys_job`.
#![allow(missing_docs)]

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "sys_job")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub group_id: i64,
    pub name: String,
    pub description: String,
    pub handler_ref: String,
    pub params: String,
    pub timeout_seconds: i32,
    pub cron_expr: String,
    pub timezone: String,
    pub scope: String,
    pub concurrency: String,
    pub max_concurrency: i32,
    pub misfire_policy: String,
    pub status: String,
    pub is_builtin: i16,
    pub plugin_id: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
