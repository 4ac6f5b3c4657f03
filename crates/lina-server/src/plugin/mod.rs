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

pub mod demo;
pub mod package;

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

pub use package::Package;

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

type Files = Arc<HashMap<String, web::Bytes>>;

struct Inner {
    db: DatabaseConnection,
    coordinator: Arc<dyn Coordinator>,
    storage: PathBuf,
    sources: BTreeMap<String, (Arc<dyn SourcePlugin>, PluginContext)>,
    runtime: RevisionedCache<Option<Arc<PluginState>>>,
    index: RevisionedCache<Arc<Vec<String>>>,
    frontend: RevisionedCache<Files>,
    wasm: RevisionedCache<Option<web::Bytes>>,
    handlers: Arc<HandlerRegistry>,
    jobs: JobStore,
    /// Source plugins whose handlers are registered on this node.
    registered: Mutex<HashSet<String>>,
}

/// This node's plugin registry and lifecycle.
#[derive(Clone)]
pub struct Plugins {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Plugins {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plugins")
            .field("sources", &self.inner.sources.keys().collect::<Vec<_>>())
            .field("storage", &self.inner.storage)
            .finish()
    }
}

/// Everything [`Plugins::new`] needs from the node.
pub struct PluginSetup<'a> {
    /// Shared database.
    pub db: DatabaseConnection,
    /// Coordinator.
    pub coordinator: Arc<dyn Coordinator>,
    /// The node's cache registry.
    pub caches: &'a CacheRegistry,
    /// The scheduler's handler registry.
    pub handlers: Arc<HandlerRegistry>,
    /// The scheduler's job store.
    pub jobs: JobStore,
    /// `plugin.dynamic.storagePath`.
    pub storage: PathBuf,
}

impl Plugins {
    /// Registers the plugin cache domains and the source plugins (ids must
    /// be unique and valid).
    pub fn new(
        setup: PluginSetup<'_>,
        sources: Vec<Arc<dyn SourcePlugin>>,
    ) -> anyhow::Result<Plugins> {
        let mut by_id = BTreeMap::new();
        for source in sources {
            let manifest = source.manifest();
            manifest.validate().map_err(anyhow::Error::msg)?;
            let ctx = PluginContext {
                plugin_id: manifest.id.clone(),
                coordinator: setup.coordinator.clone(),
                kv: KvCache::for_plugin(setup.coordinator.clone(), &manifest.id)?,
                db: setup.db.clone(),
            };
            if by_id.insert(manifest.id.clone(), (source, ctx)).is_some() {
                anyhow::bail!("two source plugins have the id {}", manifest.id);
            }
        }
        Ok(Plugins {
            inner: Arc::new(Inner {
                runtime: setup.caches.domain(RUNTIME_DOMAIN, StalePolicy::Hide)?,
                index: setup
                    .caches
                    .domain("plugin-index", StalePolicy::ServeStale)?,
                frontend: setup
                    .caches
                    .domain(FRONTEND_DOMAIN, StalePolicy::ServeStale)?,
                wasm: setup.caches.domain(WASM_DOMAIN, StalePolicy::ServeStale)?,
                db: setup.db,
                coordinator: setup.coordinator,
                storage: setup.storage,
                sources: by_id,
                handlers: setup.handlers,
                jobs: setup.jobs,
                registered: Mutex::new(HashSet::new()),
            }),
        })
    }

    /// The source plugins of this build, with their contexts.
    pub fn sources(&self) -> impl Iterator<Item = (&str, &Arc<dyn SourcePlugin>, &PluginContext)> {
        self.inner
            .sources
            .iter()
            .map(|(id, (p, ctx))| (id.as_str(), p, ctx))
    }

    /// Discovers source plugins and dynamic packages, records them, and
    /// applies `plugin.autoEnable`. Called by every node at start (under the
    /// cluster lock `plugin-sync`) and by `POST /plugins/sync`.
    pub async fn sync(&self) -> Result<Vec<PluginState>, PluginError> {
        let guard = self
            .inner
            .coordinator
            .locks()
            .acquire(
                "plugin-sync",
                LockOptions::ttl(LIFECYCLE_LOCK_TTL)
                    .wait(Duration::from_secs(30))
                    .watchdog(),
            )
            .await?;
        let result = self.sync_locked().await;
        if let Err(error) = guard.release().await {
            tracing::warn!(%error, "plugin-sync lock was lost before its release");
        }
        result
    }

