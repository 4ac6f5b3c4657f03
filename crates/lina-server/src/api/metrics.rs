//! `GET /metrics` in the Prometheus text format, and the request counters
//! the HTTP middleware feeds.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use actix_web::{HttpResponse, web};
use dashmap::DashMap;

use super::AppState;

const BUCKETS_MS: [u64; 10] = [1, 5, 10, 25, 50, 100, 250, 500, 1000, 5000];

/// Request counters and latency histograms by method and status class.
#[derive(Default)]
pub struct HttpMetrics {
    series: DashMap<(String, u16), Series>,
}

#[derive(Default)]
struct Series {
    count: AtomicU64,
    sum_us: AtomicU64,
    buckets: [AtomicU64; BUCKETS_MS.len()],
}

impl HttpMetrics {
    /// Records one answered request.
    pub fn record(&self, method: &str, status: u16, elapsed: Duration) {
        let class = status / 100 * 100;
        let series = self.series.entry((method.to_string(), class)).or_default();
        series.count.fetch_add(1, Ordering::Relaxed);
        series
            .sum_us
            .fetch_add(elapsed.as_micros() as u64, Ordering::Relaxed);
        let ms = elapsed.as_millis() as u64;
        for (i, bound) in BUCKETS_MS.iter().enumerate() {
            if ms <= *bound {
                series.buckets[i].fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// `GET /metrics`: requests, latencies, leader term and role, cache hits,
/// misses and staleness per domain, scheduler state.
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    let mut out = String::with_capacity(4096);
    let node = escape(state.node.node_id.as_str());
    let _ = writeln!(
        out,
        "# HELP lina_http_requests_total Answered HTTP requests.\n# TYPE lina_http_requests_total counter"
    );
    let mut rows: Vec<_> = state
        .metrics
        .series
        .iter()
        .map(|e| (e.key().clone(), e.value().count.load(Ordering::Relaxed)))
        .collect();
    rows.sort();
    for ((method, class), count) in &rows {
        let _ = writeln!(
            out,
            "lina_http_requests_total{{node=\"{node}\",method=\"{method}\",status=\"{class}\"}} {count}"
        );
    }
    let _ = writeln!(
        out,
        "# HELP lina_http_request_duration_seconds HTTP request latency.\n# TYPE lina_http_request_duration_seconds histogram"
    );
    for entry in state.metrics.series.iter() {
        let (method, class) = entry.key();
        let labels = format!("node=\"{node}\",method=\"{method}\",status=\"{class}\"");
        for (i, bound) in BUCKETS_MS.iter().enumerate() {
            let _ = writeln!(
                out,
                "lina_http_request_duration_seconds_bucket{{{labels},le=\"{}\"}} {}",
                *bound as f64 / 1000.0,
                entry.buckets[i].load(Ordering::Relaxed)
            );
        }
        let count = entry.count.load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "lina_http_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {count}"
        );
        let _ = writeln!(
            out,
            "lina_http_request_duration_seconds_sum{{{labels}}} {}",
            entry.sum_us.load(Ordering::Relaxed) as f64 / 1e6
        );
        let _ = writeln!(
            out,
            "lina_http_request_duration_seconds_count{{{labels}}} {count}"
        );
    }
    let election = state.node.coordinator.election();
    let term = election.leader_term();
    let _ = writeln!(
        out,
        "# HELP lina_leader 1 when this node leads.\n# TYPE lina_leader gauge"
    );
    let _ = writeln!(
        out,
        "lina_leader{{node=\"{node}\"}} {}",
        u8::from(term.is_some())
    );
    let _ = writeln!(
        out,
        "# HELP lina_leader_term Term of this node's leadership (0 when following).\n# TYPE lina_leader_term gauge"
    );
    let _ = writeln!(
        out,
        "lina_leader_term{{node=\"{node}\"}} {}",
        term.unwrap_or(0)
    );
    let health = state.node.coordinator.health();
    let _ = writeln!(
        out,
        "# HELP lina_coordination_healthy 1 when the coordination backend answers.\n# TYPE lina_coordination_healthy gauge"
    );
    let _ = writeln!(
        out,
        "lina_coordination_healthy{{node=\"{node}\",backend=\"{}\"}} {}",
        state.node.coordinator.backend(),
        u8::from(health.healthy)
    );
    let _ = writeln!(
        out,
        "# HELP lina_cache_events_total Cache hits, misses, loads, invalidations, stale answers and refusals per domain.\n# TYPE lina_cache_events_total counter"
    );
    let stats = state.node.caches.stats();
    for d in &stats {
        let domain = escape(&d.domain);
        for (kind, value) in [
            ("hit", d.hits),
            ("miss", d.misses),
            ("load", d.loads),
            ("invalidation", d.invalidations),
            ("stale_served", d.stale_served),
            ("refused", d.refused),
        ] {
            let _ = writeln!(
                out,
                "lina_cache_events_total{{node=\"{node}\",domain=\"{domain}\",kind=\"{kind}\"}} {value}"
            );
        }
    }
    let _ = writeln!(
        out,
        "# HELP lina_cache_entries Loaded scopes per domain, and how many are unconfirmed (stale).\n# TYPE lina_cache_entries gauge"
    );
    for d in &stats {
        let domain = escape(&d.domain);
        let stale = d.scopes.iter().filter(|s| !s.fresh).count();
        let _ = writeln!(
            out,
            "lina_cache_entries{{node=\"{node}\",domain=\"{domain}\",state=\"fresh\"}} {}",
            d.entries - stale
        );
        let _ = writeln!(
            out,
            "lina_cache_entries{{node=\"{node}\",domain=\"{domain}\",state=\"stale\"}} {stale}"
        );
    }
    let _ = writeln!(
        out,
        "# HELP lina_jobs_running Job runs in progress on this node.\n# TYPE lina_jobs_running gauge"
    );
    let _ = writeln!(
        out,
        "lina_jobs_running{{node=\"{node}\"}} {}",
        state.node.scheduler.running()
    );
    let _ = writeln!(
        out,
        "# HELP lina_jobs_paused Jobs paused on this node (handler missing).\n# TYPE lina_jobs_paused gauge"
    );
    let _ = writeln!(
        out,
        "lina_jobs_paused{{node=\"{node}\"}} {}",
        state.node.scheduler.paused().len()
    );
    let _ = writeln!(
        out,
        "# HELP lina_job_runs_total Job runs and skips this node recorded, by final status.\n# TYPE lina_job_runs_total counter"
    );
    for (status, count) in state.node.scheduler.run_counts() {
        let _ = writeln!(
            out,
            "lina_job_runs_total{{node=\"{node}\",status=\"{status}\"}} {count}"
        );
    }
    let locks = state.node.coordinator.locks().stats();
    let _ = writeln!(
        out,
        "# HELP lina_lock_acquisitions_total Cluster lock acquisitions by this node: acquired, or refused as busy.\n# TYPE lina_lock_acquisitions_total counter"
    );
    for (result, count) in [("acquired", locks.acquired), ("busy", locks.busy)] {
        let _ = writeln!(
            out,
            "lina_lock_acquisitions_total{{node=\"{node}\",result=\"{result}\"}} {count}"
        );
    }
    let _ = writeln!(
        out,
        "# HELP lina_lock_waits_total Acquisitions that found the lock held and waited.\n# TYPE lina_lock_waits_total counter"
    );
    let _ = writeln!(
        out,
        "lina_lock_waits_total{{node=\"{node}\"}} {}",
        locks.waited
    );
    let _ = writeln!(
        out,
        "# HELP lina_lock_wait_seconds_total Time spent waiting for held locks.\n# TYPE lina_lock_wait_seconds_total counter"
    );
    let _ = writeln!(
        out,
        "lina_lock_wait_seconds_total{{node=\"{node}\"}} {}",
        locks.wait_micros as f64 / 1e6
    );
    state.i18n.write_metrics(&mut out, &node);
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(out)
}
