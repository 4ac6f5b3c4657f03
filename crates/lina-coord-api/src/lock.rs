//! Locks with owner tokens, fencing tokens, watchdog renewal and lost-lock
//! notification: the [`Locks`] capability and [`LockService`], the protocol
//! every backend shares over its atomic [`LockBackend`] primitives.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tokio::sync::watch;
use tokio::time::{sleep, sleep_until, timeout_at};
use tokio_util::sync::CancellationToken;

use crate::election::changed;
use crate::error::{Error, Result};
use crate::key::check_lock_name;
use crate::types::{FencingToken, OwnerToken};

/// How to take a lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockOptions {
    /// How long the lock lives without renewal.
    pub ttl: Duration,
    /// How long to wait for a held lock; `None` tries once.
    pub wait: Option<Duration>,
    /// Renew every `ttl / 3` until released, and report loss through
    /// [`LockGuard::lost`].
    pub watchdog: bool,
}

impl Default for LockOptions {
    fn default() -> Self {
        LockOptions {
            ttl: Duration::from_secs(30),
            wait: None,
            watchdog: false,
        }
    }
}

impl LockOptions {
    /// Options with this TTL, no wait, no watchdog.
    pub fn ttl(ttl: Duration) -> Self {
        LockOptions {
            ttl,
            ..LockOptions::default()
        }
    }

    /// The same options waiting up to `wait` for a held lock.
    pub fn wait(mut self, wait: Duration) -> Self {
        self.wait = Some(wait);
        self
    }

    /// The same options with the watchdog on.
    pub fn watchdog(mut self) -> Self {
        self.watchdog = true;
        self
    }
}

/// Named locks.
#[async_trait]
pub trait Locks: Send + Sync {
    /// Takes the lock `name`, waiting as `options` say. Fails with
    /// [`Error::LockBusy`] when it is still held after the wait.
    async fn acquire(&self, name: &str, options: LockOptions) -> Result<LockGuard>;

    /// Counters of this process's acquisitions, for metrics.
    fn stats(&self) -> LockStats {
        LockStats::default()
    }
}

/// Counters of one process's lock acquisitions since it started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LockStats {
    /// Locks taken.
    pub acquired: u64,
    /// Acquisitions that found the lock held and waited (taken or not).
    pub waited: u64,
    /// Acquisitions refused because the lock stayed held.
    pub busy: u64,
    /// Total time spent waiting for held locks, in microseconds.
    pub wait_micros: u64,
}

#[derive(Debug, Default)]
struct LockCounters {
    acquired: AtomicU64,
    waited: AtomicU64,
    busy: AtomicU64,
    wait_micros: AtomicU64,
}

/// Outcome of one acquire attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockAttempt {
    /// Taken, with the next fencing token of this name.
    Acquired {
        /// Strictly rising per lock name.
        fencing_token: FencingToken,
    },
    /// Held by another owner.
    Busy {
        /// The holder's remaining TTL, when known.
        remaining: Option<Duration>,
    },
}

/// Atomic lock primitives a backend provides.
#[async_trait]
pub trait LockBackend: Send + Sync + 'static {
    /// Takes `name` for `token` if free, raising its fencing counter.
    /// `waiting` is how much longer the caller will wait when the lock is
    /// busy: a backend may use it to announce releases only while someone
    /// waits.
    async fn try_acquire(
        &self,
        name: &str,
        token: &OwnerToken,
        ttl: Duration,
        waiting: Option<Duration>,
    ) -> Result<LockAttempt>;

    /// Deletes `name` if it holds `token` and announces the release; false
    /// when it did not hold `token`.
    async fn release(&self, name: &str, token: &OwnerToken) -> Result<bool>;

    /// Extends `name` to `ttl` if it holds `token`; false otherwise.
    async fn extend(&self, name: &str, token: &OwnerToken, ttl: Duration) -> Result<bool>;

    /// A counter that changes when a release of `name` is announced.
    fn release_signal(&self, name: &str) -> watch::Receiver<u64>;
}

