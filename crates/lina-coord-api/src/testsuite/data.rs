//! Conformance tests of the key-value store, revisions and events.

use std::time::Duration;

use super::{Harness, NodeSettings};
use crate::{
    Error, Event, EventItem, KeyTtl, KvKey, REVISION_EVENT, RevisionKey, Scope, Subscription,
};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn key(namespace: &str, name: &str) -> KvKey {
    KvKey::new(Scope::host(), namespace, name).unwrap()
}

/// get/set/set_nx/delete/compare_and_delete, seen from another node.
pub async fn kv_basic_operations(harness: &dyn Harness) {
    let cluster = harness.cluster().await;
    let a = cluster.node(NodeSettings::short("a")).await.coordinator;
    let b = cluster.node(NodeSettings::short("b")).await.coordinator;
    let k = key("basic", "k");
    assert_eq!(a.kv().get(&k).await.unwrap(), None);
    a.kv().set(&k, b"one", None).await.unwrap();
    assert_eq!(b.kv().get(&k).await.unwrap().as_deref(), Some(&b"one"[..]));
    assert!(!b.kv().set_nx(&k, b"two", None).await.unwrap());
    assert_eq!(a.kv().get(&k).await.unwrap().as_deref(), Some(&b"one"[..]));
    assert!(!b.kv().compare_and_delete(&k, b"two").await.unwrap());
    assert!(b.kv().compare_and_delete(&k, b"one").await.unwrap());
    assert_eq!(a.kv().get(&k).await.unwrap(), None);
    assert!(a.kv().set_nx(&k, b"three", None).await.unwrap());
    assert!(b.kv().delete(&k).await.unwrap());
    assert!(!b.kv().delete(&k).await.unwrap());
    let binary = [0u8, 255, 10, 13, 0];
    a.kv().set(&k, &binary, None).await.unwrap();
    assert_eq!(b.kv().get(&k).await.unwrap().as_deref(), Some(&binary[..]));
}

/// Values expire after their TTL; `ttl()` reports missing, persistent and
/// expiring keys; `expire()` sets a TTL on an existing key only.
pub async fn kv_ttls(harness: &dyn Harness) {
    let cluster = harness.cluster().await;
    let a = cluster.node(NodeSettings::short("a")).await.coordinator;
    let short = key("ttl", "short");
    let forever = key("ttl", "forever");
    a.kv().set(&short, b"x", Some(ms(200))).await.unwrap();
    a.kv().set(&forever, b"y", None).await.unwrap();
    match a.kv().ttl(&short).await.unwrap() {
        KeyTtl::Expires(left) => assert!(left <= ms(200) && left > ms(50), "{left:?}"),
        other => panic!("expected an expiring key, got {other:?}"),
    }
    assert_eq!(a.kv().ttl(&forever).await.unwrap(), KeyTtl::Persistent);
    assert_eq!(
        a.kv().ttl(&key("ttl", "none")).await.unwrap(),
        KeyTtl::Missing
    );
    tokio::time::sleep(ms(260)).await;
    assert_eq!(
        a.kv().get(&short).await.unwrap(),
        None,
        "expired value still served"
    );
    assert_eq!(a.kv().ttl(&short).await.unwrap(), KeyTtl::Missing);
    assert!(
        a.kv().set_nx(&short, b"z", Some(ms(200))).await.unwrap(),
        "an expired key counts as absent"
    );
    assert!(a.kv().expire(&forever, ms(150)).await.unwrap());
    assert!(!a.kv().expire(&key("ttl", "none"), ms(150)).await.unwrap());
    tokio::time::sleep(ms(220)).await;
    assert_eq!(a.kv().get(&forever).await.unwrap(), None);
    // set without TTL clears an earlier TTL
    a.kv().set(&forever, b"y", Some(ms(100))).await.unwrap();
    a.kv().set(&forever, b"y", None).await.unwrap();
    assert_eq!(a.kv().ttl(&forever).await.unwrap(), KeyTtl::Persistent);
}

