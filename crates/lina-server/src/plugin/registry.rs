//! [`Plugins`]: this node's registry of plugins and their lifecycle (sync,
//! install, upgrade, uninstall, enable, disable), its per-plugin caches and
//! the watcher that keeps job handlers in line with plugin state.

use super::db::*;
use super::*;

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
