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

/// Most of each stream kept for the output and error messages (the log keeps its own bound).
pub(super) const MAX_STREAM_BYTES: usize = 4 * crate::MAX_OUTPUT_BYTES;

/// Reads a stream to its end: each line to the attempt's log as it comes,
/// and the bytes (the last `MAX_STREAM_BYTES` of them) for the output.
pub(super) async fn collect(stream: impl tokio::io::AsyncRead + Unpin, which: crate::LogStream, context: &crate::TaskContext) -> Vec<u8> {
    use tokio::io::AsyncBufReadExt as _;
    let mut reader = tokio::io::BufReader::new(stream);
    let mut all = Vec::new();
    let mut line = Vec::new();
    loop {
        line.clear();
        match reader.read_until(b'\n', &mut line).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {
                let text = String::from_utf8_lossy(&line);
                context.log(which, text.trim_end_matches(['\n', '\r']));
                all.extend_from_slice(&line);
                if all.len() > MAX_STREAM_BYTES {
                    all.drain(..all.len() - MAX_STREAM_BYTES);
                }
            }
        }
    }
    all
}
