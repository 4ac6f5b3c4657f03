//! Request helpers shared by the API modules: JSON bodies read field by
//! field (`Fields`), query parameters, paging, path ids, text filters and
//! the mapping of unique-key violations to 409. Every validation error names
//! its field and never echoes a value (it may be a password).

use std::collections::{BTreeSet, HashMap};

use sea_orm::sea_query::{Expr, ExprTrait, Func, LikeExpr};
use sea_orm::{ColumnTrait, DbErr, SqlErr};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::error::ApiError;

/// Most ids one request may list (`roleIds`, `menuIds`, `userIds`).
pub(crate) const MAX_IDS: usize = 1000;
/// Largest page.
pub(crate) const MAX_PAGE_SIZE: u64 = 500;
pub(crate) const MAX_PAGE_NUM: u64 = 1_000_000;

/// What kind of JSON value `v` is, for error messages (never the value:
/// it may be a password).
pub(crate) fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A JSON object body read field by field, so that every error names its
/// field. `null` counts as absent; unknown fields are ignored.
pub(crate) struct Fields(Map<String, Value>);

impl Fields {
    /// 400 (53) unless the body is a JSON object.
    pub(crate) fn new(body: Value) -> Result<Fields, ApiError> {
        match body {
            Value::Object(map) => Ok(Fields(map)),
            other => Err(ApiError::invalid_parameter(format!(
                "the body must be a JSON object, got {}",
                kind(&other)
            ))),
        }
    }

    fn raw(&self, name: &str) -> Option<&Value> {
        self.0.get(name).filter(|v| !v.is_null())
    }

    /// A field's raw value (`None` when absent or `null`), for fields of
    /// more than one JSON type.
    pub(crate) fn value(&self, name: &str) -> Option<&Value> {
        self.raw(name)
    }

    /// A string field.
    pub(crate) fn string(&self, name: &str) -> Result<Option<String>, ApiError> {
        match self.raw(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(other) => Err(ApiError::invalid_parameter(format!(
                "{name} must be a string, got {}",
                kind(other)
            ))),
        }
    }

    /// An integer field (a JSON integer or a string holding one).
    pub(crate) fn int(&self, name: &str) -> Result<Option<i64>, ApiError> {
        self.raw(name).map(|v| as_int(name, v)).transpose()
    }

    /// A status flag field: 1 normal / enabled, 0 disabled.
    pub(crate) fn status(&self, name: &str) -> Result<Option<i16>, ApiError> {
        self.int(name)?.map(|v| check_status(name, v)).transpose()
    }

    /// An array of ids, deduplicated and sorted.
    pub(crate) fn ids(&self, name: &str) -> Result<Option<Vec<i64>>, ApiError> {
        match self.raw(name) {
            None => Ok(None),
            Some(Value::Array(items)) => {
                if items.len() > MAX_IDS {
                    return Err(ApiError::validation(format!(
                        "{name} may hold at most {MAX_IDS} ids, got {}",
                        items.len()
                    )));
                }
                let ids = items
                    .iter()
                    .map(|v| as_int(name, v))
                    .collect::<Result<BTreeSet<i64>, _>>()?;
                Ok(Some(ids.into_iter().collect()))
            }
            Some(other) => Err(ApiError::invalid_parameter(format!(
                "{name} must be an array of ids, got {}",
                kind(other)
            ))),
        }
    }
}

pub(crate) fn as_int(name: &str, v: &Value) -> Result<i64, ApiError> {
    let parsed = match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse::<i64>().ok(),
        _ => None,
    };
    parsed.ok_or_else(|| {
        ApiError::invalid_parameter(format!("{name} must be an integer, got {}", kind(v)))
    })
}

/// 400 (51) unless `value` has `min..=max` characters.
pub(crate) fn check_len(name: &str, value: &str, min: usize, max: usize) -> Result<(), ApiError> {
    let len = value.chars().count();
    if len < min || len > max {
        return Err(if min == 0 {
            ApiError::validation(format!(
                "{name} must be at most {max} characters, got {len}"
            ))
        } else {
            ApiError::validation(format!(
                "{name} must be {min} to {max} characters, got {len}"
            ))
        });
    }
    Ok(())
}

