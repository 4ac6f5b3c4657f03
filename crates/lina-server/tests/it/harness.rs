//! A running server process for API tests.

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use reqwest::{Client, Method, StatusCode};
use serde_json::{Value, json};

use crate::server;

pub const SECRET: &str = "a-test-secret-of-32-characters-ok";

/// A `lina-server` process on a free port, killed on drop.
pub struct Server {
    child: Child,
    pub base: String,
    pub http: Client,
    _dir: Option<tempfile::TempDir>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// Starts a server with `env` and waits for `/health`.
    pub async fn start(env: &[(&str, String)]) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let port = lina_testkit::free_port();
        let mut cmd = server(dir.path());
        let log = std::fs::File::create(dir.path().join("server.log")).unwrap();
        cmd.env("LINA_SERVER__ADDRESS", format!("127.0.0.1:{port}"))
            .env("LINA_JWT__SECRET", SECRET)
            .stdout(Stdio::null())
            .stderr(log);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().unwrap();
        let mut server = Server {
            child,
            base: format!("http://127.0.0.1:{port}"),
            http: Client::new(),
            _dir: Some(dir),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(r) = server
                .http
                .get(format!("{}/health", server.base))
                .send()
                .await
                && r.status().is_success()
            {
                return server;
            }
            if let Some(status) = server.child.try_wait().unwrap() {
                let log = server
                    ._dir
                    .as_ref()
                    .and_then(|d| std::fs::read_to_string(d.path().join("server.log")).ok())
                    .unwrap_or_default();
                panic!("server exited early with {status}; its log:\n{log}");
            }
            assert!(Instant::now() < deadline, "no /health within 60s");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Sends a request; returns the status and the JSON body (Null if none).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        if let Some(body) = body {
            req = req.json(&body);
        }
        let response = req.send().await.unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    pub async fn get(&self, path: &str, token: &str) -> (StatusCode, Value) {
        self.call(Method::GET, path, Some(token), None).await
    }

    /// Logs in and returns (access, refresh).
    pub async fn login(&self, username: &str, password: &str) -> (String, String) {
        let (status, body) = self
            .call(
                Method::POST,
                "/api/v1/auth/login",
                None,
                Some(json!({"username": username, "password": password, "clientType": "web"})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        (
            body["data"]["accessToken"].as_str().unwrap().to_string(),
            body["data"]["refreshToken"].as_str().unwrap().to_string(),
        )
    }
}

/// Three nodes in cluster mode on a fresh PostgreSQL database and a private
/// Redis (lease 3 s, renewed every second), `node-a`, `node-b`, `node-c`.
pub struct Cluster {
    /// The nodes, A, B and C.
    pub nodes: [Server; 3],
    _redis: lina_testkit::RedisServer,
    _db: lina_testkit::TestDatabase,
}

impl Cluster {
    /// Starts the three nodes together and waits for each one's `/health`.
    pub async fn start() -> Cluster {
        Cluster::start_with(&[]).await
    }

    /// [`Cluster::start`] with `extra` environment for every node.
    pub async fn start_with(extra: &[(&str, String)]) -> Cluster {
        let redis = lina_testkit::RedisServer::start().await.unwrap();
        let db = lina_testkit::fresh_database().await.unwrap();
        let env = |id: &str| {
            vec![
                ("LINA_CLUSTER__ENABLED", "true".to_string()),
                (
                    "LINA_CLUSTER__REDIS__ADDRESS",
                    format!("127.0.0.1:{}", redis.port()),
                ),
                ("LINA_CLUSTER__ELECTION__LEASE", "3s".to_string()),
                ("LINA_CLUSTER__ELECTION__RENEWINTERVAL", "1s".to_string()),
                ("LINA_DATABASE__DEFAULT__LINK", db.url().to_string()),
                ("LINA_NODE_ID", id.to_string()),
            ]
            .into_iter()
            .chain(extra.iter().cloned())
            .collect::<Vec<_>>()
        };
        let (env_a, env_b, env_c) = (env("node-a"), env("node-b"), env("node-c"));
        let (a, b, c) = tokio::join!(
            Server::start(&env_a),
            Server::start(&env_b),
            Server::start(&env_c)
        );
        Cluster {
            nodes: [a, b, c],
            _redis: redis,
            _db: db,
        }
    }
}
