//! Conformance tests of locks, leader election and membership.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use super::{Harness, NodeSettings, eventually};
use crate::{Error, Leadership, LockOptions, Role};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Many tasks on two nodes contend for one lock: never two holders at once,
/// and fencing tokens rise strictly in acquisition order.
pub async fn lock_exclusion_under_contention(harness: &dyn Harness) {
    let cluster = harness.cluster().await;
    let a = cluster.node(NodeSettings::short("a")).await.coordinator;
    let b = cluster.node(NodeSettings::short("b")).await.coordinator;
    let inside = Arc::new(AtomicUsize::new(0));
    let tokens = Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for i in 0..8 {
        let node = if i % 2 == 0 { a.clone() } else { b.clone() };
        let inside = inside.clone();
        let tokens = tokens.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..10 {
                let guard = node
                    .locks()
                    .acquire(
                        "contended",
                        LockOptions::ttl(Duration::from_secs(5)).wait(Duration::from_secs(20)),
                    )
                    .await
                    .expect("acquire under contention");
                assert_eq!(
                    inside.fetch_add(1, Ordering::SeqCst),
                    0,
                    "two holders at once"
                );
                tokens.lock().unwrap().push(guard.fencing_token());
                tokio::task::yield_now().await;
                inside.fetch_sub(1, Ordering::SeqCst);
                guard.release().await.expect("release");
            }
        }));
    }
    for task in tasks {
        task.await.expect("contending task");
    }
    let tokens = tokens.lock().unwrap().clone();
    assert_eq!(tokens.len(), 80);
    assert!(
        tokens.windows(2).all(|w| w[0] < w[1]),
        "fencing tokens must rise strictly: {tokens:?}"
    );
}

/// A held lock is refused at once without a wait, and after the wait with one.
pub async fn lock_busy_without_wait(harness: &dyn Harness) {
    let cluster = harness.cluster().await;
    let a = cluster.node(NodeSettings::short("a")).await.coordinator;
    let b = cluster.node(NodeSettings::short("b")).await.coordinator;
    let held = a
        .locks()
        .acquire("busy", LockOptions::ttl(Duration::from_secs(10)))
        .await
        .unwrap();
    let err = b
        .locks()
        .acquire("busy", LockOptions::ttl(Duration::from_secs(10)))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::LockBusy { .. }), "{err:?}");
    assert!(err.is_retryable());
    let started = Instant::now();
    let err = b
        .locks()
        .acquire(
            "busy",
            LockOptions::ttl(Duration::from_secs(10)).wait(ms(150)),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::LockBusy { .. }), "{err:?}");
    assert!(
        started.elapsed() >= ms(140),
        "gave up before the wait ran out"
    );
    assert!(started.elapsed() < ms(1500), "waited far past the wait");
    held.release().await.unwrap();
}

/// Release and extend only act for the holder's own token: after a lock
/// expired and was taken by another owner, the first owner's release and
/// extend fail and leave the new holder alone.
pub async fn lock_release_and_extend_check_the_token(harness: &dyn Harness) {
    let cluster = harness.cluster().await;
    let a = cluster.node(NodeSettings::short("a")).await.coordinator;
    let b = cluster.node(NodeSettings::short("b")).await.coordinator;
    let first = a
        .locks()
        .acquire("tokened", LockOptions::ttl(ms(150)))
        .await
        .unwrap();
    let second = b
        .locks()
        .acquire(
            "tokened",
            LockOptions::ttl(Duration::from_secs(10)).wait(Duration::from_secs(3)),
        )
        .await
        .expect("the expired lock can be taken");
    assert_ne!(first.token(), second.token());
    let err = first.extend(Duration::from_secs(10)).await.unwrap_err();
    assert!(matches!(err, Error::LockLost { .. }), "{err:?}");
    let err = first.release().await.unwrap_err();
    assert!(matches!(err, Error::LockLost { .. }), "{err:?}");
    let err = a
        .locks()
        .acquire("tokened", LockOptions::ttl(Duration::from_secs(1)))
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::LockBusy { .. }),
        "the second holder lost its lock: {err:?}"
    );
    second
        .extend(Duration::from_secs(10))
        .await
        .expect("holder extends");
    second.release().await.expect("holder releases");
}

