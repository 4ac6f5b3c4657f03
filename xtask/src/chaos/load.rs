//! The load generator: `concurrency` tasks, together `rate` requests/s,
//! cycling through a mix of public and authenticated GETs, sent straight to
//! the nodes (round robin), through a load balancer URL (nginx), or through
//! the built-in balancer ([`Rotation`] plus one retry on a transport error,
//! like nginx's `proxy_next_upstream error`). Each task sends on its own
//! schedule whatever the answers take (open loop: a hung node does not slow
//! the requests to the others). Every request is recorded with
//! its phase, node, status and latency. A 401 makes the generator log in
//! again, as the admin frontend would.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::api::Api;
use super::lb::Rotation;
use super::report::TrafficRow;
use super::util::Clock;

/// The request mix: path and whether it needs the token. The last one reads
/// the database on every request.
pub const PATHS: [(&str, bool); 4] = [
    ("/health", false),
    ("/api/v1/user/info", true),
    ("/api/v1/menus/all", true),
    ("/api/v1/role?page=1&size=5", true),
];

/// The generator gives up on a request after this long (`timeout`); the
/// scenarios judge latencies against their own, tighter bounds.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// How a request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Outcome {
    /// An HTTP answer.
    Status(u16),
    /// The connection was refused or could not be made.
    Connect,
    /// No answer within [`REQUEST_TIMEOUT`].
    Timeout,
    /// Any other transport error (reset, closed early).
    Other,
}

impl Outcome {
    /// Answered 2xx.
    pub fn is_ok(self) -> bool {
        matches!(self, Outcome::Status(s) if (200..300).contains(&s))
    }

    /// `503`, `connect`, `timeout`, `transport`.
    pub fn label(self) -> String {
        match self {
            Outcome::Status(s) => s.to_string(),
            Outcome::Connect => "connect".into(),
            Outcome::Timeout => "timeout".into(),
            Outcome::Other => "transport".into(),
        }
    }
}

/// One request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record {
    /// Index of the phase it was sent in.
    pub phase: usize,
    /// The node that answered (`None` through an external balancer).
    pub node: Option<usize>,
    /// Index in [`PATHS`].
    pub path: usize,
    /// When it was sent (scenario clock).
    pub sent: Duration,
    /// Send to end of body (including a balancer retry).
    pub latency: Duration,
    /// How it ended.
    pub outcome: Outcome,
    /// The node was marked faulted when the request was sent or answered.
    pub faulted: bool,
    /// When the token it carried was issued (scenario clock), if any.
    pub token_issued: Option<Duration>,
    /// The built-in balancer retried it on another node.
    pub retried: bool,
}

/// Where requests go.
pub enum Targets {
    /// Round robin over the nodes, each request to one node.
    Direct(Vec<String>),
    /// Through the built-in balancer over these nodes.
    Balanced {
        /// Node base URLs.
        bases: Vec<String>,
        /// Which are in rotation.
        rotation: Arc<Rotation>,
    },
    /// Through an external balancer at this URL.
    Proxy(String),
}

/// Load settings.
#[derive(Debug, Clone)]
pub struct LoadConfig {
    /// Concurrent tasks.
    pub concurrency: usize,
    /// Requests per second, all tasks together.
    pub rate: u32,
    /// User the generator logs in as.
    pub username: String,
    /// Its password.
    pub password: String,
}

struct Token {
    value: String,
    issued: Duration,
    generation: u64,
}

struct Shared {
    clock: Clock,
    targets: Targets,
    faulted: Vec<AtomicBool>,
    phase: AtomicUsize,
    phases: Mutex<Vec<String>>,
    records: Mutex<Vec<Record>>,
    token: RwLock<Token>,
    login: tokio::sync::Mutex<Option<Instant>>,
    relogins: AtomicUsize,
    http: reqwest::Client,
    api: Api,
    config: LoadConfig,
}

/// A running load.
pub struct Load {
    shared: Arc<Shared>,
    tasks: JoinSet<()>,
    stop: watch::Sender<bool>,
}

/// What a load recorded.
#[derive(Debug, Clone)]
pub struct LoadResult {
    /// Every request.
    pub records: Vec<Record>,
    /// Phase names by index.
    pub phases: Vec<String>,
    /// Logins after a 401.
    pub relogins: usize,
}

