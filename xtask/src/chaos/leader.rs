//! Who leads: every node's own answer, sampled from its `/metrics`
//! (`lina_leader_term`, computed from `Election::leader_term()` at the
//! moment of the request: public, no Redis or database round trip), and the
//! checks over those samples.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::util::Clock;

/// One node's answer to one sampling request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaderSample {
    /// The sampling round (all nodes are asked at once in a round).
    pub round: u64,
    /// Index of the node.
    pub node: usize,
    /// When the request was sent (since the scenario's clock started).
    pub sent: Duration,
    /// When the answer was read.
    pub received: Duration,
    /// The node's term when it counts itself leader, `None` when it follows.
    pub term: Option<u64>,
}

/// The leadership properties over a set of samples.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LeadershipCheck {
    /// Answers read.
    pub samples: usize,
    /// Answers claiming leadership.
    pub claims: usize,
    /// Sampling rounds with at least one answer.
    pub rounds: usize,
    /// Rounds in which two or more nodes claimed leadership. Inconclusive
    /// alone: the requests of a round are in flight at the same time, so
    /// one node may have stepped down between the two answers.
    pub multi_claim_rounds: usize,
    /// Terms claimed by more than one node: `(term, nodes)`.
    pub term_conflicts: Vec<(u64, Vec<usize>)>,
    /// Claims of an older term whose request was sent after an answer
    /// claiming a newer term had been read: at that instant the newer
    /// leader existed, so the older one acted on a lapsed lease. `(claim,
    /// the newer term already seen)`.
    pub stale_claims: Vec<(LeaderSample, u64)>,
    /// Every term claimed, with its node.
    pub terms: BTreeMap<u64, usize>,
}

impl LeadershipCheck {
    /// One leader per term, and no claim provably overlapping a newer leader.
    pub fn holds(&self) -> bool {
        self.term_conflicts.is_empty() && self.stale_claims.is_empty()
    }
}

/// Checks that no two nodes ever claimed the same term, and that no node
/// claimed an older term after a newer term's leader had answered.
pub fn check_leadership(samples: &[LeaderSample]) -> LeadershipCheck {
    let mut out = LeadershipCheck {
        samples: samples.len(),
        ..LeadershipCheck::default()
    };
    let mut claims: Vec<LeaderSample> = samples
        .iter()
        .filter(|s| s.term.is_some())
        .copied()
        .collect();
    out.claims = claims.len();
    let mut rounds: BTreeMap<u64, BTreeSet<usize>> = BTreeMap::new();
    for s in samples {
        let claimers = rounds.entry(s.round).or_default();
        if s.term.is_some() {
            claimers.insert(s.node);
        }
    }
    out.rounds = rounds.len();
    out.multi_claim_rounds = rounds.values().filter(|c| c.len() > 1).count();
    let mut by_term: BTreeMap<u64, BTreeSet<usize>> = BTreeMap::new();
    for c in &claims {
        by_term
            .entry(c.term.expect("a claim"))
            .or_default()
            .insert(c.node);
    }
    for (term, nodes) in &by_term {
        out.terms
            .insert(*term, *nodes.iter().next().expect("at least one"));
        if nodes.len() > 1 {
            out.term_conflicts
                .push((*term, nodes.iter().copied().collect()));
        }
    }
    // Highest term read by each point in time.
    claims.sort_by_key(|c| c.received);
    let mut highest = Vec::with_capacity(claims.len());
    let mut max = 0;
    for c in &claims {
        max = max.max(c.term.expect("a claim"));
        highest.push((c.received, max));
    }
    for c in &claims {
        let seen_before = highest.partition_point(|(received, _)| *received < c.sent);
        if seen_before > 0 {
            let newest = highest[seen_before - 1].1;
            let term = c.term.expect("a claim");
            if newest > term {
                out.stale_claims.push((*c, newest));
            }
        }
    }
    out
}

/// `lina_leader_term{node="…"} N` of a `/metrics` body: `Some(N)` when
/// N > 0 (leads), `None` when 0 (follows); an error when the line is absent.
pub fn parse_leader_term(metrics: &str) -> Option<Option<u64>> {
    let line = metrics
        .lines()
        .find(|l| l.starts_with("lina_leader_term{"))?;
    let value: u64 = line.rsplit(' ').next()?.trim().parse().ok()?;
    Some((value > 0).then_some(value))
}

