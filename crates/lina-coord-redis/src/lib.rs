//! Redis coordination backend of Lina's cluster mode.
//!
//! [`RedisCoordinator`] implements the [`Coordinator`] contract on Redis with
//! fred: every compare-then-act is a Lua script (EVALSHA, reloaded on
//! NOSCRIPT), events travel over pub/sub on fred's subscriber client with
//! reconnection and backoff turned on, and a `Resync` is delivered after
//! every reconnect. The lease and lock protocols themselves (local deadline
//! `t_sent + lease − guard`, step-down, watchdog, waiters woken by release
//! announcements) are the shared ones of `lina-coord-api`; this crate
//! provides their atomic primitives.
//!
//! Keys, all under the `{namespace}` hash tag (one slot on Redis Cluster):
//!
//! | key | what |
//! |---|---|
//! | `{ns}:election`, `{ns}:election:term` | leader lease (`token\nnode`, PX lease) and term counter |
//! | `{ns}:lock:{name}`, `{ns}:lock-fence:{name}` | lock owner token (PX ttl) and fencing counter |
//! | `{ns}:lock-waiters:{name}` | present (PX) while some node waits for the lock: releases are announced only then |
//! | `{ns}:kv:…` | key-value entries ([`lina_coord_api::KvKey::render`]) |
//! | `{ns}:rev:{domain}:{scope}` | revision counters |
//! | `{ns}:epoch` | random id of this dataset |
//! | `{ns}:nodes`, `{ns}:node-info` | membership (sorted set by last seen, info hash) |
//!
//! Channels: `{ns}:events` (application and revision events) and `{ns}:sys`
//! (lock and lease release announcements).
//!
//! # Example
//!
//! ```no_run
//! use lina_coord_api::{Coordinator, NodeId, NodeInfo};
//! use lina_coord_redis::{RedisCoordinator, RedisSettings};
//!
//! # async fn demo() -> lina_coord_api::Result<()> {
//! let settings = RedisSettings::from_url("redis://127.0.0.1:6379", "lina")?;
//! let node = NodeInfo::new(NodeId::new("node-a:9120")?, "10.0.0.5:9120");
//! let coordinator = RedisCoordinator::connect(settings, node).await?;
//! if let Some(term) = coordinator.election().leader_term() {
//!     println!("leading under term {term}");
//! }
//! coordinator.shutdown().await?;
//! # Ok(())
//! # }
//! ```

mod scripts;
mod settings;
#[cfg(feature = "testsuite")]
pub mod testing;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use fred::clients::SubscriberClient;
use fred::prelude::{
    Builder, Client, ClientLike, EventInterface, Expiration, KeysInterface, PubsubInterface,
    ReconnectPolicy, SetOptions, Value,
};
use fred::types::Message;
use fred::types::scripts::Script;
use lina_coord_api::{
    AcquireOutcome, BackendKind, Coordinator, Election, Epoch, Error, Event, EventItem, Events,
    HealthSnapshot, KeyTtl, Kv, KvKey, Leadership, LeaseBackend, LeaseElection, LockAttempt,
    LockBackend, LockService, Locks, Member, Membership, NodeId, NodeInfo, OwnerToken,
    REVISION_EVENT, ReleaseSignals, Result, Revision, RevisionKey, Revisions, Role, Subscription,
    check_revision_key, random_hex128, unix_millis,
};
use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use settings::{RedisSettings, Tls, Topology};

const EVENT_BUFFER: usize = 4096;

/// Key and channel names of one namespace.
#[derive(Debug, Clone)]
struct Keys {
    prefix: String,
}

