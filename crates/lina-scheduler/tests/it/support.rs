//! Nodes for the tests: coordinator + caches + handlers + scheduler.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use lina_cache::{CacheRegistry, CacheSettings};
use lina_coord_api::testsuite::NodeSettings;
use lina_coord_api::{Coordinator, ElectionConfig, NodeId, NodeInfo};
use lina_coord_local::LocalCoordinator;
use lina_coord_redis::testing::{RedisHarness, RedisTestCluster};
use lina_scheduler::{
    HandlerRegistry, JobLog, JobSpec, LogFilter, Page, RunStatus, Scheduler, SchedulerSettings,
};
use sea_orm::{Database, DatabaseConnection};

pub struct Node {
    pub coordinator: Arc<dyn Coordinator>,
    pub scheduler: Scheduler,
    /// Kept alive: dropping the registry stops its event listener and sweep.
    pub _caches: CacheRegistry,
}

pub fn settings() -> SchedulerSettings {
    SchedulerSettings {
        tick: Duration::from_millis(50),
        builtin_jobs: false,
        shutdown_grace: Duration::from_secs(2),
        singleton_ttl: Duration::from_millis(900),
        ..SchedulerSettings::default()
    }
}

pub fn cache_settings() -> CacheSettings {
    CacheSettings {
        revision_poll: Duration::from_millis(300),
        max_stale: Duration::from_secs(10),
    }
}

pub async fn node(
    coordinator: Arc<dyn Coordinator>,
    db: &DatabaseConnection,
    settings: SchedulerSettings,
) -> Node {
    let caches = CacheRegistry::start(coordinator.clone(), cache_settings());
    let handlers = Arc::new(HandlerRegistry::default());
    let scheduler = Scheduler::start(coordinator.clone(), db.clone(), &caches, handlers, settings)
        .await
        .expect("scheduler starts");
    Node {
        coordinator,
        scheduler,
        _caches: caches,
    }
}

/// A PostgreSQL database with the schema, and a Redis deployment.
pub struct Shared {
    pub db: DatabaseConnection,
    pub redis: RedisTestCluster,
    _database: lina_testkit::TestDatabase,
}

pub async fn shared() -> Shared {
    let database = lina_testkit::fresh_database().await.expect("test database");
    let db = Database::connect(database.url()).await.expect("connect");
    lina_migration::migrate(&db).await.expect("migrations");
    Shared {
        db,
        redis: RedisHarness::default().redis_cluster().await,
        _database: database,
    }
}

impl Shared {
    pub async fn redis_node(
        &self,
        id: &str,
        lease_ms: u64,
    ) -> Arc<lina_coord_redis::RedisCoordinator> {
        let mut settings = NodeSettings::short(id);
        settings.election = ElectionConfig::new(
            Duration::from_millis(lease_ms),
            Duration::from_millis(lease_ms / 3),
        )
        .unwrap();
        self.redis.redis_node(settings).await
    }
}

pub async fn sqlite() -> (DatabaseConnection, lina_testkit::TempSqlite) {
    let file = lina_testkit::temp_sqlite().expect("temp sqlite");
    let db = Database::connect(file.url()).await.expect("connect sqlite");
    lina_migration::migrate(&db).await.expect("migrations");
    (db, file)
}

pub async fn single(id: &str) -> Arc<dyn Coordinator> {
    Arc::new(LocalCoordinator::single(NodeInfo::new(NodeId::new(id).unwrap(), "127.0.0.1:0")).await)
}

pub fn every_second(name: &str, handler: &str) -> JobSpec {
    JobSpec {
        name: name.into(),
        handler_ref: handler.into(),
        cron_expr: "@every 1s".into(),
        ..JobSpec::default()
    }
}

pub async fn logs(scheduler: &Scheduler, job_id: i64) -> Vec<JobLog> {
    let filter = LogFilter {
        job_id: Some(job_id),
        ..LogFilter::default()
    };
    let mut out = Vec::new();
    let mut page = 1;
    loop {
        let result = scheduler
            .store()
            .list_logs(&filter, Page::new(page, 500).unwrap())
            .await
            .unwrap();
        let n = result.list.len();
        out.extend(result.list);
        if n < 500 {
            break;
        }
        page += 1;
    }
    out
}

/// Log rows by fire instant: (status, node) pairs.
pub fn by_fire(logs: &[JobLog]) -> BTreeMap<i64, Vec<(RunStatus, String)>> {
    let mut map: BTreeMap<i64, Vec<(RunStatus, String)>> = BTreeMap::new();
    for log in logs {
        map.entry(log.scheduled_at)
            .or_default()
            .push((log.status, log.node_id.clone()));
    }
    map
}

pub fn count(rows: &[(RunStatus, String)], status: RunStatus) -> usize {
    rows.iter().filter(|(s, _)| *s == status).count()
}

/// Polls an async condition every 20 ms up to `limit`.
pub async fn eventually<F, Fut>(limit: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if check().await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
