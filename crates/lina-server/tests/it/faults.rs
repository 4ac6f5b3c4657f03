//! Failure behaviour of a cluster node: with Redis unreachable past
//! `cache.maxStale`, checks that need coordination fail closed with 503
//! (never 500, never a hang past the timeouts), reads that need none keep
//! working, and everything recovers without a restart.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::harness::Server;

/// `path` with `token`, timed.
async fn timed(s: &Server, path: &str, token: Option<&str>) -> (StatusCode, Value, Duration) {
    let started = Instant::now();
    let (status, body) = s.call(Method::GET, path, token, None).await;
    (status, body, started.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn requests_fail_closed_while_redis_is_paused_past_max_stale_and_recover() {
    let redis = lina_testkit::RedisServer::start().await.unwrap();
    let db = lina_testkit::fresh_database().await.unwrap();
    let s = Server::start(&[
        ("LINA_CLUSTER__ENABLED", "true".to_string()),
        (
            "LINA_CLUSTER__REDIS__ADDRESS",
            format!("127.0.0.1:{}", redis.port()),
        ),
        ("LINA_CLUSTER__REDIS__READTIMEOUT", "500ms".to_string()),
        ("LINA_CLUSTER__REDIS__WRITETIMEOUT", "500ms".to_string()),
        ("LINA_CLUSTER__ELECTION__LEASE", "3s".to_string()),
        ("LINA_CLUSTER__ELECTION__RENEWINTERVAL", "1s".to_string()),
        ("LINA_CACHE__REVISIONPOLL", "200ms".to_string()),
        ("LINA_CACHE__MAXSTALE", "1s".to_string()),
        ("LINA_DATABASE__DEFAULT__LINK", db.url().to_string()),
    ])
    .await;
    let (token, _) = s.login("admin", "admin123").await;
    let (status, _, _) = timed(&s, "/api/v1/user/info", Some(&token)).await;
    assert_eq!(status, StatusCode::OK);

    redis.pause().await.unwrap();
    let paused = Instant::now();
    // Within maxStale plus a poll and a timeout, protected requests answer
    // 503 with the envelope; none answers 500 or hangs.
    let refused_after = loop {
        let (status, body, took) = timed(&s, "/api/v1/user/info", Some(&token)).await;
        assert!(took < Duration::from_secs(3), "a request hung for {took:?}");
        assert_ne!(status, StatusCode::INTERNAL_SERVER_ERROR, "{body}");
        if status == StatusCode::SERVICE_UNAVAILABLE {
            assert_eq!(body["errorCode"], "SERVICE_UNAVAILABLE", "{body}");
            break paused.elapsed();
        }
        assert_eq!(status, StatusCode::OK, "{body}");
        assert!(
            paused.elapsed() < Duration::from_secs(4),
            "still serving permissions {:?} after Redis paused",
            paused.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    eprintln!("permissions refused {refused_after:?} after Redis paused");
    assert!(
        refused_after >= Duration::from_millis(900),
        "refused before maxStale: {refused_after:?}"
    );
    for path in ["/api/v1/menus/all", "/api/v1/role", "/api/v1/plugins"] {
        let (status, body, took) = timed(&s, path, Some(&token)).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{path}: {body}");
        assert!(took < Duration::from_secs(3), "{path} took {took:?}");
    }
    // Reads that need no coordination keep working.
    let (status, _, _) = timed(&s, "/health", None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body, _) = timed(&s, "/api/v1/i18n/runtime/messages?lang=en-US", None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _, _) = timed(&s, "/api/v1/config/public/frontend", None).await;
    assert_eq!(status, StatusCode::OK);
    // Readiness says which dependency failed.
    let (status, body, took) = timed(&s, "/ready", None).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(took < Duration::from_secs(3), "/ready took {took:?}");

    redis.resume().await.unwrap();
    let resumed = Instant::now();
    loop {
        let (status, body, _) = timed(&s, "/api/v1/user/info", Some(&token)).await;
        if status == StatusCode::OK {
            break;
        }
        assert!(
            resumed.elapsed() < Duration::from_secs(5),
            "not recovered {:?} after Redis came back: {status} {body}",
            resumed.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!("recovered {:?} after Redis resumed", resumed.elapsed());
    let (status, _, _) = timed(&s, "/ready", None).await;
    assert_eq!(status, StatusCode::OK);
}

/// A query cut by the database (a restart terminates every backend with
/// SQLSTATE 57P01) or a pool that cannot hand out a connection is "the
/// database is unavailable" (503), while a bad query stays a 500.
#[tokio::test]
async fn database_connection_losses_map_to_unavailable() {
    use lina_server::api::error::db_unavailable;
    use sea_orm::{ConnectionTrait, Database, DbBackend, DbErr, RuntimeErr, Statement};
    let db = lina_testkit::fresh_database().await.unwrap();
    let conn = Database::connect(db.url()).await.unwrap();
    let cut = conn
        .execute_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT pg_terminate_backend(pg_backend_pid())",
        ))
        .await
        .unwrap_err();
    assert!(db_unavailable(&cut), "{cut:?}");
    let bad = conn
        .execute_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT * FROM no_such_table",
        ))
        .await
        .unwrap_err();
    assert!(!db_unavailable(&bad), "{bad:?}");
    let pool = DbErr::Query(RuntimeErr::SqlxError(std::sync::Arc::new(
        sea_orm::sqlx::Error::PoolTimedOut,
    )));
    assert!(db_unavailable(&pool));
    assert!(!db_unavailable(&DbErr::RecordNotFound("x".into())));
    conn.close().await.unwrap();
}
