use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::server;

struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn get_health(port: u16) -> Option<serde_json::Value> {
    let url = format!("http://127.0.0.1:{port}/health");
    let response = reqwest::get(url).await.ok()?;
    if !response.status().is_success() {
        return None;
    }
    response.json().await.ok()
}

/// The embedded default: single node, SQLite file under ./data, no other
/// service; `/health` answers and SIGTERM stops the process cleanly.
#[tokio::test]
async fn serves_health_on_embedded_default_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let port = lina_testkit::free_port();
    let child = server(dir.path())
        .env("LINA_SERVER__ADDRESS", format!("127.0.0.1:{port}"))
        .env("LINA_NODE_ID", "test-node")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut running = Running(child);
    let deadline = Instant::now() + Duration::from_secs(30);
    let body = loop {
        if let Some(body) = get_health(port).await {
            break body;
        }
        if let Some(status) = running.0.try_wait().unwrap() {
            panic!("server exited early with {status}");
        }
        assert!(Instant::now() < deadline, "no /health within 30s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(body["status"], "ok");
    assert_eq!(body["nodeId"], "test-node");
    assert!(
        dir.path().join("data/lina.db").is_file(),
        "sqlite file not created under ./data"
    );

    kill(Pid::from_raw(running.0.id() as i32), Signal::SIGTERM).unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(status) = running.0.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "server did not stop within 15s of SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(status.success(), "exit status after SIGTERM: {status}");
}

/// `sslmode=require` in a PostgreSQL link gives a TLS connection when the
/// server offers TLS, and a clear start-up error when it does not.
#[tokio::test]
async fn postgres_links_with_sslmode_require_use_tls() {
    use sea_orm::{ConnectionTrait, Database, DbBackend, Statement};
    let db = lina_testkit::fresh_database().await.unwrap();
    let sep = if db.url().contains('?') { '&' } else { '?' };
    let link = format!("{}{sep}sslmode=require", db.url());
    let probe = Database::connect(db.url()).await.unwrap();
    let offers_tls = probe
        .query_one_raw(Statement::from_string(DbBackend::Postgres, "SHOW ssl"))
        .await
        .unwrap()
        .and_then(|row| row.try_get::<String>("", "ssl").ok())
        .is_some_and(|v| v == "on");
    if offers_tls {
        let _server =
            crate::harness::Server::start(&[("LINA_DATABASE__DEFAULT__LINK", link)]).await;
        let row = probe
            .query_one_raw(Statement::from_string(
                DbBackend::Postgres,
                format!(
                    "SELECT count(*) AS n FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
                     WHERE a.datname = '{}' AND s.ssl AND a.pid <> pg_backend_pid()",
                    db.name()
                ),
            ))
            .await
            .unwrap()
            .unwrap();
        let tls_connections: i64 = row.try_get("", "n").unwrap();
        assert!(tls_connections >= 1, "the node's connections are not TLS");
    } else {
        let dir = tempfile::tempdir().unwrap();
        let out = crate::server(dir.path())
            .env("LINA_DATABASE__DEFAULT__LINK", &link)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success());
        assert!(stderr.contains("cannot open the database"), "{stderr}");
    }
    probe.close().await.unwrap();
}