impl Keys {
    fn new(namespace: &str) -> Self {
        Keys {
            prefix: format!("{{{namespace}}}"),
        }
    }
    fn key(&self, rest: &str) -> String {
        format!("{}:{rest}", self.prefix)
    }
    fn election(&self) -> String {
        self.key("election")
    }
    fn term(&self) -> String {
        self.key("election:term")
    }
    fn lock(&self, name: &str) -> String {
        self.key(&format!("lock:{name}"))
    }
    fn fence(&self, name: &str) -> String {
        self.key(&format!("lock-fence:{name}"))
    }
    fn lock_waiters(&self, name: &str) -> String {
        self.key(&format!("lock-waiters:{name}"))
    }
    fn kv(&self, key: &KvKey) -> String {
        self.key(&key.render())
    }
    fn revision(&self, domain: &str, scope: &str) -> String {
        self.key(&format!("rev:{domain}:{scope}"))
    }
    fn epoch(&self) -> String {
        self.key("epoch")
    }
    fn nodes(&self) -> String {
        self.key("nodes")
    }
    fn node_info(&self) -> String {
        self.key("node-info")
    }
    fn events(&self) -> String {
        self.key("events")
    }
    fn sys(&self) -> String {
        self.key("sys")
    }
}

/// What a node publishes about itself in its heartbeat.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct MemberInfo {
    address: String,
    version: String,
    started_at_ms: i64,
    role: Role,
}

struct Inner {
    client: Client,
    subscriber: SubscriberClient,
    keys: Keys,
    node: NodeInfo,
    settings: RedisSettings,
    health: Mutex<HealthSnapshot>,
    events: broadcast::Sender<EventItem>,
    lock_signals: ReleaseSignals,
    election_signal: watch::Sender<u64>,
    epoch: Mutex<Option<Epoch>>,
    closed: AtomicBool,
}

fn map_error(error: fred::error::Error, timeout: Duration) -> Error {
    use fred::error::ErrorKind;
    let details = error.details().to_string();
    match error.kind() {
        ErrorKind::Timeout => Error::Timeout(timeout),
        ErrorKind::IO | ErrorKind::Canceled | ErrorKind::Cluster | ErrorKind::Sentinel => {
            Error::Unavailable(details)
        }
        ErrorKind::Auth => Error::Backend(format!("redis authentication failed: {details}")),
        _ if details.contains("not an integer") || details.contains("overflow") => {
            Error::InvalidArgument(details)
        }
        _ if details.starts_with("LOADING") || details.starts_with("BUSY") => {
            Error::Unavailable(details)
        }
        _ => Error::Backend(details),
    }
}

fn millis(d: Duration) -> String {
    d.as_millis().max(1).to_string()
}

fn int(value: &Value) -> Result<i64> {
    value
        .as_i64()
        .ok_or_else(|| Error::Backend(format!("expected an integer from redis, got {value:?}")))
}

fn text(value: &Value) -> Result<String> {
    value
        .as_string()
        .ok_or_else(|| Error::Backend(format!("expected a string from redis, got {value:?}")))
}

fn array(value: Value) -> Result<Vec<Value>> {
    match value {
        Value::Array(items) => Ok(items),
        Value::Null => Ok(Vec::new()),
        other => Err(Error::Backend(format!(
            "expected an array from redis, got {other:?}"
        ))),
    }
}

impl Inner {
    fn check_open(&self) -> Result<()> {
        if self.closed.load(Ordering::Acquire) {
            Err(Error::Closed)
        } else {
            Ok(())
        }
    }

    fn record<T>(&self, result: std::result::Result<T, fred::error::Error>) -> Result<T> {
        let mut health = self.health.lock().expect("health lock");
        match result {
            Ok(value) => {
                health.healthy = true;
                health.last_success_ms = Some(unix_millis());
                Ok(value)
            }
            Err(error) => {
                let error = map_error(error, self.settings.command_timeout);
                if !matches!(error, Error::InvalidArgument(_)) {
                    health.healthy = false;
                    health.last_error = Some((unix_millis(), error.to_string()));
                } else {
                    health.last_success_ms = Some(unix_millis());
                }
                Err(error)
            }
        }
    }

    async fn eval(&self, script: &Script, keys: Vec<String>, args: Vec<String>) -> Result<Value> {
        self.check_open()?;
        let result = script
            .evalsha_with_reload::<Value, _, _>(&self.client, keys, args)
            .await;
        self.record(result)
    }

