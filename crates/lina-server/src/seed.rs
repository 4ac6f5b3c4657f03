//! Seed data (API.md "Seed data"), inserted once, under the migrations lock:
//! the admin user (`admin` / `admin123`, flagged as a default password), the
//! roles `admin` (every menu) and `user`, and the menu tree with the button
//! permission codes of the API.

use lina_coord_api::unix_millis;
use sea_orm::{
    ActiveValue::{NotSet, Set},
    DatabaseConnection, EntityTrait, PaginatorTrait, TransactionTrait,
};

use crate::entity::{menu, role, role_menu, user, user_role};

/// A menu of the seed tree: (name, path, component, icon, i18n key, perms,
/// children/buttons).
struct SeedMenu {
    name: &'static str,
    kind: &'static str,
    path: &'static str,
    component: &'static str,
    icon: &'static str,
    perms: &'static str,
    children: Vec<SeedMenu>,
}

fn dir(
    name: &'static str,
    path: &'static str,
    icon: &'static str,
    children: Vec<SeedMenu>,
) -> SeedMenu {
    SeedMenu {
        name,
        kind: "D",
        path,
        component: "",
        icon,
        perms: "",
        children,
    }
}

fn page(
    name: &'static str,
    path: &'static str,
    component: &'static str,
    icon: &'static str,
    perms: &'static str,
    buttons: &[(&'static str, &'static str)],
) -> SeedMenu {
    SeedMenu {
        name,
        kind: "M",
        path,
        component,
        icon,
        perms,
        children: buttons
            .iter()
            .map(|(name, perms)| SeedMenu {
                name,
                kind: "B",
                path: "",
                component: "",
                icon: "",
                perms,
                children: Vec::new(),
            })
            .collect(),
    }
}

fn tree() -> Vec<SeedMenu> {
    vec![
        page(
            "Dashboard",
            "/dashboard",
            "dashboard/index",
            "lucide:layout-dashboard",
            "",
            &[],
        ),
        dir(
            "System",
            "/system",
            "lucide:settings",
            vec![
                page(
                    "User",
                    "/system/user",
                    "system/user/index",
                    "lucide:user",
                    "system:user:query",
                    &[
                        ("Query user", "system:user:query"),
                        ("Add user", "system:user:add"),
                        ("Edit user", "system:user:edit"),
                        ("Remove user", "system:user:remove"),
                    ],
                ),
                page(
                    "Role",
                    "/system/role",
                    "system/role/index",
                    "lucide:users",
                    "system:role:query",
                    &[
                        ("Query role", "system:role:query"),
                        ("Add role", "system:role:add"),
                        ("Edit role", "system:role:edit"),
                        ("Remove role", "system:role:remove"),
                        ("Assign role", "system:role:auth"),
                    ],
                ),
                page(
                    "Menu",
                    "/system/menu",
                    "system/menu/index",
                    "lucide:list-tree",
                    "system:menu:query",
                    &[
                        ("Query menu", "system:menu:query"),
                        ("Add menu", "system:menu:add"),
                        ("Edit menu", "system:menu:edit"),
                        ("Remove menu", "system:menu:remove"),
                    ],
                ),
                page(
                    "Config",
                    "/system/config",
                    "system/config/index",
                    "lucide:languages",
                    "system:config:edit",
                    &[("Edit config", "system:config:edit")],
                ),
            ],
        ),
        page(
            "Plugins",
            "/plugins",
            "plugins/index",
            "lucide:puzzle",
            "plugin:query",
            &[
                ("Query plugin", "plugin:query"),
                ("Install plugin", "plugin:install"),
                ("Enable plugin", "plugin:enable"),
                ("Disable plugin", "plugin:disable"),
                ("Uninstall plugin", "plugin:uninstall"),
            ],
        ),
        dir(
            "Scheduler",
            "/scheduler",
            "lucide:alarm-clock",
            vec![
                page(
                    "Jobs",
                    "/scheduler/job",
                    "scheduler/job/index",
                    "lucide:timer",
                    "system:job:list",
                    &[
                        ("List jobs", "system:job:list"),
                        ("Add job", "system:job:add"),
                        ("Edit job", "system:job:edit"),
                        ("Remove job", "system:job:remove"),
                        ("Change job status", "system:job:status"),
                        ("Trigger job", "system:job:trigger"),
                    ],
                ),
                page(
                    "Job groups",
                    "/scheduler/group",
                    "scheduler/group/index",
                    "lucide:folder",
                    "system:jobgroup:list",
                    &[
                        ("List job groups", "system:jobgroup:list"),
                        ("Add job group", "system:jobgroup:add"),
                        ("Edit job group", "system:jobgroup:edit"),
                        ("Remove job group", "system:jobgroup:remove"),
                    ],
                ),
                page(
                    "Job logs",
                    "/scheduler/log",
                    "scheduler/log/index",
                    "lucide:scroll-text",
                    "system:job:list",
                    &[],
                ),
            ],
        ),
        dir(
            "Monitor",
            "/monitor",
            "lucide:activity",
            vec![
                page(
                    "Online users",
                    "/monitor/online",
                    "monitor/online/index",
                    "lucide:wifi",
                    "monitor:online:query",
                    &[
                        ("Query online users", "monitor:online:query"),
                        ("Force logout", "monitor:online:forceLogout"),
                    ],
                ),
                page(
                    "System info",
                    "/monitor/system",
                    "monitor/system/index",
                    "lucide:server",
                    "about:system:list",
                    &[("System info", "about:system:list")],
                ),
            ],
        ),
    ]
}

