//! Connection modes: password, ACL user, Sentinel; clear errors.

use std::time::{Duration, Instant};

use lina_coord_api::{Coordinator, Error, NodeId, NodeInfo};
use lina_coord_redis::{RedisCoordinator, RedisSettings, Topology};
use lina_testkit::{RedisSentinel, RedisServer};

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