    /// Notes the dataset epoch seen by a call; a change means Redis lost its
    /// data: consumers are told to resync (caches drop everything).
    fn observe_epoch(&self, seen: &str) -> Epoch {
        let seen = Epoch(seen.to_string());
        let mut epoch = self.epoch.lock().expect("epoch lock");
        match epoch.as_ref() {
            Some(known) if *known == seen => {}
            Some(known) => {
                tracing::warn!(old = %known, new = %seen, "redis dataset changed (epoch): caches must reload");
                let _ = self.events.send(EventItem::Resync {
                    reason: format!("redis epoch changed from {known} to {seen}"),
                });
                *epoch = Some(seen.clone());
            }
            None => *epoch = Some(seen.clone()),
        }
        seen
    }

    async fn heartbeat(&self, role: Role) -> Result<()> {
        let info = serde_json::to_string(&MemberInfo {
            address: self.node.address.clone(),
            version: self.node.version.clone(),
            started_at_ms: self.node.started_at_ms,
            role,
        })
        .expect("member info serializes");
        let epoch = self
            .eval(
                &scripts::HEARTBEAT,
                vec![self.keys.nodes(), self.keys.node_info(), self.keys.epoch()],
                vec![
                    self.node.node_id.to_string(),
                    info,
                    self.settings.member_ttl.as_millis().to_string(),
                    random_hex128(),
                ],
            )
            .await?;
        self.observe_epoch(&text(&epoch)?);
        Ok(())
    }

    fn on_message(&self, message: Message) {
        {
            let mut health = self.health.lock().expect("health lock");
            health.last_event_ms = Some(unix_millis());
        }
        let Some(payload) = message.value.as_string() else {
            return;
        };
        if *message.channel == *self.keys.sys() {
            match payload.split_once('\n') {
                Some(("lock", name)) => self.lock_signals.notify(name),
                Some(("leader", _)) => {
                    self.election_signal.send_modify(|n| *n = n.wrapping_add(1));
                }
                _ => tracing::debug!(payload, "unknown system message"),
            }
            return;
        }
        let event = match payload.split_once('\n') {
            Some(("E", json)) => serde_json::from_str::<Event>(json).ok(),
            Some(("R", rest)) => {
                let mut parts = rest.splitn(3, '\n');
                match (parts.next(), parts.next(), parts.next()) {
                    (Some(epoch), Some(value), Some(json)) => {
                        serde_json::from_str::<Event>(json).ok().and_then(|e| {
                            Some(e.with_revision(Revision {
                                epoch: Epoch(epoch.to_string()),
                                value: value.parse().ok()?,
                            }))
                        })
                    }
                    _ => None,
                }
            }
            _ => None,
        };
        match event {
            Some(event) => {
                let _ = self.events.send(EventItem::Event(event));
            }
            None => tracing::warn!(channel = %message.channel, "dropped a malformed event"),
        }
    }

    fn resync(&self, reason: &str) {
        tracing::info!(reason, "event subscriber resynchronising");
        let _ = self.events.send(EventItem::Resync {
            reason: reason.to_string(),
        });
        // Releases may have been announced while we were away.
        self.lock_signals.notify_all();
        self.election_signal.send_modify(|n| *n = n.wrapping_add(1));
    }
}

/// The Redis [`Coordinator`].
pub struct RedisCoordinator {
    inner: Arc<Inner>,
    election: LeaseElection,
    locks: LockService,
    stop: CancellationToken,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl std::fmt::Debug for RedisCoordinator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisCoordinator")
            .field("node", &self.inner.node.node_id)
            .field("settings", &self.inner.settings)
            .finish()
    }
}