/// A lock whose holder vanished without releasing expires after its TTL.
pub async fn leaked_lock_expires(harness: &dyn Harness) {
    let cluster = harness.cluster().await;
    let a = cluster.node(NodeSettings::short("a")).await.coordinator;
    let b = cluster.node(NodeSettings::short("b")).await.coordinator;
    let leaked = a
        .locks()
        .acquire("leaked", LockOptions::ttl(ms(300)))
        .await
        .unwrap();
    let started = Instant::now();
    std::mem::forget(leaked);
    let guard = b
        .locks()
        .acquire(
            "leaked",
            LockOptions::ttl(Duration::from_secs(5)).wait(Duration::from_secs(5)),
        )
        .await
        .expect("leaked lock expires");
    let waited = started.elapsed();
    assert!(
        waited >= ms(200),
        "taken before the TTL ran out: {waited:?}"
    );
    assert!(waited < ms(1500), "took too long after the TTL: {waited:?}");
    guard.release().await.unwrap();
}

/// Fencing tokens of one name rise across nodes, expiries and releases;
/// another name has its own counter.
pub async fn fencing_tokens_strictly_rise(harness: &dyn Harness) {
    let cluster = harness.cluster().await;
    let a = cluster.node(NodeSettings::short("a")).await.coordinator;
    let b = cluster.node(NodeSettings::short("b")).await.coordinator;
    let mut last = 0;
    for i in 0..6 {
        let node = if i % 2 == 0 { &a } else { &b };
        let guard = node
            .locks()
            .acquire(
                "fenced",
                LockOptions::ttl(ms(100)).wait(Duration::from_secs(3)),
            )
            .await
            .unwrap();
        assert!(
            guard.fencing_token() > last,
            "token {} after {last}",
            guard.fencing_token()
        );
        last = guard.fencing_token();
        if i % 3 == 0 {
            std::mem::forget(guard); // expires instead of being released
        } else {
            guard.release().await.unwrap();
        }
    }
    let other = a
        .locks()
        .acquire("fenced-other", LockOptions::ttl(Duration::from_secs(1)))
        .await
        .unwrap();
    assert!(other.fencing_token() >= 1);
    other.release().await.unwrap();
}

/// With the watchdog a lock outlives its TTL many times over.
pub async fn watchdog_keeps_lock_alive(harness: &dyn Harness) {
    let cluster = harness.cluster().await;
    let a = cluster.node(NodeSettings::short("a")).await.coordinator;
    let b = cluster.node(NodeSettings::short("b")).await.coordinator;
    let guard = a
        .locks()
        .acquire("watched", LockOptions::ttl(ms(300)).watchdog())
        .await
        .unwrap();
    tokio::time::sleep(ms(1000)).await;
    assert!(!guard.is_lost(), "watchdog let the lock go");
    let err = b
        .locks()
        .acquire("watched", LockOptions::ttl(ms(300)))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::LockBusy { .. }), "{err:?}");
    guard.release().await.unwrap();
    let taken = b
        .locks()
        .acquire("watched", LockOptions::ttl(ms(300)))
        .await
        .expect("released lock is free");
    taken.release().await.unwrap();
}

/// When the lock's key disappears behind the holder's back, `lost()`
/// resolves within about one watchdog period.
pub async fn lost_fires_when_lock_key_vanishes(harness: &dyn Harness) {
    let cluster = harness.cluster().await;
    let a = cluster.node(NodeSettings::short("a")).await.coordinator;
    let ttl = ms(600);
    let guard = a
        .locks()
        .acquire("vanishing", LockOptions::ttl(ttl).watchdog())
        .await
        .unwrap();
    cluster.break_lock("vanishing").await;
    let started = Instant::now();
    tokio::time::timeout(ttl / 3 + ms(250), guard.lost())
        .await
        .expect("lost() within one watchdog period");
    assert!(guard.is_lost());
    assert!(started.elapsed() <= ttl / 3 + ms(250));
}

