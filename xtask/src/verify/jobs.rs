//! The master_only check over `GET /api/v1/job/log` rows: every fire of the
//! job in the observed window ran exactly once (on one node, successfully)
//! and every other node recorded `skipped_not_primary` for it. Pure, unit
//! tested over sample JSON.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

/// How long after the job's creation fires are not judged: every node must
/// have loaded the new job first.
pub const LOAD_GRACE_MS: i64 = 1_500;
/// How long before reading the log fires are not judged: their rows may
/// still be written.
pub const SETTLE_MS: i64 = 1_500;
/// A run that started this much after its fire instant was recovered by a
/// new leader (misfire policy `fire_once`): that node may also have
/// recorded `skipped_not_primary` for it while it still followed.
pub const RECOVERED_LATE_MS: i64 = 1_000;

/// What the log says about the fires in the window.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Verdict {
    /// Fire instants judged.
    pub fires: usize,
    /// Runs per node.
    pub runs_by_node: BTreeMap<String, usize>,
    /// Terms of the runs.
    pub terms: BTreeSet<i64>,
    /// Nodes that recorded skips.
    pub skipping_nodes: BTreeSet<String>,
    /// `skipped_not_primary` rows judged.
    pub skips: usize,
    /// Fires run late by a new leader (misfire recovery).
    pub recovered: usize,
    /// Everything wrong, one line each.
    pub problems: Vec<String>,
}

impl Verdict {
    /// Whether nothing is wrong.
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }

    /// One line for the checklist.
    pub fn summary(&self) -> String {
        let list = |s: &mut dyn Iterator<Item = String>| s.collect::<Vec<_>>().join(", ");
        let runners = list(
            &mut self
                .runs_by_node
                .iter()
                .map(|(node, n)| format!("{node} ×{n}")),
        );
        let terms = list(&mut self.terms.iter().map(i64::to_string));
        let skippers = list(&mut self.skipping_nodes.iter().cloned());
        let mut line = format!(
            "{} fires judged: runs {runners} (term {terms}); {} skipped_not_primary rows from {}",
            self.fires,
            self.skips,
            if skippers.is_empty() {
                "no node".to_string()
            } else {
                skippers
            }
        );
        if self.recovered > 0 {
            line.push_str(&format!(
                "; {} fire(s) run late by a new leader (misfire recovery)",
                self.recovered
            ));
        }
        line
    }
}