impl RedisCoordinator {
    /// Connects (bounded by the connect timeout), subscribes to the
    /// namespace's channels, announces this node and starts campaigning.
    /// Returns once the first election attempt has been answered.
    pub async fn connect(settings: RedisSettings, node: NodeInfo) -> Result<Self> {
        let config = settings.fred_config()?;
        let mut builder = Builder::from_config(config);
        let connect_timeout = settings.connect_timeout;
        let command_timeout = settings.command_timeout;
        builder
            .with_connection_config(|c| {
                c.connection_timeout = connect_timeout;
                c.internal_command_timeout = connect_timeout;
                // Scripts that write (incr_by, bumps) must not run twice: a
                // command in flight when the connection drops fails instead.
                c.max_command_attempts = 1;
                c.unresponsive.max_timeout = Some(command_timeout * 2);
                c.unresponsive.interval = (command_timeout / 2).max(Duration::from_millis(100));
            })
            .with_performance_config(|p| {
                p.default_command_timeout = command_timeout;
                p.broadcast_channel_capacity = EVENT_BUFFER;
            })
            .set_policy(ReconnectPolicy::new_exponential(0, 100, 2_000, 2));
        let fail = |what: &str, e: fred::error::Error| {
            Error::Unavailable(format!("cannot connect {what} to redis: {}", e.details()))
        };
        let client = builder.build().map_err(|e| fail("the client", e))?;
        let subscriber = builder
            .build_subscriber_client()
            .map_err(|e| fail("the subscriber", e))?;
        for (what, init) in [
            ("the client", client.init().await),
            ("the subscriber", subscriber.init().await),
        ] {
            if let Err(e) = init {
                let _ = client.quit().await;
                let _ = subscriber.quit().await;
                return Err(match e.kind() {
                    fred::error::ErrorKind::Auth => {
                        Error::Backend(format!("redis authentication failed: {}", e.details()))
                    }
                    _ => fail(what, e),
                });
            }
        }
        let keys = Keys::new(&settings.namespace);
        let messages = subscriber.message_rx();
        let reconnects = subscriber.reconnect_rx();
        let errors = subscriber.error_rx();
        subscriber
            .subscribe(vec![keys.events(), keys.sys()])
            .await
            .map_err(|e| fail("the subscriber", e))?;
        let inner = Arc::new(Inner {
            client,
            subscriber,
            keys,
            node,
            health: Mutex::new(HealthSnapshot {
                healthy: true,
                last_success_ms: Some(unix_millis()),
                subscriber_running: true,
                ..HealthSnapshot::default()
            }),
            events: broadcast::channel(EVENT_BUFFER).0,
            lock_signals: ReleaseSignals::default(),
            election_signal: watch::channel(0).0,
            epoch: Mutex::new(None),
            closed: AtomicBool::new(false),
            settings,
        });
        inner.heartbeat(Role::Follower).await?;
        let stop = CancellationToken::new();
        let mut tasks = vec![tokio::spawn(listen(
            inner.clone(),
            messages,
            reconnects,
            errors,
            stop.clone(),
        ))];
        let election = LeaseElection::start(
            inner.node.node_id.clone(),
            inner.settings.election,
            Arc::new(RedisLease(inner.clone())),
        )
        .await;
        tasks.push(tokio::spawn(beat(
            inner.clone(),
            election.leadership(),
            stop.clone(),
        )));
        tracing::info!(
            node = %inner.node.node_id,
            namespace = %inner.settings.namespace,
            "connected to redis"
        );
        Ok(RedisCoordinator {
            locks: LockService::new(Arc::new(RedisLocks(inner.clone()))),
            inner,
            election,
            stop,
            tasks: Mutex::new(tasks),
        })
    }

    /// Stops the node as a crash would: the campaign and heartbeats stop and
    /// the connections close, without releasing the lease or leaving the
    /// membership (for failover tests).
    pub fn crash(&self) {
        self.election.abort();
        self.stop_tasks();
        self.inner.closed.store(true, Ordering::Release);
        let inner = self.inner.clone();
        tokio::spawn(async move {
            let _ = inner.subscriber.quit().await;
            let _ = inner.client.quit().await;
        });
    }

    fn stop_tasks(&self) {
        self.stop.cancel();
        for task in self.tasks.lock().expect("tasks lock").drain(..) {
            task.abort();
        }
    }

