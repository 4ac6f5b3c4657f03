//! Column and DDL helpers shared by the migrations, so every table spells
//! `BIGINT` ids, `VARCHAR … NOT NULL` columns, flags and indexes the same way.

use sea_orm_migration::prelude::*;

/// `BIGINT` primary key assigned by the database on both backends.
pub(crate) fn id<T: IntoIden>(name: T) -> ColumnDef {
    ColumnDef::new(name)
        .big_integer()
        .not_null()
        .auto_increment()
        .primary_key()
        .take()
}

/// `VARCHAR(len) NOT NULL`.
pub(crate) fn varchar<T: IntoIden>(name: T, len: u32) -> ColumnDef {
    ColumnDef::new(name).string_len(len).not_null().take()
}

/// `VARCHAR(len) NOT NULL DEFAULT ''`.
pub(crate) fn varchar_empty<T: IntoIden>(name: T, len: u32) -> ColumnDef {
    ColumnDef::new(name)
        .string_len(len)
        .not_null()
        .default("")
        .take()
}

/// `VARCHAR(len) NOT NULL DEFAULT default`.
pub(crate) fn varchar_default<T: IntoIden>(name: T, len: u32, default: &str) -> ColumnDef {
    ColumnDef::new(name)
        .string_len(len)
        .not_null()
        .default(default)
        .take()
}

/// `BIGINT NOT NULL`.
pub(crate) fn bigint<T: IntoIden>(name: T) -> ColumnDef {
    ColumnDef::new(name).big_integer().not_null().take()
}

/// `BIGINT NULL`.
pub(crate) fn bigint_null<T: IntoIden>(name: T) -> ColumnDef {
    ColumnDef::new(name).big_integer().null().take()
}

/// `INT NOT NULL DEFAULT default`.
pub(crate) fn int_default<T: IntoIden>(name: T, default: i32) -> ColumnDef {
    ColumnDef::new(name)
        .integer()
        .not_null()
        .default(default)
        .take()
}

/// `SMALLINT NOT NULL DEFAULT default` (a flag or a small code).
pub(crate) fn small_default<T: IntoIden>(name: T, default: i16) -> ColumnDef {
    ColumnDef::new(name)
        .small_integer()
        .not_null()
        .default(default)
        .take()
}

/// `SMALLINT NOT NULL DEFAULT 0` (a flag).
pub(crate) fn flag<T: IntoIden>(name: T) -> ColumnDef {
    ColumnDef::new(name)
        .small_integer()
        .not_null()
        .default(0)
        .take()
}

/// `TEXT NOT NULL DEFAULT default`.
pub(crate) fn text_default<T: IntoIden>(name: T, default: &str) -> ColumnDef {
    ColumnDef::new(name)
        .text()
        .not_null()
        .default(default)
        .take()
}

/// `CREATE INDEX name ON table (cols…)`.
pub(crate) async fn create_index<T, C, I>(
    manager: &SchemaManager<'_>,
    name: &str,
    table: T,
    cols: I,
) -> Result<(), DbErr>
where
    T: IntoIden,
    C: IntoIden,
    I: IntoIterator<Item = C>,
{
    let mut index = Index::create();
    index.name(name).table(table);
    for col in cols {
        index.col(col);
    }
    manager.create_index(index).await
}

/// `DROP TABLE table`.
pub(crate) async fn drop_table<T: IntoIden>(
    manager: &SchemaManager<'_>,
    table: T,
) -> Result<(), DbErr> {
    manager.drop_table(Table::drop().table(table).take()).await
}
