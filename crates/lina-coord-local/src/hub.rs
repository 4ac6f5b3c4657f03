//! The shared state of one in-process deployment.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use lina_coord_api::{
    Epoch, Event, EventItem, KeyTtl, LockAttempt, Member, NodeId, OwnerToken, ReleaseSignals,
    random_hex128, unix_millis,
};
use tokio::sync::{broadcast, watch};

const EVENT_BUFFER: usize = 4096;

struct Value {
    bytes: Vec<u8>,
    expires: Option<Instant>,
}

impl Value {
    fn live(&self, now: Instant) -> bool {
        self.expires.is_none_or(|at| now < at)
    }
}

struct LockEntry {
    token: OwnerToken,
    expires: Instant,
}

#[derive(Default)]
struct ElectionEntry {
    holder: Option<(NodeId, OwnerToken, Instant)>,
    term: u64,
}

/// The state every node of one in-process deployment shares: a single-node
/// server has a hub of its own; tests put several coordinators on one hub to
/// act as several nodes.
pub struct LocalHub {
    epoch: Mutex<Epoch>,
    kv: Mutex<HashMap<String, Value>>,
    locks: Mutex<HashMap<String, LockEntry>>,
    fences: Mutex<HashMap<String, u64>>,
    lock_signals: ReleaseSignals,
    revisions: Mutex<HashMap<(String, String), u64>>,
    election: Mutex<ElectionEntry>,
    election_signal: watch::Sender<u64>,
    subscribers: Mutex<HashMap<u64, broadcast::Sender<EventItem>>>,
    next_instance: AtomicU64,
    last_event_ms: AtomicI64,
    members: Mutex<HashMap<NodeId, Member>>,
}

impl std::fmt::Debug for LocalHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalHub")
            .field("epoch", &self.epoch)
            .finish()
    }
}

impl Default for LocalHub {
    fn default() -> Self {
        LocalHub::new()
    }
}

