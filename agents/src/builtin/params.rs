//! Reading agent parameters with errors that name the parameter.

use std::time::Duration;

use serde_json::{Map, Value};

/// A required string parameter.
pub(crate) fn string<'p>(params: &'p Map<String, Value>, name: &str) -> Result<&'p str, String> {
    match params.get(name) {
        Some(Value::String(text)) => Ok(text),
        Some(other) => Err(format!("parameter `{name}` must be a string, found {other}")),
        None => Err(format!("parameter `{name}` is required")),
    }
}

/// An optional string parameter.
pub(crate) fn optional_string<'p>(params: &'p Map<String, Value>, name: &str) -> Result<Option<&'p str>, String> {
    match params.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(_) => string(params, name).map(Some),
    }
}

/// An optional table of string values (environment, headers).
pub(crate) fn string_table(params: &Map<String, Value>, name: &str) -> Result<Vec<(String, String)>, String> {
    match params.get(name) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Object(table)) => table
            .iter()
            .map(|(key, value)| match value {
                Value::String(text) => Ok((key.clone(), text.clone())),
                Value::Number(_) | Value::Bool(_) => Ok((key.clone(), value.to_string())),
                other => Err(format!("parameter `{name}.{key}` must be a string, found {other}")),
            })
            .collect(),
        Some(other) => Err(format!("parameter `{name}` must be a table of strings, found {other}")),
    }
}

/// An optional duration parameter written like `"250ms"` or `"2m"`.
pub(crate) fn optional_duration(params: &Map<String, Value>, name: &str) -> Result<Option<Duration>, String> {
    match optional_string(params, name)? {
        None => Ok(None),
        Some(text) => {
            humantime::parse_duration(text).map(Some).map_err(|error| format!("parameter `{name}` is not a duration (`{text}`: {error})"))
        }
    }
}

/// Keeps the last `limit` bytes of `text` (on a character boundary).
pub(crate) fn tail(text: &str, limit: usize) -> &str {
    if text.len() <= limit {
        return text;
    }
    let mut start = text.len() - limit;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    &text[start..]
}