/// Per-name release counters for backends: waiters subscribe before they
/// try, so a release between their attempt and their wait is never missed.
#[derive(Debug, Default)]
pub struct ReleaseSignals {
    senders: Mutex<HashMap<String, watch::Sender<u64>>>,
}

impl ReleaseSignals {
    /// A receiver for releases of `name`.
    pub fn subscribe(&self, name: &str) -> watch::Receiver<u64> {
        let mut senders = self.senders.lock().expect("release signals lock");
        senders.retain(|_, tx| tx.receiver_count() > 0);
        senders
            .entry(name.to_string())
            .or_insert_with(|| watch::channel(0).0)
            .subscribe()
    }

    /// Wakes the waiters of `name`.
    pub fn notify(&self, name: &str) {
        let senders = self.senders.lock().expect("release signals lock");
        if let Some(tx) = senders.get(name) {
            tx.send_modify(|n| *n = n.wrapping_add(1));
        }
    }

    /// Wakes every waiter (after a reconnect, when releases may have been missed).
    pub fn notify_all(&self) {
        let senders = self.senders.lock().expect("release signals lock");
        for tx in senders.values() {
            tx.send_modify(|n| *n = n.wrapping_add(1));
        }
    }
}

/// The lock protocol over a [`LockBackend`]: waiting on release
/// announcements (never busy-polling), guards, watchdog.
#[derive(Clone)]
pub struct LockService {
    backend: Arc<dyn LockBackend>,
    counters: Arc<LockCounters>,
}

impl LockService {
    /// Wraps a backend.
    pub fn new(backend: Arc<dyn LockBackend>) -> Self {
        LockService {
            backend,
            counters: Arc::default(),
        }
    }

    /// Counts the end of one acquisition that started at `started` and
    /// waited from `waited_since` (if it ever found the lock held).
    fn count(&self, acquired: bool, waited_since: Option<Instant>) {
        let c = &self.counters;
        if acquired {
            c.acquired.fetch_add(1, Ordering::Relaxed);
        } else {
            c.busy.fetch_add(1, Ordering::Relaxed);
        }
        if let Some(since) = waited_since {
            c.waited.fetch_add(1, Ordering::Relaxed);
            let micros = u64::try_from(since.elapsed().as_micros()).unwrap_or(u64::MAX);
            c.wait_micros.fetch_add(micros, Ordering::Relaxed);
        }
    }
}

const MIN_TTL: Duration = Duration::from_millis(10);

#[async_trait]
impl Locks for LockService {
    fn stats(&self) -> LockStats {
        let c = &self.counters;
        LockStats {
            acquired: c.acquired.load(Ordering::Relaxed),
            waited: c.waited.load(Ordering::Relaxed),
            busy: c.busy.load(Ordering::Relaxed),
            wait_micros: c.wait_micros.load(Ordering::Relaxed),
        }
    }

    async fn acquire(&self, name: &str, options: LockOptions) -> Result<LockGuard> {
        check_lock_name(name)?;
        if options.ttl < MIN_TTL {
            return Err(Error::invalid(format!(
                "lock ttl {:?} must be at least {MIN_TTL:?}",
                options.ttl
            )));
        }
        let token = OwnerToken::random();
        let wait_until = options.wait.map(|w| Instant::now() + w);
        let mut waited_since: Option<Instant> = None;
        loop {
            let mut releases = self.backend.release_signal(name);
            let sent = Instant::now();
            let waiting = wait_until.map(|until| until.saturating_duration_since(sent));
            let attempt = self
                .backend
                .try_acquire(name, &token, options.ttl, waiting)
                .await;
            let now = Instant::now();
            let retry_at = match attempt {
                Ok(LockAttempt::Acquired { fencing_token }) => {
                    self.count(true, waited_since);
                    return Ok(LockGuard::start(
                        self.backend.clone(),
                        name,
                        token,
                        fencing_token,
                        options,
                        sent,
                    ));
                }
                Ok(LockAttempt::Busy { remaining }) => match wait_until {
                    Some(until) if now < until => {
                        waited_since.get_or_insert(sent);
                        now + remaining.unwrap_or(options.ttl) + Duration::from_millis(1)
                    }
                    _ => {
                        self.count(false, waited_since);
                        return Err(Error::LockBusy {
                            name: name.to_string(),
                        });
                    }
                },
                Err(error) if error.is_retryable() => match wait_until {
                    Some(until) if now < until => now + Duration::from_millis(50),
                    _ => return Err(error),
                },
                Err(error) => return Err(error),
            };
            let until = wait_until.expect("waiting implies a wait deadline");
            tokio::select! {
                _ = changed(&mut releases) => {}
                _ = sleep_until(retry_at.min(until).into()) => {}
            }
        }
    }
}