fn guard<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding one of these short critical sections leaves
    // plain data behind; keep serving it.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl LocalHub {
    /// An empty deployment with a fresh random epoch.
    pub fn new() -> Self {
        LocalHub {
            epoch: Mutex::new(Epoch(random_hex128())),
            kv: Mutex::default(),
            locks: Mutex::default(),
            fences: Mutex::default(),
            lock_signals: ReleaseSignals::default(),
            revisions: Mutex::default(),
            election: Mutex::default(),
            election_signal: watch::channel(0).0,
            subscribers: Mutex::default(),
            next_instance: AtomicU64::new(1),
            last_event_ms: AtomicI64::new(0),
            members: Mutex::default(),
        }
    }

    /// The deployment's epoch; it changes only through [`LocalHub::lose_data`].
    pub fn epoch(&self) -> Epoch {
        guard(&self.epoch).clone()
    }

    /// Simulates a loss of the shared state, as a Redis restarted without
    /// persistence would have (fault injection for tests): values,
    /// revisions, locks and the lease are gone, the epoch changes and every
    /// subscriber gets a `Resync`. Fencing counters and the term keep
    /// rising, as Redis's clock-seeded counters do.
    pub fn lose_data(&self) {
        *guard(&self.epoch) = Epoch(random_hex128());
        guard(&self.kv).clear();
        guard(&self.locks).clear();
        guard(&self.revisions).clear();
        guard(&self.election).holder = None;
        let resync = EventItem::Resync {
            reason: "local hub lost its data (epoch changed)".to_string(),
        };
        for tx in guard(&self.subscribers).values() {
            let _ = tx.send(resync.clone());
        }
    }

    /// Deletes lock `name` behind its holder's back (fault injection for
    /// tests and a last-resort admin tool). Waiters are not told.
    pub fn break_lock(&self, name: &str) {
        guard(&self.locks).remove(name);
    }

    /// Drops expired values and locks.
    pub(crate) fn purge_expired(&self) {
        let now = Instant::now();
        guard(&self.kv).retain(|_, v| v.live(now));
        guard(&self.locks).retain(|_, l| now < l.expires);
    }

    // ---- key-value ----

    pub(crate) fn kv_get(&self, key: &str) -> Option<Vec<u8>> {
        let now = Instant::now();
        guard(&self.kv)
            .get(key)
            .filter(|v| v.live(now))
            .map(|v| v.bytes.clone())
    }

    pub(crate) fn kv_set(&self, key: &str, bytes: &[u8], ttl: Option<Duration>) {
        let expires = ttl.map(|t| Instant::now() + t);
        guard(&self.kv).insert(
            key.to_string(),
            Value {
                bytes: bytes.to_vec(),
                expires,
            },
        );
    }

    pub(crate) fn kv_set_nx(&self, key: &str, bytes: &[u8], ttl: Option<Duration>) -> bool {
        let now = Instant::now();
        let mut kv = guard(&self.kv);
        if kv.get(key).is_some_and(|v| v.live(now)) {
            return false;
        }
        kv.insert(
            key.to_string(),
            Value {
                bytes: bytes.to_vec(),
                expires: ttl.map(|t| now + t),
            },
        );
        true
    }

    pub(crate) fn kv_delete(&self, key: &str) -> bool {
        let now = Instant::now();
        guard(&self.kv).remove(key).is_some_and(|v| v.live(now))
    }

    pub(crate) fn kv_compare_and_delete(&self, key: &str, expected: &[u8]) -> bool {
        let now = Instant::now();
        let mut kv = guard(&self.kv);
        if kv
            .get(key)
            .is_some_and(|v| v.live(now) && v.bytes == expected)
        {
            kv.remove(key);
            true
        } else {
            false
        }
    }

    pub(crate) fn kv_incr_by(
        &self,
        key: &str,
        delta: i64,
        ttl: Option<Duration>,
    ) -> Result<i64, String> {
        let now = Instant::now();
        let mut kv = guard(&self.kv);
        let (current, expires) = match kv.get(key).filter(|v| v.live(now)) {
            Some(v) => {
                let text = std::str::from_utf8(&v.bytes)
                    .map_err(|_| format!("value of {key} is not an integer"))?;
                let n: i64 = text
                    .parse()
                    .map_err(|_| format!("value of {key} is not an integer"))?;
                (n, v.expires)
            }
            None => (0, None),
        };
        let next = current
            .checked_add(delta)
            .ok_or_else(|| format!("incrementing {key} by {delta} overflows"))?;
        let expires = expires.or_else(|| ttl.map(|t| now + t));
        kv.insert(
            key.to_string(),
            Value {
                bytes: next.to_string().into_bytes(),
                expires,
            },
        );
        Ok(next)
    }

    pub(crate) fn kv_expire(&self, key: &str, ttl: Duration) -> bool {
        let now = Instant::now();
        match guard(&self.kv).get_mut(key).filter(|v| v.live(now)) {
            Some(v) => {
                v.expires = Some(now + ttl);
                true
            }
            None => false,
        }
    }

    pub(crate) fn kv_ttl(&self, key: &str) -> KeyTtl {
        let now = Instant::now();
        match guard(&self.kv).get(key).filter(|v| v.live(now)) {
            None => KeyTtl::Missing,
            Some(Value { expires: None, .. }) => KeyTtl::Persistent,
            Some(Value {
                expires: Some(at), ..
            }) => KeyTtl::Expires(at.duration_since(now)),
        }
    }

    // ---- locks ----

    pub(crate) fn lock_try_acquire(
        &self,
        name: &str,
        token: &OwnerToken,
        ttl: Duration,
    ) -> LockAttempt {
        let now = Instant::now();
        let mut locks = guard(&self.locks);
        if let Some(held) = locks.get(name)
            && now < held.expires
            && held.token != *token
        {
            return LockAttempt::Busy {
                remaining: Some(held.expires.duration_since(now)),
            };
        }
        locks.insert(
            name.to_string(),
            LockEntry {
                token: token.clone(),
                expires: now + ttl,
            },
        );
        let mut fences = guard(&self.fences);
        let fence = fences.entry(name.to_string()).or_insert(0);
        *fence += 1;
        LockAttempt::Acquired {
            fencing_token: *fence,
        }
    }

    pub(crate) fn lock_release(&self, name: &str, token: &OwnerToken) -> bool {
        let now = Instant::now();
        let released = {
            let mut locks = guard(&self.locks);
            match locks.get(name) {
                Some(held) if held.token == *token => {
                    let live = now < held.expires;
                    locks.remove(name);
                    live
                }
                _ => false,
            }
        };
        if released {
            self.lock_signals.notify(name);
        }
        released
    }

    pub(crate) fn lock_extend(&self, name: &str, token: &OwnerToken, ttl: Duration) -> bool {
        let now = Instant::now();
        match guard(&self.locks).get_mut(name) {
            Some(held) if held.token == *token && now < held.expires => {
                held.expires = now + ttl;
                true
            }
            _ => false,
        }
    }

    pub(crate) fn lock_signal(&self, name: &str) -> watch::Receiver<u64> {
        self.lock_signals.subscribe(name)
    }

    // ---- election ----

    pub(crate) fn lease_try_acquire(
        &self,
        node: &NodeId,
        token: &OwnerToken,
        lease: Duration,
    ) -> Result<u64, (Option<NodeId>, u64, Duration)> {
        let now = Instant::now();
        let mut election = guard(&self.election);
        if let Some((holder, held_token, expires)) = &election.holder
            && now < *expires
            && held_token != token
        {
            return Err((
                Some(holder.clone()),
                election.term,
                expires.duration_since(now),
            ));
        }
        election.holder = Some((node.clone(), token.clone(), now + lease));
        election.term += 1;
        Ok(election.term)
    }

    pub(crate) fn lease_renew(&self, token: &OwnerToken, lease: Duration) -> bool {
        let now = Instant::now();
        match guard(&self.election).holder.as_mut() {
            Some((_, held, expires)) if held == token && now < *expires => {
                *expires = now + lease;
                true
            }
            _ => false,
        }
    }

    pub(crate) fn lease_release(&self, token: &OwnerToken) -> bool {
        let now = Instant::now();
        let released = {
            let mut election = guard(&self.election);
            match &election.holder {
                Some((_, held, expires)) if held == token => {
                    let live = now < *expires;
                    election.holder = None;
                    live
                }
                _ => false,
            }
        };
        if released {
            self.election_signal.send_modify(|n| *n = n.wrapping_add(1));
        }
        released
    }

    pub(crate) fn lease_signal(&self) -> watch::Receiver<u64> {
        self.election_signal.subscribe()
    }

    // ---- revisions and events ----

    pub(crate) fn revision_bump(&self, domain: &str, scope: &str) -> u64 {
        let mut revisions = guard(&self.revisions);
        let value = revisions
            .entry((domain.to_string(), scope.to_string()))
            .or_insert(0);
        *value += 1;
        *value
    }

    pub(crate) fn revision_current(&self, domain: &str, scope: &str) -> u64 {
        guard(&self.revisions)
            .get(&(domain.to_string(), scope.to_string()))
            .copied()
            .unwrap_or(0)
    }

    pub(crate) fn subscribe(&self, instance: u64) -> broadcast::Receiver<EventItem> {
        guard(&self.subscribers)
            .entry(instance)
            .or_insert_with(|| broadcast::channel(EVENT_BUFFER).0)
            .subscribe()
    }

    pub(crate) fn publish(&self, event: Event) {
        self.last_event_ms.store(unix_millis(), Ordering::Relaxed);
        let item = EventItem::Event(event);
        for tx in guard(&self.subscribers).values() {
            // No receiver yet is fine: delivery is at most once.
            let _ = tx.send(item.clone());
        }
    }

    pub(crate) fn last_event_ms(&self) -> Option<i64> {
        Some(self.last_event_ms.load(Ordering::Relaxed)).filter(|ms| *ms > 0)
    }

    pub(crate) fn new_instance(&self) -> u64 {
        self.next_instance.fetch_add(1, Ordering::Relaxed)
    }

    pub(crate) fn close_instance(&self, instance: u64) {
        guard(&self.subscribers).remove(&instance);
    }

    // ---- membership ----

    pub(crate) fn heartbeat(&self, member: Member) {
        guard(&self.members).insert(member.node_id.clone(), member);
    }

    pub(crate) fn leave(&self, node: &NodeId) {
        guard(&self.members).remove(node);
    }

    pub(crate) fn members(&self, max_age: Duration) -> Vec<Member> {
        let oldest = unix_millis() - max_age.as_millis() as i64;
        let mut members = guard(&self.members);
        members.retain(|_, m| m.last_seen_ms >= oldest);
        let mut list: Vec<Member> = members.values().cloned().collect();
        list.sort_by(|a, b| a.node_id.cmp(&b.node_id));
        list
    }
}
