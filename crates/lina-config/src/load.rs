//! Loading: defaults ← YAML file ← `LINA_*` environment, then validation.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::Serialized;
use serde_json::{Map, Value};

use crate::model::{Config, DEFAULT_JWT_SECRET};
use crate::problem::{ConfigError, Problem, Result};
use crate::schema::{Schema, canonicalize, env_tree};
use crate::validate::validate;

/// File read by [`load`] when no path is given, if it exists in the current directory.
pub const DEFAULT_CONFIG_FILE: &str = "config.yaml";

/// A loaded, valid configuration and the warnings found on the way.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The effective configuration.
    pub config: Config,
    /// Things worth telling the operator that do not stop the service:
    /// unknown keys, the default JWT secret outside cluster mode, a
    /// renewInterval far from lease/3, …
    pub warnings: Vec<Problem>,
    /// The config file read, if any.
    pub file: Option<PathBuf>,
}

impl Loaded {
    /// Emits every warning as a `tracing` warning event with a `key` field.
    pub fn log_warnings(&self) {
        for warning in &self.warnings {
            tracing::warn!(key = %warning.path, problem = %warning.message, "configuration warning");
        }
    }
}

/// Loads the configuration the way the server does: built-in defaults, then
/// the YAML file, then `LINA_*` variables of the process environment.
///
/// With `path` `None`, `config.yaml` in the current directory is read if it
/// exists (defaults and environment only otherwise); an explicit `path` that
/// does not exist is [`ConfigError::NotFound`].
pub fn load(path: Option<&Path>) -> Result<Loaded> {
    let env = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)));
    match path {
        Some(path) => load_file(path, env),
        None => {
            let default = Path::new(DEFAULT_CONFIG_FILE);
            if default.is_file() {
                load_file(default, env)
            } else {
                load_from(None, env)
            }
        }
    }
}

/// Loads from a YAML file and the given environment variables (not the
/// process environment, so tests stay independent of it).
pub fn load_file(path: &Path, env: impl IntoIterator<Item = (String, String)>) -> Result<Loaded> {
    let text = std::fs::read_to_string(path).map_err(|source| {
        if source.kind() == std::io::ErrorKind::NotFound {
            ConfigError::NotFound {
                path: path.to_path_buf(),
            }
        } else {
            ConfigError::Read {
                path: path.to_path_buf(),
                source,
            }
        }
    })?;
    let mut loaded = load_layers(Some((&text, &path.display().to_string())), env)?;
    loaded.file = Some(path.to_path_buf());
    Ok(loaded)
}

