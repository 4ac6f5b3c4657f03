use std::net::SocketAddr;
use std::time::Duration;

use lina_config::{Config, DatabaseLink, LogFormat, load_from};

#[test]
fn defaults_load_without_file_or_environment() {
    let loaded = load_from(None, Vec::new()).unwrap();
    let c = &loaded.config;
    assert_eq!(c, &Config::default());
    assert_eq!(c.server.address.as_str(), ":9120");
    assert_eq!(
        c.server.bind_addr(),
        "0.0.0.0:9120".parse::<SocketAddr>().unwrap()
    );
    assert_eq!(
        c.database.default.link,
        DatabaseLink::Sqlite {
            path: "./data/lina.db".into(),
            params: vec![]
        }
    );
    assert_eq!(
        c.database.default.link.connection_url().expose(),
        "sqlite://./data/lina.db?mode=rwc"
    );
    assert_eq!(c.scheduler.default_timezone, "UTC");
    assert_eq!(c.scheduler.misfire_threshold, Duration::from_secs(60));
    assert!(!c.cluster.enabled);
    assert_eq!(c.cluster.coordination, "redis");
    assert_eq!(c.cluster.node_id(), None);
    assert_eq!(c.cluster.election.lease, Duration::from_secs(30));
    assert_eq!(c.cluster.election.renew_interval, Duration::from_secs(10));
    assert_eq!(c.cluster.redis.namespace, "lina");
    assert_eq!(c.cluster.redis.connect_timeout, Duration::from_secs(3));
    assert_eq!(c.cache.revision_poll, Duration::from_secs(1));
    assert_eq!(c.cache.max_stale, Duration::from_secs(10));
    assert_eq!(c.logger.format, LogFormat::Text);
    assert_eq!(c.jwt.expire, Duration::from_secs(86_400));
    assert_eq!(c.session.cleanup_interval, Duration::from_secs(300));
    assert_eq!(c.i18n.default_locale, "zh-CN");
    assert!(c.jwt.is_default_secret());
    // The only warning of the defaults: the shipped JWT secret.
    assert_eq!(super::paths(&loaded.warnings), ["jwt.secret"]);
    assert_eq!(loaded.file, None);
}

#[test]
fn effective_yaml_of_defaults_loads_back_to_the_same_config() {
    let mut config = Config::default();
    config.jwt.secret = "a-long-enough-random-secret".into();
    let yaml = config.effective_yaml();
    for key in [
        "renewInterval: 10s",
        "address: :9120",
        "cleanupInterval: 5m",
        "expire: 24h",
        "traceIDEnabled: false",
    ] {
        assert!(yaml.contains(key), "{key} missing from\n{yaml}");
    }
    let back = super::load(&yaml);
    // Secrets do not survive a rendering (`***` is then a short secret);
    // everything else does.
    assert_eq!(super::paths(&back.warnings), ["jwt.secret"]);
    let mut expected = config.clone();
    expected.jwt.secret = "***".into();
    assert_eq!(back.config, expected);
}

#[test]
fn logger_helpers() {
    let c = super::load("logger:\n  format: JSON\n  level: warning\n").config;
    assert_eq!(c.logger.format, LogFormat::Json);
    assert_eq!(c.logger.tracing_level(), Some("warn"));
    let c = super::load("logger:\n  extensions:\n    structured: true\n").config;
    assert_eq!(c.logger.effective_format(), LogFormat::Json);
    assert_eq!(Config::default().logger.tracing_level(), Some("trace"));
}
