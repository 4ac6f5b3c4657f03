//! Lina's migrations against real SQLite files and real PostgreSQL databases.
//!
//! Every case in [`cases`] runs on both backends (see `on_both_backends!`);
//! a database comes from `lina-testkit` (a temporary SQLite file, or a fresh
//! PostgreSQL database that is dropped afterwards).

use anyhow::{Context, Result, ensure};
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbBackend, Statement,
};

/// A migrated-or-not database of one backend plus what keeps it alive.
struct Harness {
    db: DatabaseConnection,
    url: String,
    _guard: Guard,
}

enum Guard {
    Sqlite(#[allow(dead_code)] lina_testkit::TempSqlite),
    Postgres(#[allow(dead_code)] lina_testkit::TestDatabase),
}

impl Harness {
    async fn sqlite() -> Result<Harness> {
        let file = lina_testkit::temp_sqlite()?;
        let url = file.url().to_string();
        Ok(Harness {
            db: connect(&url).await?,
            url,
            _guard: Guard::Sqlite(file),
        })
    }

    async fn postgres() -> Result<Harness> {
        let database = lina_testkit::fresh_database().await?;
        let url = database.url().to_string();
        Ok(Harness {
            db: connect(&url).await?,
            url,
            _guard: Guard::Postgres(database),
        })
    }

    fn backend(&self) -> DbBackend {
        self.db.get_database_backend()
    }

    /// Runs one statement, for inserts whose outcome the test looks at.
    async fn exec(&self, sql: &str) -> Result<(), sea_orm::DbErr> {
        self.db.execute_unprepared(sql).await.map(|_| ())
    }

    /// The first column of every row, as strings.
    async fn strings(&self, sql: &str) -> Result<Vec<String>> {
        let rows = self
            .db
            .query_all_raw(Statement::from_string(self.backend(), sql))
            .await
            .with_context(|| format!("query {sql}"))?;
        rows.iter()
            .map(|r| r.try_get_by_index::<String>(0).map_err(Into::into))
            .collect()
    }

    /// The first column of every row, as integers.
    async fn ints(&self, sql: &str) -> Result<Vec<i64>> {
        let rows = self
            .db
            .query_all_raw(Statement::from_string(self.backend(), sql))
            .await
            .with_context(|| format!("query {sql}"))?;
        rows.iter()
            .map(|r| r.try_get_by_index::<i64>(0).map_err(Into::into))
            .collect()
    }

    /// A single integer (`SELECT COUNT(*) …` and the like).
    async fn int(&self, sql: &str) -> Result<i64> {
        let v = self.ints(sql).await?;
        ensure!(v.len() == 1, "{sql} returned {} rows", v.len());
        Ok(v[0])
    }

    async fn columns(&self, table: &str) -> Result<Vec<String>> {
        let sql = match self.backend() {
            DbBackend::Postgres => format!(
                "SELECT column_name::text FROM information_schema.columns \
                 WHERE table_schema = current_schema() AND table_name = '{table}' \
                 ORDER BY ordinal_position"
            ),
            _ => format!("SELECT name FROM pragma_table_info('{table}') ORDER BY cid"),
        };
        self.strings(&sql).await
    }

    /// Names of the `idx_*` indexes of `table`, sorted.
    async fn indexes(&self, table: &str) -> Result<Vec<String>> {
        let sql = match self.backend() {
            DbBackend::Postgres => format!(
                "SELECT indexname::text FROM pg_indexes \
                 WHERE schemaname = current_schema() AND tablename = '{table}'"
            ),
            _ => format!("SELECT name FROM pragma_index_list('{table}')"),
        };
        let mut names: Vec<String> = self
            .strings(&sql)
            .await?
            .into_iter()
            .filter(|n| n.starts_with("idx_"))
            .collect();
        names.sort();
        Ok(names)
    }

    /// The indexed columns of index `name`, in index order.
    async fn index_columns(&self, name: &str) -> Result<Vec<String>> {
        match self.backend() {
            DbBackend::Postgres => {
                let defs = self
                    .strings(&format!(
                        "SELECT indexdef::text FROM pg_indexes \
                         WHERE schemaname = current_schema() AND indexname = '{name}'"
                    ))
                    .await?;
                ensure!(defs.len() == 1, "index {name}: {defs:?}");
                // CREATE INDEX name ON public.table USING btree (a, b)
                let def = &defs[0];
                let inner = def
                    .rsplit_once('(')
                    .and_then(|(_, rest)| rest.strip_suffix(')'))
                    .with_context(|| format!("parse {def}"))?;
                Ok(inner
                    .split(", ")
                    .map(|c| c.trim_matches('"').to_string())
                    .collect())
            }
            _ => {
                self.strings(&format!(
                    "SELECT name FROM pragma_index_info('{name}') ORDER BY seqno"
                ))
                .await
            }
        }
    }

    /// `"column type"` of every column of `table`, in order, with the type
    /// spelled the SQLite way on both backends (`varchar(64)`, `smallint`, …).
    async fn column_types(&self, table: &str) -> Result<Vec<String>> {
        let sql = match self.backend() {
            DbBackend::Postgres => format!(
                "SELECT column_name::text || ' ' || CASE \
                 WHEN data_type = 'character varying' \
                 THEN 'varchar(' || character_maximum_length || ')' \
                 ELSE data_type::text END \
                 FROM information_schema.columns \
                 WHERE table_schema = current_schema() AND table_name = '{table}' \
                 ORDER BY ordinal_position"
            ),
            _ => format!(
                "SELECT name || ' ' || lower(type) FROM pragma_table_info('{table}') ORDER BY cid"
            ),
        };
        self.strings(&sql).await
    }

    /// The columns of `table` that accept NULL, in order.
    async fn nullable_columns(&self, table: &str) -> Result<Vec<String>> {
        let sql = match self.backend() {
            DbBackend::Postgres => format!(
                "SELECT column_name::text FROM information_schema.columns \
                 WHERE table_schema = current_schema() AND table_name = '{table}' \
                 AND is_nullable = 'YES' ORDER BY ordinal_position"
            ),
            _ => format!(
                "SELECT name FROM pragma_table_info('{table}') \
                 WHERE \"notnull\" = 0 AND pk = 0 ORDER BY cid"
            ),
        };
        self.strings(&sql).await
    }

    async fn has_table(&self, table: &str) -> Result<bool> {
        Ok(sea_orm_migration::SchemaManager::new(&self.db)
            .has_table(table)
            .await?)
    }
}

async fn connect(url: &str) -> Result<DatabaseConnection> {
    let mut opts = ConnectOptions::new(url.to_string());
    opts.max_connections(4).sqlx_logging(false);
    Database::connect(opts)
        .await
        .with_context(|| format!("connect to {url}"))
}

const TABLES: [&str; 13] = [
    "sys_job_group",
    "sys_job",
    "sys_job_log",
    "sys_job_fire",
    "sys_online_session",
    "sys_user",
    "sys_role",
    "sys_menu",
    "sys_user_role",
    "sys_role_menu",
    "sys_i18n_override",
    "sys_plugin",
    "sys_plugin_file",
];

/// The tables of `m20261204_000003_system`.
const SYSTEM_TABLES: [&str; 6] = [
    "sys_user",
    "sys_role",
    "sys_menu",
    "sys_user_role",
    "sys_role_menu",
    "sys_i18n_override",
];

/// Inserts a job with only the columns that have no default.
fn insert_job(name: &str) -> String {
    format!(
        "INSERT INTO sys_job (group_id, name, handler_ref, cron_expr, scope, concurrency, \
         created_at, updated_at) \
         VALUES (1, '{name}', 'host:wait', '*/5 * * * *', 'master_only', 'singleton', 1000, 1000)"
    )
}

/// Inserts a user with only the columns that have no default.
fn insert_user(username: &str) -> String {
    format!(
        "INSERT INTO sys_user (username, password_hash, created_at, updated_at) \
         VALUES ('{username}', '$argon2id$hash', 1000, 1000)"
    )
}

/// Inserts a role with only the columns that have no default.
fn insert_role(name: &str, key: &str) -> String {
    format!(
        "INSERT INTO sys_role (name, role_key, created_at, updated_at) \
         VALUES ('{name}', '{key}', 1000, 1000)"
    )
}

/// Inserts a menu with only the columns that have no default.
fn insert_menu(name: &str, menu_type: &str) -> String {
    format!(
        "INSERT INTO sys_menu (name, menu_type, created_at, updated_at) \
         VALUES ('{name}', '{menu_type}', 1000, 1000)"
    )
}

/// Inserts a fire claim.
fn insert_claim(job_id: i64, scheduled_at: i64, scope: &str, node: &str) -> String {
    format!(
        "INSERT INTO sys_job_fire (job_id, scheduled_at, claim_scope, node_id, term, claimed_at) \
         VALUES ({job_id}, {scheduled_at}, '{scope}', '{node}', 1, 5000)"
    )
}

fn assert_unique_violation(result: Result<(), sea_orm::DbErr>, what: &str) -> Result<()> {
    match result {
        Ok(()) => anyhow::bail!("{what}: insert succeeded, expected a unique violation"),
        Err(e) => {
            ensure!(
                matches!(
                    e.sql_err(),
                    Some(sea_orm::SqlErr::UniqueConstraintViolation(_))
                ),
                "{what}: expected a unique violation, got {e:?}"
            );
            Ok(())
        }
    }
}

mod cases {
    use anyhow::{Result, ensure};
    use lina_migration::{Migrator, MigratorTrait};
    use sea_orm::DbBackend;

    use super::{
        Harness, SYSTEM_TABLES, TABLES, assert_unique_violation, insert_claim, insert_job,
        insert_menu, insert_role, insert_user,
    };

    pub async fn migrate_twice_is_a_noop_and_seeds_once(h: &Harness) -> Result<()> {
        lina_migration::migrate(&h.db).await?;
        lina_migration::migrate(&h.db).await?;

        ensure!(Migrator::get_pending_migrations(&h.db).await?.is_empty());
        let applied: Vec<String> = Migrator::get_applied_migrations(&h.db)
            .await?
            .iter()
            .map(|m| m.name().to_string())
            .collect();
        ensure!(
            applied
                == [
                    "m20261204_000001_scheduler",
                    "m20261204_000002_online_session",
                    "m20261204_000003_system",
                    "m20261204_000004_plugins",
                ],
            "applied {applied:?}"
        );
        ensure!(h.int("SELECT COUNT(*) FROM seaql_migrations").await? == 4);
        // The server seeds users, roles and menus itself (argon2 hash).
        for table in SYSTEM_TABLES {
            let n = h.int(&format!("SELECT COUNT(*) FROM {table}")).await?;
            ensure!(n == 0, "{table} has {n} rows after migrate");
        }

        ensure!(h.int("SELECT COUNT(*) FROM sys_job_group").await? == 1);
        let rows = h
            .strings("SELECT name FROM sys_job_group WHERE code = 'default' AND is_default = 1 AND sort = 0 AND remark = ''")
            .await?;
        ensure!(rows == ["Default"], "default group rows {rows:?}");
        let created = h
            .int("SELECT created_at FROM sys_job_group WHERE code = 'default'")
            .await?;
        let updated = h
            .int("SELECT updated_at FROM sys_job_group WHERE code = 'default'")
            .await?;
        // Unix milliseconds, not seconds: after 2020-01-01 in ms.
        ensure!(created > 1_577_836_800_000, "created_at {created}");
        ensure!(
            updated == created,
            "updated_at {updated} created_at {created}"
        );
        Ok(())
    }

    pub async fn schema_has_exactly_the_expected_columns_and_indexes(h: &Harness) -> Result<()> {
        lina_migration::migrate(&h.db).await?;
        // (table, columns in order, [(index, indexed columns in order)])
        type Expected<'a> = (&'a str, &'a [&'a str], &'a [(&'a str, &'a [&'a str])]);
        let expected: [Expected<'_>; 11] = [
            (
                "sys_job_group",
                &[
                    "id",
                    "code",
                    "name",
                    "sort",
                    "remark",
                    "is_default",
                    "created_at",
                    "updated_at",
                ],
                &[],
            ),
            (
                "sys_job",
                &[
                    "id",
                    "group_id",
                    "name",
                    "description",
                    "handler_ref",
                    "params",
                    "timeout_seconds",
                    "cron_expr",
                    "timezone",
                    "scope",
                    "concurrency",
                    "max_concurrency",
                    "misfire_policy",
                    "status",
                    "is_builtin",
                    "plugin_id",
                    "created_at",
                    "updated_at",
                ],
                &[
                    ("idx_sys_job_group", &["group_id"]),
                    ("idx_sys_job_status", &["status"]),
                ],
            ),
            (
                "sys_job_log",
                &[
                    "id",
                    "job_id",
                    "job_name",
                    "handler_ref",
                    "node_id",
                    "trigger_type",
                    "scheduled_at",
                    "start_at",
                    "end_at",
                    "duration_ms",
                    "status",
                    "err_msg",
                    "result_json",
                    "term",
                ],
                &[
                    ("idx_sys_job_log_job_sched", &["job_id", "scheduled_at"]),
                    ("idx_sys_job_log_node_status", &["node_id", "status"]),
                    ("idx_sys_job_log_sched", &["scheduled_at"]),
                    ("idx_sys_job_log_status", &["status"]),
                ],
            ),
            (
                "sys_job_fire",
                &[
                    "job_id",
                    "scheduled_at",
                    "claim_scope",
                    "node_id",
                    "term",
                    "claimed_at",
                ],
                &[("idx_sys_job_fire_claimed", &["claimed_at"])],
            ),
            (
                "sys_online_session",
                &[
                    "token_id",
                    "user_id",
                    "username",
                    "client_type",
                    "ip",
                    "browser",
                    "os",
                    "login_time",
                    "last_active_time",
                    "node_id",
                ],
                &[("idx_sys_online_session_last_active", &["last_active_time"])],
            ),
            (
                "sys_user",
                &[
                    "id",
                    "username",
                    "password_hash",
                    "nickname",
                    "email",
                    "phone",
                    "sex",
                    "avatar",
                    "status",
                    "remark",
                    "default_password",
                    "created_at",
                    "updated_at",
                ],
                &[("idx_sys_user_status", &["status"])],
            ),
            (
                "sys_role",
                &[
                    "id",
                    "name",
                    "role_key",
                    "sort",
                    "data_scope",
                    "status",
                    "remark",
                    "created_at",
                    "updated_at",
                ],
                &[],
            ),
            (
                "sys_menu",
                &[
                    "id",
                    "parent_id",
                    "name",
                    "path",
                    "component",
                    "redirect",
                    "perms",
                    "icon",
                    "menu_type",
                    "sort",
                    "visible",
                    "status",
                    "is_frame",
                    "is_cache",
                    "query_param",
                    "i18n_key",
                    "remark",
                    "plugin_id",
                    "created_at",
                    "updated_at",
                ],
                &[
                    ("idx_sys_menu_parent", &["parent_id"]),
                    ("idx_sys_menu_perms", &["perms"]),
                ],
            ),
            (
                "sys_user_role",
                &["user_id", "role_id"],
                &[("idx_sys_user_role_role", &["role_id"])],
            ),
            (
                "sys_role_menu",
                &["role_id", "menu_id"],
                &[("idx_sys_role_menu_menu", &["menu_id"])],
            ),
            (
                "sys_i18n_override",
                &["locale", "msg_key", "msg_value", "updated_at"],
                &[],
            ),
        ];
        for (table, columns, indexes) in expected {
            let got = h.columns(table).await?;
            ensure!(
                got == columns,
                "{table} columns {got:?}, expected {columns:?}"
            );
            let got = h.indexes(table).await?;
            let names: Vec<&str> = indexes.iter().map(|(n, _)| *n).collect();
            ensure!(got == names, "{table} indexes {got:?}, expected {names:?}");
            for (index, cols) in indexes {
                let got = h.index_columns(index).await?;
                ensure!(got == *cols, "{index} columns {got:?}, expected {cols:?}");
            }
        }
        Ok(())
    }

    pub async fn ids_are_assigned_by_the_database(h: &Harness) -> Result<()> {
        lina_migration::migrate(&h.db).await?;
        for table in [
            "sys_job_group",
            "sys_job",
            "sys_job_log",
            "sys_user",
            "sys_role",
            "sys_menu",
        ] {
            match h.backend() {
                DbBackend::Sqlite => {
                    let ddl = h
                        .strings(&format!(
                            "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = '{table}'"
                        ))
                        .await?;
                    ensure!(
                        ddl.len() == 1
                            && ddl[0].contains("\"id\" integer NOT NULL PRIMARY KEY AUTOINCREMENT"),
                        "{table} ddl {ddl:?}"
                    );
                }
                _ => {
                    // An identity column (or, built with sea-query's serial
                    // option, a sequence default): either way, database-assigned.
                    let ty = h
                        .strings(&format!(
                            "SELECT data_type::text || ' ' || \
                             CASE WHEN is_identity = 'YES' OR column_default LIKE 'nextval(%' \
                             THEN 'auto' ELSE 'manual' END \
                             FROM information_schema.columns \
                             WHERE table_schema = current_schema() AND table_name = '{table}' \
                             AND column_name = 'id'"
                        ))
                        .await?;
                    ensure!(ty == ["bigint auto"], "{table}.id {ty:?}");
                }
            }
        }

        h.exec(&insert_job("a")).await?;
        h.exec(&insert_job("b")).await?;
        let ids = h.ints("SELECT id FROM sys_job ORDER BY id").await?;
        ensure!(
            ids.len() == 2 && ids[0] > 0 && ids[1] > ids[0],
            "job ids {ids:?}"
        );

        h.exec(
            "INSERT INTO sys_job_group (code, name, created_at, updated_at) \
             VALUES ('ops', 'Ops', 1000, 1000)",
        )
        .await?;
        let ids = h.ints("SELECT id FROM sys_job_group ORDER BY id").await?;
        ensure!(
            ids.len() == 2 && ids[0] > 0 && ids[1] > ids[0],
            "group ids {ids:?}"
        );

        for _ in 0..2 {
            h.exec(
                "INSERT INTO sys_job_log (job_id, node_id, trigger_type, scheduled_at, status) \
                 VALUES (1, 'node-a', 'cron', 60000, 'running')",
            )
            .await?;
        }
        let ids = h.ints("SELECT id FROM sys_job_log ORDER BY id").await?;
        ensure!(
            ids.len() == 2 && ids[0] > 0 && ids[1] > ids[0],
            "log ids {ids:?}"
        );

        h.exec(&insert_user("admin")).await?;
        h.exec(&insert_user("alice")).await?;
        let ids = h.ints("SELECT id FROM sys_user ORDER BY id").await?;
        ensure!(
            ids.len() == 2 && ids[0] > 0 && ids[1] > ids[0],
            "user ids {ids:?}"
        );

        h.exec(&insert_role("Admin", "admin")).await?;
        h.exec(&insert_role("User", "user")).await?;
        let ids = h.ints("SELECT id FROM sys_role ORDER BY id").await?;
        ensure!(
            ids.len() == 2 && ids[0] > 0 && ids[1] > ids[0],
            "role ids {ids:?}"
        );

        h.exec(&insert_menu("System", "D")).await?;
        h.exec(&insert_menu("User", "M")).await?;
        let ids = h.ints("SELECT id FROM sys_menu ORDER BY id").await?;
        ensure!(
            ids.len() == 2 && ids[0] > 0 && ids[1] > ids[0],
            "menu ids {ids:?}"
        );
        Ok(())
    }

    /// Timestamps and ids are `BIGINT`, flags `SMALLINT`, texts `VARCHAR(n)`,
    /// and every column but `sys_menu.plugin_id` is `NOT NULL`.
    pub async fn system_columns_have_the_expected_types(h: &Harness) -> Result<()> {
        lina_migration::migrate(&h.db).await?;
        let expected: [(&str, &[(&str, &str)]); 6] = [
            (
                "sys_user",
                &[
                    ("id", "bigint"),
                    ("username", "varchar(64)"),
                    ("password_hash", "varchar(255)"),
                    ("nickname", "varchar(64)"),
                    ("email", "varchar(128)"),
                    ("phone", "varchar(32)"),
                    ("sex", "smallint"),
                    ("avatar", "varchar(255)"),
                    ("status", "smallint"),
                    ("remark", "varchar(500)"),
                    ("default_password", "smallint"),
                    ("created_at", "bigint"),
                    ("updated_at", "bigint"),
                ],
            ),
            (
                "sys_role",
                &[
                    ("id", "bigint"),
                    ("name", "varchar(64)"),
                    ("role_key", "varchar(64)"),
                    ("sort", "integer"),
                    ("data_scope", "smallint"),
                    ("status", "smallint"),
                    ("remark", "varchar(500)"),
                    ("created_at", "bigint"),
                    ("updated_at", "bigint"),
                ],
            ),
            (
                "sys_menu",
                &[
                    ("id", "bigint"),
                    ("parent_id", "bigint"),
                    ("name", "varchar(64)"),
                    ("path", "varchar(255)"),
                    ("component", "varchar(255)"),
                    ("redirect", "varchar(255)"),
                    ("perms", "varchar(128)"),
                    ("icon", "varchar(64)"),
                    ("menu_type", "varchar(1)"),
                    ("sort", "integer"),
                    ("visible", "smallint"),
                    ("status", "smallint"),
                    ("is_frame", "smallint"),
                    ("is_cache", "smallint"),
                    ("query_param", "varchar(255)"),
                    ("i18n_key", "varchar(128)"),
                    ("remark", "varchar(500)"),
                    ("plugin_id", "varchar(64)"),
                    ("created_at", "bigint"),
                    ("updated_at", "bigint"),
                ],
            ),
            (
                "sys_user_role",
                &[("user_id", "bigint"), ("role_id", "bigint")],
            ),
            (
                "sys_role_menu",
                &[("role_id", "bigint"), ("menu_id", "bigint")],
            ),
            (
                "sys_i18n_override",
                &[
                    ("locale", "varchar(16)"),
                    ("msg_key", "varchar(191)"),
                    ("msg_value", "text"),
                    ("updated_at", "bigint"),
                ],
            ),
        ];
        for (table, columns) in expected {
            let got = h.column_types(table).await?;
            let want: Vec<String> = columns
                .iter()
                .map(|(c, t)| match (h.backend(), *t) {
                    // sea-query declares BIGINT as `integer` on SQLite, whose
                    // integers are 64-bit anyway (and `id` must be spelled
                    // `integer` to be the AUTOINCREMENT rowid).
                    (DbBackend::Sqlite, "bigint") => format!("{c} integer"),
                    _ => format!("{c} {t}"),
                })
                .collect();
            ensure!(got == want, "{table} types {got:?}, expected {want:?}");
        }
        // Only plugin_id may be NULL.
        for table in SYSTEM_TABLES {
            let nullable = h.nullable_columns(table).await?;
            let want: &[&str] = if table == "sys_menu" {
                &["plugin_id"]
            } else {
                &[]
            };
            ensure!(
                nullable == want,
                "{table} nullable {nullable:?}, expected {want:?}"
            );
        }
        Ok(())
    }

    pub async fn column_defaults_apply(h: &Harness) -> Result<()> {
        lina_migration::migrate(&h.db).await?;
        h.exec(&insert_job("defaults")).await?;
        let strings = h
            .strings(
                "SELECT description || '|' || params || '|' || timezone || '|' || misfire_policy \
                 || '|' || status FROM sys_job WHERE name = 'defaults'",
            )
            .await?;
        ensure!(
            strings == ["|{}||fire_once|enabled"],
            "sys_job text defaults {strings:?}"
        );
        let ints = h
            .ints(
                "SELECT CAST(timeout_seconds * 100 + max_concurrency * 10 + is_builtin AS BIGINT) \
                 FROM sys_job WHERE name = 'defaults'",
            )
            .await?;
        ensure!(ints == [10], "sys_job int defaults {ints:?}");
        ensure!(
            h.int("SELECT COUNT(*) FROM sys_job WHERE name = 'defaults' AND plugin_id IS NULL")
                .await?
                == 1
        );

        h.exec(
            "INSERT INTO sys_job_log (job_id, node_id, trigger_type, scheduled_at, status) \
             VALUES (1, 'node-a', 'manual', 60000, 'running')",
        )
        .await?;
        ensure!(
            h.int(
                "SELECT COUNT(*) FROM sys_job_log WHERE job_name = '' AND handler_ref = '' \
                 AND err_msg = '' AND start_at IS NULL AND end_at IS NULL \
                 AND duration_ms IS NULL AND result_json IS NULL AND term IS NULL"
            )
            .await?
                == 1
        );

        h.exec(
            "INSERT INTO sys_job_fire (job_id, scheduled_at, claim_scope, node_id, claimed_at) \
             VALUES (1, 60000, '*', 'node-a', 60001)",
        )
        .await?;
        ensure!(h.int("SELECT term FROM sys_job_fire").await? == 0);

        h.exec(
            "INSERT INTO sys_online_session (token_id, user_id, username, login_time, \
             last_active_time) VALUES ('tok-1', 1, 'admin', 1000, 2000)",
        )
        .await?;
        ensure!(
            h.int(
                "SELECT COUNT(*) FROM sys_online_session WHERE client_type = '' AND ip = '' \
                 AND browser = '' AND os = '' AND node_id = ''"
            )
            .await?
                == 1
        );
        // token_id is the primary key.
        assert_unique_violation(
            h.exec(
                "INSERT INTO sys_online_session (token_id, user_id, username, login_time, \
                 last_active_time) VALUES ('tok-1', 2, 'other', 1000, 2000)",
            )
            .await,
            "duplicate token_id",
        )?;

        h.exec(&insert_user("defaults")).await?;
        let strings = h
            .strings(
                "SELECT nickname || '|' || email || '|' || phone || '|' || avatar || '|' || remark \
                 FROM sys_user WHERE username = 'defaults'",
            )
            .await?;
        ensure!(strings == ["||||"], "sys_user text defaults {strings:?}");
        let ints = h
            .ints(
                "SELECT CAST(sex * 100 + status * 10 + default_password AS BIGINT) \
                 FROM sys_user WHERE username = 'defaults'",
            )
            .await?;
        ensure!(ints == [10], "sys_user int defaults {ints:?}");

        h.exec(&insert_role("Defaults", "defaults")).await?;
        let ints = h
            .ints(
                "SELECT CAST(sort * 100 + data_scope * 10 + status AS BIGINT) \
                 FROM sys_role WHERE role_key = 'defaults'",
            )
            .await?;
        ensure!(ints == [11], "sys_role int defaults {ints:?}");
        ensure!(
            h.int("SELECT COUNT(*) FROM sys_role WHERE role_key = 'defaults' AND remark = ''")
                .await?
                == 1
        );

        h.exec(&insert_menu("defaults", "B")).await?;
        let strings = h
            .strings(
                "SELECT path || '|' || component || '|' || redirect || '|' || perms || '|' || icon \
                 || '|' || query_param || '|' || i18n_key || '|' || remark || '|' || menu_type \
                 FROM sys_menu WHERE name = 'defaults'",
            )
            .await?;
        ensure!(
            strings == ["||||||||B"],
            "sys_menu text defaults {strings:?}"
        );
        let ints = h
            .ints(
                "SELECT CAST(parent_id * 100000 + sort * 10000 + visible * 1000 + status * 100 \
                 + is_frame * 10 + is_cache AS BIGINT) FROM sys_menu WHERE name = 'defaults'",
            )
            .await?;
        ensure!(ints == [1100], "sys_menu int defaults {ints:?}");
        ensure!(
            h.int("SELECT COUNT(*) FROM sys_menu WHERE name = 'defaults' AND plugin_id IS NULL")
                .await?
                == 1
        );
        Ok(())
    }

    pub async fn links_and_overrides_are_unique_per_key(h: &Harness) -> Result<()> {
        lina_migration::migrate(&h.db).await?;
        h.exec("INSERT INTO sys_user_role (user_id, role_id) VALUES (1, 1)")
            .await?;
        assert_unique_violation(
            h.exec("INSERT INTO sys_user_role (user_id, role_id) VALUES (1, 1)")
                .await,
            "duplicate user-role link",
        )?;
        h.exec("INSERT INTO sys_user_role (user_id, role_id) VALUES (1, 2)")
            .await?;
        h.exec("INSERT INTO sys_user_role (user_id, role_id) VALUES (2, 1)")
            .await?;
        ensure!(h.int("SELECT COUNT(*) FROM sys_user_role").await? == 3);
        let users = h
            .ints("SELECT user_id FROM sys_user_role WHERE role_id = 1 ORDER BY user_id")
            .await?;
        ensure!(users == [1, 2], "users of role 1 {users:?}");

        h.exec("INSERT INTO sys_role_menu (role_id, menu_id) VALUES (1, 10)")
            .await?;
        assert_unique_violation(
            h.exec("INSERT INTO sys_role_menu (role_id, menu_id) VALUES (1, 10)")
                .await,
            "duplicate role-menu link",
        )?;
        h.exec("INSERT INTO sys_role_menu (role_id, menu_id) VALUES (1, 11)")
            .await?;
        h.exec("INSERT INTO sys_role_menu (role_id, menu_id) VALUES (2, 10)")
            .await?;
        ensure!(h.int("SELECT COUNT(*) FROM sys_role_menu").await? == 3);
        let roles = h
            .ints("SELECT role_id FROM sys_role_menu WHERE menu_id = 10 ORDER BY role_id")
            .await?;
        ensure!(roles == [1, 2], "roles of menu 10 {roles:?}");

        let insert_override = |locale: &str, key: &str, value: &str| {
            format!(
                "INSERT INTO sys_i18n_override (locale, msg_key, msg_value, updated_at) \
                 VALUES ('{locale}', '{key}', '{value}', 1000)"
            )
        };
        h.exec(&insert_override("en-US", "menu.system", "System"))
            .await?;
        assert_unique_violation(
            h.exec(&insert_override("en-US", "menu.system", "Admin"))
                .await,
            "duplicate override of one key in one locale",
        )?;
        h.exec(&insert_override("zh-CN", "menu.system", "系统管理"))
            .await?;
        h.exec(&insert_override("en-US", "menu.user", "Users"))
            .await?;
        ensure!(h.int("SELECT COUNT(*) FROM sys_i18n_override").await? == 3);
        let values = h
            .strings("SELECT msg_value FROM sys_i18n_override WHERE msg_key = 'menu.system' ORDER BY locale")
            .await?;
        ensure!(
            values == ["System", "系统管理"],
            "override values {values:?}"
        );
        // msg_value has no default.
        ensure!(
            h.exec(
                "INSERT INTO sys_i18n_override (locale, msg_key, updated_at) \
                 VALUES ('en-US', 'menu.role', 1000)"
            )
            .await
            .is_err(),
            "override without msg_value accepted"
        );
        Ok(())
    }

    pub async fn fire_claims_are_unique_per_scope(h: &Harness) -> Result<()> {
        lina_migration::migrate(&h.db).await?;
        h.exec(&insert_claim(7, 60_000, "*", "node-a")).await?;
        // Another node claiming the same master_only fire loses.
        assert_unique_violation(
            h.exec(&insert_claim(7, 60_000, "*", "node-b")).await,
            "second master_only claim",
        )?;
        // all_node: each node claims under its own scope.
        h.exec(&insert_claim(7, 60_000, "node-a", "node-a")).await?;
        h.exec(&insert_claim(7, 60_000, "node-b", "node-b")).await?;
        assert_unique_violation(
            h.exec(&insert_claim(7, 60_000, "node-b", "node-b")).await,
            "second all_node claim of one node",
        )?;
        // Other fire times and other jobs are independent.
        h.exec(&insert_claim(7, 120_000, "*", "node-b")).await?;
        h.exec(&insert_claim(8, 60_000, "*", "node-b")).await?;
        ensure!(h.int("SELECT COUNT(*) FROM sys_job_fire").await? == 5);
        let winner = h
            .strings(
                "SELECT node_id FROM sys_job_fire \
                 WHERE job_id = 7 AND scheduled_at = 60000 AND claim_scope = '*'",
            )
            .await?;
        ensure!(winner == ["node-a"], "winner {winner:?}");
        Ok(())
    }

    pub async fn names_and_codes_are_unique(h: &Harness) -> Result<()> {
        lina_migration::migrate(&h.db).await?;
        h.exec(&insert_job("nightly")).await?;
        assert_unique_violation(h.exec(&insert_job("nightly")).await, "duplicate job name")?;
        assert_unique_violation(
            h.exec(
                "INSERT INTO sys_job_group (code, name, created_at, updated_at) \
                 VALUES ('default', 'Another', 1, 1)",
            )
            .await,
            "duplicate group code",
        )?;
        assert_unique_violation(
            h.exec(
                "INSERT INTO sys_job_group (code, name, created_at, updated_at) \
                 VALUES ('another', 'Default', 1, 1)",
            )
            .await,
            "duplicate group name",
        )?;

        h.exec(&insert_user("admin")).await?;
        assert_unique_violation(h.exec(&insert_user("admin")).await, "duplicate username")?;
        h.exec(&insert_role("Admin", "admin")).await?;
        assert_unique_violation(
            h.exec(&insert_role("Admin", "other")).await,
            "duplicate role name",
        )?;
        assert_unique_violation(
            h.exec(&insert_role("Other", "admin")).await,
            "duplicate role key",
        )?;
        // Menu names repeat across the tree (buttons named "Add" under each page).
        h.exec(&insert_menu("Add", "B")).await?;
        h.exec(&insert_menu("Add", "B")).await?;
        ensure!(
            h.int("SELECT COUNT(*) FROM sys_menu WHERE name = 'Add'")
                .await?
                == 2
        );
        Ok(())
    }

    pub async fn down_everything_then_up(h: &Harness) -> Result<()> {
        lina_migration::migrate(&h.db).await?;
        h.exec(&insert_job("before-down")).await?;

        h.exec(&insert_user("before-down")).await?;

        // One step back drops only the newest migration's tables.
        Migrator::down(&h.db, Some(1)).await?;
        ensure!(!h.has_table("sys_plugin").await?);
        ensure!(!h.has_table("sys_plugin_file").await?);
        ensure!(h.has_table("sys_user").await?);
        ensure!(Migrator::get_pending_migrations(&h.db).await?.len() == 1);

        // The next step drops the system tables.
        Migrator::down(&h.db, Some(1)).await?;
        for table in SYSTEM_TABLES {
            ensure!(
                !h.has_table(table).await?,
                "{table} still exists after one step down"
            );
        }
        ensure!(h.has_table("sys_online_session").await?);
        ensure!(h.has_table("sys_job").await?);
        ensure!(Migrator::get_pending_migrations(&h.db).await?.len() == 2);

        // A second step drops the online sessions.
        Migrator::down(&h.db, Some(1)).await?;
        ensure!(!h.has_table("sys_online_session").await?);
        ensure!(h.has_table("sys_job").await?);
        ensure!(Migrator::get_pending_migrations(&h.db).await?.len() == 3);

        Migrator::down(&h.db, None).await?;
        for table in TABLES {
            ensure!(
                !h.has_table(table).await?,
                "{table} still exists after down"
            );
        }
        ensure!(Migrator::get_applied_migrations(&h.db).await?.is_empty());
        ensure!(Migrator::get_pending_migrations(&h.db).await?.len() == 4);

        lina_migration::migrate(&h.db).await?;
        lina_migration::migrate(&h.db).await?;
        for table in TABLES {
            ensure!(h.has_table(table).await?, "{table} missing after up");
        }
        ensure!(h.int("SELECT COUNT(*) FROM sys_job").await? == 0);
        ensure!(
            h.int("SELECT COUNT(*) FROM sys_job_group WHERE code = 'default' AND is_default = 1")
                .await?
                == 1
        );
        ensure!(h.int("SELECT COUNT(*) FROM sys_job_group").await? == 1);
        h.exec(&insert_job("after-up")).await?;
        ensure!(h.int("SELECT COUNT(*) FROM sys_job").await? == 1);
        ensure!(h.int("SELECT COUNT(*) FROM sys_user").await? == 0);
        h.exec(&insert_user("before-down")).await?;
        ensure!(h.int("SELECT COUNT(*) FROM sys_user").await? == 1);
        Ok(())
    }

    /// Several nodes starting together, each with its own pool.
    pub async fn concurrent_migrations_apply_once(h: &Harness) -> Result<()> {
        let mut nodes = tokio::task::JoinSet::new();
        for node in 0..4 {
            let db = super::connect(&h.url).await?;
            nodes.spawn(async move {
                let result = lina_migration::migrate(&db).await;
                let _ = db.close().await;
                (node, result)
            });
        }
        while let Some(joined) = nodes.join_next().await {
            let (node, result) = joined?;
            result.map_err(|e| anyhow::anyhow!("node {node}: migrate failed: {e}"))?;
        }
        ensure!(Migrator::get_pending_migrations(&h.db).await?.is_empty());
        ensure!(h.int("SELECT COUNT(*) FROM seaql_migrations").await? == 4);
        ensure!(h.int("SELECT COUNT(*) FROM sys_job_group").await? == 1);
        for table in SYSTEM_TABLES {
            ensure!(h.has_table(table).await?, "{table} missing");
        }
        Ok(())
    }
}

