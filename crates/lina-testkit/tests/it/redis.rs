//! The private `RedisServer` and the shared Redis.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use lina_testkit::{RedisClusterServer, RedisServer, shared_redis};

use crate::support::{Resp, process_alive};

fn addr(r: &RedisServer) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], r.port()))
}

#[tokio::test]
async fn private_server_starts_fast_and_answers() {
    let started = Instant::now();
    let redis = RedisServer::start().await.unwrap();
    let took = started.elapsed();
    assert!(took < Duration::from_secs(5), "start took {took:?}");
    assert!(redis.is_running());
    assert_eq!(redis.host(), "127.0.0.1");
    assert_eq!(redis.url(), format!("redis://127.0.0.1:{}", redis.port()));
    let mut c = Resp::connect(addr(&redis)).await.unwrap();
    assert_eq!(c.cmd(&["PING"]).await, "+PONG");
    assert_eq!(c.cmd(&["SET", "k", "v"]).await, "+OK");
    assert_eq!(c.cmd(&["GET", "k"]).await, "v");
}

#[tokio::test]
async fn flush_and_keys_are_refused() {
    let redis = RedisServer::start().await.unwrap();
    let mut c = Resp::connect(addr(&redis)).await.unwrap();
    for cmd in [&["FLUSHALL"][..], &["FLUSHDB"], &["KEYS", "*"]] {
        let reply = c.cmd(cmd).await;
        assert!(
            reply.starts_with("-ERR unknown command"),
            "{cmd:?} answered {reply}"
        );
    }
    // Nothing persists to disk either.
    assert_eq!(c.cmd(&["CONFIG", "GET", "save"]).await, "*2");
}

#[tokio::test]
async fn pause_stops_answers_and_resume_restores_them() {
    let redis = RedisServer::start().await.unwrap();
    redis.pause().await.unwrap();
    assert!(redis.is_running(), "a paused server still exists");
    let mut c = Resp::connect(addr(&redis)).await.unwrap();
    let err = c
        .cmd_within(Duration::from_millis(300), &["PING"])
        .await
        .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);

    redis.resume().await.unwrap();
    // The PING sent while paused is answered now, and new connections work.
    assert_eq!(c.cmd(&["PING"]).await, "+PONG");
    let mut c2 = Resp::connect(addr(&redis)).await.unwrap();
    assert_eq!(c2.cmd(&["PING"]).await, "+PONG");
}

#[tokio::test]
async fn restart_keeps_port_and_empties_dataset() {
    let redis = RedisServer::start().await.unwrap();
    let (port, pid) = (redis.port(), redis.pid());
    let mut c = Resp::connect(addr(&redis)).await.unwrap();
    assert_eq!(c.cmd(&["SET", "k", "v"]).await, "+OK");

    redis.restart().await.unwrap();
    assert_eq!(redis.port(), port);
    assert_ne!(redis.pid(), pid);
    assert!(!process_alive(pid));
    let mut c = Resp::connect(addr(&redis)).await.unwrap();
    assert_eq!(c.cmd(&["GET", "k"]).await, "(nil)");
    assert_eq!(c.cmd(&["DBSIZE"]).await, ":0");
}

#[tokio::test]
async fn restart_of_a_paused_server_works() {
    let redis = RedisServer::start().await.unwrap();
    redis.pause().await.unwrap();
    redis.restart().await.unwrap();
    let mut c = Resp::connect(addr(&redis)).await.unwrap();
    assert_eq!(c.cmd(&["PING"]).await, "+PONG");
}

#[tokio::test]
async fn kill_and_drop_end_the_process() {
    let redis = RedisServer::start().await.unwrap();
    let pid = redis.pid();
    redis.kill().unwrap();
    assert!(!redis.is_running());
    assert!(!process_alive(pid));
    assert!(Resp::connect(addr(&redis)).await.is_err());
    redis.kill().unwrap(); // killing twice is fine

    let redis = RedisServer::start().await.unwrap();
    let pid = redis.pid();
    drop(redis);
    assert!(!process_alive(pid));
}

#[tokio::test]
async fn drop_kills_even_when_the_test_panics() {
    let (tx, rx) = std::sync::mpsc::channel();
    let handle = tokio::spawn(async move {
        let redis = RedisServer::start().await.unwrap();
        tx.send(redis.pid()).unwrap();
        panic!("test failure while the server runs");
    });
    assert!(handle.await.unwrap_err().is_panic());
    let pid = rx.recv().unwrap();
    assert!(!process_alive(pid));
}

