use std::time::Duration;

use lina_config::duration::{DurationError, format_duration, parse_duration};

#[test]
fn parses_go_durations() {
    for (text, expected) in [
        ("0", Duration::ZERO),
        ("0s", Duration::ZERO),
        ("1ns", Duration::from_nanos(1)),
        ("5us", Duration::from_micros(5)),
        ("5µs", Duration::from_micros(5)),
        ("500ms", Duration::from_millis(500)),
        ("30s", Duration::from_secs(30)),
        ("5m", Duration::from_secs(300)),
        ("24h", Duration::from_secs(86_400)),
        ("1h30m", Duration::from_secs(5_400)),
        ("1.5h", Duration::from_secs(5_400)),
        (
            "2h45m30.5s",
            Duration::from_millis((2 * 3600 + 45 * 60 + 30) * 1000 + 500),
        ),
        (".5s", Duration::from_millis(500)),
        ("7d", Duration::from_secs(7 * 86_400)),
        ("+10s", Duration::from_secs(10)),
        (" 10s ", Duration::from_secs(10)),
    ] {
        assert_eq!(parse_duration(text), Ok(expected), "{text}");
    }
}

#[test]
fn refuses_bad_durations() {
    assert_eq!(
        parse_duration("30").unwrap_err().to_string(),
        "duration 30 needs a unit, e.g. 30s"
    );
    assert!(matches!(
        parse_duration("1.5"),
        Err(DurationError::MissingUnit(_))
    ));
    assert!(matches!(parse_duration(""), Err(DurationError::Empty)));
    assert!(matches!(
        parse_duration("-5s"),
        Err(DurationError::Negative(_))
    ));
    assert!(matches!(
        parse_duration("10y"),
        Err(DurationError::UnknownUnit { .. })
    ));
    assert!(matches!(
        parse_duration("1h30"),
        Err(DurationError::Invalid(_))
    ));
    assert!(matches!(
        parse_duration("s"),
        Err(DurationError::Invalid(_))
    ));
    assert!(matches!(
        parse_duration("1..5s"),
        Err(DurationError::Invalid(_))
    ));
    assert!(matches!(
        parse_duration("99999999999999999999h"),
        Err(DurationError::Overflow(_))
    ));
}

#[test]
fn formats_compactly_and_round_trips() {
    for (d, text) in [
        (Duration::ZERO, "0s"),
        (Duration::from_millis(500), "500ms"),
        (Duration::from_millis(1500), "1.5s"),
        (Duration::from_secs(30), "30s"),
        (Duration::from_secs(300), "5m"),
        (Duration::from_secs(5_400), "1h30m"),
        (Duration::from_secs(86_400), "24h"),
        (Duration::from_micros(250), "250us"),
        (Duration::from_nanos(1), "1ns"),
        (Duration::from_millis(60_500), "1m0.5s"),
    ] {
        assert_eq!(format_duration(d), text);
        assert_eq!(parse_duration(text), Ok(d));
    }
}

#[test]
fn bare_numbers_in_config_are_problems() {
    let problems = super::problems("cluster:\n  election:\n    lease: 30\n");
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(
        problems[0].to_string(),
        "cluster.election.lease: duration 30 needs a unit, e.g. 30s"
    );
    let problems =
        super::problems("cluster:\n  election:\n    lease: \"30\"\nsession:\n  timeout: 1.5\n");
    let mut paths = super::paths(&problems);
    paths.sort_unstable();
    assert_eq!(
        paths,
        ["cluster.election.lease", "session.timeout"],
        "{problems:?}"
    );
}
