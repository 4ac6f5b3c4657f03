//! `free_port` and `wait_until`.

use std::time::{Duration, Instant};

use lina_testkit::{free_port, wait_until};

#[test]
fn free_port_can_be_bound() {
    let port = free_port();
    let listener = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
    assert_eq!(listener.local_addr().unwrap().port(), port);
}

#[tokio::test]
async fn wait_until_returns_true_as_soon_as_the_condition_holds() {
    let start = Instant::now();
    let ok = wait_until(
        Duration::from_secs(5),
        Duration::from_millis(2),
        || async move { start.elapsed() >= Duration::from_millis(30) },
    )
    .await;
    assert!(ok);
    assert!(start.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn wait_until_gives_up_at_the_deadline() {
    let start = Instant::now();
    let mut calls = 0;
    let ok = wait_until(Duration::from_millis(50), Duration::from_millis(10), || {
        calls += 1;
        async { false }
    })
    .await;
    assert!(!ok);
    let took = start.elapsed();
    assert!(took >= Duration::from_millis(50), "{took:?}");
    assert!(took < Duration::from_secs(2), "{took:?}");
    assert!(calls >= 2, "called {calls} times");
}