    async fn sync_locked(&self) -> Result<Vec<PluginState>, PluginError> {
        let mut discovered: BTreeMap<String, (PluginManifest, bool)> = BTreeMap::new();
        for (id, (source, _)) in &self.inner.sources {
            discovered.insert(id.clone(), (source.manifest(), false));
        }
        for found in package::scan(&self.inner.storage) {
            match found {
                Ok(pkg) => {
                    if discovered.contains_key(&pkg.manifest.id) {
                        tracing::warn!(plugin = %pkg.manifest.id, "a dynamic package has the id of a source plugin; ignored");
                        continue;
                    }
                    discovered.insert(pkg.manifest.id.clone(), (pkg.manifest, true));
                }
                Err(error) => tracing::warn!(%error, "plugin package ignored"),
            }
        }
        let rows: HashMap<String, plugin::Model> = plugin::Entity::find()
            .all(&self.inner.db)
            .await?
            .into_iter()
            .map(|r| (r.plugin_id.clone(), r))
            .collect();
        let now = unix_millis();
        let mut changed = Vec::new();
        let mut index_changed = false;
        for (id, (manifest, dynamic)) in &discovered {
            let manifest_json = serde_json::to_string(manifest).unwrap_or_default();
            match rows.get(id) {
                None => {
                    plugin::Entity::insert(plugin::ActiveModel {
                        plugin_id: Set(id.clone()),
                        name: Set(manifest.name.clone()),
                        plugin_type: Set(plugin_type_name(*dynamic).into()),
                        description: Set(manifest.description.clone()),
                        discovered_version: Set(Some(manifest.version.clone())),
                        effective_version: Set(None),
                        installed: Set(0),
                        enabled: Set(0),
                        runtime_state: Set("normal".into()),
                        generation: Set(1),
                        last_error: Set(None),
                        manifest: Set(manifest_json),
                        installed_at: Set(None),
                        updated_at: Set(now),
                    })
                    .exec_without_returning(&self.inner.db)
                    .await?;
                    index_changed = true;
                    changed.push(id.clone());
                }
                Some(row) => {
                    let state = runtime_state_after_sync(row, Some(&manifest.version));
                    if row.discovered_version.as_deref() != Some(manifest.version.as_str())
                        || row.runtime_state != state
                        || row.name != manifest.name
                        || row.plugin_type != plugin_type_name(*dynamic)
                    {
                        plugin::Entity::update_many()
                            .col_expr(plugin::Column::Name, Expr::value(manifest.name.clone()))
                            .col_expr(
                                plugin::Column::PluginType,
                                Expr::value(plugin_type_name(*dynamic)),
                            )
                            .col_expr(
                                plugin::Column::Description,
                                Expr::value(manifest.description.clone()),
                            )
                            .col_expr(
                                plugin::Column::DiscoveredVersion,
                                Expr::value(manifest.version.clone()),
                            )
                            .col_expr(plugin::Column::RuntimeState, Expr::value(state))
                            .col_expr(plugin::Column::Manifest, Expr::value(manifest_json))
                            .col_expr(plugin::Column::Generation, next_generation())
                            .col_expr(plugin::Column::UpdatedAt, Expr::value(now))
                            .filter(plugin::Column::PluginId.eq(id.as_str()))
                            .exec(&self.inner.db)
                            .await?;
                        changed.push(id.clone());
                    }
                }
            }
        }
        // Known plugins that are no longer in the build or the storage path.
        for (id, row) in &rows {
            if discovered.contains_key(id) {
                continue;
            }
            if row.installed == 0 {
                plugin::Entity::delete_by_id(id.clone())
                    .exec(&self.inner.db)
                    .await?;
                index_changed = true;
                changed.push(id.clone());
            } else {
                let state = runtime_state_after_sync(row, None);
                if row.discovered_version.is_some() || row.runtime_state != state {
                    plugin::Entity::update_many()
                        .col_expr(
                            plugin::Column::DiscoveredVersion,
                            Expr::value(Option::<String>::None),
                        )
                        .col_expr(plugin::Column::RuntimeState, Expr::value(state))
                        .col_expr(plugin::Column::Generation, next_generation())
                        .col_expr(plugin::Column::UpdatedAt, Expr::value(now))
                        .filter(plugin::Column::PluginId.eq(id.as_str()))
                        .exec(&self.inner.db)
                        .await?;
                    changed.push(id.clone());
                }
            }
        }
        for id in &changed {
            self.inner.runtime.bump(id).await?;
        }
        if index_changed {
            self.inner.index.bump(INDEX_SCOPE).await?;
        }
        self.list_from_db().await
    }

