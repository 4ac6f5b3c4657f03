//! Fire accounting of a master_only `@every` job from its rows in
//! `sys_job_log` and `sys_job_fire`: for every fire instant of a window,
//! how many runs it had and whether exactly one claim (scope `*`) exists.

use anyhow::{Context, Result};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement};

/// The columns of a `sys_job_log` row the accounting needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRow {
    /// Log id.
    pub id: i64,
    /// Node that wrote the row.
    pub node_id: String,
    /// `cron` or `manual`.
    pub trigger: String,
    /// The fire instant (Unix ms).
    pub scheduled_at: i64,
    /// When the run (or skip) started (Unix ms).
    pub start_at: Option<i64>,
    /// `running`, `success`, `failed`, `skipped_not_primary`, …
    pub status: String,
    /// Leader term the row was written under.
    pub term: Option<i64>,
    /// Error message.
    pub err_msg: String,
}

impl LogRow {
    /// A cron run that ran or still runs (what "ran" means for a fire).
    pub fn is_cron_run(&self) -> bool {
        self.trigger == "cron" && matches!(self.status.as_str(), "success" | "running")
    }

    /// A row of an actual run (not a skip), whatever its outcome.
    pub fn is_run(&self) -> bool {
        !self.status.starts_with("skipped")
    }
}

/// A `sys_job_fire` row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimRow {
    /// The fire instant (Unix ms).
    pub scheduled_at: i64,
    /// `*` for master_only claims, the node id for all_node ones.
    pub scope: String,
    /// The claiming node.
    pub node_id: String,
    /// Its term.
    pub term: i64,
    /// When it claimed (Unix ms).
    pub claimed_at: i64,
}

/// A SIGKILL of a node at a Unix ms instant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kill {
    /// The killed node.
    pub node_id: String,
    /// When (Unix ms).
    pub at: i64,
}

/// Which fires are counted and how.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FireWindow {
    /// First instant counted (Unix ms, inclusive).
    pub from: i64,
    /// End (exclusive).
    pub to: i64,
    /// The job's period (fires are multiples of it since the Unix epoch).
    pub period: i64,
    /// A run starting later than this after its instant was recovered
    /// (misfire recovery by a new leader) rather than fired on time.
    pub late_after: i64,
    /// A claim at most this long before a kill of the claiming node counts
    /// as a run cut short by the kill.
    pub kill_grace: i64,
}

/// What happened to the fires of a window.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FireAccounting {
    /// Fire instants in the window.
    pub expected: usize,
    /// Fires with exactly one run.
    pub ran_once: usize,
    /// Of those, runs that started more than `late_after` after the instant.
    pub recovered_late: usize,
    /// Fires without a run whose claim was taken by a node that was killed
    /// within `kill_grace` after claiming (the run was cut short).
    pub interrupted: Vec<i64>,
    /// Fires without a run otherwise.
    pub missed: Vec<i64>,
    /// Fires with two or more runs.
    pub duplicated: Vec<i64>,
    /// Fires without exactly one claim of scope `*`.
    pub bad_claims: Vec<i64>,
    /// Fires whose one run was made by another node than the claimer.
    pub unclaimed_runs: Vec<i64>,
}

impl FireAccounting {
    /// No duplicate, no miss, one claim per fire, every run by its claimer.
    pub fn exactly_once(&self) -> bool {
        self.duplicated.is_empty()
            && self.missed.is_empty()
            && self.bad_claims.is_empty()
            && self.unclaimed_runs.is_empty()
    }

    /// `expected 30, ran once 29 (2 late), …` for a check's measured cell.
    pub fn summary(&self) -> String {
        let mut out = format!(
            "{} fires: {} ran once ({} recovered late)",
            self.expected, self.ran_once, self.recovered_late
        );
        for (what, list) in [
            ("interrupted by a kill", &self.interrupted),
            ("missed", &self.missed),
            ("duplicated", &self.duplicated),
            ("without exactly one claim", &self.bad_claims),
            ("run by a node without the claim", &self.unclaimed_runs),
        ] {
            if !list.is_empty() {
                out.push_str(&format!(", {} {what} (at {})", list.len(), instants(list)));
            }
        }
        out
    }
}

/// Up to five instants, as Unix ms.
fn instants(list: &[i64]) -> String {
    let mut shown: Vec<String> = list.iter().take(5).map(i64::to_string).collect();
    if list.len() > 5 {
        shown.push("…".into());
    }
    shown.join(", ")
}

