//! Three nodes on PostgreSQL + Redis (and two forced leaders on PostgreSQL).

use std::time::Duration;

use std::sync::Arc;

use lina_coord_api::unix_millis;
use lina_scheduler::{JobScope, JobStatus, MisfirePolicy, RunStatus};

use crate::support::*;

async fn three(shared: &Shared, lease_ms: u64) -> Vec<Node> {
    three_crashable(shared, lease_ms).await.0
}

async fn three_crashable(
    shared: &Shared,
    lease_ms: u64,
) -> (Vec<Node>, Vec<Arc<lina_coord_redis::RedisCoordinator>>) {
    let mut nodes = Vec::new();
    let mut coordinators = Vec::new();
    for id in ["a", "b", "c"] {
        let coordinator = shared.redis_node(id, lease_ms).await;
        coordinators.push(coordinator.clone());
        nodes.push(node(coordinator, &shared.db, settings()).await);
    }
    assert!(
        eventually(Duration::from_secs(3), || async {
            nodes
                .iter()
                .filter(|n| n.coordinator.election().is_leader())
                .count()
                == 1
        })
        .await,
        "one leader"
    );
    (nodes, coordinators)
}

fn leader(nodes: &[Node]) -> usize {
    nodes
        .iter()
        .position(|n| n.coordinator.election().is_leader())
        .expect("a leader")
}

/// A master_only job every second for 15 s: exactly one success per fire,
/// and a skipped_not_primary row from each follower per fire.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn master_only_runs_once_per_fire_with_follower_skips() {
    let shared = shared().await;
    let nodes = three(&shared, 1000).await;
    let id = nodes[1]
        .scheduler
        .store()
        .create_job(&every_second("every-second", "host:wait"))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(15)).await;
    for n in &nodes {
        n.scheduler.shutdown().await;
    }
    let logs = logs(&nodes[0].scheduler, id).await;
    let fires = by_fire(&logs);
    let inner: Vec<_> = fires.iter().skip(2).collect();
    let inner = &inner[..inner.len() - 1];
    assert!(inner.len() >= 11, "only {} fires seen", inner.len());
    let leader_id = nodes[leader(&nodes)].coordinator.node_id().to_string();
    for (at, rows) in inner {
        assert_eq!(count(rows, RunStatus::Success), 1, "fire {at}: {rows:?}");
        assert_eq!(
            count(rows, RunStatus::SkippedNotPrimary),
            2,
            "fire {at}: {rows:?}"
        );
        assert_eq!(rows.len(), 3, "fire {at}: {rows:?}");
        let runner = rows.iter().find(|(s, _)| *s == RunStatus::Success).unwrap();
        assert_eq!(runner.1, leader_id);
    }
    let terms: Vec<_> = logs
        .iter()
        .filter(|l| l.status == RunStatus::Success)
        .map(|l| l.term)
        .collect();
    assert!(terms.iter().all(|t| t.is_some_and(|t| t > 0)), "{terms:?}");
}

/// An all_node job runs once per node per fire.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn all_node_runs_on_every_node() {
    let shared = shared().await;
    let nodes = three(&shared, 1000).await;
    let mut spec = every_second("on-all", "host:wait");
    spec.scope = Some(JobScope::AllNode);
    let id = nodes[0].scheduler.store().create_job(&spec).await.unwrap();
    tokio::time::sleep(Duration::from_secs(5)).await;
    for n in &nodes {
        n.scheduler.shutdown().await;
    }
    let fires = by_fire(&logs(&nodes[0].scheduler, id).await);
    let inner: Vec<_> = fires.iter().skip(1).collect();
    let inner = &inner[..inner.len() - 1];
    assert!(inner.len() >= 3);
    for (at, rows) in inner {
        assert_eq!(count(rows, RunStatus::Success), 3, "fire {at}: {rows:?}");
        let mut nodes: Vec<_> = rows.iter().map(|(_, n)| n.clone()).collect();
        nodes.sort();
        nodes.dedup();
        assert_eq!(nodes.len(), 3, "fire {at}: {rows:?}");
    }
}

async fn leader_killed(policy: MisfirePolicy) -> (Vec<(i64, Vec<(RunStatus, String)>)>, i64, i64) {
    let shared = shared().await;
    let (nodes, coordinators) = three_crashable(&shared, 1500).await;
    let mut spec = every_second("failover", "host:wait");
    spec.misfire_policy = Some(policy);
    let id = nodes[0].scheduler.store().create_job(&spec).await.unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let old = leader(&nodes);
    let killed_at = unix_millis();
    // The process dies: no more fires, no lease release, connections gone.
    nodes[old].scheduler.kill();
    coordinators[old].crash();
    assert!(
        eventually(Duration::from_secs(3), || async {
            nodes
                .iter()
                .enumerate()
                .any(|(i, n)| i != old && n.coordinator.election().is_leader())
        })
        .await,
        "a new leader"
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    for (i, n) in nodes.iter().enumerate() {
        if i != old {
            n.scheduler.shutdown().await;
        }
    }
    let fires = by_fire(&logs(&nodes[0].scheduler, id).await);
    (fires.into_iter().collect(), killed_at, id)
}

/// The leader killed mid-run: with fire_once the new leader runs each
/// missed fire exactly once; no fire ever runs twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killed_leader_missed_fires_run_once() {
    let (fires, killed_at, _) = leader_killed(MisfirePolicy::FireOnce).await;
    let inner = &fires[2..fires.len() - 1];
    for (at, rows) in inner {
        assert_eq!(
            count(rows, RunStatus::Success),
            1,
            "fire {at} (killed at {killed_at}): {rows:?}"
        );
    }
}