/// Concurrent `incr_by` from two nodes never loses an increment; the TTL is
/// set when the counter is created and not pushed back by later increments.
pub async fn kv_incr_by_is_atomic_with_fixed_window_ttl(harness: &dyn Harness) {
    let cluster = harness.cluster().await;
    let a = cluster.node(NodeSettings::short("a")).await.coordinator;
    let b = cluster.node(NodeSettings::short("b")).await.coordinator;
    let counter = key("incr", "hits");
    let mut tasks = Vec::new();
    for i in 0..10 {
        let node = if i % 2 == 0 { a.clone() } else { b.clone() };
        let counter = counter.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..20 {
                node.kv()
                    .incr_by(&counter, 1, Some(Duration::from_secs(30)))
                    .await
                    .unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(a.kv().incr_by(&counter, 0, None).await.unwrap(), 200);
    assert_eq!(a.kv().incr_by(&counter, -50, None).await.unwrap(), 150);
    assert!(matches!(
        a.kv().ttl(&counter).await.unwrap(),
        KeyTtl::Expires(_)
    ));

    let window = key("incr", "window");
    assert_eq!(a.kv().incr_by(&window, 1, Some(ms(300))).await.unwrap(), 1);
    tokio::time::sleep(ms(150)).await;
    assert_eq!(b.kv().incr_by(&window, 1, Some(ms(300))).await.unwrap(), 2);
    match a.kv().ttl(&window).await.unwrap() {
        KeyTtl::Expires(left) => assert!(left <= ms(160), "ttl was pushed back: {left:?}"),
        other => panic!("expected an expiring counter, got {other:?}"),
    }
    tokio::time::sleep(ms(250)).await;
    assert_eq!(
        a.kv().incr_by(&window, 1, Some(ms(300))).await.unwrap(),
        1,
        "window restarts"
    );

    let text = key("incr", "text");
    a.kv().set(&text, b"not a number", None).await.unwrap();
    let err = a.kv().incr_by(&text, 1, None).await.unwrap_err();
    assert!(matches!(err, Error::InvalidArgument(_)), "{err:?}");
}

/// Keys that would collide if their parts were concatenated stay apart, as
/// do the same name under different tenants and owners, and different
/// deployments.
pub async fn scoped_keys_never_collide(harness: &dyn Harness) {
    let cluster = harness.cluster().await;
    let other = harness.cluster().await;
    let a = cluster.node(NodeSettings::short("a")).await.coordinator;
    let x = other.node(NodeSettings::short("x")).await.coordinator;
    let keys = vec![
        KvKey::new(Scope::host(), "a:b", "c").unwrap(),
        KvKey::new(Scope::host(), "a", "b:c").unwrap(),
        KvKey::new(Scope::host(), "a.b", "c").unwrap(),
        KvKey::new(Scope::host().with_tenant("1").unwrap(), "a", "b:c").unwrap(),
        KvKey::new(Scope::host().with_tenant("2").unwrap(), "a", "b:c").unwrap(),
        KvKey::new(Scope::module("m").unwrap(), "a", "b:c").unwrap(),
        KvKey::new(Scope::plugin("m").unwrap(), "a", "b:c").unwrap(),
        KvKey::new(Scope::plugin("m:a").unwrap(), "b", "c").unwrap(),
        KvKey::new(
            Scope::plugin("m").unwrap().with_tenant("1").unwrap(),
            "a",
            "b:c",
        )
        .unwrap(),
        KvKey::new(Scope::host(), "{a}", "%3A").unwrap(),
        KvKey::new(Scope::host(), "{a}", ":").unwrap(),
    ];
    for (i, k) in keys.iter().enumerate() {
        a.kv().set(k, i.to_string().as_bytes(), None).await.unwrap();
    }
    for (i, k) in keys.iter().enumerate() {
        assert_eq!(
            a.kv().get(k).await.unwrap().as_deref(),
            Some(i.to_string().as_bytes()),
            "key {k} collided"
        );
        assert_eq!(
            x.kv().get(k).await.unwrap(),
            None,
            "deployments share key {k}"
        );
    }
}

async fn next_revision_event(sub: &mut Subscription, domain: &str) -> Event {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    loop {
        let item = tokio::time::timeout_at(deadline, sub.recv())
            .await
            .expect("event within 2s")
            .expect("subscription open");
        match item {
            EventItem::Event(e) if e.kind == REVISION_EVENT && e.domain == domain => return e,
            _ => continue,
        }
    }
}

/// Bumps raise the revision by one, are visible from every node, carry the
/// shared epoch, and are announced to every node's subscribers.
pub async fn revisions_rise_and_are_published(harness: &dyn Harness) {
    let cluster = harness.cluster().await;
    let a = cluster.node(NodeSettings::short("a")).await.coordinator;
    let b = cluster.node(NodeSettings::short("b")).await.coordinator;
    let mut sub_b = b.events().subscribe();
    let mut sub_a = a.events().subscribe();
    let zero = b.revisions().current("i18n", "fr-FR").await.unwrap();
    assert_eq!(zero.value, 0);
    let r1 = a.revisions().bump("i18n", "fr-FR").await.unwrap();
    let r2 = a.revisions().bump("i18n", "fr-FR").await.unwrap();
    assert_eq!(r1.value, 1);
    assert_eq!(r2.value, 2);
    assert_eq!(r1.epoch, zero.epoch);
    assert_eq!(b.revisions().epoch().await.unwrap(), zero.epoch);
    assert_eq!(b.revisions().current("i18n", "fr-FR").await.unwrap(), r2);
    for sub in [&mut sub_b, &mut sub_a] {
        let e1 = next_revision_event(sub, "i18n").await;
        let e2 = next_revision_event(sub, "i18n").await;
        assert_eq!(e1.scope, "fr-FR");
        assert_eq!(e1.revision.as_ref(), Some(&r1));
        assert_eq!(e2.revision.as_ref(), Some(&r2));
        assert_eq!(e1.source_node, *a.node_id());
    }
    b.revisions().bump("i18n", "de-DE").await.unwrap();
    let many = a
        .revisions()
        .current_many(&[
            RevisionKey::new("i18n", "de-DE"),
            RevisionKey::new("i18n", "fr-FR"),
            RevisionKey::new("menu", "0"),
        ])
        .await
        .unwrap();
    let values: Vec<u64> = many.iter().map(|r| r.value).collect();
    assert_eq!(values, [1, 2, 0]);
    assert!(a.revisions().current_many(&[]).await.unwrap().is_empty());
}

/// A published event reaches the subscribers of every node, publisher included.
pub async fn events_reach_every_node(harness: &dyn Harness) {
    let cluster = harness.cluster().await;
    let a = cluster.node(NodeSettings::short("a")).await.coordinator;
    let b = cluster.node(NodeSettings::short("b")).await.coordinator;
    let c = cluster.node(NodeSettings::short("c")).await.coordinator;
    let mut subs = vec![
        a.events().subscribe(),
        b.events().subscribe(),
        c.events().subscribe(),
    ];
    let event =
        Event::new("session-revoked", "session", "token-1", b.node_id().clone()).with_tenant("7");
    b.events().publish(event.clone()).await.unwrap();
    for sub in &mut subs {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
        loop {
            let item = tokio::time::timeout_at(deadline, sub.recv())
                .await
                .expect("event within 2s")
                .expect("subscription open");
            if let EventItem::Event(e) = item
                && e.id == event.id
            {
                assert_eq!(e, event);
                break;
            }
        }
    }
}