/// Counts, for every fire instant of `window`, the cron runs that ran
/// (`success` or `running`) and the claims of scope `*`.
pub fn account(
    window: FireWindow,
    logs: &[LogRow],
    claims: &[ClaimRow],
    kills: &[Kill],
) -> FireAccounting {
    let mut out = FireAccounting::default();
    let period = window.period.max(1);
    let mut at = window.from.div_euclid(period) * period;
    if at < window.from {
        at += period;
    }
    while at < window.to {
        out.expected += 1;
        let runs: Vec<&LogRow> = logs
            .iter()
            .filter(|l| l.scheduled_at == at && l.is_cron_run())
            .collect();
        let fire_claims: Vec<&ClaimRow> = claims
            .iter()
            .filter(|c| c.scheduled_at == at && c.scope == "*")
            .collect();
        if fire_claims.len() != 1 {
            out.bad_claims.push(at);
        }
        match runs.as_slice() {
            [run] => {
                out.ran_once += 1;
                if run.start_at.is_some_and(|s| s - at > window.late_after) {
                    out.recovered_late += 1;
                }
                if let [claim] = fire_claims.as_slice()
                    && claim.node_id != run.node_id
                {
                    out.unclaimed_runs.push(at);
                }
            }
            [] => {
                let cut_short = fire_claims.iter().any(|c| {
                    kills.iter().any(|k| {
                        k.node_id == c.node_id
                            && k.at >= c.claimed_at
                            && k.at - c.claimed_at <= window.kill_grace
                    })
                });
                if cut_short {
                    out.interrupted.push(at);
                } else {
                    out.missed.push(at);
                }
            }
            _ => out.duplicated.push(at),
        }
        at += period;
    }
    out
}

/// Rows and claims showing `node_id` acting as leader under `term` at or
/// after `since` (Unix ms): log rows written under that term and claims
/// taken under it.
pub fn acted_as_leader_since<'a>(
    logs: &'a [LogRow],
    claims: &'a [ClaimRow],
    node_id: &str,
    term: i64,
    since: i64,
) -> (Vec<&'a LogRow>, Vec<&'a ClaimRow>) {
    let rows = logs
        .iter()
        .filter(|l| {
            l.node_id == node_id && l.term == Some(term) && l.start_at.is_some_and(|s| s >= since)
        })
        .collect();
    let taken = claims
        .iter()
        .filter(|c| c.node_id == node_id && c.term == term && c.claimed_at >= since)
        .collect();
    (rows, taken)
}

/// Runs (not skips) that started in `[from, to)` (Unix ms).
pub fn runs_started_between(logs: &[LogRow], from: i64, to: i64) -> Vec<&LogRow> {
    logs.iter()
        .filter(|l| l.is_run() && l.start_at.is_some_and(|s| s >= from && s < to))
        .collect()
}

