use std::path::Path;
use std::time::Duration;

use lina_config::{DatabaseLink, load_file};

fn fixture() -> &'static Path {
    Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/linapro-template.yaml"
    ))
}

#[test]
fn linapro_template_loads_without_errors_or_unknown_keys() {
    let loaded = load_file(fixture(), Vec::new()).unwrap();
    // Only the shipped JWT secret is worth a warning; no key is unknown.
    assert_eq!(
        super::paths(&loaded.warnings),
        ["jwt.secret"],
        "{:?}",
        loaded.warnings
    );
    assert_eq!(loaded.file.as_deref(), Some(fixture()));
    let c = &loaded.config;
    assert_eq!(c.server.bind_addr().to_string(), "0.0.0.0:8080");
    assert_eq!(c.server.extensions.api_doc_path, "/api.json");
    assert_eq!(c.logger.file, "{Y-m-d}.log");
    assert!(!c.logger.extensions.trace_id_enabled);
    let DatabaseLink::Postgres {
        user,
        host,
        port,
        database,
        params,
        ..
    } = &c.database.default.link
    else {
        panic!("expected postgres, got {:?}", c.database.default.link)
    };
    assert_eq!(
        (user.as_str(), host.as_str(), *port, database.as_str()),
        ("postgres", "127.0.0.1", 5432, "linapro")
    );
    assert_eq!(params, &[("sslmode".to_string(), "disable".to_string())]);
    assert_eq!(c.session.cleanup_interval, Duration::from_secs(300));
    assert_eq!(c.monitor.interval, Duration::from_secs(60));
    assert_eq!(c.health.timeout, Duration::from_secs(5));
    assert_eq!(c.shutdown.timeout, Duration::from_secs(30));
    assert_eq!(c.workspace.base_path, "/admin");
    assert_eq!(c.i18n.locales.len(), 3);
    assert_eq!(c.i18n.locales[2].locale, "zh-TW");
    assert_eq!(c.cluster.redis.write_timeout, Duration::from_secs(2));
    assert_eq!(c.upload.max_size, 20);
    assert!(c.plugin.allow_force_uninstall);
    assert!(c.plugin.auto_enable.is_empty());
    assert_eq!(c.plugin.dynamic.storage_path, "temp/output");
}

#[test]
fn linapro_template_in_cluster_mode_only_needs_a_secret() {
    let env = super::env(&[
        ("LINA_CLUSTER__ENABLED", "true"),
        ("LINA_JWT__SECRET", "a-random-secret-of-enough-length"),
    ]);
    let loaded = load_file(fixture(), env).unwrap();
    assert!(loaded.config.cluster.enabled);
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
}

#[test]
fn auto_enable_entries_parse() {
    let c = super::load(
        "plugin:\n  autoEnable:\n    - id: demo-control\n      withMockData: true\n    - id: plugin-demo-source\n",
    )
    .config;
    assert_eq!(c.plugin.auto_enable.len(), 2);
    assert!(c.plugin.auto_enable[0].with_mock_data);
    assert!(!c.plugin.auto_enable[1].with_mock_data);
}