impl Load {
    /// Logs in and starts the tasks in phase `first_phase`.
    pub async fn start(
        clock: Clock,
        targets: Targets,
        config: LoadConfig,
        api: Api,
        first_phase: &str,
    ) -> Result<Load> {
        let nodes = match &targets {
            Targets::Direct(b) | Targets::Balanced { bases: b, .. } => b.len(),
            Targets::Proxy(_) => 0,
        };
        let login_base = match &targets {
            Targets::Direct(b) | Targets::Balanced { bases: b, .. } => b[0].clone(),
            Targets::Proxy(url) => url.clone(),
        };
        let value = api
            .login(&login_base, &config.username, &config.password)
            .await?;
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(if matches!(targets, Targets::Proxy(_)) {
                // A new connection per request: a balancer reload cannot
                // race a request on a kept-alive connection it is closing.
                0
            } else {
                config.concurrency
            })
            .build()?;
        let shared = Arc::new(Shared {
            clock,
            faulted: (0..nodes).map(|_| AtomicBool::new(false)).collect(),
            targets,
            phase: AtomicUsize::new(0),
            phases: Mutex::new(vec![first_phase.to_string()]),
            records: Mutex::new(Vec::new()),
            token: RwLock::new(Token {
                value,
                issued: clock.now(),
                generation: 0,
            }),
            login: tokio::sync::Mutex::new(None),
            relogins: AtomicUsize::new(0),
            http,
            api,
            config,
        });
        let (stop, _) = watch::channel(false);
        let concurrency = shared.config.concurrency.max(1);
        let period =
            Duration::from_secs_f64(concurrency as f64 / f64::from(shared.config.rate.max(1)));
        let mut tasks = JoinSet::new();
        for k in 0..concurrency {
            let shared = shared.clone();
            let mut stopped = stop.subscribe();
            let offset = period.mul_f64(k as f64 / concurrency as f64);
            tasks.spawn(async move {
                let mut tick =
                    tokio::time::interval_at(tokio::time::Instant::now() + offset, period);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                // Open loop: a request that hangs (a paused node) does not
                // hold back the next ones.
                let mut in_flight = JoinSet::new();
                let mut i = k;
                loop {
                    tokio::select! {
                        _ = stopped.changed() => break,
                        _ = tick.tick() => {}
                    }
                    while in_flight.try_join_next().is_some() {}
                    let shared = shared.clone();
                    in_flight.spawn(async move { one_request(&shared, i % PATHS.len(), i).await });
                    i += 1;
                }
                while in_flight.join_next().await.is_some() {}
            });
        }
        Ok(Load {
            shared,
            tasks,
            stop,
        })
    }

    /// Starts a new phase; requests sent from now on belong to it.
    pub fn phase(&self, name: &str) {
        let mut phases = self.shared.phases.lock().expect("phases");
        phases.push(name.to_string());
        self.shared.phase.store(phases.len() - 1, Ordering::SeqCst);
    }

    /// Marks node `i` as faulted (its requests are classified apart) or not.
    pub fn set_faulted(&self, i: usize, faulted: bool) {
        if let Some(flag) = self.shared.faulted.get(i) {
            flag.store(faulted, Ordering::SeqCst);
        }
    }

    /// Stops every task (requests in flight finish first).
    pub async fn stop(mut self) -> LoadResult {
        let _ = self.stop.send(true);
        while self.tasks.join_next().await.is_some() {}
        LoadResult {
            records: self.shared.records.lock().expect("records").clone(),
            phases: self.shared.phases.lock().expect("phases").clone(),
            relogins: self.shared.relogins.load(Ordering::SeqCst),
        }
    }
}

