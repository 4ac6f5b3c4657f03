//! The per-node registry of cache domains: one event listener and one
//! revision sweep for all of them.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use lina_coord_api::{
    Coordinator, Epoch, EventItem, REVISION_EVENT, RevisionKey, Subscription, unix_millis,
};
use serde::Serialize;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::revisioned::{DomainState, RevisionedCache};

/// Timing of the caches (`cache.revisionPoll`, `cache.maxStale`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheSettings {
    /// How often the background sweep re-reads every tracked revision.
    pub revision_poll: Duration,
    /// How long revisions may go unconfirmed before a domain's
    /// [`StalePolicy`] applies.
    pub max_stale: Duration,
}

impl Default for CacheSettings {
    fn default() -> Self {
        CacheSettings {
            revision_poll: Duration::from_secs(1),
            max_stale: Duration::from_secs(10),
        }
    }
}

/// What a domain does when its revisions cannot be confirmed for longer
/// than `maxStale`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StalePolicy {
    /// Refuse with [`crate::CacheError::Stale`] (permissions: never serve a
    /// permission that may have been revoked).
    FailClosed,
    /// Keep serving the last loaded value.
    ServeStale,
    /// Answer [`crate::CacheError::Hidden`]: callers treat the value as absent
    /// (plugin runtime: an unconfirmed plugin is not offered).
    Hide,
}

/// Counters and freshness of one domain, for `/api/v1/system/info` and `/metrics`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DomainStats {
    /// Domain name.
    pub domain: String,
    /// Its stale policy.
    pub policy: StalePolicy,
    /// Scopes loaded now.
    pub entries: usize,
    /// Answers served from memory.
    pub hits: u64,
    /// Answers that needed a load or a revision check.
    pub misses: u64,
    /// Loader runs.
    pub loads: u64,
    /// Scopes dropped because a newer revision was seen.
    pub invalidations: u64,
    /// Stale values served under `serve_stale`.
    pub stale_served: u64,
    /// Answers refused under `fail_closed` or `hide`.
    pub refused: u64,
    /// Unix milliseconds of the last confirmation of this node's revisions.
    pub last_confirmed_ms: Option<i64>,
    /// Each loaded scope with the revision it was loaded at.
    pub scopes: Vec<ScopeStats>,
}

/// One loaded scope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ScopeStats {
    /// The scope.
    pub scope: String,
    /// Revision the value was loaded at (`None` when loaded while
    /// revisions were unreadable).
    pub revision: Option<u64>,
    /// Whether it is confirmed fresh now.
    pub fresh: bool,
}

/// Type-erased view of one domain, for the sweep and the listener.
pub(crate) trait Domain: Send + Sync {
    fn tracked(&self) -> Vec<String>;
    fn observe(&self, scope: &str, revision: u64);
    fn clear(&self);
    fn stats(&self) -> DomainStats;
}

pub(crate) struct Shared {
    pub(crate) coordinator: Arc<dyn Coordinator>,
    pub(crate) settings: CacheSettings,
    base: Instant,
    /// Monotonic mark (nanos since `base`, plus one) of the last sweep that
    /// confirmed every tracked revision; 0 before the first.
    confirmed: AtomicU64,
    confirmed_wall_ms: AtomicI64,
    /// False while the last confirmation is younger than `maxStale`; a
    /// watcher sets it when that deadline passes, so hits read a flag
    /// instead of the clock.
    stale: AtomicBool,
    confirmed_now: Notify,
    /// True while the last revision read (a sweep or a single scope) failed:
    /// stale and missing scopes then answer by their policy at once instead
    /// of each waiting out another timeout. The next successful read (the
    /// sweep keeps trying every `revisionPoll`, and at once after a resync)
    /// clears it.
    read_failing: AtomicBool,
    /// Rises with every change of backend epoch; entries of an older
    /// generation are never served.
    generation: AtomicU64,
    epoch: Mutex<Option<Epoch>>,
    domains: RwLock<BTreeMap<String, Arc<dyn Domain>>>,
    sweep_now: Notify,
    stop: CancellationToken,
}