/// Inserts the seed data if there is no user yet. Returns whether it did.
pub async fn seed(db: &DatabaseConnection) -> anyhow::Result<bool> {
    if user::Entity::find().count(db).await? > 0 {
        return Ok(false);
    }
    let now = unix_millis();
    let password_hash = crate::password::hash("admin123")?;
    let txn = db.begin().await?;
    let admin_user = user::Entity::insert(user::ActiveModel {
        id: NotSet,
        username: Set("admin".into()),
        password_hash: Set(password_hash),
        nickname: Set("Administrator".into()),
        email: Set(String::new()),
        phone: Set(String::new()),
        sex: Set(0),
        avatar: Set(String::new()),
        status: Set(1),
        remark: Set("seeded; change the default password".into()),
        default_password: Set(1),
        created_at: Set(now),
        updated_at: Set(now),
    })
    .exec(&txn)
    .await?
    .last_insert_id;
    let mut role_ids = Vec::new();
    for (sort, (name, key)) in [("Administrator", "admin"), ("User", "user")]
        .into_iter()
        .enumerate()
    {
        let id = role::Entity::insert(role::ActiveModel {
            id: NotSet,
            name: Set(name.into()),
            role_key: Set(key.into()),
            sort: Set(sort as i32),
            data_scope: Set(1),
            status: Set(1),
            remark: Set(String::new()),
            created_at: Set(now),
            updated_at: Set(now),
        })
        .exec(&txn)
        .await?
        .last_insert_id;
        role_ids.push(id);
    }
    let mut menu_ids = Vec::new();
    let mut dashboard = None;
    let mut stack: Vec<(i64, usize, SeedMenu)> = tree()
        .into_iter()
        .enumerate()
        .rev()
        .map(|(i, m)| (0, i, m))
        .collect();
    while let Some((parent, sort, item)) = stack.pop() {
        let id = menu::Entity::insert(menu::ActiveModel {
            id: NotSet,
            parent_id: Set(parent),
            name: Set(item.name.into()),
            path: Set(item.path.into()),
            component: Set(item.component.into()),
            redirect: Set(String::new()),
            perms: Set(item.perms.into()),
            icon: Set(item.icon.into()),
            menu_type: Set(item.kind.into()),
            sort: Set(sort as i32),
            visible: Set(1),
            status: Set(1),
            is_frame: Set(0),
            is_cache: Set(0),
            query_param: Set(String::new()),
            i18n_key: Set(format!(
                "menu.{}",
                item.name.to_lowercase().replace(' ', "_")
            )),
            remark: Set(String::new()),
            plugin_id: Set(None),
            created_at: Set(now),
            updated_at: Set(now),
        })
        .exec(&txn)
        .await?
        .last_insert_id;
        if item.name == "Dashboard" {
            dashboard = Some(id);
        }
        menu_ids.push(id);
        for (i, child) in item.children.into_iter().enumerate().rev() {
            stack.push((id, i, child));
        }
    }
    for menu_id in &menu_ids {
        role_menu::Entity::insert(role_menu::ActiveModel {
            role_id: Set(role_ids[0]),
            menu_id: Set(*menu_id),
        })
        .exec(&txn)
        .await?;
    }
    if let Some(dashboard) = dashboard {
        role_menu::Entity::insert(role_menu::ActiveModel {
            role_id: Set(role_ids[1]),
            menu_id: Set(dashboard),
        })
        .exec(&txn)
        .await?;
    }
    user_role::Entity::insert(user_role::ActiveModel {
        user_id: Set(admin_user),
        role_id: Set(role_ids[0]),
    })
    .exec(&txn)
    .await?;
    txn.commit().await?;
    tracing::info!(
        menus = menu_ids.len(),
        "seed data inserted: user admin (default password, change it)"
    );
    Ok(true)
}
