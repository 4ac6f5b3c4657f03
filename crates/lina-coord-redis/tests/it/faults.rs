//! Fault tests, each against its own private redis-server, with leases of
//! one to two seconds.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use fred::prelude::*;
use lina_coord_api::testsuite::NodeSettings;
use lina_coord_api::{Coordinator, ElectionConfig, Event, EventItem, LockOptions};
use lina_coord_redis::RedisCoordinator;
use lina_coord_redis::testing::{RedisHarness, RedisTestCluster};

fn node(id: &str, lease_ms: u64) -> NodeSettings {
    let mut settings = NodeSettings::short(id);
    settings.election = ElectionConfig::new(
        Duration::from_millis(lease_ms),
        Duration::from_millis(lease_ms / 3),
    )
    .unwrap();
    settings
}

async fn cluster() -> RedisTestCluster {
    RedisHarness::default().redis_cluster().await
}

async fn until(limit: Duration, mut check: impl FnMut() -> bool) -> Option<Duration> {
    let started = Instant::now();
    while started.elapsed() < limit {
        if check() {
            return Some(started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    check().then(|| started.elapsed())
}

async fn leader_of(nodes: &[&Arc<RedisCoordinator>], limit: Duration) -> usize {
    let mut index = None;
    until(limit, || {
        let leaders: Vec<usize> = (0..nodes.len())
            .filter(|i| nodes[*i].election().is_leader())
            .collect();
        assert!(leaders.len() <= 1, "two leaders at once");
        index = leaders.first().copied();
        index.is_some()
    })
    .await
    .expect("a leader within the limit");
    index.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn crashed_leader_is_replaced_within_lease_plus_250ms() {
    let cluster = cluster().await;
    let a = cluster.redis_node(node("a", 1000)).await;
    leader_of(&[&a], Duration::from_secs(3)).await;
    let term = a.election().leader_term().unwrap();
    let b = cluster.redis_node(node("b", 1000)).await;
    a.crash();
    let took = until(Duration::from_millis(1250), || b.election().is_leader())
        .await
        .expect("follower leads within lease + 250ms");
    assert!(b.election().leader_term().unwrap() > term);
    eprintln!("failover after a crash took {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn graceful_release_hands_over_within_100ms() {
    let cluster = cluster().await;
    let a = cluster.redis_node(node("a", 2000)).await;
    leader_of(&[&a], Duration::from_secs(3)).await;
    let b = cluster.redis_node(node("b", 2000)).await;
    let c = cluster.redis_node(node("c", 2000)).await;
    let started = Instant::now();
    a.shutdown().await.unwrap();
    let released = started.elapsed();
    let took = until(Duration::from_millis(100), || {
        b.election().is_leader() || c.election().is_leader()
    })
    .await
    .unwrap_or_else(|| {
        panic!("no follower led within 100ms of the release ({released:?} to release)")
    });
    eprintln!("hand-over after a release took {took:?}");
}

/// Redis stopped with SIGSTOP for twice the lease: the leader steps down on
/// its own deadline, before its key could expire; no instant ever has two
/// leaders; afterwards exactly one leads, under a higher term.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn paused_redis_never_yields_two_leaders() {
    let cluster = cluster().await;
    let lease = Duration::from_millis(1000);
    let a = cluster.redis_node(node("a", 1000)).await;
    leader_of(&[&a], Duration::from_secs(3)).await;
    let term = a.election().leader_term().unwrap();
    let b = cluster.redis_node(node("b", 1000)).await;

    let stop = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (a, b, stop) = (a.clone(), b.clone(), stop.clone());
        tokio::spawn(async move {
            let mut samples = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                samples.push((
                    Instant::now(),
                    a.election().is_leader(),
                    b.election().is_leader(),
                ));
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            samples
        })
    };
    let paused_at = Instant::now();
    cluster.server().pause().await.unwrap();
    tokio::time::sleep(lease * 2).await; // the injected fault lasts 2 × lease
    cluster.server().resume().await.unwrap();
    let next = leader_of(&[&a, &b], Duration::from_secs(5)).await;
    let next_term = [&a, &b][next].election().leader_term().unwrap();
    stop.store(true, Ordering::Relaxed);
    let samples = sampler.await.unwrap();

    assert!(samples.len() > 500, "too few samples: {}", samples.len());
    assert!(
        samples.iter().all(|(_, a, b)| !(*a && *b)),
        "some instant had two leaders"
    );
    let last_a_lead = samples
        .iter()
        .filter(|(at, a, _)| *a && *at >= paused_at && *at < paused_at + lease * 2)
        .map(|(at, _, _)| at.duration_since(paused_at))
        .max()
        .unwrap_or_default();
    assert!(
        last_a_lead < lease,
        "the old leader still led {last_a_lead:?} into the pause (lease {lease:?})"
    );
    assert!(
        samples
            .iter()
            .filter(|(at, _, _)| *at > paused_at + lease && *at < paused_at + lease * 2)
            .all(|(_, a, b)| !a && !b),
        "someone led while redis was paused"
    );
    assert!(next_term > term, "term {next_term} after {term}");
}

/// Redis restarted with an empty dataset: the epoch change is seen and
/// delivered as a Resync, a leader is elected again under a higher term,
/// and a lock taken before the restart is reported lost to its holder.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn restart_empty_changes_epoch_reelects_and_loses_locks() {
    let cluster = cluster().await;
    let a = cluster.redis_node(node("a", 1000)).await;
    leader_of(&[&a], Duration::from_secs(3)).await;
    let b = cluster.redis_node(node("b", 1000)).await;
    let term = a.election().leader_term().unwrap();
    let epoch = a.last_epoch().expect("epoch seen at connect");
    let guard = a
        .locks()
        .acquire(
            "held-across-restart",
            LockOptions::ttl(Duration::from_secs(1)).watchdog(),
        )
        .await
        .unwrap();
    let mut events = b.events().subscribe();

    cluster.server().restart().await.unwrap();

    tokio::time::timeout(Duration::from_secs(5), guard.lost())
        .await
        .expect("the lock taken before the restart is reported lost");
    let next = leader_of(&[&a, &b], Duration::from_secs(6)).await;
    let next_term = [&a, &b][next].election().leader_term().unwrap();
    assert!(next_term > term, "term {next_term} after {term}");
    until(Duration::from_secs(5), || {
        a.last_epoch().is_some_and(|e| e != epoch) && b.last_epoch().is_some_and(|e| e != epoch)
    })
    .await
    .expect("both nodes see the new epoch");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let item = tokio::time::timeout_at(deadline.into(), events.recv())
            .await
            .expect("a resync about the epoch within 5s")
            .expect("subscription open");
        if let EventItem::Resync { reason } = item
            && reason.contains("epoch")
        {
            break;
        }
    }
}

/// The subscriber connection killed by the server: a Resync is delivered
/// and events flow again.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killed_subscriber_resyncs_and_events_flow_again() {
    let cluster = cluster().await;
    let a = cluster.redis_node(node("a", 2000)).await;
    let b = cluster.redis_node(node("b", 2000)).await;
    let mut events = a.events().subscribe();
    let killed: i64 = cluster
        .admin()
        .custom(fred::cmd!("CLIENT"), vec!["KILL", "TYPE", "pubsub"])
        .await
        .unwrap();
    assert!(killed >= 2, "killed {killed} subscriber connections");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let item = tokio::time::timeout_at(deadline.into(), events.recv())
            .await
            .expect("a resync within 5s")
            .expect("subscription open");
        if matches!(item, EventItem::Resync { .. }) {
            break;
        }
    }
    let event = Event::new("probe", "test", "after-kill", b.node_id().clone());
    b.events().publish(event.clone()).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let item = tokio::time::timeout_at(deadline.into(), events.recv())
            .await
            .expect("events flow again within 3s")
            .expect("subscription open");
        if let EventItem::Event(e) = item
            && e.id == event.id
        {
            break;
        }
    }
    assert!(a.health().subscriber_running);
}