impl Shared {
    pub(crate) fn mark(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.base).as_nanos() as u64 + 1
    }

    pub(crate) fn confirmed(&self) -> u64 {
        self.confirmed.load(Ordering::Acquire)
    }

    /// Whether the last revision read failed.
    pub(crate) fn read_failing(&self) -> bool {
        self.read_failing.load(Ordering::Acquire)
    }

    /// Records the outcome of a revision read.
    pub(crate) fn note_read(&self, ok: bool) {
        self.read_failing.store(!ok, Ordering::Release);
    }

    /// Whether every tracked revision was confirmed within `maxStale`.
    pub(crate) fn all_fresh(&self) -> bool {
        !self.stale.load(Ordering::Acquire)
    }

    pub(crate) fn confirmed_wall_ms(&self) -> Option<i64> {
        Some(self.confirmed_wall_ms.load(Ordering::Relaxed)).filter(|ms| *ms > 0)
    }

    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Notes a backend epoch; on a change every domain is dropped and the
    /// generation rises. Returns the current generation.
    pub(crate) fn observe_epoch(&self, seen: &Epoch) -> u64 {
        let mut epoch = self.epoch.lock().expect("epoch lock");
        match epoch.as_ref() {
            Some(known) if known == seen => {}
            None => *epoch = Some(seen.clone()),
            Some(known) => {
                tracing::warn!(old = %known, new = %seen, "backend epoch changed: dropping every cached value");
                *epoch = Some(seen.clone());
                self.generation.fetch_add(1, Ordering::AcqRel);
                for domain in self.domains.read().expect("domains lock").values() {
                    domain.clear();
                }
            }
        }
        self.generation()
    }

    fn epoch_is(&self, seen: &Epoch) -> bool {
        self.epoch.lock().expect("epoch lock").as_ref() == Some(seen)
    }

    /// Reads every tracked revision in one round trip and applies them.
    async fn sweep(&self) {
        let domains: Vec<(String, Arc<dyn Domain>)> = self
            .domains
            .read()
            .expect("domains lock")
            .iter()
            .map(|(name, d)| (name.clone(), d.clone()))
            .collect();
        let mut keys = Vec::new();
        let mut owners = Vec::new();
        for (name, domain) in &domains {
            for scope in domain.tracked() {
                keys.push(RevisionKey::new(name.clone(), scope));
                owners.push(domain.clone());
            }
        }
        let sent = Instant::now();
        let revisions = self.coordinator.revisions();
        let result = if keys.is_empty() {
            revisions.epoch().await.map(|epoch| (epoch, Vec::new()))
        } else {
            revisions.current_many(&keys).await.map(|revs| {
                let epoch = revs[0].epoch.clone();
                (epoch, revs)
            })
        };
        self.note_read(result.is_ok());
        match result {
            Ok((epoch, revs)) => {
                let before = self.generation();
                if self.observe_epoch(&epoch) == before {
                    for ((key, domain), rev) in keys.iter().zip(&owners).zip(&revs) {
                        domain.observe(&key.scope, rev.value);
                    }
                }
                self.confirmed.fetch_max(self.mark(sent), Ordering::AcqRel);
                self.confirmed_wall_ms
                    .store(unix_millis(), Ordering::Relaxed);
                if sent.elapsed() < self.settings.max_stale {
                    self.stale.store(false, Ordering::Release);
                }
                self.confirmed_now.notify_one();
            }
            Err(error) => {
                tracing::warn!(%error, tracked = keys.len(), "cache revision sweep failed");
            }
        }
    }
}

struct StopOnDrop(Arc<Shared>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.stop.cancel();
    }
}

/// The caches of one node: registers domains and keeps them coherent with
/// the other nodes — an event listener invalidates single scopes as bumps
/// are announced, and one sweep every `revisionPoll` re-reads all tracked
/// revisions in one round trip (at once after a `Resync`), so a lost event
/// costs at most one poll interval. Dropping the last handle stops both.
#[derive(Clone)]
pub struct CacheRegistry {
    shared: Arc<Shared>,
    _stop: Arc<StopOnDrop>,
}

