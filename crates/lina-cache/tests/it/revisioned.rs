use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lina_cache::{CacheError, CacheRegistry, CacheSettings, RevisionedCache, StalePolicy};

use crate::deployment::{Deployment, Kind, within};
use crate::on_both_backends;

on_both_backends!(
    bump_invalidates_one_scope_on_every_node_within_50ms,
    lost_events_converge_within_one_poll,
    epoch_change_reloads_everything,
    stale_policies_apply_past_max_stale_and_recover,
    concurrent_callers_past_max_stale_wait_at_most_one_read,
    concurrent_misses_load_once,
);

/// Counts loader runs per (node, scope).
#[derive(Default, Clone)]
struct Loads(Arc<Mutex<HashMap<String, usize>>>);

impl Loads {
    fn count(&self, key: &str) -> usize {
        self.0.lock().unwrap().get(key).copied().unwrap_or(0)
    }

    async fn load(
        &self,
        cache: &RevisionedCache<String>,
        node: usize,
        scope: &str,
    ) -> Result<String, CacheError<std::io::Error>> {
        let loads = self.clone();
        let key = format!("{node}/{}/{scope}", cache.domain());
        cache
            .get_or_load(scope, || async move {
                *loads.0.lock().unwrap().entry(key).or_default() += 1;
                Ok(format!("{scope}@{}", loads.0.lock().unwrap().len()))
            })
            .await
    }
}

fn settings(poll_ms: u64, max_stale_ms: u64) -> CacheSettings {
    CacheSettings {
        revision_poll: Duration::from_millis(poll_ms),
        max_stale: Duration::from_millis(max_stale_ms),
    }
}

struct NodeCaches {
    registry: CacheRegistry,
    i18n: RevisionedCache<String>,
    menu: RevisionedCache<String>,
}

fn caches(deployment: &Deployment, settings: CacheSettings) -> Vec<NodeCaches> {
    (0..deployment.nodes.len())
        .map(|i| {
            let registry = CacheRegistry::start(deployment.node(i), settings);
            NodeCaches {
                i18n: registry.domain("i18n", StalePolicy::ServeStale).unwrap(),
                menu: registry.domain("menu", StalePolicy::FailClosed).unwrap(),
                registry,
            }
        })
        .collect()
}

/// A bump of `i18n/fr-FR` on one node drops that scope on the two others
/// within 50 ms, by events alone (the sweep is slowed right down); German
/// and the menu domain stay loaded and are not reloaded.
async fn bump_invalidates_one_scope_on_every_node_within_50ms(kind: Kind) {
    let deployment = Deployment::new(kind, 3).await;
    let nodes = caches(&deployment, settings(60_000, 120_000));
    let loads = Loads::default();
    for (i, node) in nodes.iter().enumerate() {
        // Let the first sweep settle the epoch so hits are fresh.
        node.registry.sweep().await;
        for scope in ["fr-FR", "de-DE"] {
            loads.load(&node.i18n, i, scope).await.unwrap();
        }
        loads.load(&node.menu, i, "0").await.unwrap();
    }
    nodes[0].i18n.bump("fr-FR").await.unwrap();
    assert!(
        !nodes[0].i18n.is_loaded("fr-FR"),
        "the writer keeps its stale copy"
    );
    for node in &nodes[1..] {
        let took = within(Duration::from_millis(50), || !node.i18n.is_loaded("fr-FR"))
            .await
            .expect("fr-FR dropped within 50ms");
        assert!(took <= Duration::from_millis(50));
        assert!(node.i18n.is_loaded("de-DE"), "de-DE was evicted too");
        assert!(node.menu.is_loaded("0"), "another domain was evicted");
    }
    for (i, node) in nodes.iter().enumerate() {
        for scope in ["fr-FR", "de-DE"] {
            loads.load(&node.i18n, i, scope).await.unwrap();
        }
        loads.load(&node.menu, i, "0").await.unwrap();
        assert_eq!(
            loads.count(&format!("{i}/i18n/fr-FR")),
            2,
            "fr-FR reloaded once"
        );
        assert_eq!(loads.count(&format!("{i}/i18n/de-DE")), 1, "de-DE reloaded");
        assert_eq!(loads.count(&format!("{i}/menu/0")), 1, "menu reloaded");
        let stats = node.i18n.stats();
        assert_eq!(stats.loads, 3);
        assert!(stats.hits >= 1, "{stats:?}");
        assert_eq!(stats.entries, 2);
        assert!(
            stats.scopes.iter().all(|s| s.fresh && s.revision.is_some()),
            "{stats:?}"
        );
    }
}