    /// The dataset epoch this node last saw.
    pub fn last_epoch(&self) -> Option<Epoch> {
        self.inner.epoch.lock().expect("epoch lock").clone()
    }
}

impl Drop for RedisCoordinator {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// Forwards pub/sub messages; after every reconnect, resubscribes and
/// delivers a `Resync`.
async fn listen(
    inner: Arc<Inner>,
    mut messages: broadcast::Receiver<Message>,
    mut reconnects: broadcast::Receiver<fred::types::config::Server>,
    mut errors: broadcast::Receiver<(fred::error::Error, Option<fred::types::config::Server>)>,
    stop: CancellationToken,
) {
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            message = messages.recv() => match message {
                Ok(message) => inner.on_message(message),
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    inner.resync(&format!("subscriber fell behind by {missed} messages"));
                }
                Err(broadcast::error::RecvError::Closed) => return,
            },
            reconnect = reconnects.recv() => match reconnect {
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {
                    match inner.subscriber.resubscribe_all().await {
                        Ok(()) => {
                            inner.health.lock().expect("health lock").subscriber_running = true;
                            inner.resync("subscriber reconnected");
                        }
                        Err(error) => {
                            tracing::warn!(error = %error.details(), "resubscribing failed");
                        }
                    }
                }
                Err(broadcast::error::RecvError::Closed) => return,
            },
            error = errors.recv() => match error {
                Ok((error, _)) => {
                    let mut health = inner.health.lock().expect("health lock");
                    health.subscriber_running = false;
                    health.last_error = Some((unix_millis(), format!("subscriber: {}", error.details())));
                }
                Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => return,
            },
        }
    }
}

/// Membership heartbeats, also on every change of role; each heartbeat
/// also checks the dataset epoch.
async fn beat(
    inner: Arc<Inner>,
    mut leadership: watch::Receiver<Leadership>,
    stop: CancellationToken,
) {
    loop {
        let role = leadership.borrow_and_update().role();
        if let Err(error) = inner.heartbeat(role).await {
            tracing::debug!(%error, "membership heartbeat failed");
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(inner.settings.heartbeat) => {}
            changed = leadership.changed() => if changed.is_err() { return },
        }
    }
}

#[async_trait]
impl Coordinator for RedisCoordinator {
    fn node_id(&self) -> &NodeId {
        &self.inner.node.node_id
    }

    fn backend(&self) -> BackendKind {
        BackendKind::Redis
    }

    fn health(&self) -> HealthSnapshot {
        let mut health = self.inner.health.lock().expect("health lock").clone();
        if self.inner.closed.load(Ordering::Acquire) {
            health.healthy = false;
            health.subscriber_running = false;
        }
        health
    }

    fn election(&self) -> &dyn Election {
        &self.election
    }

    fn locks(&self) -> &dyn Locks {
        &self.locks
    }

    fn kv(&self) -> &dyn Kv {
        &*self.inner
    }

    fn revisions(&self) -> &dyn Revisions {
        &*self.inner
    }

    fn events(&self) -> &dyn Events {
        &*self.inner
    }

    fn membership(&self) -> &dyn Membership {
        &*self.inner
    }

    async fn shutdown(&self) -> Result<()> {
        if self.inner.closed.load(Ordering::Acquire) {
            return Ok(());
        }
        let released = self.election.release().await;
        self.stop_tasks();
        let left = self
            .inner
            .eval(
                &scripts::LEAVE,
                vec![self.inner.keys.nodes(), self.inner.keys.node_info()],
                vec![self.inner.node.node_id.to_string()],
            )
            .await;
        self.inner.closed.store(true, Ordering::Release);
        let _ = self.inner.subscriber.quit().await;
        let _ = self.inner.client.quit().await;
        tracing::info!(node = %self.inner.node.node_id, "disconnected from redis");
        released.and(left.map(|_| ()))
    }
}

