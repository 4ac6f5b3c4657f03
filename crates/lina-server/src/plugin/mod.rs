//! Plugins: source plugins compiled into the build ([`SourcePlugin`]) and
//! dynamic plugin packages found in `plugin.dynamic.storagePath`
//! ([`package`]), their state in the database (`sys_plugin`), and each
//! node's view of that state as revisioned caches.
//!
//! - **State** lives in `sys_plugin`: discovered version, installed and
//!   enabled flags, effective (installed) version, runtime state and a
//!   generation that rises with every change. Installed dynamic versions
//!   keep their files in `sys_plugin_file`, so nodes need no shared disk.
//! - **Lifecycle**: [`Plugins::sync`] discovers; install, upgrade and
//!   uninstall run under the cluster lock `plugin-runtime:{id}`, taken
//!   without waiting: when several nodes are asked at once exactly one
//!   executes and the others answer [`Outcome::InProgress`]. Enable and
//!   disable are single updates.
//! - **Caches**: domain `plugin-runtime` holds one entry per plugin (scope =
//!   plugin id), `plugin-index` the list of ids (scope `*`, bumped only when
//!   plugins come or go); `plugin-frontend` and
//!   `plugin-wasm` hold a dynamic plugin's files per `id@version`. A change
//!   to one plugin bumps only that plugin's scopes, so every node reloads
//!   that plugin alone. The runtime domain's stale policy is `hide`: a node
//!   that cannot confirm plugin state hides plugin routes rather than serve
//!   a plugin that may have been disabled.
//! - **Effects of the enabled flag on every node**: the plugin's routes under
//!   `/x/{id}/api/v1` answer 404 while it is not enabled, its menus leave
//!   the permission topology (which every change bumps), and its job
//!   handlers are unregistered, so its jobs pause (never fail) until it is
//!   enabled again. A per-node watcher applies handler changes on the
//!   `plugin-runtime` event, with the revision sweep as the safety net.
//!
//! # Example
//!
//! A source plugin with one page and one route (`docs/plugins.md` walks
//! through every part; `demo.rs` is the full worked example):
//!
//! ```
//! use actix_web::{HttpResponse, web};
//! use lina_server::api::AppState;
//! use lina_server::api::auth::AuthUser;
//! use lina_server::api::error::{ApiError, ok};
//! use lina_server::plugin::{PluginContext, PluginManifest, PluginMenu, SourcePlugin};
//!
//! pub struct Notes;
//!
//! impl SourcePlugin for Notes {
//!     fn manifest(&self) -> PluginManifest {
//!         PluginManifest {
//!             id: "notes".into(),
//!             name: "Notes".into(),
//!             version: "1.0.0".into(),
//!             description: "Team notes".into(),
//!             menus: vec![PluginMenu {
//!                 name: "Notes".into(),
//!                 path: "/notes".into(),
//!                 component: "notes/index".into(),
//!                 perms: "notes:note:query".into(),
//!                 menu_type: "M".into(),
//!                 icon: "lucide:notebook".into(),
//!                 sort: 50,
//!                 i18n_key: "menu.notes".into(),
//!                 children: vec![],
//!             }],
//!         }
//!     }
//!
//!     fn routes(&self, cfg: &mut web::ServiceConfig) {
//!         cfg.route("/count", web::get().to(count));
//!     }
//! }
//!
//! async fn count(
//!     state: web::Data<AppState>,
//!     ctx: web::Data<PluginContext>,
//!     user: AuthUser,
//! ) -> Result<HttpResponse, ApiError> {
//!     state.permissions.require(user.user_id, "notes:note:query").await?;
//!     let n: Option<i64> = ctx.kv.get("stats", "count").await.map_err(ApiError::internal)?;
//!     ok(serde_json::json!({ "count": n.unwrap_or(0) }))
//! }
//!
//! assert!(Notes.manifest().validate().is_ok());
//! // A binary adds it to the build's plugins:
//! let mut plugins = lina_server::plugin::builtin();
//! plugins.push(std::sync::Arc::new(Notes));
//! # let _ = plugins;
//! ```