/// With misfire policy skip, fires missed during the failover do not run,
/// and still none runs twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killed_leader_missed_fires_skipped_with_skip_policy() {
    let (fires, killed_at, _) = leader_killed(MisfirePolicy::Skip).await;
    let inner = &fires[2..fires.len() - 1];
    let mut missed = 0;
    for (at, rows) in inner {
        let successes = count(rows, RunStatus::Success);
        assert!(successes <= 1, "fire {at} ran twice: {rows:?}");
        if successes == 0 {
            assert!(
                *at >= killed_at - 1000,
                "fire {at} before the kill did not run"
            );
            missed += 1;
        }
    }
    assert!(
        missed >= 1,
        "no fire was missed during the failover: {inner:?}"
    );
}

/// Two instances that both believe they lead (two single-node
/// coordinators on one database): still one run per fire.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_believing_leaders_run_each_fire_once() {
    let shared = shared().await;
    let a = node(single("twin-a").await, &shared.db, settings()).await;
    let id = a
        .scheduler
        .store()
        .create_job(&every_second("twins", "host:wait"))
        .await
        .unwrap();
    let b = node(single("twin-b").await, &shared.db, settings()).await;
    assert!(a.coordinator.election().is_leader() && b.coordinator.election().is_leader());
    tokio::time::sleep(Duration::from_secs(5)).await;
    a.scheduler.shutdown().await;
    b.scheduler.shutdown().await;
    let fires = by_fire(&logs(&a.scheduler, id).await);
    let inner: Vec<_> = fires.iter().skip(1).collect();
    assert!(inner.len() >= 3);
    for (at, rows) in &inner[..inner.len() - 1] {
        assert_eq!(count(rows, RunStatus::Success), 1, "fire {at}: {rows:?}");
    }
}

/// A job created on a follower runs on the leader within a second; once
/// disabled on another node it stops everywhere within a second.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn changes_on_any_node_reach_every_schedule() {
    let shared = shared().await;
    let nodes = three(&shared, 1000).await;
    let lead = leader(&nodes);
    let follower = (lead + 1) % 3;
    let created = unix_millis();
    let id = nodes[follower]
        .scheduler
        .store()
        .create_job(&every_second("created-on-follower", "host:wait"))
        .await
        .unwrap();
    let ran = eventually(Duration::from_secs(3), || async {
        logs(&nodes[0].scheduler, id)
            .await
            .iter()
            .any(|l| l.status == RunStatus::Success)
    })
    .await;
    assert!(ran);
    let first = logs(&nodes[0].scheduler, id)
        .await
        .into_iter()
        .filter(|l| l.status == RunStatus::Success)
        .map(|l| l.scheduled_at)
        .min()
        .unwrap();
    assert!(
        first - created <= 2000,
        "first run scheduled {}ms after creation",
        first - created
    );

    let other = (lead + 2) % 3;
    nodes[other]
        .scheduler
        .store()
        .set_status(id, JobStatus::Disabled)
        .await
        .unwrap();
    let disabled = unix_millis();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let late: Vec<_> = logs(&nodes[0].scheduler, id)
        .await
        .into_iter()
        .filter(|l| l.scheduled_at > disabled + 1000)
        .collect();
    assert!(late.is_empty(), "fires after the disable: {late:?}");
}

/// Three nodes starting at the same moment all create the built-in jobs:
/// every node starts, and each built-in job exists once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nodes_starting_together_create_builtin_jobs_once() {
    let shared = shared().await;
    let with_builtins = lina_scheduler::SchedulerSettings {
        builtin_jobs: true,
        ..settings()
    };
    let (a, b, c) = tokio::join!(
        shared.redis_node("a", 1000),
        shared.redis_node("b", 1000),
        shared.redis_node("c", 1000)
    );
    let (na, nb, nc) = tokio::join!(
        node(a, &shared.db, with_builtins),
        node(b, &shared.db, with_builtins),
        node(c, &shared.db, with_builtins)
    );
    let jobs = na
        .scheduler
        .store()
        .list_jobs(None, None, None, lina_scheduler::Page::new(1, 100).unwrap())
        .await
        .unwrap();
    let builtin: Vec<_> = jobs.list.iter().filter(|j| j.is_builtin).collect();
    assert_eq!(builtin.len(), 3, "{builtin:?}");
    for n in [&na, &nb, &nc] {
        n.scheduler.shutdown().await;
    }
}
