//! [`RevisionedCache`]: values per scope, loaded once, kept until a newer
//! revision of their scope is seen.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use dashmap::DashMap;
use lina_coord_api::Revision;

use crate::error::CacheError;
use crate::registry::{Domain, DomainStats, ScopeStats, Shared, StalePolicy};

struct Entry<V> {
    value: V,
    /// Revision the value was loaded at; `None` when loaded while the
    /// revision could not be read (serve_stale only): never fresh.
    revision: Option<u64>,
    generation: u64,
    /// Monotonic mark of the load (or of a later direct confirmation).
    confirmed: u64,
}

#[derive(Default)]
struct Counters {
    hits: AtomicU64,
    misses: AtomicU64,
    loads: AtomicU64,
    invalidations: AtomicU64,
    stale_served: AtomicU64,
    refused: AtomicU64,
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

pub(crate) struct DomainState<V> {
    name: String,
    policy: StalePolicy,
    shared: Arc<Shared>,
    entries: DashMap<String, Entry<V>>,
    /// Highest revision seen per scope in this generation (events, sweeps,
    /// loads), so a load that raced a bump is not kept.
    known: DashMap<String, u64>,
    gates: DashMap<String, Arc<tokio::sync::Mutex<()>>>,
    counters: Counters,
}

#[derive(Clone)]
enum Lookup<V> {
    Fresh(V),
    Stale(V, Duration),
    Missing,
}

impl<V: Clone + Send + Sync + 'static> DomainState<V> {
    pub(crate) fn new(name: &str, policy: StalePolicy, shared: Arc<Shared>) -> Self {
        DomainState {
            name: name.to_string(),
            policy,
            shared,
            entries: DashMap::new(),
            known: DashMap::new(),
            gates: DashMap::new(),
            counters: Counters::default(),
        }
    }

    fn lookup(&self, scope: &str) -> Lookup<V> {
        let Some(entry) = self.entries.get(scope) else {
            return Lookup::Missing;
        };
        if entry.generation != self.shared.generation() {
            return Lookup::Missing;
        }
        if entry.revision.is_some() && self.shared.all_fresh() {
            // The registry confirmed every tracked revision within maxStale
            // (and a newer load confirmed itself): no clock read needed.
            return Lookup::Fresh(entry.value.clone());
        }
        let now = self.shared.mark(Instant::now());
        let confirmed = if entry.revision.is_some() {
            entry.confirmed.max(self.shared.confirmed())
        } else {
            0
        };
        let age = Duration::from_nanos(now.saturating_sub(confirmed));
        if confirmed > 0 && age <= self.shared.settings.max_stale {
            Lookup::Fresh(entry.value.clone())
        } else {
            Lookup::Stale(entry.value.clone(), age)
        }
    }

    /// The answer for a value that exists but cannot be confirmed.
    fn stale<E>(&self, value: V, age: Duration) -> Result<V, CacheError<E>> {
        match self.policy {
            StalePolicy::ServeStale => {
                bump(&self.counters.stale_served);
                Ok(value)
            }
            StalePolicy::FailClosed => {
                bump(&self.counters.refused);
                Err(CacheError::Stale {
                    domain: self.name.clone(),
                    age,
                    max_stale: self.shared.settings.max_stale,
                })
            }
            StalePolicy::Hide => {
                bump(&self.counters.refused);
                Err(CacheError::Hidden {
                    domain: self.name.clone(),
                })
            }
        }
    }

    fn store(&self, scope: &str, value: V, revision: Option<u64>, generation: u64, sent: Instant) {
        self.entries.insert(
            scope.to_string(),
            Entry {
                value,
                revision,
                generation,
                confirmed: self.shared.mark(sent),
            },
        );
    }

    fn known(&self, scope: &str) -> u64 {
        self.known.get(scope).map(|k| *k).unwrap_or(0)
    }

    fn raise_known(&self, scope: &str, revision: u64) {
        let mut known = self.known.entry(scope.to_string()).or_insert(0);
        *known = (*known).max(revision);
    }

    async fn get_or_load<E, F, Fut>(&self, scope: &str, loader: F) -> Result<V, CacheError<E>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<V, E>>,
    {
        match self.lookup(scope) {
            Lookup::Fresh(value) => {
                bump(&self.counters.hits);
                return Ok(value);
            }
            // Past maxStale while reads fail: the policy answers at once.
            Lookup::Stale(value, age) if self.shared.read_failing() => {
                return self.stale(value, age);
            }
            _ => {}
        }
        let gate = self
            .gates
            .entry(scope.to_string())
            .or_insert_with(|| Arc::new(tokio::sync::Mutex::new(())))
            .clone();
        let result = match gate.try_lock() {
            // Nobody is reading this scope: this caller reads.
            Ok(_single_flight) => self.load_locked(scope, loader, false).await,
            Err(_) => {
                let _single_flight = gate.lock().await;
                self.load_locked(scope, loader, true).await
            }
        };
        drop(gate);
        self.gates
            .remove_if(scope, |_, g| Arc::strong_count(g) == 1);
        result
    }

