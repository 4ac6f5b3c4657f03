use std::time::Duration;

use lina_config::{DatabaseLink, load_from};

use super::env;

const FILE: &str = r#"
server:
  address: "127.0.0.1:8080"
cluster:
  election:
    lease: 60s
    renewInterval: 20s
  redis:
    address: "redis.internal:6379"
    db: 2
upload:
  maxSize: 20
"#;

#[test]
fn yaml_overrides_defaults_and_keeps_the_rest() {
    let c = super::load(FILE).config;
    assert_eq!(c.server.bind_addr().to_string(), "127.0.0.1:8080");
    assert_eq!(c.cluster.election.lease, Duration::from_secs(60));
    assert_eq!(c.cluster.election.renew_interval, Duration::from_secs(20));
    assert_eq!(c.cluster.redis.address, "redis.internal:6379");
    assert_eq!(c.cluster.redis.db, 2);
    assert_eq!(c.upload.max_size_bytes(), 20 * 1024 * 1024);
    // Untouched siblings keep their defaults.
    assert_eq!(c.cluster.redis.namespace, "lina");
    assert_eq!(c.cluster.redis.read_timeout, Duration::from_secs(2));
    assert_eq!(c.session.timeout, Duration::from_secs(86_400));
}

#[test]
fn environment_overrides_yaml() {
    let loaded = load_from(
        Some(FILE),
        env(&[
            ("LINA_CLUSTER__ELECTION__LEASE", "90s"),
            ("LINA_CLUSTER__ELECTION__RENEW_INTERVAL", "30s"),
            ("LINA_CLUSTER__REDIS__DB", "5"),
            ("LINA_SERVER__ADDRESS", "[::]:9000"),
            ("LINA_CLUSTER__REDIS__CONNECTTIMEOUT", "500ms"),
            ("LINA_LOGGER__EXTENSIONS__TRACE_ID_ENABLED", "true"),
            (
                "LINA_DATABASE__DEFAULT__LINK",
                "postgres://app:secret@db:5432/lina",
            ),
            ("PATH", "/usr/bin"),
        ]),
    )
    .unwrap();
    let c = &loaded.config;
    assert_eq!(c.cluster.election.lease, Duration::from_secs(90));
    assert_eq!(c.cluster.election.renew_interval, Duration::from_secs(30));
    assert_eq!(c.cluster.redis.db, 5);
    assert_eq!(c.cluster.redis.address, "redis.internal:6379");
    assert_eq!(c.cluster.redis.connect_timeout, Duration::from_millis(500));
    assert_eq!(c.server.bind_addr().to_string(), "[::]:9000");
    assert!(c.logger.extensions.trace_id_enabled);
    assert!(c.database.default.link.is_postgres());
    assert_eq!(super::paths(&loaded.warnings), ["jwt.secret"]);
}

#[test]
fn env_segments_match_camel_case_keys_either_way() {
    for name in [
        "LINA_CLUSTER__ELECTION__RENEW_INTERVAL",
        "LINA_CLUSTER__ELECTION__RENEWINTERVAL",
        "lina_cluster__election__renewInterval",
    ] {
        let c = load_from(None, env(&[(name, "7s")])).unwrap().config;
        assert_eq!(
            c.cluster.election.renew_interval,
            Duration::from_secs(7),
            "{name}"
        );
    }
}

#[test]
fn node_id_and_cluster_switch_from_environment() {
    let loaded = load_from(
        None,
        env(&[
            ("LINA_NODE_ID", "node-a"),
            ("LINA_CLUSTER__ENABLED", "true"),
            ("LINA_JWT__SECRET", "0123456789abcdef-0123"),
            ("LINA_DATABASE__DEFAULT__LINK", "pgsql:u:p@tcp(db)/lina"),
        ]),
    )
    .unwrap();
    let c = &loaded.config;
    assert_eq!(c.cluster.node_id(), Some("node-a"));
    assert!(c.cluster.enabled);
    assert_eq!(c.jwt.secret.expose(), "0123456789abcdef-0123");
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
}

#[test]
fn env_values_keep_their_type() {
    let c = load_from(
        None,
        env(&[
            // Numeric-looking strings stay strings.
            ("LINA_CLUSTER__REDIS__PASSWORD", "123456"),
            ("LINA_CLUSTER__NODE_ID", "42"),
            ("LINA_CLUSTER__REDIS__TLS", "true"),
            (
                "LINA_CLUSTER__REDIS__SENTINEL__ADDRESSES",
                "s1:26379, s2:26379",
            ),
            ("LINA_CLUSTER__REDIS__SENTINEL__SERVICE_NAME", "mymaster"),
            (
                "LINA_I18N__LOCALES",
                "[{locale: en-US, nativeName: English}]",
            ),
            ("LINA_I18N__DEFAULT", "en-US"),
        ]),
    )
    .unwrap()
    .config;
    assert_eq!(c.cluster.redis.password.expose(), "123456");
    assert_eq!(c.cluster.node_id(), Some("42"));
    assert!(c.cluster.redis.tls.enabled);
    let sentinel = c.cluster.redis.sentinel.unwrap();
    assert_eq!(sentinel.addresses, ["s1:26379", "s2:26379"]);
    assert_eq!(sentinel.service_name, "mymaster");
    assert_eq!(c.i18n.locales.len(), 1);
    assert_eq!(c.i18n.locales[0].native_name, "English");
}

#[test]
fn file_keys_match_loosely_too() {
    let c = super::load("cluster:\n  election:\n    renew_interval: 9s\n").config;
    assert_eq!(c.cluster.election.renew_interval, Duration::from_secs(9));
}

#[test]
fn nulls_mean_default_and_tls_takes_a_map() {
    let c = super::load(
        "server:\n  address: ~\ncluster:\n  redis:\n    tls:\n      enabled: true\n      caFile: /etc/ca.pem\n",
    )
    .config;
    assert_eq!(c.server.address.as_str(), ":9120");
    assert!(c.cluster.redis.tls.enabled);
    assert_eq!(c.cluster.redis.tls.ca_file.as_deref(), Some("/etc/ca.pem"));
    assert_eq!(c.database.default.link, DatabaseLink::default());
}
