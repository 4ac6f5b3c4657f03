//! The permission topology (users → roles → menus and their codes) as a
//! revisioned cache, domain `permission`, scope = tenant (`0` without
//! tenants). Checks on the request path make no Redis or database round
//! trip while fresh, and fail closed past `maxStale`. Every write to users,
//! roles, menus or assignments bumps the scope.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use lina_cache::{CacheRegistry, RevisionedCache, StalePolicy};
use sea_orm::{DatabaseConnection, DbErr, EntityTrait};

use super::error::ApiError;
use crate::entity::{menu, role, role_menu, user, user_role};

/// The only tenant scope for now.
pub const TENANT: &str = "0";
/// Passes every check.
pub const ALL_PERMISSIONS: &str = "*:*:*";

/// One user's view.
#[derive(Debug, Clone, Default)]
pub struct UserAccess {
    /// User name.
    pub username: String,
    /// Display name.
    pub nickname: String,
    /// E-mail address.
    pub email: String,
    /// Avatar URL.
    pub avatar: String,
    /// Still the seeded default password.
    pub default_password: bool,
    /// Normal (1) or disabled (0).
    pub status: i16,
    /// Role keys.
    pub roles: Vec<String>,
    /// Menu ids the user can see.
    pub menus: HashSet<i64>,
    /// Permission codes.
    pub permissions: HashSet<String>,
    /// The `admin` user or a holder of `*:*:*`.
    pub superuser: bool,
}

/// Everything a permission check needs.
#[derive(Debug, Default)]
pub struct Topology {
    /// By user id.
    pub users: HashMap<i64, Arc<UserAccess>>,
    /// Every enabled menu, by sort order.
    pub menus: Vec<menu::Model>,
    /// Response bodies rendered from this topology, by user and route; a
    /// new topology (any change) starts empty.
    pub rendered: dashmap::DashMap<(i64, &'static str), actix_web::web::Bytes>,
}

/// The topology cache of this node.
#[derive(Clone)]
pub struct Permissions {
    cache: RevisionedCache<Arc<Topology>>,
    db: DatabaseConnection,
}

impl Permissions {
    /// Registers the `permission` domain (fail closed).
    pub fn new(caches: &CacheRegistry, db: DatabaseConnection) -> anyhow::Result<Self> {
        Ok(Permissions {
            cache: caches.domain("permission", StalePolicy::FailClosed)?,
            db,
        })
    }

    /// The topology, from memory while fresh.
    pub async fn topology(&self) -> Result<Arc<Topology>, ApiError> {
        let db = self.db.clone();
        Ok(self
            .cache
            .get_or_load(TENANT, || async move { load(&db).await.map(Arc::new) })
            .await?)
    }

    /// Announces a change of users, roles, menus or assignments to every node.
    pub async fn changed(&self) -> Result<(), ApiError> {
        self.cache.bump(TENANT).await?;
        Ok(())
    }

    /// The user's access, or 401 when the user is gone or disabled.
    pub async fn access(&self, user_id: i64) -> Result<Arc<UserAccess>, ApiError> {
        let topology = self.topology().await?;
        match topology.users.get(&user_id) {
            Some(access) if access.status == 1 => Ok(access.clone()),
            Some(_) => Err(ApiError::unauthorized(
                "AUTH_USER_DISABLED",
                "error.auth.user.disabled",
                "the user is disabled",
            )),
            None => Err(ApiError::unauthorized(
                "AUTH_USER_UNKNOWN",
                "error.auth.user.unknown",
                "the user no longer exists",
            )),
        }
    }

    /// 403 unless the user holds `permission` (or is a superuser).
    pub async fn require(
        &self,
        user_id: i64,
        permission: &str,
    ) -> Result<Arc<UserAccess>, ApiError> {
        let access = self.access(user_id).await?;
        if access.superuser || access.permissions.contains(permission) {
            Ok(access)
        } else {
            Err(ApiError::forbidden(permission))
        }
    }
}

async fn load(db: &DatabaseConnection) -> Result<Topology, DbErr> {
    let users = user::Entity::find().all(db).await?;
    let roles: HashMap<i64, role::Model> = role::Entity::find()
        .all(db)
        .await?
        .into_iter()
        .map(|r| (r.id, r))
        .collect();
    let mut menus = menu::Entity::find().all(db).await?;
    // Menus of plugins that are not installed and enabled are not there.
    let plugins = crate::plugin::enabled_ids(db).await?;
    menus.retain(|m| m.status == 1 && m.plugin_id.as_ref().is_none_or(|p| plugins.contains(p)));
    menus.sort_by_key(|m| (m.parent_id, m.sort, m.id));
    let menu_perms: HashMap<i64, &str> = menus.iter().map(|m| (m.id, m.perms.as_str())).collect();
    let mut role_menus: HashMap<i64, Vec<i64>> = HashMap::new();
    for rm in role_menu::Entity::find().all(db).await? {
        role_menus.entry(rm.role_id).or_default().push(rm.menu_id);
    }
    let mut user_roles: HashMap<i64, Vec<i64>> = HashMap::new();
    for ur in user_role::Entity::find().all(db).await? {
        user_roles.entry(ur.user_id).or_default().push(ur.role_id);
    }
    let mut out = HashMap::new();
    for u in users {
        let mut access = UserAccess {
            status: u.status,
            superuser: u.username == "admin",
            nickname: u.nickname.clone(),
            email: u.email.clone(),
            avatar: u.avatar.clone(),
            default_password: u.default_password == 1,
            username: u.username.clone(),
            ..UserAccess::default()
        };
        for role_id in user_roles.get(&u.id).into_iter().flatten() {
            let Some(role) = roles.get(role_id).filter(|r| r.status == 1) else {
                continue;
            };
            access.roles.push(role.role_key.clone());
            for menu_id in role_menus.get(role_id).into_iter().flatten() {
                if let Some(perms) = menu_perms.get(menu_id) {
                    access.menus.insert(*menu_id);
                    if !perms.is_empty() {
                        access.permissions.insert(perms.to_string());
                    }
                }
            }
        }
        if access.permissions.contains(ALL_PERMISSIONS) {
            access.superuser = true;
        }
        if access.superuser {
            access.menus = menu_perms.keys().copied().collect();
        }
        access.roles.sort();
        out.insert(u.id, Arc::new(access));
    }
    Ok(Topology {
        users: out,
        menus,
        rendered: Default::default(),
    })
}
