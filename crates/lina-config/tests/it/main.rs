//! Integration tests of `lina-config`: one test binary, one module per topic.

mod defaults;
mod durations;
mod files;
mod layering;
mod links;
mod secrets;
mod template;
mod unknown_keys;
mod validation;

use lina_config::{ConfigError, Loaded, Problem};

/// Environment variables from pairs (never the process environment).
pub fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// Loads YAML with no environment; panics on error.
pub fn load(yaml: &str) -> Loaded {
    match lina_config::load_from(Some(yaml), Vec::new()) {
        Ok(loaded) => loaded,
        Err(e) => panic!("expected a valid config, got: {e}"),
    }
}

/// Loads YAML that must be invalid; returns the problems.
pub fn problems(yaml: &str) -> Vec<Problem> {
    match lina_config::load_from(Some(yaml), Vec::new()) {
        Ok(loaded) => panic!("expected problems, got {:#?}", loaded.config),
        Err(e @ ConfigError::Invalid { .. }) => e.problems().to_vec(),
        Err(e) => panic!("expected invalid configuration, got: {e}"),
    }
}

/// Paths of a problem list.
pub fn paths(problems: &[Problem]) -> Vec<&str> {
    problems.iter().map(|p| p.path.as_str()).collect()
}
