use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "sys_menu")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub parent_id: i64,
    pub name: String,
    pub path: String,
    pub component: String,
    pub redirect: String,
    pub perms: String,
    pub icon: String,
    pub menu_type: String,
    pub sort: i32,
    pub visible: i16,
    pub status: i16,
    pub is_frame: i16,
    pub is_cache: i16,
    pub query_param: String,
    pub i18n_key: String,
    pub remark: String,
    pub plugin_id: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