/// Every log row and claim of `job_id`.
pub async fn job_rows(
    db: &DatabaseConnection,
    job_id: i64,
) -> Result<(Vec<LogRow>, Vec<ClaimRow>)> {
    let logs = db
        .query_all_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT id, node_id, trigger_type, scheduled_at, start_at, status, term, err_msg \
             FROM sys_job_log WHERE job_id = $1 ORDER BY id",
            [job_id.into()],
        ))
        .await
        .context("read sys_job_log")?
        .into_iter()
        .map(|r| {
            Ok(LogRow {
                id: r.try_get("", "id")?,
                node_id: r.try_get("", "node_id")?,
                trigger: r.try_get("", "trigger_type")?,
                scheduled_at: r.try_get("", "scheduled_at")?,
                start_at: r.try_get("", "start_at")?,
                status: r.try_get("", "status")?,
                term: r.try_get("", "term")?,
                err_msg: r.try_get("", "err_msg")?,
            })
        })
        .collect::<Result<Vec<_>, sea_orm::DbErr>>()
        .context("a sys_job_log row")?;
    let claims = db
        .query_all_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT scheduled_at, claim_scope, node_id, term, claimed_at \
             FROM sys_job_fire WHERE job_id = $1",
            [job_id.into()],
        ))
        .await
        .context("read sys_job_fire")?
        .into_iter()
        .map(|r| {
            Ok(ClaimRow {
                scheduled_at: r.try_get("", "scheduled_at")?,
                scope: r.try_get("", "claim_scope")?,
                node_id: r.try_get("", "node_id")?,
                term: r.try_get("", "term")?,
                claimed_at: r.try_get("", "claimed_at")?,
            })
        })
        .collect::<Result<Vec<_>, sea_orm::DbErr>>()
        .context("a sys_job_fire row")?;
    Ok((logs, claims))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(node: &str, at: i64, start: i64, status: &str) -> LogRow {
        LogRow {
            id: at + start,
            node_id: node.into(),
            trigger: "cron".into(),
            scheduled_at: at,
            start_at: Some(start),
            status: status.into(),
            term: Some(3),
            err_msg: String::new(),
        }
    }

    fn claim(node: &str, at: i64, claimed_at: i64) -> ClaimRow {
        ClaimRow {
            scheduled_at: at,
            scope: "*".into(),
            node_id: node.into(),
            term: 3,
            claimed_at,
        }
    }

    const WINDOW: FireWindow = FireWindow {
        from: 10_000,
        to: 16_000,
        period: 1_000,
        late_after: 500,
        kill_grace: 1_000,
    };

    #[test]
    fn every_fire_once_on_time_is_exactly_once() {
        let mut logs = Vec::new();
        let mut claims = Vec::new();
        for at in (10_000..16_000).step_by(1_000) {
            logs.push(run("a", at, at + 20, "success"));
            // Followers' skips and manual runs do not count as runs.
            logs.push(LogRow {
                status: "skipped_not_primary".into(),
                ..run("b", at, at + 5, "x")
            });
            logs.push(LogRow {
                trigger: "manual".into(),
                ..run("b", at, at + 5, "success")
            });
            claims.push(claim("a", at, at + 10));
        }
        // Outside the window.
        logs.push(run("a", 16_000, 16_020, "success"));
        logs.push(run("a", 16_000, 16_020, "success"));
        let a = account(WINDOW, &logs, &claims, &[]);
        assert_eq!(a.expected, 6);
        assert_eq!(a.ran_once, 6);
        assert_eq!(a.recovered_late, 0);
        assert!(a.exactly_once(), "{a:?}");
        assert_eq!(a.summary(), "6 fires: 6 ran once (0 recovered late)");
    }

    #[test]
    fn misses_duplicates_claims_and_late_runs_are_found() {
        let logs = vec![
            run("a", 10_000, 10_020, "success"),
            // Recovered by a new leader 2.1 s late.
            run("b", 11_000, 13_100, "success"),
            // Two runs of one fire.
            run("a", 12_000, 12_020, "success"),
            run("b", 12_000, 12_030, "running"),
            // 13 000: nothing at all, no claim: missed.
            // 14 000: a failed run is not a run.
            run("a", 14_000, 14_020, "failed"),
            // 15 000: run by b although a claimed it.
            run("b", 15_000, 15_020, "success"),
        ];
        let claims = vec![
            claim("a", 10_000, 10_010),
            claim("b", 11_000, 13_090),
            claim("a", 12_000, 12_010),
            claim("a", 14_000, 14_010),
            claim("a", 15_000, 15_010),
        ];
        let a = account(WINDOW, &logs, &claims, &[]);
        assert_eq!(a.expected, 6);
        assert_eq!(a.ran_once, 3);
        assert_eq!(a.recovered_late, 1);
        assert_eq!(a.duplicated, vec![12_000]);
        assert_eq!(a.missed, vec![13_000, 14_000]);
        assert_eq!(a.bad_claims, vec![13_000]);
        assert_eq!(a.unclaimed_runs, vec![15_000]);
        assert!(a.interrupted.is_empty());
        assert!(!a.exactly_once());
        assert!(
            a.summary().contains("2 missed (at 13000, 14000)"),
            "{}",
            a.summary()
        );
    }

    #[test]
    fn a_claim_cut_short_by_a_kill_of_its_node_is_interrupted_not_missed() {
        let window = FireWindow {
            from: 10_000,
            to: 12_000,
            ..WINDOW
        };
        let logs = vec![run("a", 10_000, 10_015, "failed")];
        let claims = vec![claim("a", 10_000, 10_010), claim("a", 11_000, 11_010)];
        let kills = vec![Kill {
            node_id: "a".into(),
            at: 10_012,
        }];
        let a = account(window, &logs, &claims, &kills);
        assert_eq!(a.interrupted, vec![10_000]);
        // 11 000 was claimed after the kill: the kill did not cut it short.
        assert_eq!(a.missed, vec![11_000]);
        // A kill of another node, or long after the claim, does not excuse it.
        let other = vec![Kill {
            node_id: "b".into(),
            at: 10_012,
        }];
        assert_eq!(account(window, &logs, &claims, &other).missed.len(), 2);
        let late = vec![Kill {
            node_id: "a".into(),
            at: 12_500,
        }];
        assert_eq!(
            account(window, &logs, &claims, &late).missed,
            vec![10_000, 11_000]
        );
    }

    #[test]
    fn windows_start_at_the_next_multiple_of_the_period() {
        let window = FireWindow {
            from: 10_001,
            to: 12_000,
            ..WINDOW
        };
        assert_eq!(account(window, &[], &[], &[]).expected, 1);
        let window = FireWindow {
            from: 10_000,
            to: 10_000,
            ..WINDOW
        };
        assert_eq!(account(window, &[], &[], &[]), FireAccounting::default());
    }

    #[test]
    fn leader_activity_after_a_point_is_found_by_node_and_term() {
        let mut old = run("a", 20_000, 20_010, "success");
        old.term = Some(3);
        let mut newer = run("b", 21_000, 21_010, "success");
        newer.term = Some(4);
        let before = run("a", 10_000, 10_010, "success");
        let logs = vec![old, newer, before];
        let claims = vec![claim("a", 20_000, 20_005), claim("a", 10_000, 10_005)];
        let (rows, taken) = acted_as_leader_since(&logs, &claims, "a", 3, 15_000);
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].scheduled_at, 20_000);
        assert_eq!(taken.len(), 1);
        let (rows, taken) = acted_as_leader_since(&logs, &claims, "a", 3, 25_000);
        assert!(rows.is_empty() && taken.is_empty());
        assert_eq!(runs_started_between(&logs, 20_000, 21_011).len(), 2);
        assert_eq!(runs_started_between(&logs, 20_011, 21_010).len(), 0);
    }
}
