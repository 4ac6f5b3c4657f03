//! `sys_job_log`.
#![allow(missing_docs)]

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "sys_job_log")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub job_id: i64,
    pub job_name: String,
    pub handler_ref: String,
    pub node_id: String,
    pub trigger_type: String,
    pub scheduled_at: i64,
    pub start_at: Option<i64>,
    pub end_at: Option<i64>,
    pub duration_ms: Option<i64>,
    pub status: String,
    pub err_msg: String,
    pub result_json: Option<String>,
    pub term: Option<i64>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