/// With every event of one node suppressed, a change still reaches it by
/// the revision sweep within `revisionPoll` + 100 ms.
async fn lost_events_converge_within_one_poll(kind: Kind) {
    let deployment = Deployment::new(kind, 2).await;
    deployment.nodes[1]
        .faults()
        .drop_events
        .store(true, Ordering::SeqCst);
    let poll = Duration::from_millis(300);
    let nodes = caches(&deployment, settings(300, 10_000));
    let loads = Loads::default();
    for (i, node) in nodes.iter().enumerate() {
        node.registry.sweep().await;
        loads.load(&node.i18n, i, "fr-FR").await.unwrap();
        loads.load(&node.i18n, i, "de-DE").await.unwrap();
    }
    nodes[0].i18n.bump("fr-FR").await.unwrap();
    let took = within(poll + Duration::from_millis(100), || {
        !nodes[1].i18n.is_loaded("fr-FR")
    })
    .await
    .expect("the change arrives within revisionPoll + 100ms without events");
    assert!(nodes[1].i18n.is_loaded("de-DE"));
    eprintln!("converged by polling in {took:?}");
}

/// The backend loses its data: every node drops everything and reloads.
async fn epoch_change_reloads_everything(kind: Kind) {
    let deployment = Deployment::new(kind, 2).await;
    let nodes = caches(&deployment, settings(200, 10_000));
    let loads = Loads::default();
    for (i, node) in nodes.iter().enumerate() {
        node.registry.sweep().await;
        loads.load(&node.i18n, i, "fr-FR").await.unwrap();
        loads.load(&node.menu, i, "0").await.unwrap();
    }
    deployment.lose_data().await;
    for node in &nodes {
        within(Duration::from_secs(5), || {
            !node.i18n.is_loaded("fr-FR") && !node.menu.is_loaded("0")
        })
        .await
        .expect("every scope dropped after the epoch changed");
    }
    for (i, node) in nodes.iter().enumerate() {
        loads.load(&node.i18n, i, "fr-FR").await.unwrap();
        loads.load(&node.menu, i, "0").await.unwrap();
        assert_eq!(loads.count(&format!("{i}/i18n/fr-FR")), 2);
        assert_eq!(loads.count(&format!("{i}/menu/0")), 2);
    }
}