/// One `#[tokio::test]` per case and backend: `sqlite::case`, `postgres::case`.
macro_rules! on_backends {
    ($backend:ident: $($case:ident),* $(,)?) => {
        mod $backend {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() -> anyhow::Result<()> {
                    let h = crate::Harness::$backend().await?;
                    crate::cases::$case(&h).await
                }
            )*
        }
    };
}

on_backends!(sqlite:
    migrate_twice_is_a_noop_and_seeds_once,
    schema_has_exactly_the_expected_columns_and_indexes,
    ids_are_assigned_by_the_database,
    system_columns_have_the_expected_types,
    column_defaults_apply,
    links_and_overrides_are_unique_per_key,
    fire_claims_are_unique_per_scope,
    names_and_codes_are_unique,
    down_everything_then_up,
);

on_backends!(postgres:
    migrate_twice_is_a_noop_and_seeds_once,
    schema_has_exactly_the_expected_columns_and_indexes,
    ids_are_assigned_by_the_database,
    system_columns_have_the_expected_types,
    column_defaults_apply,
    links_and_overrides_are_unique_per_key,
    fire_claims_are_unique_per_scope,
    names_and_codes_are_unique,
    down_everything_then_up,
    // SQLite serves one node; only PostgreSQL has nodes starting together.
    concurrent_migrations_apply_once,
);
