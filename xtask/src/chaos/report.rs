//! What a chaos run found: per scenario a table of checks (measured against
//! allowed), the traffic per phase and the fire accounting, rendered as
//! markdown.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use super::fires::FireAccounting;

/// One checked property of a scenario.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// What must hold.
    pub name: String,
    /// What was measured.
    pub measured: String,
    /// The bound or the expected value.
    pub allowed: String,
    /// Whether it held.
    pub ok: bool,
}

impl Check {
    /// A check from its parts.
    pub fn new(
        name: impl Into<String>,
        measured: impl Into<String>,
        allowed: impl Into<String>,
        ok: bool,
    ) -> Check {
        Check {
            name: name.into(),
            measured: measured.into(),
            allowed: allowed.into(),
            ok,
        }
    }
}

/// Requests of one phase to one class of targets.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrafficRow {
    /// Phase name.
    pub phase: String,
    /// Which requests (e.g. `surviving nodes`, `killed node (excluded)`).
    pub target: String,
    /// Requests sent.
    pub sent: usize,
    /// Answered 2xx.
    pub ok: usize,
    /// Everything else, by status (`503`, `connect`, `timeout`).
    pub failed: BTreeMap<String, usize>,
    /// Median latency of every request of the row.
    pub p50: Duration,
    /// 99th percentile.
    pub p99: Duration,
    /// Slowest.
    pub max: Duration,
}

/// The fire accounting of a job over a window, with a label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FireRow {
    /// Which window (e.g. `whole scenario`).
    pub label: String,
    /// The numbers.
    pub accounting: FireAccounting,
}

/// The result of one scenario.
#[derive(Debug, Clone, Default)]
pub struct ScenarioReport {
    /// 1–7.
    pub id: u8,
    /// Short title.
    pub title: String,
    /// What was injected, in a sentence.
    pub injected: String,
    /// The checked properties.
    pub checks: Vec<Check>,
    /// Requests per phase.
    pub traffic: Vec<TrafficRow>,
    /// Requests per node over all phases.
    pub per_node: Vec<TrafficRow>,
    /// Fires of the scenario's master_only job.
    pub fires: Vec<FireRow>,
    /// Extra lines (details of failures, what was measured how).
    pub notes: Vec<String>,
    /// How long the scenario took.
    pub elapsed: Duration,
    /// Where the node logs are.
    pub logs: String,
}

impl ScenarioReport {
    /// Whether every check held (a scenario without checks did not run).
    pub fn passed(&self) -> bool {
        !self.checks.is_empty() && self.checks.iter().all(|c| c.ok)
    }

    /// Adds a check.
    pub fn check(
        &mut self,
        name: impl Into<String>,
        measured: impl Into<String>,
        allowed: impl Into<String>,
        ok: bool,
    ) {
        self.checks.push(Check::new(name, measured, allowed, ok));
    }
}

/// The whole run.
#[derive(Debug, Clone, Default)]
pub struct RunReport {
    /// `key: value` lines describing the setup.
    pub setup: Vec<(String, String)>,
    /// One per scenario run, in order.
    pub scenarios: Vec<ScenarioReport>,
    /// Wall time of the whole command.
    pub elapsed: Duration,
}

impl RunReport {
    /// Whether every scenario passed.
    pub fn passed(&self) -> bool {
        !self.scenarios.is_empty() && self.scenarios.iter().all(ScenarioReport::passed)
    }

    /// Failed checks over all scenarios.
    pub fn failed_checks(&self) -> usize {
        self.scenarios
            .iter()
            .map(|s| {
                if s.checks.is_empty() {
                    1
                } else {
                    s.checks.iter().filter(|c| !c.ok).count()
                }
            })
            .sum()
    }