    /// `plugin.autoEnable`: installs and enables each listed plugin that is
    /// not yet (cluster-safe: a node that finds the lock taken leaves it to
    /// the holder).
    pub async fn auto_enable(&self, ids: &[String]) {
        for id in ids {
            let result = async {
                match self.install(id).await? {
                    Outcome::InProgress(_) => return Ok(()),
                    Outcome::Done(_) | Outcome::Unchanged(_) => {}
                }
                self.set_enabled(id, true).await.map(|_| ())
            }
            .await;
            if let Err(error) = result {
                tracing::warn!(plugin = %id, %error, "plugin.autoEnable failed");
            }
        }
    }

    async fn list_from_db(&self) -> Result<Vec<PluginState>, PluginError> {
        let mut rows = plugin::Entity::find().all(&self.inner.db).await?;
        rows.sort_by(|a, b| a.plugin_id.cmp(&b.plugin_id));
        Ok(rows.iter().map(PluginState::from_row).collect())
    }

    /// Every known plugin as this node sees it (from memory while fresh).
    pub async fn list(&self) -> Result<Vec<Arc<PluginState>>, PluginError> {
        let db = self.inner.db.clone();
        let ids = self
            .inner
            .index
            .get_or_load(INDEX_SCOPE, || async move {
                let rows = plugin::Entity::find().all(&db).await?;
                let mut ids: Vec<String> = rows.into_iter().map(|r| r.plugin_id).collect();
                ids.sort();
                Ok::<_, DbErr>(Arc::new(ids))
            })
            .await?;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids.iter() {
            if let Some(state) = self.state(id).await? {
                out.push(state);
            }
        }
        Ok(out)
    }

    /// One plugin's state, from memory while fresh.
    pub async fn state(&self, id: &str) -> Result<Option<Arc<PluginState>>, PluginError> {
        let db = self.inner.db.clone();
        let key = id.to_string();
        Ok(self
            .inner
            .runtime
            .get_or_load(id, || async move {
                Ok::<_, DbErr>(
                    plugin::Entity::find_by_id(key)
                        .one(&db)
                        .await?
                        .map(|row| Arc::new(PluginState::from_row(&row))),
                )
            })
            .await?)
    }

    /// Whether `id` is installed and enabled, as this node sees it; `false`
    /// when its state cannot be confirmed (policy `hide`).
    pub async fn is_enabled(&self, id: &str) -> bool {
        matches!(self.state(id).await, Ok(Some(s)) if s.enabled && s.installed)
    }

    async fn row(&self, id: &str) -> Result<plugin::Model, PluginError> {
        plugin::Entity::find_by_id(id.to_string())
            .one(&self.inner.db)
            .await?
            .ok_or_else(|| PluginError::NotFound(id.to_string()))
    }