mod db;
pub mod demo;
pub mod package;
mod registry;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::web;
use lina_cache::{CacheRegistry, KvCache, RevisionedCache, StalePolicy};
use lina_coord_api::{Coordinator, EventItem, LockOptions, unix_millis};
use lina_scheduler::{HandlerInfo, HandlerRegistry, JobHandler, JobSpec, JobStore};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ActiveModelTrait,
    ActiveValue::{NotSet, Set},
    ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter,
    TransactionTrait,
};
use serde::{Deserialize, Serialize};

use crate::entity::{menu, plugin, plugin_file, role, role_menu};

pub use db::enabled_ids;
pub use package::Package;
pub use registry::{PluginSetup, Plugins};

/// The source plugins of this build: the worked example [`demo::Demo`]
/// (discovered, installed only when asked or listed in `plugin.autoEnable`).
pub fn builtin() -> Vec<Arc<dyn SourcePlugin>> {
    vec![Arc::new(demo::Demo)]
}

/// Domain of each plugin's runtime state (scope: plugin id).
pub const RUNTIME_DOMAIN: &str = "plugin-runtime";
/// Domain of a dynamic plugin's frontend assets (scope `id@version`).
pub const FRONTEND_DOMAIN: &str = "plugin-frontend";
/// Domain of a dynamic plugin's wasm module (scope `id@version`).
pub const WASM_DOMAIN: &str = "plugin-wasm";
/// Scope of the list of plugin ids in the `plugin-index` domain.
const INDEX_SCOPE: &str = "*";
/// The permission topology's domain and scope (menus change with plugins).
const PERMISSION_DOMAIN: &str = "permission";
/// How long a lifecycle lock is held at most without renewal.
const LIFECYCLE_LOCK_TTL: Duration = Duration::from_secs(30);

/// What a plugin declares: identity, version and menus. Source plugins
/// return it from [`SourcePlugin::manifest`]; dynamic packages carry it as
/// `plugin.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PluginManifest {
    /// `[a-z][a-z0-9-]{0,63}`.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Semantic version, e.g. `1.2.0`.
    pub version: String,
    /// What it does.
    #[serde(default)]
    pub description: String,
    /// Menus added on install (top-level entries, with children).
    #[serde(default)]
    pub menus: Vec<PluginMenu>,
}

/// One menu of a plugin: a directory (`D`), page (`M`) or button (`B`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PluginMenu {
    /// Display name.
    pub name: String,
    /// Route path (pages and directories).
    #[serde(default)]
    pub path: String,
    /// Frontend component.
    #[serde(default)]
    pub component: String,
    /// Permission code, e.g. `demo:note:add`.
    #[serde(default)]
    pub perms: String,
    /// `D`, `M` or `B`.
    #[serde(rename = "type")]
    pub menu_type: String,
    /// Icon name.
    #[serde(default)]
    pub icon: String,
    /// Order among siblings.
    #[serde(default)]
    pub sort: i32,
    /// i18n key of the title.
    #[serde(default)]
    pub i18n_key: String,
    /// Children (buttons of a page, pages of a directory).
    #[serde(default)]
    pub children: Vec<PluginMenu>,
}

