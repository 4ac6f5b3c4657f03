//! Go-style duration strings (`30s`, `5m`, `1h30m`, `500ms`, `1.5h`, `7d`).
//!
//! LinaPro's configuration stores every duration as a Go `time.Duration`
//! string. [`parse_duration`] accepts everything Go's `time.ParseDuration`
//! accepts except negative values, plus `d` for days; [`format_duration`]
//! writes a compact form that Go parses back (`1h30m`, `24h`, `500ms`).
//!
//! ```
//! use std::time::Duration;
//! use lina_config::duration::{format_duration, parse_duration};
//!
//! assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
//! assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
//! assert_eq!(format_duration(Duration::from_secs(5400)), "1h30m");
//! assert!(parse_duration("30").is_err());
//! ```

use std::fmt::{self, Write as _};
use std::time::Duration;

/// Why a duration string was refused; its `Display` is the message that
/// ends up in a configuration problem (e.g. `duration 30 needs a unit, e.g. 30s`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// The text is empty.
    #[error("duration is empty; use a value such as 30s")]
    Empty,
    /// A number without a unit, such as `30`.
    #[error("duration {0} needs a unit, e.g. {0}s")]
    MissingUnit(String),
    /// A unit that is not one of ns, us, µs, ms, s, m, h, d.
    #[error("duration {text} has unknown unit {unit:?}; use ns, us, ms, s, m, h or d")]
    UnknownUnit {
        /// The whole duration text.
        text: String,
        /// The unit that was not recognised.
        unit: String,
    },
    /// A negative duration.
    #[error("duration {0} must not be negative")]
    Negative(String),
    /// Anything else that is not a duration.
    #[error("{0:?} is not a duration; use a value such as 30s, 5m or 1h30m")]
    Invalid(String),
    /// More than `u64::MAX` seconds.
    #[error("duration {0} is too large")]
    Overflow(String),
}

const NANOS_PER_SEC: u128 = 1_000_000_000;

fn unit_nanos(unit: &str) -> Option<u128> {
    Some(match unit {
        "ns" => 1,
        "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
        "ms" => 1_000_000,
        "s" => NANOS_PER_SEC,
        "m" => 60 * NANOS_PER_SEC,
        "h" => 3_600 * NANOS_PER_SEC,
        "d" => 86_400 * NANOS_PER_SEC,
        _ => return None,
    })
}

/// Parses a Go-style duration: a sequence of decimal numbers, each with an
/// optional fraction and a unit (`ns`, `us`/`µs`, `ms`, `s`, `m`, `h`, `d`),
/// e.g. `300ms`, `1.5h`, `2h45m`. A lone `0` is accepted (as in Go); any
/// other number without a unit is refused with [`DurationError::MissingUnit`].
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    let s = text.trim();
    if s.is_empty() {
        return Err(DurationError::Empty);
    }
    let (negative, body) = match s.as_bytes()[0] {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    if body == "0" {
        return Ok(Duration::ZERO);
    }
    if body.is_empty() {
        return Err(DurationError::Invalid(s.to_owned()));
    }
    if body.chars().all(|c| c.is_ascii_digit() || c == '.') {
        return Err(DurationError::MissingUnit(s.to_owned()));
    }
    let mut total: u128 = 0;
    let mut rest = body;
    while !rest.is_empty() {
        let int_len = rest.bytes().take_while(u8::is_ascii_digit).count();
        let int_part = &rest[..int_len];
        rest = &rest[int_len..];
        let mut frac_part = "";
        if let Some(after_dot) = rest.strip_prefix('.') {
            let frac_len = after_dot.bytes().take_while(u8::is_ascii_digit).count();
            frac_part = &after_dot[..frac_len];
            rest = &after_dot[frac_len..];
        }
        if int_part.is_empty() && frac_part.is_empty() {
            return Err(DurationError::Invalid(s.to_owned()));
        }
        let unit_len = rest
            .char_indices()
            .find(|(_, c)| c.is_ascii_digit() || *c == '.')
            .map_or(rest.len(), |(i, _)| i);
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        if unit.is_empty() {
            return Err(DurationError::Invalid(s.to_owned()));
        }
        let Some(scale) = unit_nanos(unit) else {
            return Err(DurationError::UnknownUnit {
                text: s.to_owned(),
                unit: unit.to_owned(),
            });
        };
        let overflow = || DurationError::Overflow(s.to_owned());
        let whole: u128 = if int_part.is_empty() {
            0
        } else {
            int_part.parse().map_err(|_| overflow())?
        };
        let mut part = whole.checked_mul(scale).ok_or_else(overflow)?;
        if !frac_part.is_empty() {
            // Keep at most 18 fractional digits: more cannot change a nanosecond count
            // of any unit up to days by more than rounding.
            let digits = &frac_part[..frac_part.len().min(18)];
            let numerator: u128 = digits.parse().map_err(|_| overflow())?;
            let denominator = 10u128.pow(digits.len() as u32);
            part = part
                .checked_add(numerator * scale / denominator)
                .ok_or_else(overflow)?;
        }
        total = total.checked_add(part).ok_or_else(overflow)?;
    }
    if negative && total != 0 {
        return Err(DurationError::Negative(s.to_owned()));
    }
    let secs =
        u64::try_from(total / NANOS_PER_SEC).map_err(|_| DurationError::Overflow(s.to_owned()))?;
    Ok(Duration::new(secs, (total % NANOS_PER_SEC) as u32))
}