    /// Reads the scope's revision and loads if needed, holding the scope's
    /// gate; `waited` when another caller held it first.
    async fn load_locked<E, F, Fut>(
        &self,
        scope: &str,
        loader: F,
        waited: bool,
    ) -> Result<V, CacheError<E>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<V, E>>,
    {
        let previous = match self.lookup(scope) {
            Lookup::Fresh(value) => {
                // Another caller loaded it while we waited.
                bump(&self.counters.hits);
                return Ok(value);
            }
            lookup => {
                // The caller before us has just found revisions unreadable:
                // answer now instead of waiting out another timeout.
                if waited && let Some(answer) = self.fail_fast(scope, lookup.clone()) {
                    return answer;
                }
                match lookup {
                    Lookup::Stale(value, age) => Some((value, age)),
                    _ => None,
                }
            }
        };
        bump(&self.counters.misses);
        let sent = Instant::now();
        let revision: Result<Revision, _> = self
            .shared
            .coordinator
            .revisions()
            .current(&self.name, scope)
            .await;
        self.shared.note_read(revision.is_ok());
        let revision = match revision {
            Ok(revision) => revision,
            Err(source) => {
                return match (self.policy, previous) {
                    (StalePolicy::ServeStale, Some((value, _))) => {
                        bump(&self.counters.stale_served);
                        Ok(value)
                    }
                    (StalePolicy::ServeStale, None) => {
                        // Nothing to serve: load, but never count it fresh.
                        let value = self.run_loader(scope, loader).await?;
                        let generation = self.shared.generation();
                        self.store(scope, value.clone(), None, generation, sent);
                        bump(&self.counters.stale_served);
                        Ok(value)
                    }
                    (_, Some((value, age))) => self.stale(value, age),
                    (StalePolicy::Hide, None) => self.stale_missing(),
                    (StalePolicy::FailClosed, None) => {
                        bump(&self.counters.refused);
                        Err(CacheError::Coordination {
                            domain: self.name.clone(),
                            scope: scope.to_string(),
                            source,
                        })
                    }
                };
            }
        };
        let generation = self.shared.observe_epoch(&revision.epoch);
        self.raise_known(scope, revision.value);
        if let Some(mut entry) = self.entries.get_mut(scope)
            && entry.generation == generation
            && entry.revision == Some(revision.value)
        {
            // Unchanged: the value we hold is confirmed again.
            entry.confirmed = self.shared.mark(sent);
            bump(&self.counters.hits);
            return Ok(entry.value.clone());
        }
        let value = self.run_loader(scope, loader).await?;
        if self.known(scope) <= revision.value && self.shared.generation() == generation {
            self.store(scope, value.clone(), Some(revision.value), generation, sent);
        } else {
            // A bump raced the load: serve what was read, keep nothing.
            self.entries.remove(scope);
        }
        Ok(value)
    }

    /// For a caller that waited on the scope's gate while revision reads
    /// are failing: a scope stale past `maxStale` answers by the domain's
    /// policy, a missing one of a `fail_closed` or `hide` domain is refused,
    /// so requests never queue behind one timed-out read after another (at
    /// most one read per scope is in flight; every caller waits at most one
    /// command timeout). `None`: go on and read (serve_stale may still load a
    /// missing scope from its source, which needs no revision).
    fn fail_fast<E>(&self, scope: &str, lookup: Lookup<V>) -> Option<Result<V, CacheError<E>>> {
        if !self.shared.read_failing() {
            return None;
        }
        match (lookup, self.policy) {
            (Lookup::Stale(value, age), _) => Some(self.stale(value, age)),
            (Lookup::Missing, StalePolicy::Hide) => Some(self.stale_missing()),
            (Lookup::Missing, StalePolicy::FailClosed) => {
                bump(&self.counters.refused);
                Some(Err(CacheError::Coordination {
                    domain: self.name.clone(),
                    scope: scope.to_string(),
                    source: lina_coord_api::Error::Unavailable(
                        "revisions could not be read; retried by the next sweep".into(),
                    ),
                }))
            }
            _ => None,
        }
    }

    fn stale_missing<E>(&self) -> Result<V, CacheError<E>> {
        bump(&self.counters.refused);
        Err(CacheError::Hidden {
            domain: self.name.clone(),
        })
    }

    async fn run_loader<E, F, Fut>(&self, scope: &str, loader: F) -> Result<V, CacheError<E>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<V, E>>,
    {
        bump(&self.counters.loads);
        loader().await.map_err(|source| CacheError::Load {
            domain: self.name.clone(),
            scope: scope.to_string(),
            source,
        })
    }
}

