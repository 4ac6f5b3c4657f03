//! The API on a single node (SQLite) and on a three-node cluster
//! (PostgreSQL + Redis).

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::harness::{Cluster, Server};

#[tokio::test]
async fn single_node_login_user_info_menus_ready_and_logout() {
    let s = Server::start(&[]).await;
    let (status, body) = s.call(Method::GET, "/ready", None, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["checks"]["database"], "ok");

    let (access, refresh) = s.login("admin", "admin123").await;
    let (status, info) = s.get("/api/v1/user/info", &access).await;
    assert_eq!(status, StatusCode::OK, "{info}");
    assert_eq!(info["code"], 0);
    assert_eq!(info["data"]["username"], "admin");
    assert_eq!(info["data"]["permissions"], json!(["*:*:*"]));
    assert_eq!(info["data"]["roles"], json!(["admin"]));
    assert!(
        info["data"]["menus"].as_array().unwrap().len() >= 5,
        "{info}"
    );

    let (status, menus) = s.get("/api/v1/menus/all", &access).await;
    assert_eq!(status, StatusCode::OK);
    let list = menus["data"]["list"].as_array().unwrap();
    let system = list
        .iter()
        .find(|m| m["name"] == "System")
        .expect("System directory");
    let children = system["children"].as_array().unwrap();
    assert!(children.iter().any(|c| c["path"] == "/system/user"));
    assert!(
        children.iter().all(|c| c.get("children").is_none()),
        "buttons must be excluded"
    );

    let (status, sys) = s.get("/api/v1/system/info", &access).await;
    assert_eq!(status, StatusCode::OK, "{sys}");
    assert_eq!(sys["data"]["cluster"]["backend"], "local");
    assert_eq!(sys["data"]["cluster"]["role"], "leader");
    assert_eq!(sys["data"]["cluster"]["term"], 1);

    let (status, refreshed) = s
        .call(
            Method::POST,
            "/api/v1/auth/refresh",
            None,
            Some(json!({"refreshToken": refresh})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{refreshed}");
    let (status, _) = s
        .call(
            Method::POST,
            "/api/v1/auth/refresh",
            None,
            Some(json!({"refreshToken": access})),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "an access token is not a refresh token"
    );

    let (status, _) = s
        .call(Method::POST, "/api/v1/auth/logout", Some(&access), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = s.get("/api/v1/user/info", &access).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["errorCode"], "AUTH_SESSION_REVOKED");
}

#[tokio::test]
async fn client_mistakes_are_400_or_401_with_the_envelope() {
    let s = Server::start(&[]).await;
    let login = "/api/v1/auth/login";
    let response = s
        .http
        .post(format!("{}{login}", s.base))
        .header("Content-Type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["code"], 53);
    assert_eq!(body["errorCode"], "INVALID_PARAMETER");

    let (status, body) = s
        .call(Method::POST, login, None, Some(json!({"username": 5})))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, body) = s
        .call(
            Method::POST,
            login,
            None,
            Some(json!({"username": "admin", "password": "nope"})),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["errorCode"], "AUTH_INVALID_CREDENTIALS");
    assert_eq!(body["messageKey"], "error.auth.invalid.credentials");

    let (status, body) = s.call(Method::GET, "/api/v1/user/info", None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["errorCode"], "AUTH_TOKEN_MISSING");
    let (status, body) = s.get("/api/v1/user/info", "garbage").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["errorCode"], "AUTH_TOKEN_INVALID");
    let (status, body) = s
        .call(Method::GET, "/api/v1/no/such/route", None, None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["code"], 65);
}

#[tokio::test]
async fn login_attempts_are_rate_limited() {
    let s = Server::start(&[]).await;
    let mut limited = false;
    for _ in 0..12 {
        let (status, body) = s
            .call(
                Method::POST,
                "/api/v1/auth/login",
                None,
                Some(json!({"username": "admin", "password": "wrong"})),
            )
            .await;
        if status == StatusCode::TOO_MANY_REQUESTS {
            assert_eq!(body["errorCode"], "TOO_MANY_ATTEMPTS");
            limited = true;
            break;
        }
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    assert!(limited, "no limit after 12 wrong passwords");
    let (status, _) = s
        .call(
            Method::POST,
            "/api/v1/auth/login",
            None,
            Some(json!({"username": "admin", "password": "admin123"})),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::TOO_MANY_REQUESTS,
        "the right password does not lift the limit"
    );
}

/// Three nodes on PostgreSQL + Redis: seeded once, a token from node A
/// works on B and C, logout on B ends it on A and C, and every node agrees
/// on the leader.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cluster_shares_sessions_and_agrees_on_the_leader() {
    let cluster = Cluster::start().await;
    let [a, b, c] = &cluster.nodes;
    let (access, _) = a.login("admin", "admin123").await;
    for node in [&a, &b, &c] {
        let (status, info) = node.get("/api/v1/user/info", &access).await;
        assert_eq!(status, StatusCode::OK, "{info}");
        assert_eq!(info["data"]["username"], "admin");
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut leaders = Vec::new();
        for node in [&a, &b, &c] {
            let (_, sys) = node.get("/api/v1/system/info", &access).await;
            leaders.push(sys["data"]["cluster"]["leader"].clone());
        }
        if leaders.iter().all(|l| l.is_string() && *l == leaders[0]) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "nodes disagree on the leader: {leaders:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (status, _) = b
        .call(Method::POST, "/api/v1/auth/logout", Some(&access), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let deadline = Instant::now() + Duration::from_millis(200);
    for node in [&a, &c] {
        loop {
            let (status, _) = node.get("/api/v1/user/info", &access).await;
            if status == StatusCode::UNAUTHORIZED {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "logout on B must end the session on every node within 200ms"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

#[tokio::test]
async fn metrics_openapi_and_request_ids() {
    let s = Server::start(&[]).await;
    let (access, _) = s.login("admin", "admin123").await;
    s.get("/api/v1/user/info", &access).await;
    let response = s
        .http
        .get(format!("{}/health", s.base))
        .header("X-Request-Id", "trace-me-42")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-request-id"], "trace-me-42");
    let response = s
        .http
        .get(format!("{}/health", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.headers()["x-request-id"].len(),
        16,
        "an id is generated"
    );

    let text = s
        .http
        .get(format!("{}/metrics", s.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for needle in [
        "lina_http_requests_total{",
        "lina_http_request_duration_seconds_bucket{",
        "lina_leader{",
        "lina_leader_term{",
        "domain=\"permission\",kind=\"hit\"",
        "lina_jobs_running{",
        "result=\"acquired\"",
        "lina_lock_waits_total{",
        "lina_lock_wait_seconds_total{",
        "# TYPE lina_job_runs_total counter",
    ] {
        assert!(
            text.contains(needle),
            "{needle} missing from /metrics:\n{text}"
        );
    }
    assert!(
        text.contains("lina_leader_term{node=") && text.contains("} 1\n"),
        "{text}"
    );

    let (status, doc) = s.call(Method::GET, "/api.json", None, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(doc["openapi"], "3.0.3");
    for path in [
        "/api/v1/auth/login",
        "/api/v1/user/info",
        "/api/v1/system/info",
        "/ready",
    ] {
        assert!(
            doc["paths"][path].is_object(),
            "{path} missing from /api.json"
        );
    }
    assert_eq!(
        doc["paths"]["/api/v1/system/info"]["get"]["x-permission"],
        "about:system:list"
    );
}

/// Table-driven over every documented route (`/api.json`): without a token
/// every protected route answers 401; a user without any permission gets
/// 403 on every route that names one; malformed bodies are 4xx with the
/// envelope.
#[tokio::test]
async fn every_protected_route_refuses_without_token_or_permission() {
    let s = Server::start(&[]).await;
    let (admin, _) = s.login("admin", "admin123").await;
    create_nobody(&s, &admin).await;
    check_every_route(&s, &admin).await;
}

/// The same table over every route on each node of a three-node cluster
/// (the user without permissions is created on A and used on B and C), and
/// every GET route answered by every node for the admin, never with a 5xx.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_route_works_on_every_node_of_a_cluster() {
    let cluster = crate::harness::Cluster::start().await;
    let [a, b, c] = &cluster.nodes;
    let (admin, _) = a.login("admin", "admin123").await;
    create_nobody(a, &admin).await;
    // Every node names the same leader and term (followers report the
    // leader's term as they last saw it).
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let mut views = Vec::new();
        for node in [a, b, c] {
            let (_, info) = node.get("/api/v1/system/info", &admin).await;
            views.push((
                info["data"]["cluster"]["leader"].clone(),
                info["data"]["cluster"]["term"].clone(),
            ));
        }
        if views[0].1.is_u64() && views.iter().all(|v| *v == views[0]) {
            break;
        }
        assert!(Instant::now() < deadline, "nodes disagree: {views:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for node in [a, b, c] {
        check_every_route(node, &admin).await;
        let (_, doc) = node.call(Method::GET, "/api.json", None, None).await;
        for (path, ops) in doc["paths"].as_object().unwrap() {
            if ops.get("get").is_none() {
                continue;
            }
            let concrete = path
                .split('/')
                .map(|seg| if seg.starts_with('{') { "1" } else { seg })
                .collect::<Vec<_>>()
                .join("/");
            let (status, body) = node.call(Method::GET, &concrete, Some(&admin), None).await;
            assert!(
                !status.is_server_error(),
                "{} GET {concrete}: {status} {body}",
                node.base
            );
            if concrete.starts_with("/api/v1/") {
                assert!(
                    body["code"].is_number(),
                    "{} GET {concrete}: no envelope: {body}",
                    node.base
                );
            }
        }
    }
}

/// Creates `nobody` / `secret-123`, a user holding no role.
async fn create_nobody(s: &Server, admin: &str) {
    let (status, body) = s
        .call(
            Method::POST,
            "/api/v1/user",
            Some(admin),
            Some(
                json!({"username": "nobody", "password": "secret-123", "status": 1, "roleIds": []}),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

/// Table-driven over `/api.json` on `s`: 401 without a token, 403 for
/// `nobody` on every route naming a permission, 4xx with the envelope for a
/// malformed body.
async fn check_every_route(s: &Server, admin: &str) {
    let (nobody, _) = s.login("nobody", "secret-123").await;
    let (_, doc) = s.call(Method::GET, "/api.json", None, None).await;
    let paths = doc["paths"].as_object().unwrap();
    let mut checked = 0;
    for (path, ops) in paths {
        for (method, op) in ops.as_object().unwrap() {
            if op.get("security").is_none() {
                continue;
            }
            let concrete = path
                .split('/')
                .map(|seg| if seg.starts_with('{') { "1" } else { seg })
                .collect::<Vec<_>>()
                .join("/");
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let body =
                matches!(method, Method::POST | Method::PUT | Method::DELETE).then(|| json!({}));
            let (status, answer) = s.call(method.clone(), &concrete, None, body.clone()).await;
            assert_eq!(
                status,
                StatusCode::UNAUTHORIZED,
                "{method} {concrete} without a token: {answer}"
            );
            assert!(
                answer["errorCode"].is_string(),
                "{method} {concrete}: no envelope"
            );
            if op.get("x-permission").is_some() {
                let (status, answer) = s
                    .call(method.clone(), &concrete, Some(&nobody), body.clone())
                    .await;
                assert_eq!(
                    status,
                    StatusCode::FORBIDDEN,
                    "{method} {concrete} without the permission: {answer}"
                );
                assert_eq!(answer["errorCode"], "PERMISSION_DENIED");
            }
            // Bodies are read by POST and PUT routes (logout takes none, and
            // would end the admin's session; DELETE by id takes none).
            if matches!(method, Method::POST | Method::PUT) && concrete != "/api/v1/auth/logout" {
                let response = s
                    .http
                    .request(method.clone(), format!("{}{concrete}", s.base))
                    .bearer_auth(admin)
                    .header("Content-Type", "application/json")
                    .body("{\"broken\": ")
                    .send()
                    .await
                    .unwrap();
                let status = response.status();
                let answer: serde_json::Value = response.json().await.unwrap_or_default();
                assert!(
                    status.is_client_error(),
                    "{method} {concrete} with a malformed body: {status}"
                );
                assert!(
                    answer["errorCode"].is_string(),
                    "{method} {concrete} malformed: no envelope"
                );
            }
            checked += 1;
        }
    }
    assert!(checked >= 25, "only {checked} protected routes documented");
}

async fn redis_commands(port: u16) -> i64 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut conn = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    conn.write_all(b"INFO stats\r\n").await.unwrap();
    let mut buf = vec![0u8; 16384];
    let mut text = String::new();
    // Read until the counter's line is complete.
    while !text
        .split("total_commands_processed:")
        .nth(1)
        .is_some_and(|rest| rest.contains("\r\n"))
    {
        let n = conn.read(&mut buf).await.unwrap();
        assert!(n > 0, "redis closed the connection: {text}");
        text.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    text.lines()
        .find_map(|l| l.strip_prefix("total_commands_processed:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap()
}

/// In cluster mode an authenticated request whose caches are fresh makes
/// no Redis round trip: 200 requests cost no more Redis commands than the
/// node's background work in the same time.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cached_authenticated_requests_make_no_redis_round_trip() {
    let redis = lina_testkit::RedisServer::start().await.unwrap();
    let db = lina_testkit::fresh_database().await.unwrap();
    let s = Server::start(&[
        ("LINA_CLUSTER__ENABLED", "true".to_string()),
        (
            "LINA_CLUSTER__REDIS__ADDRESS",
            format!("127.0.0.1:{}", redis.port()),
        ),
        ("LINA_DATABASE__DEFAULT__LINK", db.url().to_string()),
        ("LINA_CACHE__REVISIONPOLL", "10s".to_string()),
        ("LINA_CACHE__MAXSTALE", "30s".to_string()),
    ])
    .await;
    let (access, _) = s.login("admin", "admin123").await;
    let (status, _) = s.get("/api/v1/menus/all", &access).await;
    assert_eq!(status, StatusCode::OK);

    let idle_start = redis_commands(redis.port()).await;
    let started = Instant::now();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let idle = redis_commands(redis.port()).await - idle_start - 1;
    let idle_window = started.elapsed();

    let busy_start = redis_commands(redis.port()).await;
    let started = Instant::now();
    for _ in 0..200 {
        let (status, _) = s.get("/api/v1/menus/all", &access).await;
        assert_eq!(status, StatusCode::OK);
    }
    let busy_window = started.elapsed();
    let busy = redis_commands(redis.port()).await - busy_start - 1;
    // Background work (lease renewal, heartbeat, revision sweep) scales with
    // time, not requests: allow the measured idle rate, and at least the
    // idle budget of 3 commands a second, over the busy window.
    let idle_rate = (idle as f64 / idle_window.as_secs_f64()).max(3.0);
    let allowance = (idle_rate * (busy_window.as_secs_f64() + 1.0)).ceil() as i64 + 10;
    assert!(
        busy <= allowance,
        "{busy} Redis commands during 200 requests in {busy_window:?} (idle: {idle} in {idle_window:?})"
    );
}

/// A token from a fresh login on one node is accepted at once by a node
/// that has the user's older sessions cached (the login's announcement may
/// not have arrived there yet), and a logged-out token is still refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fresh_tokens_work_at_once_on_other_nodes() {
    let cluster = crate::harness::Cluster::start().await;
    let [a, b, c] = &cluster.nodes;
    let (first, _) = a.login("admin", "admin123").await;
    for node in [b, c] {
        let (status, _) = node.get("/api/v1/user/info", &first).await;
        assert_eq!(status, StatusCode::OK);
    }
    for i in 0..40 {
        let (token, _) = a.login("admin", "admin123").await;
        let other = if i % 2 == 0 { b } else { c };
        let (status, body) = other.get("/api/v1/user/info", &token).await;
        assert_eq!(status, StatusCode::OK, "login {i}: {body}");
        if i % 10 == 0 {
            let (status, _) = other
                .call(Method::POST, "/api/v1/auth/logout", Some(&token), None)
                .await;
            assert_eq!(status, StatusCode::OK);
            let (status, _) = a.get("/api/v1/user/info", &token).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "logout {i} on A");
        }
    }
}
