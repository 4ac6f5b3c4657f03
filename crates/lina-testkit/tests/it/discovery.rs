//! The throwaway-server path of discovery, for real: probes point at unused
//! ports, so the servers are started from the installed binaries.

use std::net::SocketAddr;

use lina_testkit::{Discovery, ServiceSource, create_database, free_port};
use sea_orm::{ConnectionTrait, Database};

use crate::support::Resp;

fn isolated() -> (Discovery, tempfile::TempDir) {
    let dir = tempfile::Builder::new()
        .prefix("lina-testkit-state-")
        .tempdir()
        .unwrap();
    let discovery = Discovery {
        use_env: false,
        redis_probe: SocketAddr::from(([127, 0, 0, 1], free_port())),
        postgres_probe: SocketAddr::from(([127, 0, 0, 1], free_port())),
        state_dir: dir.path().to_path_buf(),
    };
    (discovery, dir)
}

#[tokio::test]
async fn throwaway_redis_is_started_once_and_shared() {
    let (discovery, _dir) = isolated();
    let other = discovery.clone();
    // Two concurrent callers: the file lock lets exactly one start it.
    let (a, b) = tokio::join!(discovery.redis(), other.redis());
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a.url, b.url);
    let mut sources = [a.source, b.source];
    sources.sort_by_key(|s| matches!(s, ServiceSource::Throwaway { started: false }));
    assert_eq!(
        sources,
        [
            ServiceSource::Throwaway { started: true },
            ServiceSource::Throwaway { started: false }
        ]
    );
    let mut c = Resp::connect_url(&a.url).await.unwrap();
    assert_eq!(c.cmd(&["PING"]).await, "+PONG");
    assert!(
        c.cmd(&["FLUSHALL"])
            .await
            .starts_with("-ERR unknown command")
    );

    discovery.stop_throwaways().await.unwrap();
    assert!(Resp::connect_url(&a.url).await.is_err());
}

#[tokio::test]
async fn throwaway_postgres_is_started_from_initdb_and_shared() {
    let (discovery, _dir) = isolated();
    let first = discovery.postgres().await;
    // Stop whatever was started even if an assertion below fails.
    struct Stop(Discovery);
    impl Drop for Stop {
        fn drop(&mut self) {
            let d = self.0.clone();
            std::thread::spawn(move || {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap()
                    .block_on(d.stop_throwaways())
            })
            .join()
            .unwrap()
            .unwrap();
        }
    }
    let stop = Stop(discovery.clone());
    let first = first.unwrap();
    assert_eq!(first.source, ServiceSource::Throwaway { started: true });
    assert_ne!(
        first.url,
        format!("postgres://postgres@{}/postgres", discovery.postgres_probe)
    );

    let again = discovery.postgres().await.unwrap();
    assert_eq!(again.url, first.url);
    assert_eq!(again.source, ServiceSource::Throwaway { started: false });

    {
        let db = create_database(&first.url).await.unwrap();
        let conn = Database::connect(db.url()).await.unwrap();
        conn.execute_unprepared("CREATE TABLE t (id int); INSERT INTO t VALUES (1)")
            .await
            .unwrap();
        let _ = conn.close().await;
    }

    drop(stop);
    let port: u16 = url::Url::parse(&first.url).unwrap().port().unwrap();
    assert!(
        tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err(),
        "postgres still listens on {port}"
    );
    assert!(!discovery.state_dir.join("postgres").exists());
}

#[test]
fn default_discovery_reads_the_environment_overrides() {
    let d = Discovery::from_env();
    assert!(d.use_env);
    match std::env::var_os(lina_testkit::STATE_DIR_ENV) {
        Some(dir) => assert_eq!(d.state_dir, std::path::PathBuf::from(dir)),
        None => assert!(d.state_dir.to_string_lossy().contains("lina-testkit")),
    }
}