/// 400 (51) unless `value` is within `min..=max`.
pub(crate) fn check_range(name: &str, value: i64, min: i64, max: i64) -> Result<(), ApiError> {
    if value < min || value > max {
        return Err(ApiError::validation(format!(
            "{name} must be between {min} and {max}, got {value}"
        )));
    }
    Ok(())
}

/// A `status` flag: 1 normal / enabled, 0 disabled.
pub(crate) fn check_status(name: &str, value: i64) -> Result<i16, ApiError> {
    match value {
        0 | 1 => Ok(value as i16),
        other => Err(ApiError::validation(format!(
            "{name} must be 0 (disabled) or 1 (normal), got {other}"
        ))),
    }
}

/// A query parameter, `None` when absent or empty.
pub(crate) fn query_str<'a>(query: &'a HashMap<String, String>, name: &str) -> Option<&'a str> {
    query.get(name).map(|s| s.trim()).filter(|s| !s.is_empty())
}

/// An integer query parameter, `None` when absent or empty.
pub(crate) fn query_int(
    query: &HashMap<String, String>,
    name: &str,
) -> Result<Option<i64>, ApiError> {
    query_str(query, name)
        .map(|s| {
            s.parse::<i64>().map_err(|_| {
                ApiError::invalid_parameter(format!("{name} must be an integer, got {s:?}"))
            })
        })
        .transpose()
}

/// One page of a listing: `offset`/`limit` from a 1-based page number.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Paging {
    /// 1-based page number.
    pub(crate) num: u64,
    /// Items per page (1 to [`MAX_PAGE_SIZE`]).
    pub(crate) size: u64,
}

impl Paging {
    /// Rows to skip.
    pub(crate) fn offset(self) -> u64 {
        (self.num - 1) * self.size
    }
}

/// Paging from the first present of `num_names` and of `size_names`;
/// defaults page 1 of 10.
pub(crate) fn paging(
    query: &HashMap<String, String>,
    num_names: &[&str],
    size_names: &[&str],
) -> Result<Paging, ApiError> {
    let first = |names: &[&str]| -> Result<Option<(String, i64)>, ApiError> {
        for name in names {
            if let Some(v) = query_int(query, name)? {
                return Ok(Some((name.to_string(), v)));
            }
        }
        Ok(None)
    };
    let num = match first(num_names)? {
        Some((name, v)) => {
            check_range(&name, v, 1, MAX_PAGE_NUM as i64)?;
            v as u64
        }
        None => 1,
    };
    let size = match first(size_names)? {
        Some((name, v)) => {
            check_range(&name, v, 1, MAX_PAGE_SIZE as i64)?;
            v as u64
        }
        None => 10,
    };
    Ok(Paging { num, size })
}

/// Case-insensitive "contains" on a text column, with `%`, `_` and `\` in
/// the needle taken literally.
pub(crate) fn contains(column: impl ColumnTrait, needle: &str) -> Expr {
    let escaped = needle
        .to_lowercase()
        .replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_");
    Expr::expr(Func::lower(column.into_expr()))
        .like(LikeExpr::new(format!("%{escaped}%")).escape('\\'))
}

/// 409 for a unique-key violation (a concurrent duplicate), else the usual
/// database error mapping.
pub(crate) fn unique_conflict(error: DbErr, message: impl FnOnce() -> String) -> ApiError {
    match error.sql_err() {
        Some(SqlErr::UniqueConstraintViolation(_)) => ApiError::conflict(message()),
        _ => error.into(),
    }
}

/// Parses a path id after authentication, so a bad id never hides a 401.
pub(crate) fn parse_id(raw: &str, what: &str) -> Result<i64, ApiError> {
    raw.parse()
        .map_err(|_| ApiError::invalid_parameter(format!("{what} {raw:?} is not an integer")))
}

/// Parses a JSON body after authentication and permission checks.
pub(crate) fn parse_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::invalid_parameter(format!("invalid JSON body: {e}")))
}

/// For routes that take no parameters in the body: an empty body or any
/// JSON object is accepted (and ignored); anything else is a client mistake.
pub(crate) fn no_body(body: &[u8]) -> Result<(), ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(());
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(_)) => Ok(()),
        Ok(other) => Err(ApiError::invalid_parameter(format!(
            "this route takes no parameters; the body must be empty or a JSON object, got {}",
            kind(&other)
        ))),
        Err(e) => Err(ApiError::invalid_parameter(format!(
            "invalid JSON body: {e}"
        ))),
    }
}
