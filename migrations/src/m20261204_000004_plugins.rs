//! The plugin tables: `sys_plugin` (one row per plugin known to the cluster:
//! what was discovered, what is installed and enabled, its runtime state and
//! a generation that rises with every change) and `sys_plugin_file` (the
//! files of each installed dynamic plugin version — manifest, frontend
//! assets, the optional `.wasm` module — so every node serves the same bytes
//! without shared storage).
//!
//! Timestamps are Unix milliseconds (`BIGINT`), flags `SMALLINT` `0`/`1`.

use sea_orm_migration::prelude::*;

use crate::schema::*;

/// Creates `sys_plugin` and `sys_plugin_file`; `down` drops them.
#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum SysPlugin {
    Table,
    PluginId,
    Name,
    PluginType,
    Description,
    DiscoveredVersion,
    EffectiveVersion,
    Installed,
    Enabled,
    RuntimeState,
    Generation,
    LastError,
    Manifest,
    InstalledAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum SysPluginFile {
    Table,
    PluginId,
    Version,
    Path,
    Content,
}

// `async_trait` rejects the impl if the lifetime is spelled out.
#[allow(elided_lifetimes_in_paths)]
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(SysPlugin::Table)
                    .col(varchar(SysPlugin::PluginId, 64).primary_key())
                    .col(varchar(SysPlugin::Name, 128))
                    .col(varchar(SysPlugin::PluginType, 16))
                    .col(ColumnDef::new(SysPlugin::Description).text().not_null())
                    .col(
                        ColumnDef::new(SysPlugin::DiscoveredVersion)
                            .string_len(32)
                            .null(),
                    )
                    .col(
                        ColumnDef::new(SysPlugin::EffectiveVersion)
                            .string_len(32)
                            .null(),
                    )
                    .col(flag(SysPlugin::Installed))
                    .col(flag(SysPlugin::Enabled))
                    .col(varchar(SysPlugin::RuntimeState, 32))
                    .col(
                        ColumnDef::new(SysPlugin::Generation)
                            .big_integer()
                            .not_null()
                            .default(0),
                    )
                    .col(ColumnDef::new(SysPlugin::LastError).text().null())
                    .col(ColumnDef::new(SysPlugin::Manifest).text().not_null())
                    .col(ColumnDef::new(SysPlugin::InstalledAt).big_integer().null())
                    .col(
                        ColumnDef::new(SysPlugin::UpdatedAt)
                            .big_integer()
                            .not_null(),
                    )
                    .take(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(SysPluginFile::Table)
                    .col(varchar(SysPluginFile::PluginId, 64))
                    .col(varchar(SysPluginFile::Version, 32))
                    .col(varchar(SysPluginFile::Path, 255))
                    .col(ColumnDef::new(SysPluginFile::Content).blob().not_null())
                    .primary_key(
                        Index::create()
                            .name("pk_sys_plugin_file")
                            .col(SysPluginFile::PluginId)
                            .col(SysPluginFile::Version)
                            .col(SysPluginFile::Path),
                    )
                    .take(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        drop_table(manager, SysPluginFile::Table).await?;
        drop_table(manager, SysPlugin::Table).await
    }

    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }
}