fn check_ttl(ttl: Option<Duration>) -> Result<()> {
    match ttl {
        Some(t) if t < Duration::from_millis(1) => {
            Err(Error::invalid(format!("ttl {t:?} must be at least 1ms")))
        }
        _ => Ok(()),
    }
}

#[async_trait]
impl Kv for Inner {
    async fn get(&self, key: &KvKey) -> Result<Option<Vec<u8>>> {
        self.check_open()?;
        let result = self
            .client
            .get::<Option<Vec<u8>>, _>(self.keys.kv(key))
            .await;
        self.record(result)
    }

    async fn set(&self, key: &KvKey, value: &[u8], ttl: Option<Duration>) -> Result<()> {
        check_ttl(ttl)?;
        self.check_open()?;
        let expire = ttl.map(|t| Expiration::PX(t.as_millis() as i64));
        let result = self
            .client
            .set::<(), _, _>(
                self.keys.kv(key),
                Value::Bytes(value.to_vec().into()),
                expire,
                None,
                false,
            )
            .await;
        self.record(result)
    }

    async fn set_nx(&self, key: &KvKey, value: &[u8], ttl: Option<Duration>) -> Result<bool> {
        check_ttl(ttl)?;
        self.check_open()?;
        let expire = ttl.map(|t| Expiration::PX(t.as_millis() as i64));
        let result = self
            .client
            .set::<Option<String>, _, _>(
                self.keys.kv(key),
                Value::Bytes(value.to_vec().into()),
                expire,
                Some(SetOptions::NX),
                false,
            )
            .await;
        self.record(result).map(|ok| ok.is_some())
    }

    async fn delete(&self, key: &KvKey) -> Result<bool> {
        self.check_open()?;
        let result = self.client.del::<i64, _>(self.keys.kv(key)).await;
        self.record(result).map(|n| n > 0)
    }

    async fn compare_and_delete(&self, key: &KvKey, expected: &[u8]) -> Result<bool> {
        self.check_open()?;
        let result = scripts::COMPARE_AND_DELETE
            .evalsha_with_reload::<i64, _, _>(
                &self.client,
                vec![self.keys.kv(key)],
                vec![Value::Bytes(expected.to_vec().into())],
            )
            .await;
        self.record(result).map(|n| n == 1)
    }

    async fn incr_by(&self, key: &KvKey, delta: i64, ttl: Option<Duration>) -> Result<i64> {
        check_ttl(ttl)?;
        let reply = self
            .eval(
                &scripts::INCR_BY,
                vec![self.keys.kv(key)],
                vec![delta.to_string(), ttl.map(millis).unwrap_or_default()],
            )
            .await?;
        int(&reply)
    }

    async fn expire(&self, key: &KvKey, ttl: Duration) -> Result<bool> {
        check_ttl(Some(ttl))?;
        self.check_open()?;
        let result = self
            .client
            .pexpire::<bool, _>(self.keys.kv(key), ttl.as_millis() as i64, None)
            .await;
        self.record(result)
    }

    async fn ttl(&self, key: &KvKey) -> Result<KeyTtl> {
        self.check_open()?;
        let result = self.client.pttl::<i64, _>(self.keys.kv(key)).await;
        Ok(match self.record(result)? {
            -2 => KeyTtl::Missing,
            -1 => KeyTtl::Persistent,
            ms => KeyTtl::Expires(Duration::from_millis(ms.max(0) as u64)),
        })
    }
}

#[async_trait]
impl Revisions for Inner {
    async fn bump(&self, domain: &str, scope: &str) -> Result<Revision> {
        check_revision_key(domain, scope)?;
        let event = Event::new(REVISION_EVENT, domain, scope, self.node.node_id.clone());
        let json = serde_json::to_string(&event).expect("event serializes");
        let reply = self
            .eval(
                &scripts::REVISION_BUMP,
                vec![self.keys.revision(domain, scope), self.keys.epoch()],
                vec![random_hex128(), self.keys.events(), json],
            )
            .await?;
        let reply = array(reply)?;
        let (Some(epoch), Some(value)) = (reply.first(), reply.get(1)) else {
            return Err(Error::Backend(format!("unexpected bump reply {reply:?}")));
        };
        Ok(Revision {
            epoch: self.observe_epoch(&text(epoch)?),
            value: int(value)? as u64,
        })
    }