    /// Runs `step` under the cluster lock `plugin-runtime:{id}`, taken
    /// without waiting.
    async fn exclusive<F, Fut>(&self, id: &str, step: F) -> Result<Outcome, PluginError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Outcome, PluginError>>,
    {
        check_id(id).map_err(PluginError::Invalid)?;
        let lock = format!("plugin-runtime:{id}");
        let guard = match self
            .inner
            .coordinator
            .locks()
            .acquire(&lock, LockOptions::ttl(LIFECYCLE_LOCK_TTL).watchdog())
            .await
        {
            Ok(guard) => guard,
            Err(lina_coord_api::Error::LockBusy { .. }) => {
                let state = self.row(id).await.ok().map(|r| PluginState::from_row(&r));
                return Ok(Outcome::InProgress(state));
            }
            Err(error) => return Err(error.into()),
        };
        let result = {
            let lost = guard.lost();
            tokio::select! {
                result = step() => result,
                _ = lost => Err(PluginError::Conflict(format!(
                    "the lock {lock} was lost while the step ran; check the plugin's state"
                ))),
            }
        };
        if let Err(error) = guard.release().await {
            tracing::warn!(%error, %lock, "plugin lifecycle lock was lost before its release");
        }
        result
    }

    /// Installs (and enables) a discovered plugin.
    pub async fn install(&self, id: &str) -> Result<Outcome, PluginError> {
        self.exclusive(id, || async {
            let row = self.row(id).await?;
            if row.installed == 1 {
                return Ok(Outcome::Unchanged(PluginState::from_row(&row)));
            }
            let Some(version) = row.discovered_version.clone() else {
                return Err(PluginError::Conflict(format!(
                    "plugin {id} is no longer discovered; run sync"
                )));
            };
            let manifest = self.discovered_manifest(&row, &version)?;
            let txn = self.inner.db.begin().await?;
            if row.plugin_type == "dynamic" {
                store_files(&txn, id, &version, &self.inner.storage).await?;
            }
            insert_menus(&txn, id, &manifest.menus, &[]).await?;
            row_update(id)
                .col_expr(plugin::Column::Installed, Expr::value(1))
                .col_expr(plugin::Column::Enabled, Expr::value(1))
                .col_expr(plugin::Column::EffectiveVersion, Expr::value(version))
                .col_expr(plugin::Column::RuntimeState, Expr::value("normal"))
                .col_expr(
                    plugin::Column::LastError,
                    Expr::value(Option::<String>::None),
                )
                .col_expr(plugin::Column::InstalledAt, Expr::value(unix_millis()))
                .exec(&txn)
                .await?;
            txn.commit().await?;
            self.changed(id, true).await?;
            self.apply_handlers(id, true);
            self.ensure_jobs(id).await?;
            Ok(Outcome::Done(PluginState::from_row(&self.row(id).await?)))
        })
        .await
    }

    /// The manifest of the discovered version: the build's for a source
    /// plugin, the package's (checked against the recorded version) for a
    /// dynamic one.
    fn discovered_manifest(
        &self,
        row: &plugin::Model,
        version: &str,
    ) -> Result<PluginManifest, PluginError> {
        if let Some((source, _)) = self.inner.sources.get(&row.plugin_id) {
            return Ok(source.manifest());
        }
        let pkg =
            Package::read(&self.inner.storage, &row.plugin_id).map_err(PluginError::Invalid)?;
        if pkg.manifest.version != version {
            return Err(PluginError::Conflict(format!(
                "the package of {} now holds version {}, not {version}; run sync",
                row.plugin_id, pkg.manifest.version
            )));
        }
        Ok(pkg.manifest)
    }

    /// Upgrades an installed plugin to its discovered version.
    pub async fn upgrade(&self, id: &str) -> Result<Outcome, PluginError> {
        self.exclusive(id, || async {
            let row = self.row(id).await?;
            if row.installed == 0 {
                return Err(PluginError::Conflict(format!(
                    "plugin {id} is not installed; install it instead"
                )));
            }
            let (Some(target), Some(current)) = (
                row.discovered_version.clone(),
                row.effective_version.clone(),
            ) else {
                return Ok(Outcome::Unchanged(PluginState::from_row(&row)));
            };
            if !newer(Some(&target), Some(&current)) {
                return Ok(Outcome::Unchanged(PluginState::from_row(&row)));
            }
            self.set_runtime_state(id, "upgrade_running", None).await?;
            match self.run_upgrade(&row, &current, &target).await {
                Ok(()) => {
                    self.changed(id, true).await?;
                    self.ensure_jobs(id).await?;
                    Ok(Outcome::Done(PluginState::from_row(&self.row(id).await?)))
                }
                Err(error) => {
                    tracing::warn!(plugin = %id, %error, "plugin upgrade failed");
                    self.set_runtime_state(id, "upgrade_failed", Some(error.to_string()))
                        .await?;
                    Err(error)
                }
            }
        })
        .await
    }