    /// The report as markdown.
    pub fn markdown(&self) -> String {
        let mut out = String::from("# cargo xtask chaos\n\n");
        for (key, value) in &self.setup {
            let _ = writeln!(out, "- {key}: {value}");
        }
        let _ = writeln!(
            out,
            "- result: {} ({} scenarios, {} failed checks, {})\n",
            if self.passed() { "✓" } else { "✗" },
            self.scenarios.len(),
            self.failed_checks(),
            fmt_secs(self.elapsed)
        );
        out.push_str("| # | scenario | checks | result | time |\n|---|---|---|---|---|\n");
        for s in &self.scenarios {
            let _ = writeln!(
                out,
                "| {} | {} | {}/{} | {} | {} |",
                s.id,
                cell(&s.title),
                s.checks.iter().filter(|c| c.ok).count(),
                s.checks.len(),
                mark(s.passed()),
                fmt_secs(s.elapsed)
            );
        }
        for s in &self.scenarios {
            out.push('\n');
            out.push_str(&scenario_markdown(s));
        }
        out
    }
}

fn mark(ok: bool) -> &'static str {
    if ok { "✓" } else { "✗" }
}

/// A table cell: no pipes, no line breaks.
fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

/// One scenario as markdown: heading, injection, checks, traffic, fires, notes.
pub fn scenario_markdown(s: &ScenarioReport) -> String {
    let mut out = format!("## {}. {} — {}\n\n", s.id, cell(&s.title), mark(s.passed()));
    let _ = writeln!(out, "Injected: {}\n", s.injected);
    out.push_str("| # | check | measured | allowed | result |\n|---|---|---|---|---|\n");
    for (i, c) in s.checks.iter().enumerate() {
        let _ = writeln!(
            out,
            "| {}.{} | {} | {} | {} | {} |",
            s.id,
            i + 1,
            cell(&c.name),
            cell(&c.measured),
            cell(&c.allowed),
            mark(c.ok)
        );
    }
    if s.checks.is_empty() {
        out.push_str("| - | the scenario ran | no check completed | - | ✗ |\n");
    }
    if !s.traffic.is_empty() {
        out.push_str(
            "\nRequests per phase:\n\n| phase | requests to | sent | 2xx | failed by status | p50 | p99 | max |\n|---|---|---|---|---|---|---|---|\n",
        );
        for t in &s.traffic {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {} | {} |",
                cell(&t.phase),
                cell(&t.target),
                t.sent,
                t.ok,
                fmt_failed(&t.failed),
                fmt_ms(t.p50),
                fmt_ms(t.p99),
                fmt_ms(t.max)
            );
        }
    }
    if !s.per_node.is_empty() {
        out.push_str(
            "\nRequests per node (all phases, faulted moments included):\n\n| node | sent | 2xx | failed by status | p50 | p99 | max |\n|---|---|---|---|---|---|---|\n",
        );
        for t in &s.per_node {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {} |",
                cell(&t.target),
                t.sent,
                t.ok,
                fmt_failed(&t.failed),
                fmt_ms(t.p50),
                fmt_ms(t.p99),
                fmt_ms(t.max)
            );
        }
    }
    if !s.fires.is_empty() {
        out.push_str(
            "\nFires of the master_only job (`@every 1s`):\n\n| window | expected | ran once | of which recovered late | interrupted by a kill | missed | duplicated | claims `*` ≠ 1 | run by a node without the claim |\n|---|---|---|---|---|---|---|---|---|\n",
        );
        for f in &s.fires {
            let a = &f.accounting;
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                cell(&f.label),
                a.expected,
                a.ran_once,
                a.recovered_late,
                a.interrupted.len(),
                a.missed.len(),
                a.duplicated.len(),
                a.bad_claims.len(),
                a.unclaimed_runs.len()
            );
        }
    }
    if !s.notes.is_empty() {
        out.push('\n');
        for note in &s.notes {
            let _ = writeln!(out, "- {note}");
        }
    }
    let _ = writeln!(
        out,
        "\nTook {}; node logs in `{}`.",
        fmt_secs(s.elapsed),
        s.logs
    );
    out
}