async fn one_request(shared: &Arc<Shared>, path: usize, i: usize) {
    let phase = shared.phase.load(Ordering::SeqCst);
    let (route, needs_token) = PATHS[path];
    let token = needs_token.then(|| {
        let t = shared.token.read().expect("token");
        (t.value.clone(), t.issued, t.generation)
    });
    let sent = shared.clock.now();
    let started = Instant::now();
    let bearer = token.as_ref().map(|t| t.0.as_str());
    let (node, outcome, faulted, retried) = match &shared.targets {
        Targets::Direct(bases) => {
            let node = i % bases.len();
            let before = shared.faulted[node].load(Ordering::SeqCst);
            let outcome = send(&shared.http, &bases[node], route, bearer).await;
            let after = shared.faulted[node].load(Ordering::SeqCst);
            (Some(node), outcome, before || after, false)
        }
        Targets::Balanced { bases, rotation } => match rotation.pick(None) {
            None => (None, Outcome::Connect, false, false),
            Some(first) => {
                let outcome = send(&shared.http, &bases[first], route, bearer).await;
                if matches!(outcome, Outcome::Connect | Outcome::Other)
                    && let Some(second) = rotation.pick(Some(first))
                {
                    let outcome = send(&shared.http, &bases[second], route, bearer).await;
                    (Some(second), outcome, false, true)
                } else {
                    (Some(first), outcome, false, false)
                }
            }
        },
        Targets::Proxy(url) => (
            None,
            send(&shared.http, url, route, bearer).await,
            false,
            false,
        ),
    };
    shared.records.lock().expect("records").push(Record {
        phase,
        node,
        path,
        sent,
        latency: started.elapsed(),
        outcome,
        faulted,
        token_issued: token.as_ref().map(|t| t.1),
        retried,
    });
    if outcome == Outcome::Status(401)
        && let Some((_, _, generation)) = token
    {
        relogin(shared, generation, node).await;
    }
}

async fn send(http: &reqwest::Client, base: &str, route: &str, token: Option<&str>) -> Outcome {
    let mut request = http.get(format!("{base}{route}"));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let answer = tokio::time::timeout(REQUEST_TIMEOUT, async {
        let response = request.send().await?;
        let status = response.status().as_u16();
        response.bytes().await?;
        Ok::<_, reqwest::Error>(status)
    })
    .await;
    match answer {
        Err(_) => Outcome::Timeout,
        Ok(Ok(status)) => Outcome::Status(status),
        Ok(Err(e)) if e.is_connect() => Outcome::Connect,
        Ok(Err(e)) if e.is_timeout() => Outcome::Timeout,
        Ok(Err(_)) => Outcome::Other,
    }
}

/// Logs in again unless another task already replaced token `generation`.
async fn relogin(shared: &Arc<Shared>, generation: u64, answered_by: Option<usize>) {
    let mut last_failure = shared.login.lock().await;
    if shared.token.read().expect("token").generation != generation {
        return;
    }
    if last_failure.is_some_and(|t| t.elapsed() < Duration::from_millis(250)) {
        return;
    }
    let bases: Vec<String> = match &shared.targets {
        Targets::Direct(bases) | Targets::Balanced { bases, .. } => {
            let mut order: Vec<usize> = (0..bases.len())
                .filter(|n| !shared.faulted[*n].load(Ordering::SeqCst))
                .collect();
            // Prefer the node that refused the token: it must accept the new one.
            if let Some(n) = answered_by {
                order.sort_by_key(|k| *k != n);
            }
            order.into_iter().map(|n| bases[n].clone()).collect()
        }
        Targets::Proxy(url) => vec![url.clone()],
    };
    for base in bases {
        if let Ok(value) = shared
            .api
            .login(&base, &shared.config.username, &shared.config.password)
            .await
        {
            *shared.token.write().expect("token") = Token {
                value,
                issued: shared.clock.now(),
                generation: generation + 1,
            };
            shared.relogins.fetch_add(1, Ordering::SeqCst);
            *last_failure = None;
            return;
        }
    }
    *last_failure = Some(Instant::now());
}

/// Nearest-rank percentile of sorted `latencies`.
fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Traffic rows per phase (in phase order) and per class; `classify`
/// names the class of a record, `None` leaves it out.
pub fn summarize(
    records: &[Record],
    phases: &[String],
    classify: impl Fn(&Record) -> Option<String>,
) -> Vec<TrafficRow> {
    let mut groups: BTreeMap<(usize, String), Vec<&Record>> = BTreeMap::new();
    for r in records {
        if let Some(class) = classify(r) {
            groups.entry((r.phase, class)).or_default().push(r);
        }
    }
    groups
        .into_iter()
        .map(|((phase, class), rs)| {
            let mut latencies: Vec<Duration> = rs.iter().map(|r| r.latency).collect();
            latencies.sort_unstable();
            let mut failed = BTreeMap::new();
            for r in &rs {
                if !r.outcome.is_ok() {
                    *failed.entry(r.outcome.label()).or_insert(0) += 1;
                }
            }
            TrafficRow {
                phase: phases
                    .get(phase)
                    .cloned()
                    .unwrap_or_else(|| phase.to_string()),
                target: class,
                sent: rs.len(),
                ok: rs.iter().filter(|r| r.outcome.is_ok()).count(),
                failed,
                p50: percentile(&latencies, 50.0),
                p99: percentile(&latencies, 99.0),
                max: latencies.last().copied().unwrap_or_default(),
            }
        })
        .collect()
}