impl<V: Clone + Send + Sync + 'static> Domain for DomainState<V> {
    fn tracked(&self) -> Vec<String> {
        self.entries.iter().map(|e| e.key().clone()).collect()
    }

    fn observe(&self, scope: &str, revision: u64) {
        self.raise_known(scope, revision);
        let removed = self
            .entries
            .remove_if(scope, |_, e| e.revision.is_none_or(|r| r < revision));
        if removed.is_some() {
            bump(&self.counters.invalidations);
            tracing::debug!(domain = %self.name, scope, revision, "cache scope invalidated");
        }
    }

    fn clear(&self) {
        let dropped = self.entries.len() as u64;
        self.entries.clear();
        self.known.clear();
        self.counters
            .invalidations
            .fetch_add(dropped, Ordering::Relaxed);
    }

    fn stats(&self) -> DomainStats {
        let mut scopes: Vec<ScopeStats> = self
            .entries
            .iter()
            .map(|e| ScopeStats {
                scope: e.key().clone(),
                revision: e.revision,
                fresh: false,
            })
            .collect();
        for scope in &mut scopes {
            scope.fresh = matches!(self.lookup(&scope.scope), Lookup::Fresh(_));
        }
        scopes.sort_by(|a, b| a.scope.cmp(&b.scope));
        let c = &self.counters;
        DomainStats {
            domain: self.name.clone(),
            policy: self.policy,
            entries: scopes.len(),
            hits: c.hits.load(Ordering::Relaxed),
            misses: c.misses.load(Ordering::Relaxed),
            loads: c.loads.load(Ordering::Relaxed),
            invalidations: c.invalidations.load(Ordering::Relaxed),
            stale_served: c.stale_served.load(Ordering::Relaxed),
            refused: c.refused.load(Ordering::Relaxed),
            last_confirmed_ms: self.shared.confirmed_wall_ms(),
            scopes,
        }
    }
}

/// A cache domain on this node: one value per scope (a tenant, a locale, a
/// plugin id, …), loaded once and served from memory — no Redis or
/// database round trip — while its revision is confirmed fresh.
///
/// A value is dropped when a newer revision of its scope is announced (by
/// an event, or found by the registry's sweep); other scopes and domains
/// are untouched. Concurrent misses of one scope run the loader once.
#[derive(Clone)]
pub struct RevisionedCache<V> {
    state: Arc<DomainState<V>>,
}

impl<V> std::fmt::Debug for RevisionedCache<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RevisionedCache")
            .field("domain", &self.state.name)
            .field("policy", &self.state.policy)
            .finish()
    }
}

impl<V: Clone + Send + Sync + 'static> RevisionedCache<V> {
    pub(crate) fn from_state(state: Arc<DomainState<V>>) -> Self {
        RevisionedCache { state }
    }

    /// The domain's name.
    pub fn domain(&self) -> &str {
        &self.state.name
    }

    /// The value of `scope`: from memory when fresh, else from `loader`
    /// (once, however many callers miss at the same time). When revisions
    /// cannot be confirmed for longer than `maxStale`, the domain's
    /// [`StalePolicy`] decides.
    ///
    /// A hit is decided before any future is built: the returned future
    /// then only hands the value over, and the (large) loading future is
    /// allocated on a miss alone.
    pub fn get_or_load<'a, E, F, Fut>(
        &'a self,
        scope: &'a str,
        loader: F,
    ) -> impl Future<Output = Result<V, CacheError<E>>> + 'a
    where
        E: 'a,
        F: FnOnce() -> Fut + 'a,
        Fut: Future<Output = Result<V, E>> + 'a,
    {
        enum Answer<V, M> {
            Hit(V),
            Miss(M),
        }
        let answer = match self.state.lookup(scope) {
            Lookup::Fresh(value) => {
                bump(&self.state.counters.hits);
                Answer::Hit(value)
            }
            _ => Answer::Miss(Box::pin(self.state.get_or_load(scope, loader))),
        };
        async move {
            match answer {
                Answer::Hit(value) => Ok(value),
                Answer::Miss(miss) => miss.await,
            }
        }
    }

    /// Announces a change of `scope` to every node: raises its revision
    /// (which publishes the event) and drops this node's copy at once.
    pub async fn bump(&self, scope: &str) -> lina_coord_api::Result<Revision> {
        let revision = self
            .state
            .shared
            .coordinator
            .revisions()
            .bump(&self.state.name, scope)
            .await?;
        self.state.shared.observe_epoch(&revision.epoch);
        self.state.observe(scope, revision.value);
        Ok(revision)
    }

    /// Whether `scope` is loaded on this node now (fresh or not).
    pub fn is_loaded(&self, scope: &str) -> bool {
        self.state.entries.contains_key(scope)
    }

    /// This domain's statistics.
    pub fn stats(&self) -> DomainStats {
        self.state.stats()
    }
}