    async fn run_upgrade(
        &self,
        row: &plugin::Model,
        current: &str,
        target: &str,
    ) -> Result<(), PluginError> {
        let id = row.plugin_id.as_str();
        let manifest = self.discovered_manifest(row, target)?;
        let txn = self.inner.db.begin().await?;
        if row.plugin_type == "dynamic" {
            store_files(&txn, id, target, &self.inner.storage).await?;
            plugin_file::Entity::delete_many()
                .filter(plugin_file::Column::PluginId.eq(id))
                .filter(plugin_file::Column::Version.eq(current))
                .exec(&txn)
                .await?;
        }
        let granted = remove_menus(&txn, id).await?;
        insert_menus(&txn, id, &manifest.menus, &granted).await?;
        row_update(id)
            .col_expr(plugin::Column::EffectiveVersion, Expr::value(target))
            .col_expr(plugin::Column::RuntimeState, Expr::value("normal"))
            .col_expr(
                plugin::Column::LastError,
                Expr::value(Option::<String>::None),
            )
            .exec(&txn)
            .await?;
        txn.commit().await?;
        Ok(())
    }

    async fn set_runtime_state(
        &self,
        id: &str,
        state: &str,
        error: Option<String>,
    ) -> Result<(), PluginError> {
        row_update(id)
            .col_expr(plugin::Column::RuntimeState, Expr::value(state))
            .col_expr(plugin::Column::LastError, Expr::value(error))
            .exec(&self.inner.db)
            .await?;
        self.inner.runtime.bump(id).await?;
        Ok(())
    }

    /// Uninstalls: removes menus, jobs and stored files; the plugin stays
    /// discovered (or is forgotten when it no longer is).
    pub async fn uninstall(&self, id: &str) -> Result<Outcome, PluginError> {
        self.exclusive(id, || async {
            let row = self.row(id).await?;
            if row.installed == 0 {
                return Ok(Outcome::Unchanged(PluginState::from_row(&row)));
            }
            self.apply_handlers(id, false);
            self.inner.jobs.delete_plugin_jobs(id).await?;
            let txn = self.inner.db.begin().await?;
            remove_menus(&txn, id).await?;
            plugin_file::Entity::delete_many()
                .filter(plugin_file::Column::PluginId.eq(id))
                .exec(&txn)
                .await?;
            let forget = row.discovered_version.is_none();
            if forget {
                plugin::Entity::delete_by_id(id.to_string())
                    .exec(&txn)
                    .await?;
            } else {
                row_update(id)
                    .col_expr(plugin::Column::Installed, Expr::value(0))
                    .col_expr(plugin::Column::Enabled, Expr::value(0))
                    .col_expr(
                        plugin::Column::EffectiveVersion,
                        Expr::value(Option::<String>::None),
                    )
                    .col_expr(
                        plugin::Column::InstalledAt,
                        Expr::value(Option::<i64>::None),
                    )
                    .col_expr(plugin::Column::RuntimeState, Expr::value("normal"))
                    .col_expr(
                        plugin::Column::LastError,
                        Expr::value(Option::<String>::None),
                    )
                    .exec(&txn)
                    .await?;
            }
            txn.commit().await?;
            self.changed(id, forget).await?;
            let state = match self.row(id).await {
                Ok(row) => PluginState::from_row(&row),
                Err(_) => PluginState {
                    installed: false,
                    enabled: false,
                    generation: row.generation + 1,
                    ..PluginState::from_row(&row)
                },
            };
            Ok(Outcome::Done(state))
        })
        .await
    }