/// Without the watchdog, `lost()` resolves when the TTL runs out.
pub async fn lost_fires_at_deadline_without_watchdog(harness: &dyn Harness) {
    let cluster = harness.cluster().await;
    let a = cluster.node(NodeSettings::short("a")).await.coordinator;
    let started = Instant::now();
    let guard = a
        .locks()
        .acquire("deadline", LockOptions::ttl(ms(300)))
        .await
        .unwrap();
    tokio::time::timeout(ms(1000), guard.lost())
        .await
        .expect("lost() at the deadline");
    assert!(
        started.elapsed() <= ms(400),
        "lost long after the key expired"
    );
    assert!(guard.is_lost());
}

/// A waiter is granted the lock right after the release, long before the
/// holder's TTL: it waits on release announcements, not on TTL polling.
pub async fn release_wakes_waiter_without_polling(harness: &dyn Harness) {
    let cluster = harness.cluster().await;
    let a = cluster.node(NodeSettings::short("a")).await.coordinator;
    let b = cluster.node(NodeSettings::short("b")).await.coordinator;
    let held = a
        .locks()
        .acquire("handoff", LockOptions::ttl(Duration::from_secs(20)))
        .await
        .unwrap();
    let waiter = tokio::spawn(async move {
        let guard = b
            .locks()
            .acquire(
                "handoff",
                LockOptions::ttl(Duration::from_secs(5)).wait(Duration::from_secs(10)),
            )
            .await
            .expect("waiter is granted the lock");
        let granted = Instant::now();
        guard.release().await.unwrap();
        granted
    });
    tokio::time::sleep(ms(200)).await;
    let released = Instant::now();
    held.release().await.unwrap();
    let granted = waiter.await.unwrap();
    let handoff = granted.duration_since(released);
    assert!(handoff < ms(250), "hand-off took {handoff:?}");
}

/// Bad names, TTLs and revision keys are refused with `InvalidArgument`.
pub async fn invalid_arguments_are_refused(harness: &dyn Harness) {
    let cluster = harness.cluster().await;
    let a = cluster.node(NodeSettings::short("a")).await.coordinator;
    for (name, ttl) in [("", ms(100)), ("with space", ms(100)), ("ok", ms(0))] {
        let err = a
            .locks()
            .acquire(name, LockOptions::ttl(ttl))
            .await
            .unwrap_err();
        assert!(
            matches!(err, Error::InvalidArgument(_)),
            "{name:?}: {err:?}"
        );
        assert!(!err.is_retryable());
    }
    for (domain, scope) in [("Bad", "x"), ("ok", ""), ("ok", "a b")] {
        let err = a.revisions().bump(domain, scope).await.unwrap_err();
        assert!(
            matches!(err, Error::InvalidArgument(_)),
            "{domain:?}/{scope:?}: {err:?}"
        );
    }
}

async fn wait_for_one_leader(nodes: &[Arc<dyn crate::Coordinator>], limit: Duration) -> usize {
    let mut found = None;
    let ok = eventually(limit, || {
        let leaders: Vec<usize> = (0..nodes.len())
            .filter(|i| nodes[*i].election().is_leader())
            .collect();
        if leaders.len() == 1 {
            found = Some(leaders[0]);
            true
        } else {
            assert!(leaders.len() <= 1, "two leaders at once: {leaders:?}");
            false
        }
    })
    .await;
    assert!(ok, "no leader within {limit:?}");
    found.unwrap()
}

/// Exactly one of three nodes leads; the others know who. On a graceful
/// release another node leads within milliseconds, under a higher term.
pub async fn one_leader_and_fast_failover_on_release(harness: &dyn Harness) {
    let cluster = harness.cluster().await;
    let mut nodes = Vec::new();
    for id in ["a", "b", "c"] {
        nodes.push(cluster.node(NodeSettings::short(id)).await.coordinator);
    }
    let leader = wait_for_one_leader(&nodes, Duration::from_secs(3)).await;
    let term = nodes[leader].election().leader_term().unwrap();
    let leader_id = nodes[leader].node_id().clone();
    for (i, node) in nodes.iter().enumerate() {
        if i == leader {
            continue;
        }
        let rx = node.election().leadership();
        let ok = eventually(Duration::from_secs(2), || {
            *rx.borrow()
                == Leadership::Follower {
                    leader: Some(leader_id.clone()),
                    term: Some(term),
                }
        })
        .await;
        assert!(
            ok,
            "follower {} does not know the leader: {:?}",
            node.node_id(),
            *rx.borrow()
        );
    }
    let released = Instant::now();
    nodes[leader].shutdown().await.unwrap();
    assert!(!nodes[leader].election().is_leader());
    let rest: Vec<_> = nodes
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != leader)
        .map(|(_, n)| n.clone())
        .collect();
    let next = wait_for_one_leader(&rest, Duration::from_secs(2)).await;
    let took = released.elapsed();
    assert!(took < ms(300), "failover after a release took {took:?}");
    let next_term = rest[next].election().leader_term().unwrap();
    assert!(next_term > term, "term {next_term} after {term}");
}

