//! Latency samples, result rows and the table a benchmark prints and writes.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};

pub use crate::process::target_dir;

/// Latencies of one measurement, sorted.
#[derive(Debug, Clone)]
pub struct Samples {
    sorted: Vec<Duration>,
}

impl Samples {
    /// Sorts `samples`; there must be at least one.
    pub fn new(mut samples: Vec<Duration>) -> Samples {
        assert!(!samples.is_empty(), "a measurement needs samples");
        samples.sort_unstable();
        Samples { sorted: samples }
    }

    /// How many samples there are.
    pub fn len(&self) -> usize {
        self.sorted.len()
    }

    /// The nearest-rank percentile `p` (0–100).
    pub fn percentile(&self, p: f64) -> Duration {
        let n = self.sorted.len();
        let rank = ((p / 100.0) * n as f64).ceil() as usize;
        self.sorted[rank.clamp(1, n) - 1]
    }

    /// The median (nearest rank).
    pub fn p50(&self) -> Duration {
        self.percentile(50.0)
    }

    /// The 99th percentile (nearest rank).
    pub fn p99(&self) -> Duration {
        self.percentile(99.0)
    }

    /// The largest sample.
    pub fn max(&self) -> Duration {
        *self.sorted.last().expect("not empty")
    }

    /// The arithmetic mean.
    pub fn mean(&self) -> Duration {
        self.sorted.iter().sum::<Duration>() / self.sorted.len() as u32
    }
}

/// A latency as `85.3 µs`, `1.27 ms` or `2.00 s`.
pub fn fmt_duration(d: Duration) -> String {
    let us = d.as_secs_f64() * 1e6;
    if us < 10.0 {
        format!("{us:.2} µs")
    } else if us < 1_000.0 {
        format!("{us:.1} µs")
    } else if us < 1_000_000.0 {
        format!("{:.2} ms", us / 1_000.0)
    } else {
        format!("{:.2} s", us / 1_000_000.0)
    }
}

/// A round duration as `5 ms` or `1 s`, else as [`fmt_duration`].
pub fn fmt_round(d: Duration) -> String {
    if d >= Duration::from_secs(1) && d.subsec_nanos() == 0 {
        format!("{} s", d.as_secs())
    } else if d < Duration::from_secs(1) && d.subsec_nanos().is_multiple_of(1_000_000) {
        format!("{} ms", d.as_millis())
    } else {
        fmt_duration(d)
    }
}

/// Whether a figure met its target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Target met.
    Pass,
    /// Target missed.
    Miss,
    /// A baseline or an informational figure without a target.
    Info,
}

impl Verdict {
    /// `Pass` when `ok`, else `Miss`.
    pub fn from_ok(ok: bool) -> Verdict {
        if ok { Verdict::Pass } else { Verdict::Miss }
    }

    fn label(self) -> &'static str {
        match self {
            Verdict::Pass => "PASS",
            Verdict::Miss => "MISS",
            Verdict::Info => "-",
        }
    }
}

/// One line of the result table.
#[derive(Debug, Clone)]
pub struct Row {
    /// Short id (`1`, `5a`).
    pub id: String,
    /// What was measured.
    pub figure: String,
    /// The measured value(s).
    pub value: String,
    /// The baseline from the same run, if any.
    pub baseline: String,
    /// Value relative to the baseline, if any.
    pub ratio: String,
    /// The target, if any.
    pub target: String,
    /// Met or missed.
    pub verdict: Verdict,
}

/// The result of one benchmark target.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// `coord`, …
    pub target: String,
    /// `key: value` lines describing the setup.
    pub setup: Vec<(String, String)>,
    /// The table.
    pub rows: Vec<Row>,
    /// Extra markdown paragraphs (details, notes) after the table.
    pub notes: Vec<String>,
}

const HEADERS: [&str; 7] = [
    "#", "figure", "value", "baseline", "ratio", "target", "result",
];

impl Report {
    fn cells(row: &Row) -> [&str; 7] {
        [
            &row.id,
            &row.figure,
            &row.value,
            &row.baseline,
            &row.ratio,
            &row.target,
            row.verdict.label(),
        ]
    }

    /// The table as aligned plain text.
    pub fn text_table(&self) -> String {
        let mut widths = HEADERS.map(|h| h.chars().count());
        for row in &self.rows {
            for (w, cell) in widths.iter_mut().zip(Self::cells(row)) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let line = |cells: [&str; 7]| {
            let mut out = String::new();
            for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
                if i > 0 {
                    out.push_str("  ");
                }
                out.push_str(cell);
                if i + 1 < cells.len() {
                    out.extend(std::iter::repeat_n(' ', w - cell.chars().count()));
                }
            }
            out.push('\n');
            out
        };
        let mut out = line(HEADERS);
        let total: usize = widths.iter().sum::<usize>() + 2 * (widths.len() - 1);
        out.push_str(&"-".repeat(total));
        out.push('\n');
        for row in &self.rows {
            out.push_str(&line(Self::cells(row)));
        }
        out
    }

