use lina_config::{ConfigError, load_from};

use super::env;

const GOOD_SECRET: &str = "0123456789abcdef-not-default";

#[test]
fn cluster_with_bad_lease_sqlite_and_default_secret_reports_all_three() {
    let err = load_from(
        Some(
            r#"
cluster:
  enabled: true
  election:
    lease: 30s
    renewInterval: 40s
database:
  default:
    link: "sqlite::@file(./temp/sqlite/linapro.db)"
"#,
        ),
        Vec::new(),
    )
    .unwrap_err();
    let problems = err.problems();
    assert_eq!(problems.len(), 3, "{err}");
    let mut paths = super::paths(problems);
    paths.sort_unstable();
    assert_eq!(
        paths,
        [
            "cluster.election.renewInterval",
            "database.default.link",
            "jwt.secret"
        ]
    );
    let text = err.to_string();
    assert!(
        text.contains(
            "cluster.election.renewInterval: 40s must be below cluster.election.lease 30s"
        ),
        "{text}"
    );
    assert!(
        text.contains("database.default.link: sqlite supports single-node mode only"),
        "{text}"
    );
    assert!(
        text.contains("jwt.secret: the default secret is refused in cluster mode"),
        "{text}"
    );
    // One problem per line after the heading.
    assert_eq!(text.lines().count(), 4, "{text}");
    assert!(text.starts_with("invalid configuration, 3 problems:"));
}

#[test]
fn a_valid_cluster_config_loads() {
    let loaded = load_from(
        Some(
            r#"
cluster:
  enabled: true
  coordination: redis
  nodeId: node-1
  redis:
    address: "redis:6379"
    password: "pw"
database:
  default:
    link: "pgsql:lina:pw@tcp(pg:5432)/lina?sslmode=disable"
"#,
        ),
        env(&[("LINA_JWT__SECRET", GOOD_SECRET)]),
    )
    .unwrap();
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    assert_eq!(loaded.config.cluster.node_id(), Some("node-1"));
}

#[test]
fn cluster_mode_needs_redis_coordination_address_and_a_real_secret() {
    let problems = super::problems(
        r#"
cluster:
  enabled: true
  coordination: etcd
  redis:
    address: ""
    namespace: ""
jwt:
  secret: "short"
database:
  default:
    link: "postgres://u:p@h/db"
"#,
    );
    let mut paths = super::paths(&problems);
    paths.sort_unstable();
    assert_eq!(
        paths,
        [
            "cluster.coordination",
            "cluster.redis.address",
            "cluster.redis.namespace",
            "jwt.secret"
        ],
        "{problems:?}"
    );
    let text: Vec<String> = problems.iter().map(ToString::to_string).collect();
    assert!(
        text.contains(
            &"cluster.coordination: \"etcd\" is not supported; cluster mode needs redis"
                .to_string()
        ),
        "{text:?}"
    );
    assert!(
        text.contains(
            &"jwt.secret: a secret of 5 characters is too short; use at least 16".to_string()
        ),
        "{text:?}"
    );
}

#[test]
fn sentinel_replaces_the_address_in_cluster_mode() {
    let yaml = r#"
cluster:
  enabled: true
  redis:
    address: ""
    sentinel:
      serviceName: mymaster
      addresses: ["s1:26379", "s2:26379"]
      password: "sentinel-pw"
database:
  default:
    link: "postgres://u:p@h/db"
"#;
    let loaded = load_from(Some(yaml), env(&[("LINA_JWT__SECRET", GOOD_SECRET)])).unwrap();
    let sentinel = loaded.config.cluster.redis.sentinel.as_ref().unwrap();
    assert_eq!(sentinel.service_name, "mymaster");
    assert_eq!(sentinel.password.expose(), "sentinel-pw");

    let problems = super::problems(
        "cluster:\n  enabled: true\n  redis:\n    sentinel:\n      addresses: [nope]\njwt:\n  secret: 0123456789abcdef0\ndatabase:\n  default:\n    link: postgres://h/db\n",
    );
    let mut paths = super::paths(&problems);
    paths.sort_unstable();
    assert_eq!(
        paths,
        [
            "cluster.redis.sentinel.addresses[0]",
            "cluster.redis.sentinel.serviceName"
        ]
    );
}

#[test]
fn empty_secret_is_refused_and_default_secret_warns_in_single_node_mode() {
    let problems = super::problems("jwt:\n  secret: \"\"\n");
    assert_eq!(problems[0].to_string(), "jwt.secret: must not be empty");
    let loaded = super::load("{}");
    assert_eq!(super::paths(&loaded.warnings), ["jwt.secret"]);
    assert!(loaded.warnings[0].message.contains("default secret"));
}