/// A leader that crashes without releasing is replaced within lease + 250 ms.
pub async fn failover_after_crash_within_lease(harness: &dyn Harness) {
    let cluster = harness.cluster().await;
    let settings = NodeSettings::short("a");
    let lease = settings.election.lease;
    let a = cluster.node(settings).await;
    assert!(
        eventually(Duration::from_secs(2), || a
            .coordinator
            .election()
            .is_leader())
        .await,
        "first node leads"
    );
    let term = a.coordinator.election().leader_term().unwrap();
    let b = cluster.node(NodeSettings::short("b")).await.coordinator;
    assert!(!b.election().is_leader());
    let crashed = Instant::now();
    (a.crash)();
    let ok = eventually(lease + ms(250), || b.election().is_leader()).await;
    assert!(
        ok,
        "no failover within lease + 250ms ({:?})",
        crashed.elapsed()
    );
    assert!(b.election().leader_term().unwrap() > term);
}

/// A lone node leads; the watch channel follows the leader's state and
/// `leader_term()` agrees with it; the term holds across many renewals and
/// a release ends leadership at once.
pub async fn leader_term_rises_and_watch_follows(harness: &dyn Harness) {
    let cluster = harness.cluster().await;
    let a = cluster.node(NodeSettings::short("a")).await.coordinator;
    let rx = a.election().leadership();
    assert!(
        eventually(Duration::from_secs(2), || rx.borrow().is_leader()).await,
        "a lone node leads"
    );
    let term = a.election().leader_term().expect("leader has a term");
    assert!(term >= 1);
    match *rx.borrow() {
        Leadership::Leader { term: watched, .. } => assert_eq!(watched, term),
        ref other => panic!("expected leader, got {other:?}"),
    }
    assert_eq!(rx.borrow().role(), Role::Leader);
    // Staying leader across many renewals keeps the term.
    tokio::time::sleep(ms(800)).await;
    assert_eq!(a.election().leader_term(), Some(term));
    a.election().release().await.unwrap();
    assert!(!a.election().is_leader());
    assert!(!rx.borrow().is_leader());
    // A new campaign on the same deployment gets a higher term.
    let b = cluster.node(NodeSettings::short("b")).await.coordinator;
    assert!(
        eventually(Duration::from_secs(2), || b.election().is_leader()).await,
        "the next node leads"
    );
    assert!(b.election().leader_term().unwrap() > term);
}

/// Live nodes are listed with their roles; a node that shuts down leaves.
pub async fn membership_lists_live_nodes(harness: &dyn Harness) {
    let cluster = harness.cluster().await;
    let a = cluster.node(NodeSettings::short("a")).await.coordinator;
    let b = cluster.node(NodeSettings::short("b")).await.coordinator;
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let members = a.membership().members().await.unwrap();
        let ids: Vec<&str> = members.iter().map(|m| m.node_id.as_str()).collect();
        let leaders = members.iter().filter(|m| m.role == Role::Leader).count();
        if ids == ["a", "b"] && leaders == 1 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "members never became [a, b] with one leader: {members:?}"
        );
        tokio::time::sleep(ms(20)).await;
    }
    b.shutdown().await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let members = a.membership().members().await.unwrap();
        let ids: Vec<&str> = members.iter().map(|m| m.node_id.as_str()).collect();
        if ids == ["a"] {
            break;
        }
        assert!(Instant::now() < deadline, "b never left: {members:?}");
        tokio::time::sleep(ms(20)).await;
    }
}