/// Margin by which a guard considers itself lost before the backend key
/// would expire: a tenth of the TTL.
fn local_deadline(sent: Instant, ttl: Duration) -> Instant {
    sent + ttl - ttl / 10
}

/// Proof of holding a lock. Dropping it releases the lock in the background;
/// [`LockGuard::release`] releases it and reports the outcome.
pub struct LockGuard {
    name: String,
    token: OwnerToken,
    fencing_token: FencingToken,
    backend: Arc<dyn LockBackend>,
    state: Arc<GuardState>,
    released: bool,
}

struct GuardState {
    deadline: Mutex<Instant>,
    lost: CancellationToken,
    stop: CancellationToken,
    /// Whether a task already watches the deadline (the watchdog, or a timer
    /// started by `lost_token`); without one, `lost()` watches it itself, so
    /// a plain acquisition spawns nothing.
    timer: std::sync::atomic::AtomicBool,
}

impl GuardState {
    fn deadline(&self) -> Instant {
        *self.deadline.lock().expect("guard deadline lock")
    }

    fn set_deadline(&self, deadline: Instant) {
        *self.deadline.lock().expect("guard deadline lock") = deadline;
    }
}

impl std::fmt::Debug for LockGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LockGuard")
            .field("name", &self.name)
            .field("token", &self.token)
            .field("fencing_token", &self.fencing_token)
            .finish()
    }
}

impl LockGuard {
    fn start(
        backend: Arc<dyn LockBackend>,
        name: &str,
        token: OwnerToken,
        fencing_token: FencingToken,
        options: LockOptions,
        sent: Instant,
    ) -> Self {
        let state = Arc::new(GuardState {
            deadline: Mutex::new(local_deadline(sent, options.ttl)),
            lost: CancellationToken::new(),
            stop: CancellationToken::new(),
            timer: std::sync::atomic::AtomicBool::new(options.watchdog),
        });
        if options.watchdog {
            tokio::spawn(keep(
                backend.clone(),
                name.to_string(),
                token.clone(),
                options,
                state.clone(),
                sent,
            ));
        }
        LockGuard {
            name: name.to_string(),
            token,
            fencing_token,
            backend,
            state,
            released: false,
        }
    }

    /// The lock's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// This holder's random owner token.
    pub fn token(&self) -> &OwnerToken {
        &self.token
    }

    /// The fencing token of this acquisition, for the protected resource to
    /// check: later acquisitions of the same name get larger tokens.
    pub fn fencing_token(&self) -> FencingToken {
        self.fencing_token
    }

    /// Resolves when the lock is lost: renewal failed for good, the key
    /// was taken over, or the local deadline passed.
    pub async fn lost(&self) {
        loop {
            let deadline = self.state.deadline();
            tokio::select! {
                _ = self.state.lost.cancelled() => return,
                _ = sleep_until(deadline.into()) => {
                    if Instant::now() >= self.state.deadline() {
                        self.state.lost.cancel();
                        return;
                    }
                }
            }
        }
    }

