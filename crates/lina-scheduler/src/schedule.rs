//! Fire times: cron expressions with 5 fields (minute precision) or 6
//! (leading seconds), with Unix day-of-week meaning (0 and 7 are Sunday,
//! 1 is Monday), and `@every <duration>`; both evaluated in a time zone.
//!
//! `@every` intervals are aligned to the Unix epoch, so every node computes
//! the same fire instants — which is what lets the database claim make one
//! run per fire.

use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use chrono_tz::Tz;
use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};

use crate::error::{Error, Result};

/// A parsed schedule.
#[derive(Debug, Clone)]
pub enum Schedule {
    /// A cron expression.
    Cron(Box<Cron>),
    /// A fixed interval, aligned to the Unix epoch.
    Every(Duration),
}

/// Parses a time zone name such as `Europe/Berlin` or `UTC`.
pub fn parse_timezone(name: &str) -> Result<Tz> {
    Tz::from_str(name).map_err(|_| {
        Error::invalid(
            "timezone",
            format!("{name:?} is not a time zone name such as UTC or Europe/Berlin"),
        )
    })
}

fn parse_every(text: &str) -> Result<Duration> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).ok_or_else(|| {
        Error::invalid(
            "cronExpr",
            format!("@every {text} needs a unit, e.g. @every 30s"),
        )
    })?;
    let (number, unit) = text.split_at(split);
    let n: u64 = number
        .parse()
        .map_err(|_| Error::invalid("cronExpr", format!("@every {text} is not a duration")))?;
    let d = match unit {
        "ms" => Duration::from_millis(n),
        "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n * 60),
        "h" => Duration::from_secs(n * 3600),
        _ => {
            return Err(Error::invalid(
                "cronExpr",
                format!("@every {text}: unit must be ms, s, m or h"),
            ));
        }
    };
    if d < Duration::from_millis(100) {
        return Err(Error::invalid(
            "cronExpr",
            format!("@every {text} is shorter than the 100ms minimum"),
        ));
    }
    Ok(d)
}

impl Schedule {
    /// Parses `expr`: 5 or 6 cron fields, or `@every 30s` (units ms, s, m, h).
    pub fn parse(expr: &str) -> Result<Schedule> {
        let expr = expr.trim();
        if let Some(rest) = expr.strip_prefix("@every") {
            return Ok(Schedule::Every(parse_every(rest)?));
        }
        let fields = expr.split_whitespace().count();
        if fields != 5 && fields != 6 {
            return Err(Error::invalid(
                "cronExpr",
                format!(
                    "{expr:?} has {fields} fields; use 5 (minute hour day month weekday), 6 (with leading seconds) or @every <duration>"
                ),
            ));
        }
        let parser = CronParser::builder()
            .seconds(Seconds::Optional)
            .year(Year::Disallowed)
            .build();
        let cron = parser.parse(expr).map_err(|e| {
            Error::invalid(
                "cronExpr",
                format!("{expr:?} is not a valid cron expression: {e}"),
            )
        })?;
        Ok(Schedule::Cron(Box::new(cron)))
    }

    /// The first fire instant strictly after `after`, evaluated in `tz`.
    pub fn next_after(&self, after: DateTime<Utc>, tz: Tz) -> Option<DateTime<Utc>> {
        match self {
            Schedule::Every(every) => {
                let step = every.as_millis() as i64;
                let after_ms = after.timestamp_millis();
                let next = (after_ms.div_euclid(step) + 1) * step;
                Utc.timestamp_millis_opt(next).single()
            }
            Schedule::Cron(cron) => cron
                .find_next_occurrence(&after.with_timezone(&tz), false)
                .ok()
                .map(|t| t.with_timezone(&Utc)),
        }
    }

    /// Fire instants in `(from, to]`, at most `limit`.
    pub fn fires_between(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        tz: Tz,
        limit: usize,
    ) -> Vec<DateTime<Utc>> {
        let mut out = Vec::new();
        let mut at = from;
        while out.len() < limit {
            match self.next_after(at, tz) {
                Some(next) if next <= to => {
                    out.push(next);
                    at = next;
                }
                _ => break,
            }
        }
        out
    }