    /// The table as a markdown table (no heading or setup).
    pub fn markdown_table(&self) -> String {
        let mut out = format!("| {} |\n", HEADERS.join(" | "));
        out.push_str("|---|---|---|---|---|---|---|\n");
        for row in &self.rows {
            let cells = Self::cells(row).map(|c| c.replace('|', "\\|"));
            let _ = writeln!(out, "| {} |", cells.join(" | "));
        }
        out
    }

    /// The whole report as a markdown document.
    pub fn markdown(&self) -> String {
        let mut out = format!(
            "# `cargo xtask bench {}`\n\nMeasured {}.\n\n",
            self.target,
            utc_now()
        );
        for (key, value) in &self.setup {
            let _ = writeln!(out, "- {key}: {value}");
        }
        out.push('\n');
        out.push_str(&self.markdown_table());
        for note in &self.notes {
            out.push('\n');
            out.push_str(note);
            out.push('\n');
        }
        out
    }

    /// The rows that missed their target.
    pub fn misses(&self) -> Vec<&Row> {
        self.rows
            .iter()
            .filter(|r| r.verdict == Verdict::Miss)
            .collect()
    }

    /// Prints the table and the verdicts and writes the markdown file: the
    /// end of every `cargo xtask bench <target>`.
    pub fn print_and_write(&self) -> Result<()> {
        println!();
        print!("{}", self.text_table());
        println!();
        let path = self.write_markdown()?;
        let misses = self.misses();
        let targets = self
            .rows
            .iter()
            .filter(|r| r.verdict != Verdict::Info)
            .count();
        if misses.is_empty() {
            println!("all {targets} targets met");
        } else {
            for row in &misses {
                println!(
                    "MISS: row {} ({}): {} against target {}",
                    row.id, row.figure, row.value, row.target
                );
            }
            println!(
                "{} of {targets} targets MISSED (a measurement, not a test: exit status stays 0)",
                misses.len()
            );
        }
        println!("markdown table written to {}", path.display());
        Ok(())
    }

    /// Writes [`Report::markdown`] to `target/bench/<target>.md`; returns the path.
    pub fn write_markdown(&self) -> Result<PathBuf> {
        let dir = target_dir().join("bench");
        std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
        let path = dir.join(format!("{}.md", self.target));
        std::fs::write(&path, self.markdown())
            .with_context(|| format!("write {}", path.display()))?;
        Ok(path)
    }
}

/// Now as `2025-01-31 12:34 UTC`.
fn utc_now() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (days, rest) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02} UTC",
        rest / 3_600,
        rest % 3_600 / 60
    )
}

/// `N CPUs (model)` of this machine, for the setup lines.
pub fn machine() -> String {
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, m)| m.trim().to_string())
        });
    match model {
        Some(model) => format!("{cpus} CPUs ({model})"),
        None => format!("{cpus} CPUs"),
    }
}

/// The 1-minute load average (`/proc/loadavg`), when known.
pub fn load_average() -> Option<String> {
    let loadavg = std::fs::read_to_string("/proc/loadavg").ok()?;
    loadavg.split_whitespace().next().map(str::to_string)
}

/// How this binary was built, for the setup lines.
pub fn build_profile() -> &'static str {
    if cfg!(debug_assertions) {
        "debug (unoptimized: numbers are not meaningful)"
    } else {
        "release"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_nearest_rank() {
        let samples = Samples::new((1..=100).rev().map(Duration::from_micros).collect());
        assert_eq!(samples.p50(), Duration::from_micros(50));
        assert_eq!(samples.p99(), Duration::from_micros(99));
        assert_eq!(samples.percentile(100.0), Duration::from_micros(100));
        assert_eq!(samples.percentile(0.0), Duration::from_micros(1));
        assert_eq!(samples.mean(), Duration::from_nanos(50_500));
    }

    #[test]
    fn durations_are_readable() {
        assert_eq!(fmt_duration(Duration::from_nanos(85_340)), "85.3 µs");
        assert_eq!(fmt_duration(Duration::from_micros(1_270)), "1.27 ms");
        assert_eq!(fmt_duration(Duration::from_nanos(4_200)), "4.20 µs");
        assert_eq!(fmt_round(Duration::from_millis(5)), "5 ms");
        assert_eq!(fmt_round(Duration::from_secs(1)), "1 s");
        assert_eq!(fmt_round(Duration::from_micros(1_500)), "1.50 ms");
    }

    #[test]
    fn tables_align_and_escape() {
        let report = Report {
            target: "x".into(),
            rows: vec![Row {
                id: "1".into(),
                figure: "a|b".into(),
                value: "85.3 µs".into(),
                baseline: "-".into(),
                ratio: "-".into(),
                target: "≤ 1".into(),
                verdict: Verdict::Miss,
            }],
            ..Report::default()
        };
        let text = report.text_table();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0].find("value"), lines[2].find("85.3"));
        assert!(report.markdown_table().contains("a\\|b"));
        assert!(utc_now().ends_with(" UTC"));
    }
}