impl PluginManifest {
    /// Checks the id, version and menus.
    pub fn validate(&self) -> Result<semver::Version, String> {
        check_id(&self.id)?;
        if self.name.trim().is_empty() || self.name.chars().count() > 128 {
            return Err(format!(
                "plugin {}: name must be 1 to 128 characters",
                self.id
            ));
        }
        let version = semver::Version::parse(&self.version).map_err(|e| {
            format!(
                "plugin {}: version {:?} is not a semantic version: {e}",
                self.id, self.version
            )
        })?;
        if self.version.len() > 32 {
            return Err(format!("plugin {}: version is too long", self.id));
        }
        fn check_menu(id: &str, m: &PluginMenu, depth: usize) -> Result<(), String> {
            if depth > 4 {
                return Err(format!("plugin {id}: menus nest at most 4 levels"));
            }
            if !matches!(m.menu_type.as_str(), "D" | "M" | "B") {
                return Err(format!(
                    "plugin {id}: menu {:?} has type {:?}, expected D, M or B",
                    m.name, m.menu_type
                ));
            }
            if m.name.trim().is_empty() || m.name.chars().count() > 64 {
                return Err(format!(
                    "plugin {id}: a menu name must be 1 to 64 characters"
                ));
            }
            for (field, value, max) in [
                ("path", &m.path, 200),
                ("component", &m.component, 255),
                ("perms", &m.perms, 100),
                ("icon", &m.icon, 100),
                ("i18nKey", &m.i18n_key, 191),
            ] {
                if value.chars().count() > max {
                    return Err(format!(
                        "plugin {id}: menu {:?} {field} is longer than {max}",
                        m.name
                    ));
                }
            }
            m.children
                .iter()
                .try_for_each(|c| check_menu(id, c, depth + 1))
        }
        self.menus
            .iter()
            .try_for_each(|m| check_menu(&self.id, m, 1))?;
        Ok(version)
    }
}

/// 1 to 64 characters of `a-z`, `0-9` and `-`, starting with a letter.
pub fn check_id(id: &str) -> Result<(), String> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && id.starts_with(|c: char| c.is_ascii_lowercase())
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "plugin id {id:?} must be 1 to 64 characters of a-z, 0-9 and -, starting with a letter"
        ))
    }
}

/// What a source plugin's code can use: its id, the coordinator (locks),
/// its own KV cache scope, the cache registry and the database.
#[derive(Clone)]
pub struct PluginContext {
    /// The plugin's id.
    pub plugin_id: String,
    /// This node's coordinator (locks, revisions, events).
    pub coordinator: Arc<dyn Coordinator>,
    /// The KV cache under this plugin's owner scope.
    pub kv: KvCache,
    /// The shared database.
    pub db: DatabaseConnection,
}

/// A plugin compiled into the build. A crate implements this and the
/// binary passes it to [`crate::cli::run_with_plugins`].
pub trait SourcePlugin: Send + Sync + 'static {
    /// Id, name, version, description and menus.
    fn manifest(&self) -> PluginManifest;

    /// Messages this plugin adds to `locale`'s runtime bundle.
    fn messages(&self, _locale: &str) -> Vec<(String, String)> {
        Vec::new()
    }

    /// Job handlers, registered on every node while the plugin is enabled.
    fn handlers(&self, _ctx: &PluginContext) -> Vec<(HandlerInfo, Arc<dyn JobHandler>)> {
        Vec::new()
    }

    /// Jobs created (once, cluster-wide) when the plugin is installed and
    /// deleted when it is uninstalled.
    fn jobs(&self) -> Vec<JobSpec> {
        Vec::new()
    }

    /// HTTP routes, mounted under `/x/{id}/api/v1` and served only while the
    /// plugin is enabled. Handlers may extract `web::Data<PluginContext>`
    /// and the host's `AuthUser`.
    fn routes(&self, _cfg: &mut web::ServiceConfig) {}
}

/// `source` or `dynamic`.
pub fn plugin_type_name(dynamic: bool) -> &'static str {
    if dynamic { "dynamic" } else { "source" }
}

/// One plugin's state as this node sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PluginState {
    /// Plugin id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// `source` or `dynamic`.
    #[serde(rename = "type")]
    pub plugin_type: String,
    /// What it does.
    pub description: String,
    /// The installed version (`version` of the API).
    pub version: Option<String>,
    /// The installed version.
    pub effective_version: Option<String>,
    /// The version found in the build or the storage path.
    pub discovered_version: Option<String>,
    /// A newer version was discovered.
    pub upgrade_available: bool,
    /// Installed.
    pub installed: bool,
    /// Enabled (implies installed).
    pub enabled: bool,
    /// `normal`, `pending_upgrade`, `upgrade_running`, `upgrade_failed`, `abnormal`.
    pub runtime_state: String,
    /// Rises with every change.
    pub generation: i64,
    /// Last lifecycle error.
    pub last_error: Option<String>,
    /// Unix ms of the install, if installed.
    pub installed_at: Option<i64>,
}

