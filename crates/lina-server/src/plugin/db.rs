//! The database side of plugin lifecycle steps: row updates that raise the
//! generation, stored package files, plugin menus and their role grants.

use super::*;

/// An update of plugin `id`'s row that raises its generation and stamps
/// its time; callers add the columns they change.
pub(super) fn row_update(id: &str) -> sea_orm::UpdateMany<plugin::Entity> {
    plugin::Entity::update_many()
        .col_expr(plugin::Column::Generation, next_generation())
        .col_expr(plugin::Column::UpdatedAt, Expr::value(unix_millis()))
        .filter(plugin::Column::PluginId.eq(id))
}

/// `generation + 1`: every change to a plugin's row raises it.
pub(super) fn next_generation() -> Expr {
    Expr::col(plugin::Column::Generation).add(1)
}

/// The runtime state a sync leaves: a running or failed upgrade stays; an
/// installed plugin that vanished is `abnormal`; a newer discovered version
/// is `pending_upgrade`.
pub(super) fn runtime_state_after_sync(
    row: &plugin::Model,
    discovered: Option<&str>,
) -> &'static str {
    match row.runtime_state.as_str() {
        "upgrade_running" => return "upgrade_running",
        "upgrade_failed" if discovered == row.discovered_version.as_deref() => {
            return "upgrade_failed";
        }
        _ => {}
    }
    if row.installed == 0 {
        return "normal";
    }
    match discovered {
        None if row.plugin_type == "source" => "abnormal",
        None => "normal",
        Some(v) if newer(Some(v), row.effective_version.as_deref()) => "pending_upgrade",
        Some(_) => "normal",
    }
}

/// Copies a dynamic package's files into `sys_plugin_file` under `version`.
pub(super) async fn store_files(
    db: &impl ConnectionTrait,
    id: &str,
    version: &str,
    storage: &std::path::Path,
) -> Result<(), PluginError> {
    let pkg = Package::read(storage, id).map_err(PluginError::Invalid)?;
    if pkg.manifest.version != version {
        return Err(PluginError::Conflict(format!(
            "the package of {id} holds version {}, not {version}; run sync",
            pkg.manifest.version
        )));
    }
    plugin_file::Entity::delete_many()
        .filter(plugin_file::Column::PluginId.eq(id))
        .filter(plugin_file::Column::Version.eq(version))
        .exec(db)
        .await?;
    for (path, content) in pkg.files {
        plugin_file::Entity::insert(plugin_file::ActiveModel {
            plugin_id: Set(id.to_string()),
            version: Set(version.to_string()),
            path: Set(path),
            content: Set(content),
        })
        .exec_without_returning(db)
        .await?;
    }
    Ok(())
}

/// Deletes the plugin's menus and their role links; returns the roles that
/// held any of them (so an upgrade can grant the new menus again).
pub(super) async fn remove_menus(db: &impl ConnectionTrait, id: &str) -> Result<Vec<i64>, DbErr> {
    let ids: Vec<i64> = menu::Entity::find()
        .filter(menu::Column::PluginId.eq(id))
        .all(db)
        .await?
        .into_iter()
        .map(|m| m.id)
        .collect();
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut roles: Vec<i64> = role_menu::Entity::find()
        .filter(role_menu::Column::MenuId.is_in(ids.clone()))
        .all(db)
        .await?
        .into_iter()
        .map(|rm| rm.role_id)
        .collect();
    roles.sort_unstable();
    roles.dedup();
    role_menu::Entity::delete_many()
        .filter(role_menu::Column::MenuId.is_in(ids.clone()))
        .exec(db)
        .await?;
    menu::Entity::delete_many()
        .filter(menu::Column::Id.is_in(ids))
        .exec(db)
        .await?;
    Ok(roles)
}

/// Inserts the plugin's menu tree at the top level, granted to the `admin`
/// role and to `roles`.
pub(super) async fn insert_menus(
    db: &impl ConnectionTrait,
    id: &str,
    menus: &[PluginMenu],
    roles: &[i64],
) -> Result<(), DbErr> {
    let mut grant: Vec<i64> = roles.to_vec();
    if let Some(admin) = role::Entity::find()
        .filter(role::Column::RoleKey.eq("admin"))
        .one(db)
        .await?
    {
        grant.push(admin.id);
    }
    grant.sort_unstable();
    grant.dedup();
    let now = unix_millis();
    let mut stack: Vec<(i64, &PluginMenu)> = menus.iter().rev().map(|m| (0, m)).collect();
    while let Some((parent, m)) = stack.pop() {
        let inserted = menu::Entity::insert(menu::ActiveModel {
            id: NotSet,
            parent_id: Set(parent),
            name: Set(m.name.clone()),
            path: Set(m.path.clone()),
            component: Set(m.component.clone()),
            redirect: Set(String::new()),
            perms: Set(m.perms.clone()),
            icon: Set(m.icon.clone()),
            menu_type: Set(m.menu_type.clone()),
            sort: Set(m.sort),
            visible: Set(1),
            status: Set(1),
            is_frame: Set(0),
            is_cache: Set(0),
            query_param: Set(String::new()),
            i18n_key: Set(m.i18n_key.clone()),
            remark: Set(String::new()),
            plugin_id: Set(Some(id.to_string())),
            created_at: Set(now),
            updated_at: Set(now),
        })
        .exec(db)
        .await?
        .last_insert_id;
        for role_id in &grant {
            role_menu::ActiveModel {
                role_id: Set(*role_id),
                menu_id: Set(inserted),
            }
            .insert(db)
            .await?;
        }
        stack.extend(m.children.iter().rev().map(|c| (inserted, c)));
    }
    Ok(())
}

/// The plugins whose menus are visible: installed and enabled (read by the
/// permission topology loader).
pub async fn enabled_ids(db: &impl ConnectionTrait) -> Result<HashSet<String>, DbErr> {
    Ok(plugin::Entity::find()
        .filter(plugin::Column::Installed.eq(1))
        .filter(plugin::Column::Enabled.eq(1))
        .all(db)
        .await?
        .into_iter()
        .map(|p| p.plugin_id)
        .collect())
}