/// Judges the cron rows of one master_only job whose period is `period_ms`
/// (an `@every` job, fires aligned to the Unix epoch), created at
/// `created_ms` and whose log was read at `read_ms`; `nodes` are the node
/// ids of the cluster.
pub fn judge(
    rows: &[Value],
    nodes: &[String],
    created_ms: i64,
    read_ms: i64,
    period_ms: i64,
) -> Verdict {
    let from = created_ms + LOAD_GRACE_MS;
    let to = read_ms - SETTLE_MS;
    let at = |ms: i64| format!("+{:.1}s", (ms - created_ms) as f64 / 1000.0);
    let mut verdict = Verdict::default();
    let mut by_fire: BTreeMap<i64, Vec<&Value>> = BTreeMap::new();
    for row in rows {
        if row["trigger"].as_str() != Some("cron") {
            continue;
        }
        let Some(scheduled) = row["scheduledAt"].as_i64() else {
            verdict
                .problems
                .push(format!("a log row without scheduledAt: {row}"));
            continue;
        };
        if (from..=to).contains(&scheduled) {
            by_fire.entry(scheduled).or_default().push(row);
        }
    }
    // Every period in the window is a fire; one without any row was missed.
    let first = (from + period_ms - 1).div_euclid(period_ms) * period_ms;
    let mut expected = first;
    while expected <= to {
        if !by_fire.contains_key(&expected) {
            verdict.problems.push(format!(
                "fire at {}: no log row at all (missed on every node)",
                at(expected)
            ));
        }
        expected += period_ms;
    }
    for (&scheduled, rows) in &by_fire {
        verdict.fires += 1;
        let when = at(scheduled);
        let node = |r: &Value| r["nodeId"].as_str().unwrap_or("?").to_string();
        let (skips, runs): (Vec<&Value>, Vec<&Value>) = rows
            .iter()
            .partition(|r| r["status"].as_str() == Some("skipped_not_primary"));
        match runs.as_slice() {
            [] => verdict
                .problems
                .push(format!("fire at {when}: no node ran it (only skips)")),
            [run] => {
                let runner = node(run);
                *verdict.runs_by_node.entry(runner.clone()).or_default() += 1;
                if let Some(term) = run["term"].as_i64() {
                    verdict.terms.insert(term);
                }
                let status = run["status"].as_str().unwrap_or("?");
                if !matches!(status, "success" | "running") {
                    verdict.problems.push(format!(
                        "fire at {when}: the run on {runner} ended {status} {}",
                        run["errMsg"].as_str().unwrap_or_default()
                    ));
                }
                let recovered = run["startAt"]
                    .as_i64()
                    .is_some_and(|start| start - scheduled > RECOVERED_LATE_MS);
                if recovered {
                    verdict.recovered += 1;
                }
                let mut skipped: BTreeMap<String, usize> = BTreeMap::new();
                for skip in &skips {
                    *skipped.entry(node(skip)).or_default() += 1;
                }
                if skipped.contains_key(&runner) && !recovered {
                    verdict.problems.push(format!(
                        "fire at {when}: {runner} both ran it and recorded skipped_not_primary"
                    ));
                }
                for (n, count) in &skipped {
                    if *count > 1 {
                        verdict.problems.push(format!(
                            "fire at {when}: {n} recorded skipped_not_primary {count} times"
                        ));
                    }
                }
                let missing: Vec<&str> = nodes
                    .iter()
                    .filter(|n| **n != runner && !skipped.contains_key(*n))
                    .map(String::as_str)
                    .collect();
                // A recovered fire was missed by the leader of its time,
                // which may have been down: its skip cannot be required.
                if !missing.is_empty() && !recovered {
                    verdict.problems.push(format!(
                        "fire at {when}: no skipped_not_primary row from {}",
                        missing.join(", ")
                    ));
                }
            }
            runs => verdict.problems.push(format!(
                "fire at {when}: ran {} times ({}): a duplicate run",
                runs.len(),
                runs.iter().map(|r| node(r)).collect::<Vec<_>>().join(", ")
            )),
        }
        verdict.skips += skips.len();
        verdict.skipping_nodes.extend(skips.iter().map(|r| node(r)));
    }
    if verdict.fires < 2 {
        verdict.problems.push(format!(
            "only {} fire(s) between {} and {}: too few to judge (raise --job-wait)",
            verdict.fires,
            at(from),
            at(to)
        ));
    }
    verdict
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const T0: i64 = 1_700_000_000_000; // a whole second

    fn row(node: &str, at: i64, status: &str, term: Option<i64>) -> Value {
        json!({"id": at + node.len() as i64, "jobId": 9, "nodeId": node, "trigger": "cron",
               "scheduledAt": at, "status": status, "errMsg": "", "term": term})
    }

    fn nodes() -> Vec<String> {
        vec!["node-1".into(), "node-2".into(), "node-3".into()]
    }

    /// Fires at T0+1s … T0+8s, each run by node-2 and skipped by the others.
    fn healthy() -> Vec<Value> {
        let mut rows = Vec::new();
        for k in 1..=8 {
            let at = T0 + k * 1000;
            rows.push(row("node-2", at, "success", Some(7)));
            rows.push(row("node-1", at, "skipped_not_primary", None));
            rows.push(row("node-3", at, "skipped_not_primary", None));
        }
        rows
    }

    #[test]
    fn one_run_per_fire_with_skips_from_the_followers_passes() {
        // Created at T0+0.2s, read at T0+8.7s: judged T0+2s … T0+7s.
        let v = judge(&healthy(), &nodes(), T0 + 200, T0 + 8_700, 1000);
        assert!(v.ok(), "{:?}", v.problems);
        assert_eq!(v.fires, 6);
        assert_eq!(v.runs_by_node, BTreeMap::from([("node-2".to_string(), 6)]));
        assert_eq!(v.terms, BTreeSet::from([7]));
        assert_eq!(v.skips, 12);
        assert_eq!(
            v.summary(),
            "6 fires judged: runs node-2 ×6 (term 7); 12 skipped_not_primary rows from node-1, node-3"
        );
    }

    #[test]
    fn manual_runs_and_fires_outside_the_window_are_not_judged() {
        let mut rows = healthy();
        // A manual trigger and a duplicate at the very first fire (before
        // every node had the job) are ignored.
        rows.push(json!({"nodeId": "node-1", "trigger": "manual", "scheduledAt": T0 + 3000, "status": "success"}));
        rows.push(row("node-1", T0 + 1000, "success", Some(7)));
        let v = judge(&rows, &nodes(), T0 + 200, T0 + 8_700, 1000);
        assert!(v.ok(), "{:?}", v.problems);
    }

    #[test]
    fn a_duplicate_run_fails() {
        let mut rows = healthy();
        rows.retain(|r| !(r["scheduledAt"] == T0 + 4000 && r["nodeId"] == "node-1"));
        rows.push(row("node-1", T0 + 4000, "success", Some(6)));
        let v = judge(&rows, &nodes(), T0 + 200, T0 + 8_700, 1000);
        assert_eq!(
            v.problems,
            ["fire at +3.8s: ran 2 times (node-2, node-1): a duplicate run"]
        );
    }

    #[test]
    fn a_missed_fire_and_a_missing_skip_fail() {
        let mut rows = healthy();
        rows.retain(|r| r["scheduledAt"] != T0 + 5000);
        rows.retain(|r| !(r["scheduledAt"] == T0 + 6000 && r["nodeId"] == "node-3"));
        let v = judge(&rows, &nodes(), T0 + 200, T0 + 8_700, 1000);
        assert_eq!(
            v.problems,
            [
                "fire at +4.8s: no log row at all (missed on every node)",
                "fire at +5.8s: no skipped_not_primary row from node-3",
            ]
        );
    }

    #[test]
    fn only_skips_or_a_failed_run_fail() {
        let mut rows = healthy();
        rows.retain(|r| !(r["scheduledAt"] == T0 + 3000 && r["nodeId"] == "node-2"));
        rows.push(row("node-2", T0 + 3000, "skipped_not_primary", None));
        rows.retain(|r| !(r["scheduledAt"] == T0 + 4000 && r["nodeId"] == "node-2"));
        let mut failed = row("node-2", T0 + 4000, "failed", Some(7));
        failed["errMsg"] = json!("boom");
        rows.push(failed);
        let v = judge(&rows, &nodes(), T0 + 200, T0 + 8_700, 1000);
        assert_eq!(
            v.problems,
            [
                "fire at +2.8s: no node ran it (only skips)",
                "fire at +3.8s: the run on node-2 ended failed boom",
            ]
        );
    }

    #[test]
    fn a_failover_shows_two_runners_and_two_terms() {
        let mut rows = Vec::new();
        for k in 1..=8 {
            let at = T0 + k * 1000;
            let (leader, term) = if k <= 4 { ("node-2", 7) } else { ("node-3", 8) };
            for n in ["node-1", "node-2", "node-3"] {
                if n == leader {
                    rows.push(row(n, at, "success", Some(term)));
                } else {
                    rows.push(row(n, at, "skipped_not_primary", None));
                }
            }
        }
        let v = judge(&rows, &nodes(), T0 + 200, T0 + 8_700, 1000);
        assert!(v.ok(), "{:?}", v.problems);
        assert_eq!(v.terms, BTreeSet::from([7, 8]));
        assert_eq!(v.runs_by_node.len(), 2);
    }

    #[test]
    fn a_new_leader_may_run_a_fire_it_skipped_while_following() {
        let mut rows = healthy();
        // node-2 stalled over T0+5s (no row); node-3 skipped it as a
        // follower, then led and ran it 2.5 s late (misfire recovery);
        // node-1 skipped it.
        rows.retain(|r| r["scheduledAt"] != T0 + 5000);
        let mut late = row("node-3", T0 + 5000, "success", Some(8));
        late["startAt"] = json!(T0 + 7500);
        rows.push(late);
        rows.push(row("node-3", T0 + 5000, "skipped_not_primary", None));
        rows.push(row("node-1", T0 + 5000, "skipped_not_primary", None));
        let v = judge(&rows, &nodes(), T0 + 200, T0 + 8_700, 1000);
        assert!(v.ok(), "{:?}", v.problems);
        assert_eq!(v.recovered, 1);
        assert_eq!(
            v.summary(),
            "6 fires judged: runs node-2 ×5, node-3 ×1 (term 7, 8); 12 skipped_not_primary \
             rows from node-1, node-3; 1 fire(s) run late by a new leader (misfire recovery)"
        );

        // On time, the same rows are a node that both skipped and ran.
        let mut rows = healthy();
        rows.push(row("node-2", T0 + 6000, "skipped_not_primary", None));
        let v = judge(&rows, &nodes(), T0 + 200, T0 + 8_700, 1000);
        assert_eq!(
            v.problems,
            ["fire at +5.8s: node-2 both ran it and recorded skipped_not_primary"]
        );
    }

    #[test]
    fn no_rows_at_all_fail_clearly() {
        let v = judge(&[], &nodes(), T0 + 200, T0 + 8_700, 1000);
        assert!(!v.ok());
        assert!(
            v.problems[0].contains("missed on every node"),
            "{:?}",
            v.problems
        );
        assert!(
            v.problems.last().unwrap().contains("only 0 fire(s)"),
            "{:?}",
            v.problems
        );
    }
}
