use std::time::Duration;

use lina_coord_api::{BackendKind, Coordinator, Leadership, LockOptions, NodeId, NodeInfo};
use lina_coord_local::LocalCoordinator;

async fn single() -> LocalCoordinator {
    LocalCoordinator::single(NodeInfo::new(
        NodeId::new("solo:9120").unwrap(),
        "127.0.0.1:9120",
    ))
    .await
}

#[tokio::test]
async fn single_node_always_leads_under_term_one() {
    let c = single().await;
    assert_eq!(c.backend(), BackendKind::Local);
    assert_eq!(c.election().leader_term(), Some(1));
    assert!(matches!(
        *c.election().leadership().borrow(),
        Leadership::Leader { term: 1, .. }
    ));
    let members = c.membership().members().await.unwrap();
    assert_eq!(members.len(), 1);
    assert_eq!(members[0].node_id.as_str(), "solo:9120");
    assert!(c.health().healthy);
    c.shutdown().await.unwrap();
    assert!(!c.election().is_leader());
    assert!(!c.health().healthy);
}

#[tokio::test]
async fn calls_after_shutdown_fail_closed() {
    let c = single().await;
    c.shutdown().await.unwrap();
    let err = c.revisions().bump("menu", "0").await.unwrap_err();
    assert!(matches!(err, lina_coord_api::Error::Closed), "{err:?}");
    c.shutdown().await.expect("shutdown is idempotent");
}

#[tokio::test]
async fn dropped_guard_releases_in_background() {
    let c = single().await;
    let guard = c
        .locks()
        .acquire("dropped", LockOptions::ttl(Duration::from_secs(30)))
        .await
        .unwrap();
    drop(guard);
    let again = c
        .locks()
        .acquire(
            "dropped",
            LockOptions::ttl(Duration::from_secs(30)).wait(Duration::from_secs(1)),
        )
        .await
        .expect("the dropped guard released the lock");
    again.release().await.unwrap();
}

#[tokio::test]
async fn lock_stats_count_acquisitions_waits_and_refusals() {
    let c = std::sync::Arc::new(single().await);
    let held = c
        .locks()
        .acquire("stats", LockOptions::ttl(Duration::from_secs(30)))
        .await
        .unwrap();
    let refused = c
        .locks()
        .acquire("stats", LockOptions::ttl(Duration::from_secs(30)))
        .await;
    assert!(matches!(
        refused,
        Err(lina_coord_api::Error::LockBusy { .. })
    ));
    let waiter = {
        let c = c.clone();
        tokio::spawn(async move {
            c.locks()
                .acquire(
                    "stats",
                    LockOptions::ttl(Duration::from_secs(30)).wait(Duration::from_secs(5)),
                )
                .await
        })
    };
    // Hold the lock a while, so the waiter measurably waits.
    tokio::time::sleep(Duration::from_millis(60)).await;
    held.release().await.unwrap();
    waiter.await.unwrap().unwrap().release().await.unwrap();
    let stats = c.locks().stats();
    assert_eq!(stats.acquired, 2, "{stats:?}");
    assert_eq!(stats.busy, 1, "{stats:?}");
    assert_eq!(stats.waited, 1, "{stats:?}");
    assert!(stats.wait_micros >= 50_000, "{stats:?}");
}