/// Formats a duration compactly in a form Go's `time.ParseDuration` reads
/// back: `0s`, `500ms`, `1.5s`, `30s`, `5m`, `1h30m`, `24h`, `1m0.5s`.
pub fn format_duration(d: Duration) -> String {
    let mut out = String::new();
    if d.is_zero() {
        return "0s".to_owned();
    }
    let secs = d.as_secs();
    let nanos = d.subsec_nanos();
    if secs == 0 {
        // Below one second: the largest unit that keeps a whole part.
        let (value, scale, unit) = if nanos >= 1_000_000 {
            (nanos, 1_000_000, "ms")
        } else if nanos >= 1_000 {
            (nanos, 1_000, "us")
        } else {
            (nanos, 1, "ns")
        };
        write_fraction(&mut out, u64::from(value / scale), value % scale, scale);
        out.push_str(unit);
        return out;
    }
    let hours = secs / 3_600;
    let minutes = (secs % 3_600) / 60;
    let seconds = secs % 60;
    if hours > 0 {
        let _ = write!(out, "{hours}h");
    }
    if minutes > 0 {
        let _ = write!(out, "{minutes}m");
    }
    if seconds > 0 || nanos > 0 {
        write_fraction(&mut out, seconds, nanos, 1_000_000_000);
        out.push('s');
    }
    out
}

fn write_fraction(out: &mut String, whole: u64, frac: u32, scale: u32) {
    let _ = write!(out, "{whole}");
    if frac > 0 {
        let width = scale.ilog10() as usize;
        let digits = format!("{frac:0width$}");
        let _ = write!(out, ".{}", digits.trim_end_matches('0'));
    }
}

/// A [`Duration`] that displays in Go form (`1h30m`); handy in messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct GoDuration(pub Duration);

impl fmt::Display for GoDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&format_duration(self.0))
    }
}

/// `#[serde(with = "lina_config::duration::serde")]` for `Duration` fields:
/// serializes with [`format_duration`] and deserializes with
/// [`parse_duration`]. A bare number is refused (`duration 30 needs a unit,
/// e.g. 30s`), except `0`.
///
/// ```
/// use std::time::Duration;
///
/// #[derive(serde::Deserialize, serde::Serialize)]
/// struct Probe {
///     #[serde(with = "lina_config::duration::serde")]
///     timeout: Duration,
/// }
///
/// let probe: Probe = serde_json::from_str(r#"{"timeout": "1m30s"}"#).unwrap();
/// assert_eq!(probe.timeout, Duration::from_secs(90));
/// assert_eq!(serde_json::to_string(&probe).unwrap(), r#"{"timeout":"1m30s"}"#);
/// ```
pub mod serde {
    use std::fmt;
    use std::time::Duration;

    use serde::de::{self, Visitor};
    use serde::{Deserializer, Serializer};

    use super::{DurationError, format_duration, parse_duration};

    /// Serializes a duration as a Go-style string.
    pub fn serialize<S: Serializer>(value: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&format_duration(*value))
    }

    /// Deserializes a Go-style duration string.
    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        deserializer.deserialize_any(DurationVisitor)
    }

    struct DurationVisitor;

    impl Visitor<'_> for DurationVisitor {
        type Value = Duration;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a duration such as 30s, 5m or 1h30m")
        }

        fn visit_str<E: de::Error>(self, v: &str) -> Result<Duration, E> {
            parse_duration(v).map_err(E::custom)
        }

        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Duration, E> {
            if v == 0 {
                Ok(Duration::ZERO)
            } else {
                Err(E::custom(DurationError::MissingUnit(v.to_string())))
            }
        }

        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Duration, E> {
            match u64::try_from(v) {
                Ok(v) => self.visit_u64(v),
                Err(_) => Err(E::custom(DurationError::Negative(v.to_string()))),
            }
        }

        fn visit_f64<E: de::Error>(self, v: f64) -> Result<Duration, E> {
            Err(E::custom(DurationError::MissingUnit(v.to_string())))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_round_trip() {
        for text in [
            "0s", "1ns", "1.5us", "500ms", "1.5s", "30s", "5m", "1h30m", "24h", "1m0.5s", "2h0m1s",
        ] {
            let d = parse_duration(text).unwrap();
            let back = format_duration(d);
            assert_eq!(parse_duration(&back).unwrap(), d, "{text} -> {back}");
        }
        assert_eq!(format_duration(Duration::from_secs(7_200 + 1)), "2h1s");
        assert_eq!(format_duration(Duration::from_micros(1_500)), "1.5ms");
    }
}