/// Revisions unreadable beyond `maxStale`: the fail_closed domain refuses
/// (503-worthy), the serve_stale domain serves its old value, the hide
/// domain hides; all recover by themselves once revisions can be read.
async fn stale_policies_apply_past_max_stale_and_recover(kind: Kind) {
    let deployment = Deployment::new(kind, 1).await;
    let max_stale = Duration::from_millis(500);
    let registry = CacheRegistry::start(deployment.node(0), settings(100, 500));
    let permissions = registry
        .domain::<String>("permission", StalePolicy::FailClosed)
        .unwrap();
    let messages = registry
        .domain::<String>("i18n", StalePolicy::ServeStale)
        .unwrap();
    let plugins = registry
        .domain::<String>("plugin-runtime", StalePolicy::Hide)
        .unwrap();
    let loads = Loads::default();
    registry.sweep().await;
    for cache in [&permissions, &messages, &plugins] {
        loads.load(cache, 0, "t").await.unwrap();
    }
    deployment.outage_start().await;
    tokio::time::sleep(max_stale + Duration::from_millis(300)).await;

    let refused = loads.load(&permissions, 0, "t").await.unwrap_err();
    assert!(refused.is_unavailable(), "{refused:?}");
    assert!(
        matches!(
            refused,
            CacheError::Stale { .. } | CacheError::Coordination { .. }
        ),
        "{refused:?}"
    );
    let served = loads
        .load(&messages, 0, "t")
        .await
        .expect("serve_stale serves");
    assert!(served.starts_with("t@"));
    let hidden = loads.load(&plugins, 0, "t").await.unwrap_err();
    assert!(matches!(hidden, CacheError::Hidden { .. }), "{hidden:?}");
    assert_eq!(
        loads.count("0/permission/t"),
        1,
        "fail_closed must not load"
    );

    deployment.outage_end().await;
    let recovered = {
        let mut ok = false;
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while std::time::Instant::now() < deadline {
            if loads.load(&permissions, 0, "t").await.is_ok()
                && loads.load(&plugins, 0, "t").await.is_ok()
            {
                ok = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        ok
    };
    assert!(recovered, "domains did not recover by themselves");
    assert_eq!(
        loads.count("0/permission/t"),
        1,
        "an unchanged revision is confirmed, not reloaded"
    );
}

/// With revisions unreadable past `maxStale`, twenty concurrent callers of
/// a fail_closed scope are all refused within about one command timeout
/// (2 s on the Redis test nodes): they never queue behind one timed-out
/// read after another. A scope never loaded is refused as quickly, and a
/// later caller is answered at once.
async fn concurrent_callers_past_max_stale_wait_at_most_one_read(kind: Kind) {
    let deployment = Deployment::new(kind, 1).await;
    let registry = CacheRegistry::start(deployment.node(0), settings(100, 500));
    let permissions = registry
        .domain::<String>("permission", StalePolicy::FailClosed)
        .unwrap();
    let loads = Loads::default();
    registry.sweep().await;
    loads.load(&permissions, 0, "t").await.unwrap();
    deployment.outage_start().await;
    tokio::time::sleep(Duration::from_millis(800)).await;

    let started = std::time::Instant::now();
    let mut callers = tokio::task::JoinSet::new();
    for i in 0..20 {
        let (cache, loads) = (permissions.clone(), loads.clone());
        let scope = if i % 2 == 0 { "t" } else { "never-loaded" };
        callers.spawn(async move { loads.load(&cache, 0, scope).await });
    }
    while let Some(answer) = callers.join_next().await {
        let refused = answer.unwrap().unwrap_err();
        assert!(refused.is_unavailable(), "{refused:?}");
    }
    let took = started.elapsed();
    assert!(
        took < Duration::from_millis(3500),
        "20 concurrent callers took {took:?}: they queued behind each other's reads"
    );
    let later = std::time::Instant::now();
    assert!(loads.load(&permissions, 0, "t").await.is_err());
    assert!(
        later.elapsed() < Duration::from_millis(100),
        "a caller after the failure waited {:?}",
        later.elapsed()
    );
    assert_eq!(loads.count("0/permission/never-loaded"), 0);
    deployment.outage_end().await;
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while loads.load(&permissions, 0, "t").await.is_err() {
        assert!(std::time::Instant::now() < deadline, "did not recover");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A hundred concurrent misses of one scope run the loader once.
async fn concurrent_misses_load_once(kind: Kind) {
    let deployment = Deployment::new(kind, 1).await;
    let registry = CacheRegistry::start(deployment.node(0), settings(1_000, 10_000));
    let cache = registry
        .domain::<Arc<String>>("permission", StalePolicy::FailClosed)
        .unwrap();
    let runs = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..100 {
        let cache = cache.clone();
        let runs = runs.clone();
        tasks.push(tokio::spawn(async move {
            cache
                .get_or_load("tenant-1", || async move {
                    runs.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    Ok::<_, std::io::Error>(Arc::new("topology".to_string()))
                })
                .await
                .unwrap()
        }));
    }
    for task in tasks {
        assert_eq!(task.await.unwrap().as_str(), "topology");
    }
    assert_eq!(runs.load(Ordering::SeqCst), 1);
}