#[tokio::test]
async fn password_is_required() {
    let redis = RedisServer::builder()
        .password("s3cret pw")
        .start()
        .await
        .unwrap();
    assert_eq!(
        redis.url(),
        format!("redis://:s3cret%20pw@127.0.0.1:{}", redis.port())
    );
    let mut c = Resp::connect(addr(&redis)).await.unwrap();
    assert!(c.cmd(&["PING"]).await.starts_with("-NOAUTH"));
    assert!(c.cmd(&["AUTH", "wrong"]).await.starts_with("-WRONGPASS"));
    assert_eq!(c.cmd(&["AUTH", "s3cret pw"]).await, "+OK");
    assert_eq!(c.cmd(&["PING"]).await, "+PONG");
    // Survives a restart.
    redis.restart().await.unwrap();
    let mut c = Resp::connect(addr(&redis)).await.unwrap();
    assert!(c.cmd(&["PING"]).await.starts_with("-NOAUTH"));
}

#[tokio::test]
async fn acl_user_can_log_in() {
    let redis = RedisServer::builder()
        .password("admin")
        .acl_user("lina", "pw")
        .start()
        .await
        .unwrap();
    assert_eq!(
        redis.url(),
        format!("redis://lina:pw@127.0.0.1:{}", redis.port())
    );
    let mut c = Resp::connect(addr(&redis)).await.unwrap();
    assert_eq!(c.cmd(&["AUTH", "lina", "pw"]).await, "+OK");
    assert_eq!(c.cmd(&["SET", "k", "v"]).await, "+OK");
    assert!(
        c.cmd(&["FLUSHALL"])
            .await
            .starts_with("-ERR unknown command")
    );
}

#[tokio::test]
async fn many_private_servers_start_in_parallel() {
    let servers = futures_join_all((0..6).map(|_| RedisServer::start())).await;
    let mut ports: Vec<u16> = servers.iter().map(|s| s.as_ref().unwrap().port()).collect();
    ports.sort();
    ports.dedup();
    assert_eq!(ports.len(), 6);
}

async fn futures_join_all<F>(futs: impl Iterator<Item = F>) -> Vec<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futs.map(tokio::spawn).collect();
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}

#[tokio::test]
async fn shared_redis_answers() {
    let url = shared_redis().await.unwrap();
    let mut c = Resp::connect_url(&url).await.unwrap();
    assert_eq!(c.cmd(&["PING"]).await, "+PONG");
    // Namespaced keys only; never flush a shared server.
    let key = format!("lina-testkit:it:{}", std::process::id());
    assert_eq!(c.cmd(&["SET", &key, "1", "PX", "5000"]).await, "+OK");
    assert_eq!(c.cmd(&["DEL", &key]).await, ":1");
    assert_eq!(shared_redis().await.unwrap(), url, "found once per process");
}

#[tokio::test]
async fn sentinel_availability_matches_the_binary() {
    let expected = ["/usr/bin/redis-sentinel", "/usr/local/bin/redis-sentinel"]
        .iter()
        .any(|p| std::path::Path::new(p).exists());
    if expected {
        assert!(lina_testkit::redis_sentinel_available().await);
    }
}

#[tokio::test]
async fn cluster_of_three_masters_starts_and_reports_ok() {
    let started = Instant::now();
    let cluster = RedisClusterServer::start(3).await.unwrap();
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(10),
        "cluster start took {took:?}"
    );
    assert!(cluster.is_running());
    let nodes = cluster.nodes();
    assert_eq!(nodes.len(), 3);
    let mut ports: Vec<u16> = nodes.iter().map(|(_, p)| *p).collect();
    ports.sort();
    ports.dedup();
    assert_eq!(ports.len(), 3, "distinct ports: {nodes:?}");

    let mut moved = 0;
    for (host, port) in &nodes {
        assert_eq!(host, "127.0.0.1");
        let mut c = Resp::connect(SocketAddr::from(([127, 0, 0, 1], *port)))
            .await
            .unwrap();
        let info = c.cmd(&["CLUSTER", "INFO"]).await;
        for line in [
            "cluster_state:ok",
            "cluster_slots_ok:16384",
            "cluster_known_nodes:3",
            "cluster_size:3",
        ] {
            assert!(info.contains(line), "node {port} lacks {line}: {info}");
        }
        assert!(
            c.cmd(&["FLUSHALL"])
                .await
                .starts_with("-ERR unknown command")
        );
        // Slots are spread: one key lives on exactly one node.
        match c.cmd(&["SET", "lina-testkit:cluster", "v"]).await.as_str() {
            "+OK" => {}
            reply if reply.starts_with("-MOVED") => moved += 1,
            reply => panic!("SET on node {port} answered {reply}"),
        }
    }
    assert_eq!(moved, 2, "a key belongs to one of three masters");

    let pids = cluster.pids();
    cluster.kill_all().unwrap();
    assert!(!cluster.is_running());
    for pid in &pids {
        assert!(!process_alive(*pid));
    }
    cluster.kill_all().unwrap(); // killing twice is fine

    let cluster = RedisClusterServer::start(3).await.unwrap();
    let pids = cluster.pids();
    drop(cluster);
    for pid in pids {
        assert!(!process_alive(pid));
    }
}