    /// Enables or disables an installed plugin. Idempotent.
    pub async fn set_enabled(&self, id: &str, enabled: bool) -> Result<Outcome, PluginError> {
        check_id(id).map_err(PluginError::Invalid)?;
        let row = self.row(id).await?;
        if row.installed == 0 {
            return Err(PluginError::Conflict(format!(
                "plugin {id} is not installed"
            )));
        }
        if (row.enabled == 1) == enabled {
            return Ok(Outcome::Unchanged(PluginState::from_row(&row)));
        }
        row_update(id)
            .col_expr(plugin::Column::Enabled, Expr::value(i16::from(enabled)))
            .filter(plugin::Column::Installed.eq(1))
            .exec(&self.inner.db)
            .await?;
        self.changed(id, false).await?;
        self.apply_handlers(id, enabled);
        Ok(Outcome::Done(PluginState::from_row(&self.row(id).await?)))
    }

    /// Announces a change of plugin `id`: its runtime scope, the list when
    /// plugins came or went, and the permission topology (menus). Messages
    /// need nothing: a source plugin's are part of the build (see the
    /// [`MessageSource`](crate::api::i18n::MessageSource) impl).
    async fn changed(&self, id: &str, index: bool) -> Result<(), PluginError> {
        self.inner.runtime.bump(id).await?;
        if index {
            self.inner.index.bump(INDEX_SCOPE).await?;
        }
        self.inner
            .coordinator
            .revisions()
            .bump(PERMISSION_DOMAIN, crate::api::permission::TENANT)
            .await?;
        Ok(())
    }

    async fn ensure_jobs(&self, id: &str) -> Result<(), PluginError> {
        if let Some((source, _)) = self.inner.sources.get(id) {
            for spec in source.jobs() {
                self.inner.jobs.ensure_builtin(&spec, Some(id)).await?;
            }
        }
        Ok(())
    }

    /// Registers or unregisters a source plugin's job handlers on this node.
    fn apply_handlers(&self, id: &str, enabled: bool) {
        let Some((source, ctx)) = self.inner.sources.get(id) else {
            return;
        };
        let mut registered = self.inner.registered.lock().expect("registered lock");
        if enabled && !registered.contains(id) {
            for (info, handler) in source.handlers(ctx) {
                let name = info.name.clone();
                if let Err(error) = self.inner.handlers.register(info, handler) {
                    tracing::warn!(plugin = %id, handler = %name, %error, "plugin handler not registered");
                }
            }
            registered.insert(id.to_string());
            tracing::info!(plugin = %id, "plugin enabled on this node: handlers registered");
        } else if !enabled && registered.remove(id) {
            for (info, _) in source.handlers(ctx) {
                self.inner.handlers.unregister(&info.name);
            }
            tracing::info!(plugin = %id, "plugin disabled on this node: handlers removed, its jobs pause");
        }
    }

    /// Brings this node's handler registrations in line with every source
    /// plugin's state.
    pub async fn reconcile(&self) {
        for id in self.inner.sources.keys() {
            match self.state(id).await {
                Ok(state) => {
                    let enabled = state.is_some_and(|s| s.installed && s.enabled);
                    self.apply_handlers(id, enabled);
                }
                Err(error) => {
                    tracing::debug!(plugin = %id, %error, "plugin state unknown; handlers left as they are");
                }
            }
        }
    }

