//! Known keys: matching file and environment keys to Lina's camelCase keys,
//! and reporting the unknown ones.

use serde_json::{Map, Value};

use crate::model::schema_sample;
use crate::problem::Problem;

/// Environment variables with the `LINA_` prefix that are not configuration
/// keys and are therefore never reported as unknown.
pub const IGNORED_ENV_VARS: &[&str] = &["LINA_CONFIG", "LINA_LOG"];

/// Prefix of environment variables that belong to tests (`lina-testkit`) and
/// are never configuration keys.
pub const IGNORED_ENV_PREFIX: &str = "LINA_TEST_";

/// The shape of the known configuration.
#[derive(Debug)]
pub(crate) enum Schema {
    /// A map with known keys.
    Object(Vec<(String, Schema)>),
    /// A list; `None` when its element shape is unknown.
    Array(Option<Box<Schema>>),
    /// A string value.
    Text,
    /// Any other scalar.
    Scalar,
}

impl Schema {
    pub(crate) fn known() -> Schema {
        let sample = serde_json::to_value(schema_sample()).expect("config serializes");
        Schema::from_value(&sample)
    }

    fn from_value(value: &Value) -> Schema {
        match value {
            Value::Object(map) => Schema::Object(
                map.iter()
                    .map(|(k, v)| (k.clone(), Schema::from_value(v)))
                    .collect(),
            ),
            Value::Array(items) => {
                Schema::Array(items.first().map(|v| Box::new(Schema::from_value(v))))
            }
            Value::String(_) => Schema::Text,
            _ => Schema::Scalar,
        }
    }

    /// The known key matching `key`: exactly, else ignoring case, `_` and `-`.
    fn child(&self, key: &str) -> Option<(&str, &Schema)> {
        let Schema::Object(children) = self else {
            return None;
        };
        if let Some((k, s)) = children.iter().find(|(k, _)| k == key) {
            return Some((k, s));
        }
        let wanted = loose(key);
        children
            .iter()
            .find(|(k, _)| loose(k) == wanted)
            .map(|(k, s)| (k.as_str(), s))
    }
}

fn loose(key: &str) -> String {
    key.chars()
        .filter(|c| *c != '_' && *c != '-')
        .flat_map(char::to_lowercase)
        .collect()
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

/// Rewrites `value` with canonical key spellings, drops `null` map entries
/// (null means "use the default"), and drops unknown keys, reporting each
/// unknown leaf path in `warnings` with `what` as the message.
pub(crate) fn canonicalize(
    value: Value,
    schema: &Schema,
    path: &str,
    what: &str,
    warnings: &mut Vec<Problem>,
) -> Value {
    match (value, schema) {
        (Value::Object(map), Schema::Object(_)) => {
            let mut out = Map::new();
            for (key, child) in map {
                if child.is_null() {
                    continue;
                }
                match schema.child(&key) {
                    Some((canonical, child_schema)) => {
                        let child_path = join(path, canonical);
                        let child = canonicalize(child, child_schema, &child_path, what, warnings);
                        out.insert(canonical.to_owned(), child);
                    }
                    None => report_unknown(&child, &join(path, &key), what, warnings),
                }
            }
            Value::Object(out)
        }
        (Value::Array(items), Schema::Array(Some(element))) => Value::Array(
            items
                .into_iter()
                .enumerate()
                .map(|(i, item)| {
                    canonicalize(item, element, &format!("{path}[{i}]"), what, warnings)
                })
                .collect(),
        ),
        (value, _) => value,
    }
}

fn report_unknown(value: &Value, path: &str, what: &str, warnings: &mut Vec<Problem>) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (k, v) in map {
                report_unknown(v, &join(path, k), what, warnings);
            }
        }
        _ => warnings.push(Problem::new(path, what)),
    }
}

/// Builds the environment layer from `LINA_*` variables: `__` separates
/// levels, each level matched to a known key ignoring case and `_`.
/// `LINA_NODE_ID` sets `cluster.nodeId`. Unknown variables are reported.
pub(crate) fn env_tree(
    schema: &Schema,
    vars: impl IntoIterator<Item = (String, String)>,
    warnings: &mut Vec<Problem>,
) -> Value {
    let mut vars: Vec<(String, String)> = vars
        .into_iter()
        .filter(|(k, _)| k.len() > 5 && k[..5].eq_ignore_ascii_case("LINA_"))
        .filter(|(k, _)| {
            let upper = k.to_ascii_uppercase();
            !upper.starts_with(IGNORED_ENV_PREFIX) && !IGNORED_ENV_VARS.contains(&upper.as_str())
        })
        .collect();
    vars.sort();
    let mut root = Value::Object(Map::new());
    for (name, raw) in vars {
        let upper = name.to_ascii_uppercase();
        let segments: Vec<String> = if upper == "LINA_NODE_ID" {
            vec!["cluster".into(), "nodeId".into()]
        } else {
            name[5..].split("__").map(str::to_owned).collect()
        };
        let mut node = schema;
        let mut canonical: Vec<String> = Vec::new();
        let mut unknown = false;
        for (i, segment) in segments.iter().enumerate() {
            match node.child(segment) {
                Some((key, child)) => {
                    canonical.push(key.to_owned());
                    node = child;
                }
                None => {
                    canonical.extend(segments[i..].iter().map(|s| s.to_ascii_lowercase()));
                    unknown = true;
                    break;
                }
            }
        }
        let path = canonical.join(".");
        if unknown {
            warnings.push(Problem::new(
                path,
                format!("unknown key from environment variable {name}, ignored"),
            ));
            continue;
        }
        let value = env_value(&raw, node);
        let what = format!("unknown key from environment variable {name}, ignored");
        let value = canonicalize(value, node, &path, &what, warnings);
        if value.is_null() {
            continue;
        }
        insert(&mut root, &canonical, value);
    }
    root
}

/// Turns an environment string into a value of the shape `schema` expects:
/// strings stay strings; lists of strings may be comma-separated; anything
/// else is read as YAML (`true`, `5`, `[a, b]`, `{enabled: true}`).
fn env_value(raw: &str, schema: &Schema) -> Value {
    match schema {
        Schema::Text => Value::String(raw.to_owned()),
        Schema::Array(Some(element))
            if matches!(**element, Schema::Text) && !raw.trim_start().starts_with('[') =>
        {
            Value::Array(
                raw.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(|s| Value::String(s.to_owned()))
                    .collect(),
            )
        }
        _ => match serde_yaml::from_str::<serde_yaml::Value>(raw) {
            Ok(yaml) => crate::load::yaml_to_json(yaml),
            Err(_) => Value::String(raw.to_owned()),
        },
    }
}

/// Sets `value` at `path` under `root` (an object), creating maps on the
/// way and merging maps that meet.
fn insert(root: &mut Value, path: &[String], value: Value) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut node = root;
    for key in parents {
        let Value::Object(map) = node else {
            return;
        };
        node = map
            .entry(key.clone())
            .or_insert_with(|| Value::Object(Map::new()));
        if !node.is_object() {
            *node = Value::Object(Map::new());
        }
    }
    let Value::Object(map) = node else {
        return;
    };
    match (map.get_mut(last), value) {
        (Some(Value::Object(existing)), Value::Object(incoming)) => existing.extend(incoming),
        (_, value) => {
            map.insert(last.clone(), value);
        }
    }
}