#[test]
fn renew_interval_far_from_a_third_of_lease_is_a_warning() {
    let loaded = super::load("cluster:\n  election:\n    lease: 30s\n    renewInterval: 2s\n");
    let w = loaded
        .warnings
        .iter()
        .find(|w| w.path == "cluster.election.renewInterval")
        .expect("a warning");
    assert_eq!(
        w.message,
        "2s is not about a third of cluster.election.lease 30s; 10s is recommended"
    );
    // Within 25 % of lease/3: no warning.
    let loaded = super::load("cluster:\n  election:\n    lease: 30s\n    renewInterval: 12s\n");
    assert!(
        !loaded
            .warnings
            .iter()
            .any(|w| w.path == "cluster.election.renewInterval")
    );
}

#[test]
fn zero_durations_are_problems() {
    let problems = super::problems("cluster:\n  election:\n    lease: 0s\n    renewInterval: 0\n");
    assert_eq!(
        super::paths(&problems),
        ["cluster.election.lease", "cluster.election.renewInterval"]
    );
    assert_eq!(problems[0].message, "0s must be greater than 0s");
}

#[test]
fn server_addresses() {
    for (text, bind) in [
        (":9120", "0.0.0.0:9120"),
        ("0.0.0.0:9120", "0.0.0.0:9120"),
        ("127.0.0.1:9120", "127.0.0.1:9120"),
        ("[::]:9120", "[::]:9120"),
        ("localhost:9120", "127.0.0.1:9120"),
    ] {
        let c = super::load(&format!("server:\n  address: \"{text}\"\n")).config;
        assert_eq!(c.server.bind_addr().to_string(), bind, "{text}");
    }
    for bad in ["9120", "example.com:9120", ":99999", "", "[::]"] {
        let problems = super::problems(&format!("server:\n  address: \"{bad}\"\n"));
        assert_eq!(super::paths(&problems), ["server.address"], "{bad}");
        assert!(
            problems[0].message.contains("is not a listen address"),
            "{bad}"
        );
    }
}

#[test]
fn logger_format_must_be_text_or_json() {
    let problems = super::problems("logger:\n  format: xml\n");
    assert_eq!(
        problems[0].to_string(),
        "logger.format: \"xml\" is not a log format; use text or json"
    );
}

#[test]
fn every_type_problem_is_reported_at_once() {
    let err = load_from(
        Some(
            r#"
server:
  address: "nowhere"
logger:
  format: yaml
cluster:
  enabled: maybe
  redis:
    db: "two"
i18n:
  locales:
    - locale: en-US
    - nativeName: Nameless
    - 42
plugin:
  autoEnable:
    - "bare-string-entry"
    - id: good
"#,
        ),
        Vec::new(),
    )
    .unwrap_err();
    let ConfigError::Invalid { problems, .. } = &err else {
        panic!("{err}")
    };
    let mut paths = super::paths(problems);
    paths.sort_unstable();
    assert_eq!(
        paths,
        [
            "cluster.enabled",
            "cluster.redis.db",
            "i18n.locales[1]",
            "i18n.locales[2]",
            "logger.format",
            "plugin.autoEnable[0]",
            "server.address",
        ],
        "{err}"
    );
}

#[test]
fn workspace_node_id_and_cache_rules() {
    let problems = super::problems(
        "workspace:\n  basePath: /api/admin\ncluster:\n  nodeId: \"a b\"\ncache:\n  revisionPoll: 2s\n  maxStale: 1s\n",
    );
    let text: Vec<String> = problems.iter().map(ToString::to_string).collect();
    assert_eq!(
        text,
        [
            "cache.maxStale: 1s must not be below cache.revisionPoll 2s",
            "workspace.basePath: /api/admin is inside /api, which the core service reserves",
            "cluster.nodeId: \"a b\" must not contain whitespace or control characters",
        ]
    );
}

#[test]
fn cluster_nodes_select_redis_cluster_and_are_checked() {
    let yaml = r#"
cluster:
  enabled: true
  redis:
    address: ""
    clusterNodes: ["r1:7000", "r2:7001"]
database:
  default:
    link: "postgres://u:p@h/db"
"#;
    let loaded = load_from(Some(yaml), env(&[("LINA_JWT__SECRET", GOOD_SECRET)])).unwrap();
    assert_eq!(
        loaded.config.cluster.redis.cluster_nodes,
        ["r1:7000", "r2:7001"]
    );

    let problems = super::problems(
        "cluster:\n  enabled: true\n  redis:\n    namespace: \"{x}\"\n    clusterNodes: [nope]\n    sentinel:\n      serviceName: m\n      addresses: [\"s:1\"]\njwt:\n  secret: 0123456789abcdef0\ndatabase:\n  default:\n    link: postgres://h/db\n",
    );
    let mut paths = super::paths(&problems);
    paths.sort_unstable();
    assert_eq!(
        paths,
        [
            "cluster.redis.clusterNodes",
            "cluster.redis.clusterNodes[0]",
            "cluster.redis.namespace"
        ]
    );
}