    /// Starts the per-node watcher: reconciles handlers at once, on every
    /// `plugin-runtime` event, after a resync, and every `poll` as the
    /// safety net. Ends when `stop` is cancelled.
    pub fn watch(&self, poll: Duration, stop: tokio_util::sync::CancellationToken) {
        let plugins = self.clone();
        let mut events = self.inner.coordinator.events().subscribe();
        tokio::spawn(async move {
            plugins.reconcile().await;
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    item = events.recv() => match item {
                        None => return,
                        Some(EventItem::Event(event)) if event.domain != RUNTIME_DOMAIN => continue,
                        Some(_) => {
                            // Let the cache listener drop the scope first.
                            tokio::task::yield_now().await;
                        }
                    },
                    _ = tokio::time::sleep(poll) => {}
                }
                plugins.reconcile().await;
            }
        });
    }

    /// A dynamic plugin's frontend file at `path`, for the installed
    /// version, while the plugin is enabled.
    pub async fn asset(&self, id: &str, path: &str) -> Result<Option<web::Bytes>, PluginError> {
        let Some(version) = self.enabled_version(id).await? else {
            return Ok(None);
        };
        let db = self.inner.db.clone();
        let (key, ver) = (id.to_string(), version.clone());
        let files = self
            .inner
            .frontend
            .get_or_load(&format!("{id}@{version}"), || async move {
                let rows = plugin_file::Entity::find()
                    .filter(plugin_file::Column::PluginId.eq(key))
                    .filter(plugin_file::Column::Version.eq(ver))
                    .all(&db)
                    .await?;
                Ok::<_, DbErr>(Arc::new(
                    rows.into_iter()
                        .filter_map(|r| {
                            r.path
                                .strip_prefix("frontend/")
                                .map(|p| (p.to_string(), web::Bytes::from(r.content)))
                        })
                        .collect::<HashMap<_, _>>(),
                ))
            })
            .await?;
        Ok(files.get(path).cloned())
    }

    /// A dynamic plugin's wasm module, for the installed version, while the
    /// plugin is enabled.
    pub async fn wasm(&self, id: &str) -> Result<Option<web::Bytes>, PluginError> {
        let Some(version) = self.enabled_version(id).await? else {
            return Ok(None);
        };
        let db = self.inner.db.clone();
        let (key, ver) = (id.to_string(), version.clone());
        Ok(self
            .inner
            .wasm
            .get_or_load(&format!("{id}@{version}"), || async move {
                Ok::<_, DbErr>(
                    plugin_file::Entity::find()
                        .filter(plugin_file::Column::PluginId.eq(key))
                        .filter(plugin_file::Column::Version.eq(ver))
                        .filter(plugin_file::Column::Path.eq(package::WASM_PATH))
                        .one(&db)
                        .await?
                        .map(|r| web::Bytes::from(r.content)),
                )
            })
            .await?)
    }

    async fn enabled_version(&self, id: &str) -> Result<Option<String>, PluginError> {
        if check_id(id).is_err() {
            return Ok(None);
        }
        Ok(self
            .state(id)
            .await?
            .filter(|s| s.installed && s.enabled)
            .and_then(|s| s.effective_version.clone()))
    }
}

/// Every source plugin's messages, whatever its state: they are part of
/// the build, so bundles never depend on a plugin's enabled flag (a
/// disabled plugin's keys are simply unused) and plugin changes never need
/// a bundle reload.
impl crate::api::i18n::MessageSource for Plugins {
    fn messages(&self, locale: &str) -> Vec<(String, String)> {
        self.inner
            .sources
            .values()
            .flat_map(|(source, _)| source.messages(locale))
            .collect()
    }
}

/// An update of plugin `id`'s row that raises its generation and stamps
/// its time; callers add the columns they change.
fn row_update(id: &str) -> sea_orm::UpdateMany<plugin::Entity> {
    plugin::Entity::update_many()
        .col_expr(plugin::Column::Generation, next_generation())
        .col_expr(plugin::Column::UpdatedAt, Expr::value(unix_millis()))
        .filter(plugin::Column::PluginId.eq(id))
}

/// `generation + 1`: every change to a plugin's row raises it.
fn next_generation() -> Expr {
    Expr::col(plugin::Column::Generation).add(1)
}

/// The runtime state a sync leaves: a running or failed upgrade stays; an
/// installed plugin that vanished is `abnormal`; a newer discovered version
/// is `pending_upgrade`.
fn runtime_state_after_sync(row: &plugin::Model, discovered: Option<&str>) -> &'static str {
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
async fn store_files(
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
async fn remove_menus(db: &impl ConnectionTrait, id: &str) -> Result<Vec<i64>, DbErr> {
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
async fn insert_menus(
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