/// Samples every node's leadership every `every` until stopped.
pub struct Sampler {
    samples: Arc<Mutex<Vec<LeaderSample>>>,
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

impl Sampler {
    /// Starts sampling `bases` (`http://127.0.0.1:port`).
    pub fn start(clock: Clock, bases: Vec<String>, every: Duration) -> Sampler {
        let samples = Arc::new(Mutex::new(Vec::new()));
        let (stop, mut stopped) = watch::channel(false);
        let http = reqwest::Client::builder()
            .timeout(Duration::from_millis(500))
            .build()
            .expect("an HTTP client");
        let store = samples.clone();
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut round = 0u64;
            loop {
                tokio::select! {
                    _ = stopped.changed() => return,
                    _ = tick.tick() => {}
                }
                round += 1;
                let mut asks = tokio::task::JoinSet::new();
                for (node, base) in bases.iter().enumerate() {
                    let http = http.clone();
                    let url = format!("{base}/metrics");
                    asks.spawn(async move {
                        let sent = clock.now();
                        let answer = async {
                            let response = http.get(&url).send().await.ok()?;
                            if !response.status().is_success() {
                                return None;
                            }
                            let text = response.text().await.ok()?;
                            parse_leader_term(&text)
                        }
                        .await;
                        answer.map(|term| LeaderSample {
                            round,
                            node,
                            sent,
                            received: clock.now(),
                            term,
                        })
                    });
                }
                while let Some(done) = asks.join_next().await {
                    if let Ok(Some(sample)) = done {
                        store.lock().expect("samples").push(sample);
                    }
                }
            }
        });
        Sampler {
            samples,
            stop,
            task: Some(task),
        }
    }

    /// Every sample so far.
    pub fn snapshot(&self) -> Vec<LeaderSample> {
        self.samples.lock().expect("samples").clone()
    }

    /// The claim with the highest term among answers read at or after `since`.
    pub fn leader_since(&self, since: Duration) -> Option<(usize, u64)> {
        self.samples
            .lock()
            .expect("samples")
            .iter()
            .filter(|s| s.received >= since)
            .filter_map(|s| s.term.map(|t| (t, s.node)))
            .max()
            .map(|(t, n)| (n, t))
    }

    /// Waits until a node other than `exclude` claims a term above `above`
    /// in an answer read after `after`; returns that answer, or `None` at
    /// `deadline` (since the clock's start).
    pub async fn wait_new_leader(
        &self,
        clock: Clock,
        after: Duration,
        above: u64,
        exclude: Option<usize>,
        deadline: Duration,
    ) -> Option<LeaderSample> {
        loop {
            let found = self
                .samples
                .lock()
                .expect("samples")
                .iter()
                .filter(|s| {
                    s.received > after
                        && Some(s.node) != exclude
                        && s.term.is_some_and(|t| t > above)
                })
                .min_by_key(|s| s.received)
                .copied();
            if found.is_some() {
                return found;
            }
            if clock.now() > deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Stops sampling; returns every sample.
    pub async fn stop(mut self) -> Vec<LeaderSample> {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
        self.snapshot()
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(
        round: u64,
        node: usize,
        sent_ms: u64,
        received_ms: u64,
        term: Option<u64>,
    ) -> LeaderSample {
        LeaderSample {
            round,
            node,
            sent: Duration::from_millis(sent_ms),
            received: Duration::from_millis(received_ms),
            term,
        }
    }

    #[test]
    fn a_clean_handover_holds() {
        let samples = vec![
            s(1, 0, 0, 2, Some(4)),
            s(1, 1, 0, 3, None),
            s(2, 0, 20, 22, Some(4)),
            s(2, 1, 20, 21, None),
            // Node 0 stepped down, node 1 leads under term 5.
            s(3, 0, 40, 41, None),
            s(3, 1, 40, 43, Some(5)),
        ];
        let check = check_leadership(&samples);
        assert!(check.holds(), "{check:?}");
        assert_eq!(check.samples, 6);
        assert_eq!(check.claims, 3);
        assert_eq!(check.rounds, 3);
        assert_eq!(check.multi_claim_rounds, 0);
        assert_eq!(check.terms, BTreeMap::from([(4, 0), (5, 1)]));
    }

    #[test]
    fn two_nodes_under_one_term_fail() {
        let samples = vec![s(1, 0, 0, 2, Some(4)), s(2, 1, 20, 22, Some(4))];
        let check = check_leadership(&samples);
        assert!(!check.holds());
        assert_eq!(check.term_conflicts, vec![(4, vec![0, 1])]);
    }

    #[test]
    fn an_old_leader_answering_after_the_new_one_fails() {
        // Node 1 answered as leader of term 5 at 43 ms; node 0's request
        // sent at 60 ms still claims term 4.
        let samples = vec![
            s(3, 1, 40, 43, Some(5)),
            s(3, 0, 40, 45, Some(4)),
            s(4, 0, 60, 62, Some(4)),
            s(4, 1, 60, 61, Some(5)),
        ];
        let check = check_leadership(&samples);
        assert!(!check.holds());
        assert_eq!(check.multi_claim_rounds, 2);
        // The round-3 claim of node 0 was sent before term 5 was read: it
        // may have been answered before node 1 took over (inconclusive).
        assert_eq!(check.stale_claims.len(), 1);
        assert_eq!(check.stale_claims[0].0, s(4, 0, 60, 62, Some(4)));
        assert_eq!(check.stale_claims[0].1, 5);
    }

    #[test]
    fn overlapping_answers_of_one_round_are_only_counted() {
        let samples = vec![s(3, 1, 40, 43, Some(5)), s(3, 0, 40, 45, Some(4))];
        let check = check_leadership(&samples);
        assert!(check.holds());
        assert_eq!(check.multi_claim_rounds, 1);
    }

    #[test]
    fn the_term_is_read_from_metrics() {
        let body = "# HELP lina_leader 1 when this node leads.\nlina_leader{node=\"a\"} 1\n\
                    # HELP lina_leader_term Term\nlina_leader_term{node=\"a\"} 17\n";
        assert_eq!(parse_leader_term(body), Some(Some(17)));
        assert_eq!(
            parse_leader_term("lina_leader_term{node=\"b\"} 0\n"),
            Some(None)
        );
        assert_eq!(parse_leader_term("lina_leader{node=\"b\"} 0\n"), None);
    }
}
