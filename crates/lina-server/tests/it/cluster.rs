use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use crate::server;

struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Cluster mode on PostgreSQL and Redis: the node connects, leads alone and
/// serves /health.
#[tokio::test]
async fn cluster_mode_serves_with_redis_and_postgres() {
    let redis = lina_testkit::RedisServer::start().await.unwrap();
    let db = lina_testkit::fresh_database().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let port = lina_testkit::free_port();
    let child = server(dir.path())
        .env("LINA_SERVER__ADDRESS", format!("127.0.0.1:{port}"))
        .env("LINA_CLUSTER__ENABLED", "true")
        .env(
            "LINA_CLUSTER__REDIS__ADDRESS",
            format!("127.0.0.1:{}", redis.port()),
        )
        .env("LINA_CLUSTER__REDIS__NAMESPACE", "srv")
        .env("LINA_DATABASE__DEFAULT__LINK", db.url())
        .env("LINA_JWT__SECRET", "a-test-secret-of-32-characters-ok")
        .env("LINA_NODE_ID", "cluster-node")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut running = Running(child);
    let deadline = Instant::now() + Duration::from_secs(30);
    let url = format!("http://127.0.0.1:{port}/health");
    loop {
        if let Ok(response) = reqwest::get(&url).await
            && response.status().is_success()
        {
            let body: serde_json::Value = response.json().await.unwrap();
            assert_eq!(body["nodeId"], "cluster-node");
            break;
        }
        if let Some(status) = running.0.try_wait().unwrap() {
            panic!("server exited early with {status}");
        }
        assert!(Instant::now() < deadline, "no /health within 30s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Cluster mode without Redis: a bounded wait, then a clear error.
#[tokio::test]
async fn cluster_mode_without_redis_fails_clearly() {
    let db = lina_testkit::fresh_database().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let out = server(dir.path())
        .env(
            "LINA_SERVER__ADDRESS",
            format!("127.0.0.1:{}", lina_testkit::free_port()),
        )
        .env("LINA_CLUSTER__ENABLED", "true")
        .env(
            "LINA_CLUSTER__REDIS__ADDRESS",
            format!("127.0.0.1:{}", lina_testkit::free_port()),
        )
        .env("LINA_CLUSTER__REDIS__CONNECTTIMEOUT", "100ms")
        .env("LINA_DATABASE__DEFAULT__LINK", db.url())
        .env("LINA_JWT__SECRET", "a-test-secret-of-32-characters-ok")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("is required in cluster mode"), "{stderr}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
}