    /// The next `n` fire instants after `after` (cron preview).
    pub fn preview(&self, after: DateTime<Utc>, tz: Tz, n: usize) -> Vec<DateTime<Utc>> {
        let mut out = Vec::with_capacity(n);
        let mut at = after;
        while out.len() < n {
            match self.next_after(at, tz) {
                Some(next) => {
                    out.push(next);
                    at = next;
                }
                None => break,
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use chrono::{Datelike, Timelike, Weekday};

    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn day_of_week_has_unix_meaning() {
        let start = utc("2026-12-01T12:00:00Z"); // a Tuesday
        for expr in ["0 0 * * 0", "0 0 * * 7", "0 0 0 * * 0", "0 0 * * SUN"] {
            let next = Schedule::parse(expr)
                .unwrap()
                .next_after(start, Tz::UTC)
                .unwrap();
            assert_eq!(next.weekday(), Weekday::Sun, "{expr} fired on {next}");
            assert_eq!(next, utc("2026-12-06T00:00:00Z"), "{expr}");
        }
        let monday = Schedule::parse("0 0 * * 1")
            .unwrap()
            .next_after(start, Tz::UTC)
            .unwrap();
        assert_eq!(monday.weekday(), Weekday::Mon);
    }

    #[test]
    fn five_and_six_fields() {
        let start = utc("2026-12-01T12:00:00Z");
        let five = Schedule::parse("*/5 * * * *").unwrap();
        assert_eq!(
            five.next_after(start, Tz::UTC).unwrap(),
            utc("2026-12-01T12:05:00Z")
        );
        let six = Schedule::parse("*/10 * * * * *").unwrap();
        assert_eq!(
            six.next_after(start, Tz::UTC).unwrap(),
            utc("2026-12-01T12:00:10Z")
        );
        assert!(Schedule::parse("* * * *").is_err());
        assert!(Schedule::parse("0 0 0 * * * 2026").is_err());
        assert!(Schedule::parse("61 * * * *").is_err());
    }

    #[test]
    fn monday_nine_berlin_across_dst() {
        let schedule = Schedule::parse("0 9 * * 1").unwrap();
        let berlin: Tz = "Europe/Berlin".parse().unwrap();
        // Winter (CET, UTC+1): 09:00 local is 08:00 UTC.
        let winter = schedule
            .next_after(utc("2026-03-17T00:00:00Z"), berlin)
            .unwrap();
        assert_eq!(winter, utc("2026-03-23T08:00:00Z"));
        // DST starts 2026-03-29; the next Monday is CEST (UTC+2): 07:00 UTC.
        let summer = schedule.next_after(winter, berlin).unwrap();
        assert_eq!(summer, utc("2026-03-30T07:00:00Z"));
        assert_eq!(summer.with_timezone(&berlin).hour(), 9);
        // And back in October (DST ends 2026-10-25).
        let autumn = schedule
            .next_after(utc("2026-10-24T00:00:00Z"), berlin)
            .unwrap();
        assert_eq!(autumn, utc("2026-10-26T08:00:00Z"));
    }

    #[test]
    fn every_is_aligned_to_the_epoch() {
        let every = Schedule::parse("@every 5s").unwrap();
        let next = every
            .next_after(utc("2026-12-01T12:00:03.250Z"), Tz::UTC)
            .unwrap();
        assert_eq!(next, utc("2026-12-01T12:00:05Z"));
        assert_eq!(
            every.next_after(next, Tz::UTC).unwrap(),
            utc("2026-12-01T12:00:10Z")
        );
        assert!(Schedule::parse("@every 5").is_err());
        assert!(Schedule::parse("@every 5d").is_err());
        assert!(Schedule::parse("@every 10ms").is_err());
        let fires = every.fires_between(
            utc("2026-12-01T12:00:00Z"),
            utc("2026-12-01T12:00:20Z"),
            Tz::UTC,
            100,
        );
        assert_eq!(fires.len(), 4);
    }

    #[test]
    fn preview_lists_the_next_fires_in_the_zone() {
        let berlin: Tz = "Europe/Berlin".parse().unwrap();
        let schedule = Schedule::parse("0 9 * * 1").unwrap();
        let fires = schedule.preview(utc("2026-03-17T00:00:00Z"), berlin, 3);
        assert_eq!(
            fires,
            vec![
                utc("2026-03-23T08:00:00Z"),
                utc("2026-03-30T07:00:00Z"),
                utc("2026-04-06T07:00:00Z"),
            ]
        );
        for at in &fires {
            let local = at.with_timezone(&berlin);
            assert_eq!(
                (local.weekday(), local.hour(), local.minute()),
                (Weekday::Mon, 9, 0)
            );
        }
        let every = Schedule::parse("@every 90s").unwrap();
        assert_eq!(
            every.preview(utc("2026-12-01T12:00:00Z"), Tz::UTC, 2),
            vec![utc("2026-12-01T12:01:30Z"), utc("2026-12-01T12:03:00Z")]
        );
        assert!(
            schedule
                .preview(utc("2026-03-17T00:00:00Z"), berlin, 0)
                .is_empty()
        );
    }

    #[test]
    fn an_expression_that_never_fires_previews_nothing_promptly() {
        let started = std::time::Instant::now();
        let fires = Schedule::parse("0 0 30 2 *")
            .map(|s| s.preview(utc("2026-01-01T00:00:00Z"), Tz::UTC, 5))
            .unwrap_or_default();
        assert!(fires.is_empty(), "February 30th fired: {fires:?}");
        assert!(
            started.elapsed() < std::time::Duration::from_secs(2),
            "took {:?}",
            started.elapsed()
        );
    }

    #[test]
    fn timezones_are_checked() {
        assert!(parse_timezone("Europe/Berlin").is_ok());
        assert!(parse_timezone("Mars/Olympus").is_err());
    }
}
