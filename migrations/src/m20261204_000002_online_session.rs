//! `sys_online_session`: a database projection of the online sessions (who
//! is logged in, from where, last seen when), keyed by token id.
//!
//! Times are Unix milliseconds (`BIGINT`).

use sea_orm_migration::prelude::*;

use crate::schema::*;

/// Creates `sys_online_session` and its `last_active_time` index; `down`
/// drops the table.
#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum SysOnlineSession {
    Table,
    TokenId,
    UserId,
    Username,
    ClientType,
    Ip,
    Browser,
    Os,
    LoginTime,
    LastActiveTime,
    NodeId,
}

// `&SchemaManager` without `<'_>`: the trait is written that way, and
// `async_trait` rejects the impl if the lifetime is spelled out.
#[allow(elided_lifetimes_in_paths)]
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(SysOnlineSession::Table)
                    .col(
                        ColumnDef::new(SysOnlineSession::TokenId)
                            .string_len(64)
                            .not_null()
                            .primary_key(),
                    )
                    .col(bigint(SysOnlineSession::UserId))
                    .col(
                        ColumnDef::new(SysOnlineSession::Username)
                            .string_len(64)
                            .not_null(),
                    )
                    .col(varchar_empty(SysOnlineSession::ClientType, 32))
                    .col(varchar_empty(SysOnlineSession::Ip, 64))
                    .col(varchar_empty(SysOnlineSession::Browser, 128))
                    .col(varchar_empty(SysOnlineSession::Os, 128))
                    .col(bigint(SysOnlineSession::LoginTime))
                    .col(bigint(SysOnlineSession::LastActiveTime))
                    .col(varchar_empty(SysOnlineSession::NodeId, 128))
                    .take(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_sys_online_session_last_active")
                    .table(SysOnlineSession::Table)
                    .col(SysOnlineSession::LastActiveTime)
                    .take(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(SysOnlineSession::Table).take())
            .await
    }

    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }
}