    async fn current(&self, domain: &str, scope: &str) -> Result<Revision> {
        let mut many = self
            .current_many(&[RevisionKey::new(domain, scope)])
            .await?;
        Ok(many.remove(0))
    }

    async fn current_many(&self, keys: &[RevisionKey]) -> Result<Vec<Revision>> {
        let mut redis_keys = Vec::with_capacity(keys.len() + 1);
        redis_keys.push(self.keys.epoch());
        for key in keys {
            check_revision_key(&key.domain, &key.scope)?;
            redis_keys.push(self.keys.revision(&key.domain, &key.scope));
        }
        let reply = array(
            self.eval(&scripts::REVISIONS_READ, redis_keys, vec![random_hex128()])
                .await?,
        )?;
        if reply.len() != keys.len() + 1 {
            return Err(Error::Backend(format!(
                "expected {} values from redis, got {}",
                keys.len() + 1,
                reply.len()
            )));
        }
        let epoch = self.observe_epoch(&text(&reply[0])?);
        reply[1..]
            .iter()
            .map(|v| {
                Ok(Revision {
                    epoch: epoch.clone(),
                    value: int(v)? as u64,
                })
            })
            .collect()
    }

    async fn epoch(&self) -> Result<Epoch> {
        let reply = array(
            self.eval(
                &scripts::REVISIONS_READ,
                vec![self.keys.epoch()],
                vec![random_hex128()],
            )
            .await?,
        )?;
        let first = reply
            .first()
            .ok_or_else(|| Error::Backend("empty epoch reply".into()))?;
        Ok(self.observe_epoch(&text(first)?))
    }
}

#[async_trait]
impl Events for Inner {
    async fn publish(&self, event: Event) -> Result<()> {
        self.check_open()?;
        let json = serde_json::to_string(&event).expect("event serializes");
        let result = self
            .client
            .publish::<i64, _, _>(self.keys.events(), format!("E\n{json}"))
            .await;
        self.record(result).map(|_| ())
    }

    fn subscribe(&self) -> Subscription {
        Subscription::new(self.events.subscribe())
    }
}

#[async_trait]
impl Membership for Inner {
    async fn members(&self) -> Result<Vec<Member>> {
        let reply = array(
            self.eval(
                &scripts::MEMBERS,
                vec![self.keys.nodes(), self.keys.node_info()],
                vec![self.settings.member_ttl.as_millis().to_string()],
            )
            .await?,
        )?;
        let mut members = Vec::new();
        for triple in reply.chunks(3) {
            let [id, seen, info] = triple else { continue };
            let Ok(node_id) = NodeId::new(text(id)?) else {
                continue;
            };
            let last_seen_ms = text(seen)?
                .parse::<f64>()
                .map_err(|_| Error::Backend(format!("bad member score {seen:?}")))?
                as i64;
            let Ok(info) = serde_json::from_str::<MemberInfo>(&text(info)?) else {
                tracing::warn!(node = %node_id, "skipping a member with malformed info");
                continue;
            };
            members.push(Member {
                node_id,
                address: info.address,
                version: info.version,
                started_at_ms: info.started_at_ms,
                role: info.role,
                last_seen_ms,
            });
        }
        members.sort_by(|a, b| a.node_id.cmp(&b.node_id));
        Ok(members)
    }
}

struct RedisLease(Arc<Inner>);