/// Traffic rows per node over every phase; `names` are the node ids.
pub fn per_node(records: &[Record], names: &[String]) -> Vec<TrafficRow> {
    let all: Vec<Record> = records.iter().map(|r| Record { phase: 0, ..*r }).collect();
    summarize(&all, &["all phases".to_string()], |r| {
        Some(match r.node {
            Some(n) => names.get(n).cloned().unwrap_or_else(|| n.to_string()),
            None => "through the load balancer".to_string(),
        })
    })
}

/// Requests that did not answer 2xx, by outcome label.
pub fn failures<'a>(records: impl IntoIterator<Item = &'a Record>) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for r in records {
        if !r.outcome.is_ok() {
            *out.entry(r.outcome.label()).or_insert(0) += 1;
        }
    }
    out
}

/// Refuses a load that did not run.
pub fn require_traffic(result: &LoadResult) -> Result<()> {
    if result.records.is_empty() {
        bail!("the load generator sent no request");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(phase: usize, node: usize, outcome: Outcome, ms: u64, faulted: bool) -> Record {
        Record {
            phase,
            node: Some(node),
            path: 1,
            sent: Duration::from_millis(ms),
            latency: Duration::from_millis(ms),
            outcome,
            faulted,
            token_issued: None,
            retried: false,
        }
    }

    #[test]
    fn traffic_is_grouped_by_phase_and_class_with_failures_by_status() {
        let records = vec![
            rec(0, 0, Outcome::Status(200), 1, false),
            rec(0, 1, Outcome::Status(200), 3, false),
            rec(1, 0, Outcome::Status(200), 2, false),
            rec(1, 1, Outcome::Connect, 1, true),
            rec(1, 1, Outcome::Status(503), 9, false),
            rec(1, 2, Outcome::Timeout, 10_000, true),
        ];
        let phases = vec!["steady".to_string(), "kill 1".to_string()];
        let rows = summarize(&records, &phases, |r| {
            Some(if r.faulted { "faulted" } else { "others" }.to_string())
        });
        assert_eq!(rows.len(), 3);
        assert_eq!(
            (rows[0].phase.as_str(), rows[0].target.as_str()),
            ("steady", "others")
        );
        assert_eq!(rows[0].sent, 2);
        assert_eq!(rows[0].ok, 2);
        assert_eq!(rows[0].p50, Duration::from_millis(1));
        assert_eq!(rows[0].max, Duration::from_millis(3));
        let faulted = &rows[1];
        assert_eq!(
            (faulted.phase.as_str(), faulted.target.as_str()),
            ("kill 1", "faulted")
        );
        assert_eq!(
            faulted.failed,
            BTreeMap::from([("connect".to_string(), 1), ("timeout".to_string(), 1)])
        );
        let others = &rows[2];
        assert_eq!(others.sent, 2);
        assert_eq!(others.failed, BTreeMap::from([("503".to_string(), 1)]));
        assert_eq!(failures(&records).get("503"), Some(&1));
        // A class of None leaves records out.
        assert!(summarize(&records, &phases, |_| None).is_empty());
        let names = vec!["a".to_string(), "b".to_string(), "c".to_string()];
        let nodes = per_node(&records, &names);
        assert_eq!(
            nodes
                .iter()
                .map(|t| (t.target.as_str(), t.sent))
                .collect::<Vec<_>>(),
            vec![("a", 2), ("b", 3), ("c", 1)]
        );
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let sorted: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile(&sorted, 50.0), Duration::from_millis(50));
        assert_eq!(percentile(&sorted, 99.0), Duration::from_millis(99));
        assert_eq!(percentile(&[], 99.0), Duration::ZERO);
        assert!(Outcome::Status(204).is_ok());
        assert!(!Outcome::Status(401).is_ok());
        assert_eq!(Outcome::Other.label(), "transport");
    }
}
