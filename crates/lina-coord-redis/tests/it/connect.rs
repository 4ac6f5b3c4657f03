//! Connection modes: password, ACL user, Sentinel, Cluster; clear errors.

use std::time::{Duration, Instant};

use lina_coord_api::{
    Coordinator, Error, EventItem, KeyTtl, KvKey, LockOptions, NodeId, NodeInfo, REVISION_EVENT,
    RevisionKey, Role, Scope,
};
use lina_coord_redis::{RedisCoordinator, RedisSettings, Topology};
use lina_testkit::{RedisClusterServer, RedisSentinel, RedisServer, wait_until};

fn info(id: &str) -> NodeInfo {
    NodeInfo::new(NodeId::new(id).unwrap(), "127.0.0.1:0")
}

async fn works(c: &RedisCoordinator) {
    assert_eq!(c.revisions().bump("probe", "x").await.unwrap().value, 1);
    let started = Instant::now();
    while !c.election().is_leader() {
        assert!(started.elapsed() < Duration::from_secs(3), "no leadership");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn password_and_acl_user() {
    let server = RedisServer::builder()
        .password("s3cret")
        .acl_user("app", "app-pass")
        .start()
        .await
        .unwrap();
    let mut settings = RedisSettings::standalone("127.0.0.1", server.port(), "pw");
    settings.password = Some("s3cret".into());
    let c = RedisCoordinator::connect(settings.clone(), info("a"))
        .await
        .unwrap();
    works(&c).await;
    c.shutdown().await.unwrap();

    let mut acl = settings.clone();
    acl.namespace = "acl".into();
    acl.username = Some("app".into());
    acl.password = Some("app-pass".into());
    let c = RedisCoordinator::connect(acl, info("b")).await.unwrap();
    works(&c).await;
    c.shutdown().await.unwrap();

    let mut wrong = settings;
    wrong.password = Some("wrong".into());
    let started = Instant::now();
    let err = RedisCoordinator::connect(wrong, info("c"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Backend(ref m) if m.contains("authentication")),
        "{err:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn unreachable_redis_is_a_clear_retryable_error() {
    let port = lina_testkit::free_port();
    let mut settings = RedisSettings::standalone("127.0.0.1", port, "none");
    settings.connect_timeout = Duration::from_millis(500);
    let started = Instant::now();
    let err = RedisCoordinator::connect(settings, info("a"))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Unavailable(_)), "{err:?}");
    assert!(err.is_retryable());
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "took {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn sentinel_finds_the_master() {
    let master = RedisServer::start().await.unwrap();
    let sentinel = RedisSentinel::start(&master, "lina-master").await.unwrap();
    let mut settings = RedisSettings::standalone("127.0.0.1", 1, "sentinel");
    settings.topology = Topology::Sentinel {
        service_name: sentinel.service().to_string(),
        sentinels: vec![(sentinel.host().to_string(), sentinel.port())],
    };
    let c = RedisCoordinator::connect(settings, info("a"))
        .await
        .unwrap();
    works(&c).await;
    c.shutdown().await.unwrap();
}

/// Subscribers of `channel` on the masters that do not own the slot of
/// `key` (an existing key), by `PUBSUB NUMSUB` on each master.
async fn subscribers_off_slot(cluster: &RedisClusterServer, key: &str, channel: &str) -> i64 {
    use fred::prelude::{
        Builder, ClientLike, Config, KeysInterface, PubsubInterface, ServerConfig, Value,
    };
    let mut count = 0;
    for (host, port) in cluster.nodes() {
        let config = Config {
            server: ServerConfig::new_centralized(host, port),
            ..Config::default()
        };
        let admin = Builder::from_config(config).build().unwrap();
        admin.init().await.unwrap();
        let owns = match admin.get::<Option<String>, _>(key).await {
            Ok(_) => true,
            Err(e) if e.details().starts_with("MOVED") => false,
            Err(e) => panic!("GET {key} on {port}: {e:?}"),
        };
        if !owns {
            let reply: Vec<Value> = admin.pubsub_numsub(channel).await.unwrap();
            count += reply.get(1).and_then(Value::as_i64).expect("NUMSUB count");
        }
        admin.quit().await.unwrap();
    }
    count
}

/// Every capability on a 3-master Redis Cluster: the `{namespace}` hash tag
/// keeps each multi-key script on one slot, and what a script publishes on
/// the slot's master (events, lock and lease releases) reaches a subscriber
/// connected to another master.
#[tokio::test]
async fn redis_cluster_runs_every_capability() {
    let cluster = RedisClusterServer::start(3).await.unwrap();
    let mut settings = RedisSettings::standalone("127.0.0.1", 1, "rc");
    settings.topology = Topology::Cluster {
        nodes: cluster.nodes(),
    };
    let a = RedisCoordinator::connect(settings.clone(), info("a"))
        .await
        .unwrap();
    // fred puts a subscriber on a master picked by its client id. Take a `b`
    // whose subscriber is on a master that does not own the `{rc}` slot, so
    // what the scripts publish there must cross the cluster bus to reach it.
    let (slot_key, channel) = ("{rc}:epoch", "{rc}:events");
    let before = subscribers_off_slot(&cluster, slot_key, channel).await;
    let mut attempts = 0;
    let b = loop {
        attempts += 1;
        let b = RedisCoordinator::connect(settings.clone(), info("b"))
            .await
            .unwrap();
        if subscribers_off_slot(&cluster, slot_key, channel).await > before {
            break b;
        }
        assert!(
            attempts < 20,
            "every subscriber of b landed on the slot owner"
        );
        b.shutdown().await.unwrap();
    };

    // Election: exactly one of the two leads.
    let one_leads = wait_until(Duration::from_secs(3), Duration::from_millis(5), || async {
        a.election().is_leader() || b.election().is_leader()
    })
    .await;
    assert!(one_leads, "no leader within 3s");
    assert!(
        a.election().is_leader() != b.election().is_leader(),
        "exactly one leader: a {}, b {}",
        a.election().is_leader(),
        b.election().is_leader()
    );
    let (leader, follower) = if a.election().is_leader() {
        (&a, &b)
    } else {
        (&b, &a)
    };
    assert!(leader.election().leader_term().is_some());

    // Revisions: a bump on one node arrives as an event on the other.
    let mut sub_b = b.events().subscribe();
    let bumped = a.revisions().bump("menu", "0").await.unwrap();
    assert_eq!(bumped.value, 1);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    let event = loop {
        let item = tokio::time::timeout_at(deadline, sub_b.recv())
            .await
            .expect("revision event on the other node within 2s")
            .expect("subscription open");
        if let EventItem::Event(e) = item
            && e.kind == REVISION_EVENT
        {
            break e;
        }
    };
    assert_eq!((event.domain.as_str(), event.scope.as_str()), ("menu", "0"));
    assert_eq!(event.revision.as_ref(), Some(&bumped));
    assert_eq!(event.source_node, *a.node_id());

    // Revisions: one script reads several keys (same slot thanks to the tag).
    b.revisions().bump("i18n", "de-DE").await.unwrap();
    b.revisions().bump("i18n", "de-DE").await.unwrap();
    let many = a
        .revisions()
        .current_many(&[
            RevisionKey::new("menu", "0"),
            RevisionKey::new("i18n", "de-DE"),
            RevisionKey::new("never", "bumped"),
        ])
        .await
        .unwrap();
    let values: Vec<u64> = many.iter().map(|r| r.value).collect();
    assert_eq!(values, [1, 2, 0]);
    assert!(many.iter().all(|r| r.epoch == bumped.epoch));

    // Key-value: incr_by with a fixed-window TTL, from both nodes.
    let counter = KvKey::new(Scope::host(), "rate", "login").unwrap();
    let ttl = Some(Duration::from_secs(30));
    assert_eq!(a.kv().incr_by(&counter, 1, ttl).await.unwrap(), 1);
    assert_eq!(b.kv().incr_by(&counter, 2, ttl).await.unwrap(), 3);
    match b.kv().ttl(&counter).await.unwrap() {
        KeyTtl::Expires(left) => assert!(
            left > Duration::from_secs(20) && left <= Duration::from_secs(30),
            "ttl {left:?}"
        ),
        other => panic!("counter should expire, got {other:?}"),
    }
    let window = KvKey::new(Scope::host(), "rate", "window").unwrap();
    let short = Some(Duration::from_millis(300));
    assert_eq!(a.kv().incr_by(&window, 1, short).await.unwrap(), 1);
    assert_eq!(b.kv().incr_by(&window, 1, short).await.unwrap(), 2);
    let expired = wait_until(
        Duration::from_secs(3),
        Duration::from_millis(20),
        || async { b.kv().ttl(&window).await.unwrap() == KeyTtl::Missing },
    )
    .await;
    assert!(expired, "the 300ms window never expired");
    assert_eq!(a.kv().incr_by(&window, 1, short).await.unwrap(), 1);

    // Locks: fencing token, busy elsewhere, and a waiter on the other node
    // woken by the release (the 30s TTL would keep it waiting past its wait).
    let held = a
        .locks()
        .acquire("job", LockOptions::ttl(Duration::from_secs(30)))
        .await
        .unwrap();
    let first_fence = held.fencing_token();
    assert!(first_fence >= 1);
    let err = b
        .locks()
        .acquire("job", LockOptions::ttl(Duration::from_secs(30)))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::LockBusy { .. }), "{err:?}");
    let waiter = b.locks().acquire(
        "job",
        LockOptions::ttl(Duration::from_secs(30)).wait(Duration::from_secs(10)),
    );
    tokio::pin!(waiter);
    let early = tokio::time::timeout(Duration::from_millis(200), &mut waiter).await;
    assert!(early.is_err(), "the waiter got a held lock: {early:?}");
    let released = Instant::now();
    let (granted, ()) = tokio::join!(
        async {
            let guard = (&mut waiter).await.expect("the waiter is granted the lock");
            (guard, Instant::now())
        },
        async { held.release().await.unwrap() },
    );
    let (guard, granted) = granted;
    let handoff = granted - released;
    assert!(
        handoff < Duration::from_secs(1),
        "hand-off took {handoff:?}"
    );
    assert!(
        guard.fencing_token() > first_fence,
        "fencing token {} after {first_fence}",
        guard.fencing_token()
    );
    guard.release().await.unwrap();

    // Membership: both nodes, the leader listed as such.
    let listed = wait_until(
        Duration::from_secs(3),
        Duration::from_millis(20),
        || async {
            let members = follower.membership().members().await.unwrap();
            let ids: Vec<&str> = members.iter().map(|m| m.node_id.as_str()).collect();
            ids == ["a", "b"]
                && members
                    .iter()
                    .all(|m| (m.role == Role::Leader) == (m.node_id == *leader.node_id()))
        },
    )
    .await;
    assert!(
        listed,
        "members: {:?}",
        follower.membership().members().await.unwrap()
    );

    for node in [&a, &b] {
        let health = node.health();
        assert!(health.healthy && health.subscriber_running, "{health:?}");
    }

    // The leader's release reaches the follower over pub/sub: it takes over
    // long before the 30s lease would have run out.
    leader.shutdown().await.unwrap();
    let took_over = wait_until(Duration::from_secs(2), Duration::from_millis(5), || async {
        follower.election().is_leader()
    })
    .await;
    assert!(took_over, "the follower did not take over within 2s");
    follower.shutdown().await.unwrap();
}