/// Loads from YAML text (or defaults only with `None`) and the given
/// environment variables; the process environment is not read.
///
/// ```
/// let loaded = lina_config::load_from(
///     Some("cluster:\n  election:\n    lease: 45s\n"),
///     [("LINA_CLUSTER__ELECTION__RENEW_INTERVAL".to_string(), "15s".to_string())],
/// )
/// .unwrap();
/// assert_eq!(loaded.config.cluster.election.lease.as_secs(), 45);
/// assert_eq!(loaded.config.cluster.election.renew_interval.as_secs(), 15);
/// ```
pub fn load_from(
    yaml: Option<&str>,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<Loaded> {
    load_layers(yaml.map(|text| (text, "<string>")), env)
}

fn load_layers(
    yaml: Option<(&str, &str)>,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<Loaded> {
    let schema = Schema::known();
    let mut warnings = Vec::new();

    let file_tree = match yaml {
        Some((text, origin)) => {
            let tree = parse_yaml(text, origin)?;
            canonicalize(
                tree,
                &schema,
                "",
                "unknown key in config file, ignored",
                &mut warnings,
            )
        }
        None => Value::Object(Map::new()),
    };
    let env_tree = env_tree(&schema, env, &mut warnings);

    let merged: Value = Figment::from(Serialized::defaults(defaults_tree()))
        .merge(Serialized::defaults(file_tree))
        .merge(Serialized::defaults(env_tree))
        .extract()
        .map_err(|e| ConfigError::Merge(Box::new(e)))?;

    let mut errors = Vec::new();
    let (config, failed) = deserialize_collecting(merged, &mut errors);
    validate(&config, &failed, &mut errors, &mut warnings);
    if errors.is_empty() {
        Ok(Loaded {
            config,
            warnings,
            file: None,
        })
    } else {
        Err(ConfigError::Invalid {
            problems: errors,
            warnings,
        })
    }
}

/// The built-in defaults as a tree. `Serialize` redacts secrets, so the one
/// secret with a non-empty default is put back.
fn defaults_tree() -> Value {
    let mut tree = serde_json::to_value(Config::default()).expect("config serializes");
    tree["jwt"]["secret"] = Value::String(DEFAULT_JWT_SECRET.to_owned());
    tree
}

fn parse_yaml(text: &str, origin: &str) -> Result<Value> {
    let parse_error = |message: String| ConfigError::Parse {
        origin: origin.to_owned(),
        message,
    };
    let mut yaml: serde_yaml::Value =
        serde_yaml::from_str(text).map_err(|e| parse_error(e.to_string()))?;
    yaml.apply_merge().map_err(|e| parse_error(e.to_string()))?;
    match yaml_to_json(yaml) {
        Value::Null => Ok(Value::Object(Map::new())),
        tree @ Value::Object(_) => Ok(tree),
        _ => Err(parse_error(
            "the top level must be a mapping of keys".into(),
        )),
    }
}

/// Converts YAML to JSON values; non-string keys become strings, tags are dropped.
pub(crate) fn yaml_to_json(yaml: serde_yaml::Value) -> Value {
    use serde_yaml::Value as Y;
    match yaml {
        Y::Null => Value::Null,
        Y::Bool(b) => Value::Bool(b),
        Y::Number(n) => {
            if let Some(u) = n.as_u64() {
                Value::from(u)
            } else if let Some(i) = n.as_i64() {
                Value::from(i)
            } else {
                n.as_f64()
                    .and_then(serde_json::Number::from_f64)
                    .map_or_else(|| Value::String(n.to_string()), Value::Number)
            }
        }
        Y::String(s) => Value::String(s),
        Y::Sequence(items) => Value::Array(items.into_iter().map(yaml_to_json).collect()),
        Y::Mapping(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| {
                    let key = match yaml_to_json(k) {
                        Value::String(s) => s,
                        other => other.to_string(),
                    };
                    (key, yaml_to_json(v))
                })
                .collect(),
        ),
        Y::Tagged(tagged) => yaml_to_json(tagged.value),
    }
}

enum Step {
    Key(String),
    Index(usize),
}

/// Deserializes `tree`, and on each error records a problem at its path,
/// removes the offending value (its default applies) and tries again, so
/// that every type problem is reported at once. Returns the paths that
/// failed, in the original tree's coordinates.
fn deserialize_collecting(mut tree: Value, errors: &mut Vec<Problem>) -> (Config, HashSet<String>) {
    let mut failed = HashSet::new();
    // Array path -> original indices removed from it so far.
    let mut removed: HashMap<String, Vec<usize>> = HashMap::new();
    for _ in 0..10_000 {
        let error = match serde_path_to_error::deserialize::<_, Config>(tree.clone()) {
            Ok(config) => return (config, failed),
            Err(error) => error,
        };
        let mut steps = Vec::new();
        let mut path = String::new();
        let mut removal: Option<(String, usize)> = None;
        for segment in error.path().iter() {
            match segment {
                serde_path_to_error::Segment::Map { key } => {
                    path = if path.is_empty() {
                        key.clone()
                    } else {
                        format!("{path}.{key}")
                    };
                    steps.push(Step::Key(key.clone()));
                    removal = None;
                }
                serde_path_to_error::Segment::Seq { index } => {
                    let gone = removed.get(&path).map(Vec::as_slice).unwrap_or(&[]);
                    let original = (0..)
                        .filter(|i| !gone.contains(i))
                        .nth(*index)
                        .unwrap_or(*index);
                    removal = Some((path.clone(), original));
                    path = format!("{path}[{original}]");
                    steps.push(Step::Index(*index));
                }
                _ => break,
            }
        }
        errors.push(Problem::new(path.clone(), error.inner().to_string()));
        failed.insert(path);
        if steps.is_empty() || !remove(&mut tree, &steps) {
            break;
        }
        if let Some((array, original)) = removal {
            removed.entry(array).or_default().push(original);
        }
    }
    (Config::default(), failed)
}

fn remove(tree: &mut Value, steps: &[Step]) -> bool {
    let Some((last, parents)) = steps.split_last() else {
        return false;
    };
    let mut node = tree;
    for step in parents {
        let next = match (step, node) {
            (Step::Key(k), Value::Object(map)) => map.get_mut(k),
            (Step::Index(i), Value::Array(items)) => items.get_mut(*i),
            _ => None,
        };
        match next {
            Some(next) => node = next,
            None => return false,
        }
    }
    match (last, node) {
        (Step::Key(k), Value::Object(map)) => map.remove(k).is_some(),
        (Step::Index(i), Value::Array(items)) if *i < items.len() => {
            items.remove(*i);
            true
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_layer_equals_config_default() {
        let loaded = load_from(None, Vec::new()).unwrap();
        assert_eq!(loaded.config, Config::default());
    }
}
