use std::io::Write;
use std::path::Path;

use lina_config::{ConfigError, load, load_file};

#[test]
fn a_missing_explicit_file_is_an_error_naming_it() {
    let path = Path::new("/definitely/not/here/lina.yaml");
    let err = load(Some(path)).unwrap_err();
    assert!(matches!(err, ConfigError::NotFound { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        "config file /definitely/not/here/lina.yaml does not exist"
    );
    assert!(!err.is_retryable());
}

#[test]
fn yaml_syntax_errors_name_the_file() {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    writeln!(file, "cluster:\n  enabled: true\n   bad indent: [").unwrap();
    let err = load_file(file.path(), Vec::new()).unwrap_err();
    let ConfigError::Parse { origin, .. } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(origin, &file.path().display().to_string());
    assert!(err.to_string().starts_with("cannot parse config file"));
}

#[test]
fn top_level_must_be_a_mapping() {
    let err = lina_config::load_from(Some("- a\n- b\n"), Vec::new()).unwrap_err();
    assert!(
        err.to_string().contains("the top level must be a mapping"),
        "{err}"
    );
}

#[test]
fn an_empty_file_means_defaults() {
    let file = tempfile::NamedTempFile::new().unwrap();
    let loaded = load_file(file.path(), Vec::new()).unwrap();
    assert_eq!(loaded.config, lina_config::Config::default());
}

#[test]
fn yaml_anchors_and_merge_keys_work() {
    let c = super::load(
        "base: &t\n  connectTimeout: 4s\ncluster:\n  redis:\n    <<: *t\n    readTimeout: 1s\n",
    );
    assert_eq!(c.config.cluster.redis.connect_timeout.as_secs(), 4);
    // `base` itself is not a Lina key.
    assert!(c.warnings.iter().any(|w| w.path == "base.connectTimeout"));
}
