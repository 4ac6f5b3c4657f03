use lina_config::load_from;

use super::env;

#[test]
fn unknown_file_keys_are_warned_with_their_full_paths() {
    let loaded = super::load(
        r#"
cluster:
  electon:
    lease: 30s
    renewInterval: 10s
  redis:
    adress: "x:1"
i18n:
  locales:
    - locale: en-US
      nativName: English
database:
  default:
    link: "sqlite://./x.db"
    maxIdle: 10
frobnicate: true
"#,
    );
    let mut paths = super::paths(&loaded.warnings);
    paths.sort_unstable();
    assert_eq!(
        paths,
        [
            "cluster.electon.lease",
            "cluster.electon.renewInterval",
            "cluster.redis.adress",
            "database.default.maxIdle",
            "frobnicate",
            // en-US alone is left, so zh-CN is no longer one of the locales.
            "i18n.default",
            "i18n.locales[0].nativName",
            "jwt.secret",
        ]
    );
    let w = loaded
        .warnings
        .iter()
        .find(|w| w.path == "cluster.electon.lease")
        .unwrap();
    assert_eq!(
        w.to_string(),
        "cluster.electon.lease: unknown key in config file, ignored"
    );
    // Not fatal, and the known siblings still apply.
    assert_eq!(loaded.config.cluster.redis.address, "127.0.0.1:6379");
}

#[test]
fn unknown_environment_keys_are_warned() {
    let loaded = load_from(
        None,
        env(&[
            ("LINA_CLUSTER__ELECTON__LEASE", "30s"),
            ("LINA_CLUSTER_ENABLED", "true"),
            ("LINA_JWT__SECRET", "0123456789abcdef0123"),
            // Not configuration: never reported.
            ("LINA_CONFIG", "/etc/lina/config.yaml"),
            ("LINA_TEST_DATABASE_URL", "postgres://x"),
            ("OTHER_VAR", "1"),
        ]),
    )
    .unwrap();
    assert_eq!(
        super::paths(&loaded.warnings),
        ["cluster_enabled", "cluster.electon.lease"]
    );
    assert_eq!(
        loaded.warnings[1].message,
        "unknown key from environment variable LINA_CLUSTER__ELECTON__LEASE, ignored"
    );
    assert!(!loaded.config.cluster.enabled);
}

#[test]
fn unknown_keys_inside_a_yaml_env_value_are_warned() {
    let loaded = load_from(
        None,
        env(&[
            ("LINA_CLUSTER__REDIS__TLS", "{enabled: true, caFil: /x}"),
            ("LINA_JWT__SECRET", "0123456789abcdef0123"),
        ]),
    )
    .unwrap();
    assert_eq!(super::paths(&loaded.warnings), ["cluster.redis.tls.caFil"]);
    assert!(loaded.config.cluster.redis.tls.enabled);
}