impl std::fmt::Debug for CacheRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CacheRegistry")
            .field("settings", &self.shared.settings)
            .field(
                "domains",
                &self
                    .shared
                    .domains
                    .read()
                    .expect("domains lock")
                    .keys()
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl CacheRegistry {
    /// Starts the registry of this node: subscribes to events and starts the
    /// revision sweep.
    pub fn start(coordinator: Arc<dyn Coordinator>, settings: CacheSettings) -> Self {
        let events = coordinator.events().subscribe();
        let shared = Arc::new(Shared {
            coordinator,
            settings,
            base: Instant::now(),
            confirmed: AtomicU64::new(0),
            confirmed_wall_ms: AtomicI64::new(0),
            stale: AtomicBool::new(true),
            confirmed_now: Notify::new(),
            read_failing: AtomicBool::new(false),
            generation: AtomicU64::new(0),
            epoch: Mutex::new(None),
            domains: RwLock::new(BTreeMap::new()),
            sweep_now: Notify::new(),
            stop: CancellationToken::new(),
        });
        tokio::spawn(listen(shared.clone(), events));
        tokio::spawn(sweep_loop(shared.clone()));
        tokio::spawn(watch_staleness(shared.clone()));
        shared.sweep_now.notify_one();
        CacheRegistry {
            _stop: Arc::new(StopOnDrop(shared.clone())),
            shared,
        }
    }

    /// Registers the domain `name` (`permission`, `i18n`, …) holding values
    /// of type `V`. Fails when the name is taken or not a valid domain.
    pub fn domain<V: Clone + Send + Sync + 'static>(
        &self,
        name: &str,
        policy: StalePolicy,
    ) -> Result<RevisionedCache<V>, lina_coord_api::Error> {
        lina_coord_api::check_revision_key(name, "-")?;
        let mut domains = self.shared.domains.write().expect("domains lock");
        if domains.contains_key(name) {
            return Err(lina_coord_api::Error::invalid(format!(
                "cache domain {name} is already registered"
            )));
        }
        let state = Arc::new(DomainState::new(name, policy, self.shared.clone()));
        domains.insert(name.to_string(), state.clone());
        Ok(RevisionedCache::from_state(state))
    }

    /// Statistics of every domain, by name.
    pub fn stats(&self) -> Vec<DomainStats> {
        self.shared
            .domains
            .read()
            .expect("domains lock")
            .values()
            .map(|d| d.stats())
            .collect()
    }

    /// Runs a revision sweep now and waits for it (tests, admin tools).
    pub async fn sweep(&self) {
        self.shared.sweep().await;
    }

    /// The settings in force.
    pub fn settings(&self) -> CacheSettings {
        self.shared.settings
    }
}

async fn listen(shared: Arc<Shared>, mut events: Subscription) {
    loop {
        let item = tokio::select! {
            _ = shared.stop.cancelled() => return,
            item = events.recv() => item,
        };
        match item {
            None => return,
            Some(EventItem::Resync { reason }) => {
                tracing::debug!(reason, "cache resync: sweeping now");
                shared.sweep_now.notify_one();
            }
            Some(EventItem::Event(event)) => {
                if event.kind != REVISION_EVENT {
                    continue;
                }
                let Some(revision) = event.revision else {
                    continue;
                };
                if !shared.epoch_is(&revision.epoch) {
                    // Another dataset: let the sweep settle the epoch.
                    shared.sweep_now.notify_one();
                    continue;
                }
                let domain = shared
                    .domains
                    .read()
                    .expect("domains lock")
                    .get(&event.domain)
                    .cloned();
                if let Some(domain) = domain {
                    domain.observe(&event.scope, revision.value);
                }
            }
        }
    }
}

/// Sets the stale flag when `maxStale` passes without a new confirmation.
async fn watch_staleness(shared: Arc<Shared>) {
    loop {
        let confirmed = shared.confirmed();
        if confirmed == 0 {
            tokio::select! {
                _ = shared.stop.cancelled() => return,
                _ = shared.confirmed_now.notified() => continue,
            }
        }
        let deadline =
            shared.base + Duration::from_nanos(confirmed - 1) + shared.settings.max_stale;
        tokio::select! {
            _ = shared.stop.cancelled() => return,
            _ = shared.confirmed_now.notified() => {}
            _ = tokio::time::sleep_until(deadline.into()) => {
                if shared.confirmed() == confirmed {
                    shared.stale.store(true, Ordering::Release);
                    tracing::warn!(max_stale = ?shared.settings.max_stale, "cache revisions unconfirmed for longer than maxStale");
                    tokio::select! {
                        _ = shared.stop.cancelled() => return,
                        _ = shared.confirmed_now.notified() => {}
                    }
                }
            }
        }
    }
}

async fn sweep_loop(shared: Arc<Shared>) {
    loop {
        tokio::select! {
            _ = shared.stop.cancelled() => return,
            _ = tokio::time::sleep(shared.settings.revision_poll) => {}
            _ = shared.sweep_now.notified() => {}
        }
        shared.sweep().await;
    }
}