/// `503 ×4, connect ×2`, or `-`.
pub fn fmt_failed(failed: &BTreeMap<String, usize>) -> String {
    if failed.is_empty() {
        return "-".into();
    }
    failed
        .iter()
        .map(|(status, n)| format!("{status} ×{n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A latency in milliseconds: `12.3 ms`, `1 204 ms` → `1.20 s`.
pub fn fmt_ms(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1000.0;
    if ms < 1000.0 {
        format!("{ms:.1} ms")
    } else {
        format!("{:.2} s", ms / 1000.0)
    }
}

/// `12.3s`.
pub fn fmt_secs(d: Duration) -> String {
    format!("{:.1}s", d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> ScenarioReport {
        let mut s = ScenarioReport {
            id: 1,
            title: "leader killed | five times".into(),
            injected: "SIGKILL of the leader".into(),
            logs: "target/chaos/1-leader-kill".into(),
            elapsed: Duration::from_millis(31_250),
            ..ScenarioReport::default()
        };
        s.check("failover 1", "1.73 s", "≤ 2.25 s", true);
        s.check("no failed request on survivors", "2 of 900", "0", false);
        s.traffic.push(TrafficRow {
            phase: "kill 1".into(),
            target: "surviving nodes".into(),
            sent: 10,
            ok: 8,
            failed: BTreeMap::from([("503".to_string(), 1), ("connect".to_string(), 1)]),
            p50: Duration::from_micros(1500),
            p99: Duration::from_millis(20),
            max: Duration::from_millis(1500),
        });
        s.per_node.push(TrafficRow {
            phase: "all".into(),
            target: "chaos-2".into(),
            sent: 5,
            ok: 5,
            ..TrafficRow::default()
        });
        s.fires.push(FireRow {
            label: "whole scenario".into(),
            accounting: FireAccounting {
                expected: 30,
                ran_once: 29,
                missed: vec![1_000],
                ..FireAccounting::default()
            },
        });
        s
    }

    #[test]
    fn a_scenario_renders_its_checks_traffic_and_fires() {
        let md = scenario_markdown(&sample());
        assert!(
            md.starts_with("## 1. leader killed \\| five times — ✗\n"),
            "{md}"
        );
        assert!(
            md.contains("| 1.1 | failover 1 | 1.73 s | ≤ 2.25 s | ✓ |"),
            "{md}"
        );
        assert!(md.contains("| 1.2 | no failed request on survivors | 2 of 900 | 0 | ✗ |"));
        assert!(md.contains("| kill 1 | surviving nodes | 10 | 8 | 503 ×1, connect ×1 | 1.5 ms | 20.0 ms | 1.50 s |"), "{md}");
        assert!(
            md.contains("| whole scenario | 30 | 29 | 0 | 0 | 1 | 0 | 0 | 0 |"),
            "{md}"
        );
        assert!(
            md.contains("| chaos-2 | 5 | 5 | - | 0.0 ms | 0.0 ms | 0.0 ms |"),
            "{md}"
        );
        assert!(md.contains("Took 31.2s; node logs in `target/chaos/1-leader-kill`."));
    }

    #[test]
    fn the_run_fails_when_any_check_fails_or_a_scenario_has_none() {
        let mut good = sample();
        good.checks.retain(|c| c.ok);
        let mut run = RunReport {
            scenarios: vec![good.clone()],
            ..RunReport::default()
        };
        assert!(run.passed());
        assert_eq!(run.failed_checks(), 0);
        run.scenarios.push(sample());
        assert!(!run.passed());
        assert_eq!(run.failed_checks(), 1);
        let empty = ScenarioReport {
            id: 2,
            ..ScenarioReport::default()
        };
        assert!(!empty.passed());
        run.scenarios = vec![good, empty];
        assert!(!run.passed());
        assert_eq!(run.failed_checks(), 1);
        let md = run.markdown();
        assert!(md.contains("| 2 |  | 0/0 | ✗ |"), "{md}");
        assert!(md.contains("| - | the scenario ran | no check completed | - | ✗ |"));
        assert!(!RunReport::default().passed());
    }

    #[test]
    fn failures_are_listed_by_status() {
        assert_eq!(fmt_failed(&BTreeMap::new()), "-");
        let failed = BTreeMap::from([("500".to_string(), 2), ("timeout".to_string(), 1)]);
        assert_eq!(fmt_failed(&failed), "500 ×2, timeout ×1");
    }
}