impl PluginState {
    fn from_row(row: &plugin::Model) -> PluginState {
        PluginState {
            id: row.plugin_id.clone(),
            name: row.name.clone(),
            plugin_type: row.plugin_type.clone(),
            description: row.description.clone(),
            version: row
                .effective_version
                .clone()
                .or_else(|| row.discovered_version.clone()),
            effective_version: row.effective_version.clone(),
            discovered_version: row.discovered_version.clone(),
            upgrade_available: row.installed == 1
                && newer(
                    row.discovered_version.as_deref(),
                    row.effective_version.as_deref(),
                ),
            installed: row.installed == 1,
            enabled: row.enabled == 1,
            runtime_state: row.runtime_state.clone(),
            generation: row.generation,
            last_error: row.last_error.clone(),
            installed_at: row.installed_at,
        }
    }
}

/// `candidate` is a higher semantic version than `current`.
fn newer(candidate: Option<&str>, current: Option<&str>) -> bool {
    match (
        candidate.and_then(|v| semver::Version::parse(v).ok()),
        current.and_then(|v| semver::Version::parse(v).ok()),
    ) {
        (Some(c), Some(e)) => c > e,
        _ => false,
    }
}

/// Result of a lifecycle request.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// This node executed it.
    Done(PluginState),
    /// Nothing to do (already installed, already at the newest version…).
    Unchanged(PluginState),
    /// Another node is executing a lifecycle step for this plugin.
    InProgress(Option<PluginState>),
}

/// Errors of plugin operations.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    /// No plugin with this id is known (run sync).
    #[error("no plugin {0} is known; run sync to discover plugins")]
    NotFound(String),
    /// The request does not fit the plugin's state.
    #[error("{0}")]
    Conflict(String),
    /// A package or manifest is invalid.
    #[error("{0}")]
    Invalid(String),
    /// The coordinator failed.
    #[error(transparent)]
    Coordination(#[from] lina_coord_api::Error),
    /// The database failed.
    #[error(transparent)]
    Database(#[from] DbErr),
    /// A cache could not confirm its state.
    #[error("{0}")]
    Cache(String),
    /// The scheduler refused a plugin job.
    #[error(transparent)]
    Scheduler(#[from] lina_scheduler::Error),
}

impl<E: std::fmt::Display> From<lina_cache::CacheError<E>> for PluginError {
    fn from(error: lina_cache::CacheError<E>) -> Self {
        PluginError::Cache(error.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(id: &str, version: &str) -> PluginManifest {
        PluginManifest {
            id: id.into(),
            name: "Demo".into(),
            version: version.into(),
            description: String::new(),
            menus: vec![],
        }
    }

    #[test]
    fn ids_and_versions_are_checked() {
        assert!(manifest("demo", "1.0.0").validate().is_ok());
        assert!(manifest("demo-2", "0.1.0-beta.1").validate().is_ok());
        for bad in ["", "Demo", "1demo", "de mo", "de_mo", &"a".repeat(65)] {
            assert!(manifest(bad, "1.0.0").validate().is_err(), "{bad:?}");
        }
        assert!(manifest("demo", "1.0").validate().is_err());
        let mut m = manifest("demo", "1.0.0");
        m.menus.push(PluginMenu {
            name: "x".into(),
            path: String::new(),
            component: String::new(),
            perms: String::new(),
            menu_type: "Z".into(),
            icon: String::new(),
            sort: 0,
            i18n_key: String::new(),
            children: vec![],
        });
        assert!(m.validate().unwrap_err().contains("expected D, M or B"));
    }

    #[test]
    fn upgrades_need_a_higher_version() {
        assert!(newer(Some("1.1.0"), Some("1.0.0")));
        assert!(newer(Some("1.10.0"), Some("1.9.0")));
        assert!(!newer(Some("1.0.0"), Some("1.0.0")));
        assert!(!newer(Some("0.9.0"), Some("1.0.0")));
        assert!(!newer(None, Some("1.0.0")));
        assert!(!newer(Some("1.0.0"), None));
    }
}