/// The health snapshot follows the connection: unhealthy with the last
/// error while Redis is down, healthy again once it is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn health_follows_the_connection() {
    let cluster = cluster().await;
    let a = cluster.redis_node(node("a", 1000)).await;
    let health = a.health();
    assert!(health.healthy && health.subscriber_running && health.last_success_ms.is_some());
    cluster.server().kill().unwrap();
    until(Duration::from_secs(5), || {
        let h = a.health();
        !h.healthy && h.last_error.is_some()
    })
    .await
    .expect("unhealthy within 5s of losing redis");
    assert!(!a.health().subscriber_running);
    cluster.server().restart().await.unwrap();
    until(Duration::from_secs(8), || {
        let h = a.health();
        h.healthy && h.subscriber_running
    })
    .await
    .expect("healthy again within 8s of redis coming back");
}

/// A waiter for a lock held for a long time sleeps until the release is
/// announced: it does not poll Redis meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn lock_waiters_do_not_poll() {
    let cluster = cluster().await;
    let quiet = |id: &str| {
        let mut settings = node(id, 30_000);
        settings.heartbeat = Duration::from_secs(30);
        settings.member_ttl = Duration::from_secs(90);
        settings
    };
    let a = cluster.redis_node(quiet("a")).await;
    let b = cluster.redis_node(quiet("b")).await;
    let held = a
        .locks()
        .acquire("long", LockOptions::ttl(Duration::from_secs(20)))
        .await
        .unwrap();
    let waiter = tokio::spawn({
        let b = b.clone();
        async move {
            b.locks()
                .acquire(
                    "long",
                    LockOptions::ttl(Duration::from_secs(5)).wait(Duration::from_secs(10)),
                )
                .await
        }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let before = commands_processed(cluster.admin()).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let during = commands_processed(cluster.admin()).await - before - 1;
    assert!(
        during <= 3,
        "{during} commands while one waiter waited 1.5s"
    );
    held.release().await.unwrap();
    let granted = tokio::time::timeout(Duration::from_secs(1), waiter)
        .await
        .expect("granted promptly after the release")
        .unwrap()
        .unwrap();
    granted.release().await.unwrap();
}

async fn commands_processed(admin: &Client) -> i64 {
    let info: String = admin
        .custom(fred::cmd!("INFO"), vec!["stats"])
        .await
        .unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix("total_commands_processed:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("INFO stats has total_commands_processed")
}
