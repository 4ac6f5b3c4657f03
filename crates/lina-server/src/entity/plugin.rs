use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "sys_plugin")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub plugin_id: String,
    pub name: String,
    pub plugin_type: String,
    pub description: String,
    pub discovered_version: Option<String>,
    pub effective_version: Option<String>,
    pub installed: i16,
    pub enabled: i16,
    pub runtime_state: String,
    pub generation: i64,
    pub last_error: Option<String>,
    pub manifest: String,
    pub installed_at: Option<i64>,
    pub updated_at: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