    /// A token cancelled when the lock is lost, to hand to protected work.
    pub fn lost_token(&self) -> CancellationToken {
        if !self.state.timer.swap(true, Ordering::AcqRel) {
            let state = self.state.clone();
            tokio::spawn(async move {
                loop {
                    let deadline = state.deadline();
                    tokio::select! {
                        _ = state.stop.cancelled() => return,
                        _ = state.lost.cancelled() => return,
                        _ = sleep_until(deadline.into()) => {
                            if Instant::now() >= state.deadline() {
                                state.lost.cancel();
                                return;
                            }
                        }
                    }
                }
            });
        }
        self.state.lost.child_token()
    }

    /// Whether the lock is known lost or past its local deadline now.
    pub fn is_lost(&self) -> bool {
        self.state.lost.is_cancelled() || Instant::now() >= self.state.deadline()
    }

    /// Extends the lock to `ttl` from now.
    pub async fn extend(&self, ttl: Duration) -> Result<()> {
        let sent = Instant::now();
        if self.backend.extend(&self.name, &self.token, ttl).await? {
            self.state.set_deadline(local_deadline(sent, ttl));
            Ok(())
        } else {
            self.state.lost.cancel();
            Err(Error::LockLost {
                name: self.name.clone(),
            })
        }
    }

    /// Releases the lock. Fails with [`Error::LockLost`] when it was no
    /// longer held by this owner.
    pub async fn release(mut self) -> Result<()> {
        self.released = true;
        self.state.stop.cancel();
        if self.backend.release(&self.name, &self.token).await? {
            Ok(())
        } else {
            Err(Error::LockLost {
                name: self.name.clone(),
            })
        }
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        if self.released {
            return;
        }
        self.state.stop.cancel();
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let backend = self.backend.clone();
            let name = std::mem::take(&mut self.name);
            let token = self.token.clone();
            runtime.spawn(async move {
                if let Err(error) = backend.release(&name, &token).await {
                    tracing::warn!(lock = %name, %error, "background release of a dropped lock failed; it will expire");
                }
            });
        }
    }
}

/// Watches a held lock: renews it when the watchdog is on, and reports it
/// lost on a token mismatch or when the local deadline passes.
async fn keep(
    backend: Arc<dyn LockBackend>,
    name: String,
    token: OwnerToken,
    options: LockOptions,
    state: Arc<GuardState>,
    sent: Instant,
) {
    let period = options.ttl / 3;
    let mut next = sent + period;
    loop {
        let deadline = state.deadline();
        let wake = if options.watchdog {
            next.min(deadline)
        } else {
            deadline
        };
        tokio::select! {
            _ = state.stop.cancelled() => return,
            _ = sleep_until(wake.into()) => {}
        }
        let now = Instant::now();
        let deadline = state.deadline();
        if now >= deadline {
            tracing::warn!(lock = %name, "lock lost: local deadline passed");
            state.lost.cancel();
            return;
        }
        if !options.watchdog {
            continue;
        }
        let renewed = tokio::select! {
            _ = state.stop.cancelled() => return,
            r = timeout_at(deadline.into(), backend.extend(&name, &token, options.ttl)) => r,
        };
        match renewed {
            Ok(Ok(true)) => {
                state.set_deadline(local_deadline(now, options.ttl));
                next = now + period;
            }
            Ok(Ok(false)) => {
                tracing::warn!(lock = %name, "lock lost: held by another owner or expired");
                state.lost.cancel();
                return;
            }
            Ok(Err(error)) => {
                tracing::debug!(lock = %name, %error, "lock renewal failed, retrying");
                next = now + (options.ttl / 10).max(Duration::from_millis(5));
                sleep(Duration::ZERO).await;
            }
            Err(_) => {
                tracing::warn!(lock = %name, "lock lost: deadline passed while renewing");
                state.lost.cancel();
                return;
            }
        }
    }
}
