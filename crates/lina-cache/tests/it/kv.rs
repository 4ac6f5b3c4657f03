use std::time::Duration;

use lina_cache::{KvCache, KvCacheError, KvLimits};
use lina_coord_api::KeyTtl;
use serde::{Deserialize, Serialize};

use crate::deployment::{Deployment, Kind};
use crate::on_both_backends;

on_both_backends!(typed_values_are_scoped_limited_and_expire);

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Snapshot {
    id: String,
    version: u32,
}

async fn typed_values_are_scoped_limited_and_expire(kind: Kind) {
    let deployment = Deployment::new(kind, 2).await;
    let a = KvCache::for_plugin(deployment.node(0), "demo").unwrap();
    let b = KvCache::for_plugin(deployment.node(1), "demo").unwrap();
    let other = KvCache::for_plugin(deployment.node(1), "other").unwrap();
    let tenant = KvCache::for_plugin(deployment.node(1), "demo")
        .unwrap()
        .with_tenant("7")
        .unwrap();
    let value = Snapshot {
        id: "p1".into(),
        version: 3,
    };
    a.set("snap", "p1", &value, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(b.get::<Snapshot>("snap", "p1").await.unwrap(), Some(value));
    assert_eq!(other.get::<Snapshot>("snap", "p1").await.unwrap(), None);
    assert_eq!(tenant.get::<Snapshot>("snap", "p1").await.unwrap(), None);
    assert!(matches!(
        a.ttl("snap", "p1").await.unwrap(),
        KeyTtl::Expires(_)
    ));

    let err = b.get::<Vec<u8>>("snap", "p1").await.unwrap_err();
    assert!(matches!(err, KvCacheError::Decode { .. }), "{err:?}");

    let small = a.clone().with_limits(KvLimits {
        max_name: 8,
        max_value: 16,
        max_ttl: Duration::from_secs(60),
    });
    let err = small
        .set("ns", "a-very-long-name", &1, Duration::from_secs(1))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            KvCacheError::KeyTooLong {
                len: 16,
                max: 8,
                ..
            }
        ),
        "{err:?}"
    );
    let err = small
        .set("ns", "k", &"x".repeat(100), Duration::from_secs(1))
        .await
        .unwrap_err();
    assert!(
        matches!(err, KvCacheError::ValueTooLarge { max: 16, .. }),
        "{err:?}"
    );
    let err = small
        .set("ns", "k", &1, Duration::from_secs(3600))
        .await
        .unwrap_err();
    assert!(matches!(err, KvCacheError::BadTtl { .. }), "{err:?}");
    assert!(err.to_string().contains("must be between"), "{err}");

    assert_eq!(
        a.incr("hits", "today", 2, Duration::from_secs(30))
            .await
            .unwrap(),
        2
    );
    assert_eq!(
        b.incr("hits", "today", 3, Duration::from_secs(30))
            .await
            .unwrap(),
        5
    );

    assert!(
        a.set_if_absent("once", "k", &1, Duration::from_millis(150))
            .await
            .unwrap()
    );
    assert!(
        !b.set_if_absent("once", "k", &2, Duration::from_millis(150))
            .await
            .unwrap()
    );
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert_eq!(
        a.get::<i32>("once", "k").await.unwrap(),
        None,
        "value outlived its ttl"
    );
    assert!(!a.delete("once", "k").await.unwrap());
}