#[async_trait]
impl LeaseBackend for RedisLease {
    async fn try_acquire(
        &self,
        node: &NodeId,
        token: &OwnerToken,
        lease: Duration,
    ) -> Result<AcquireOutcome> {
        let keys = &self.0.keys;
        let reply = array(
            self.0
                .eval(
                    &scripts::ELECTION_ACQUIRE,
                    vec![keys.election(), keys.term()],
                    vec![token.as_str().to_string(), node.to_string(), millis(lease)],
                )
                .await?,
        )?;
        match reply.as_slice() {
            [flag, term] if int(flag)? == 1 => Ok(AcquireOutcome::Acquired {
                term: int(term)? as u64,
            }),
            [_, holder, pttl, term] => Ok(AcquireOutcome::Held {
                leader: NodeId::new(text(holder)?).ok(),
                term: u64::try_from(int(term)?).ok().filter(|t| *t > 0),
                remaining: u64::try_from(int(pttl)?).ok().map(Duration::from_millis),
            }),
            other => Err(Error::Backend(format!(
                "unexpected election reply {other:?}"
            ))),
        }
    }

    async fn renew(&self, token: &OwnerToken, lease: Duration) -> Result<bool> {
        let reply = self
            .0
            .eval(
                &scripts::ELECTION_RENEW,
                vec![self.0.keys.election()],
                vec![token.as_str().to_string(), millis(lease)],
            )
            .await?;
        Ok(int(&reply)? == 1)
    }

    async fn release(&self, node: &NodeId, token: &OwnerToken) -> Result<bool> {
        let reply = self
            .0
            .eval(
                &scripts::ELECTION_RELEASE,
                vec![self.0.keys.election()],
                vec![
                    token.as_str().to_string(),
                    self.0.keys.sys(),
                    format!("leader\n{node}"),
                ],
            )
            .await?;
        Ok(int(&reply)? == 1)
    }

    fn release_signal(&self) -> watch::Receiver<u64> {
        self.0.election_signal.subscribe()
    }
}

struct RedisLocks(Arc<Inner>);

#[async_trait]
impl LockBackend for RedisLocks {
    async fn try_acquire(
        &self,
        name: &str,
        token: &OwnerToken,
        ttl: Duration,
        waiting: Option<Duration>,
    ) -> Result<LockAttempt> {
        let keys = &self.0.keys;
        // A waiter marks the lock as awaited (for as long as it waits, plus
        // a margin), so a release is announced only when someone listens.
        let waiting = waiting
            .map(|w| millis(w + Duration::from_secs(1)))
            .unwrap_or_else(|| "0".to_string());
        let reply = array(
            self.0
                .eval(
                    &scripts::LOCK_ACQUIRE,
                    vec![keys.lock(name), keys.fence(name), keys.lock_waiters(name)],
                    vec![token.as_str().to_string(), millis(ttl), waiting],
                )
                .await?,
        )?;
        match reply.as_slice() {
            [flag, fence] if int(flag)? == 1 => Ok(LockAttempt::Acquired {
                fencing_token: int(fence)? as u64,
            }),
            [_, pttl] => Ok(LockAttempt::Busy {
                remaining: u64::try_from(int(pttl)?).ok().map(Duration::from_millis),
            }),
            other => Err(Error::Backend(format!("unexpected lock reply {other:?}"))),
        }
    }

    async fn release(&self, name: &str, token: &OwnerToken) -> Result<bool> {
        let reply = self
            .0
            .eval(
                &scripts::LOCK_RELEASE,
                vec![self.0.keys.lock(name), self.0.keys.lock_waiters(name)],
                vec![
                    token.as_str().to_string(),
                    self.0.keys.sys(),
                    format!("lock\n{name}"),
                ],
            )
            .await?;
        Ok(int(&reply)? == 1)
    }

    async fn extend(&self, name: &str, token: &OwnerToken, ttl: Duration) -> Result<bool> {
        let reply = self
            .0
            .eval(
                &scripts::LOCK_EXTEND,
                vec![self.0.keys.lock(name)],
                vec![token.as_str().to_string(), millis(ttl)],
            )
            .await?;
        Ok(int(&reply)? == 1)
    }

    fn release_signal(&self, name: &str) -> watch::Receiver<u64> {
        self.0.lock_signals.subscribe(name)
    }
}
