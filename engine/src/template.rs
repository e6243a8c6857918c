//! Placeholders in agent parameters: `{{ vars.NAME }}` and `{{ instance.id }}`.
//!
//! A shipped workflow names its target (a URL, a service) once, as a
//! variable, and its tasks' parameters refer to it; a team overrides it at
//! `start`. Placeholders are replaced inside JSON strings, after parsing and
//! per argument, so a value never becomes shell syntax: an `exec` argv element
//! stays one argument whatever the value holds. A string that is exactly one
//! placeholder takes the variable's JSON value (a number stays a number).

use serde_json::{Map, Value};

/// A placeholder found in a parameter string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placeholder {
    /// `{{ vars.NAME }}`.
    Var(String),
    /// `{{ vars.NAME | json }}`: the value as JSON text, always a string
    /// (an object or list as one argv element, say).
    VarJson(String),
    /// `{{ instance.id }}`.
    InstanceId,
    /// Anything else between `{{` and `}}`, as written.
    Unknown(String),
}

/// Every placeholder in `text`, in order.
pub fn placeholders(text: &str) -> Vec<Placeholder> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else { break };
        out.push(parse(after[..end].trim()));
        rest = &after[end + 2..];
    }
    out
}

fn parse(inner: &str) -> Placeholder {
    if let Some(var) = inner.strip_suffix("| json").map(str::trim_end) {
        return match parse(var) {
            Placeholder::Var(name) => Placeholder::VarJson(name),
            _ => Placeholder::Unknown(inner.to_owned()),
        };
    }
    match inner.strip_prefix("vars.") {
        Some(name) if !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') => Placeholder::Var(name.to_owned()),
        _ if inner == "instance.id" => Placeholder::InstanceId,
        _ => Placeholder::Unknown(inner.to_owned()),
    }
}

/// Every placeholder in the strings of `params`, with the JSON path of the
/// string holding it (`argv[2]`, `env.URL`).
pub fn placeholders_in(params: &Map<String, Value>) -> Vec<(Vec<PathStep>, Placeholder)> {
    let mut out = Vec::new();
    for (key, value) in params {
        walk(value, &mut vec![PathStep::Key(key.clone())], &mut out);
    }
    out
}

/// One step of a path into a JSON value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathStep {
    /// An object key.
    Key(String),
    /// An array index.
    Index(usize),
}

fn walk(value: &Value, path: &mut Vec<PathStep>, out: &mut Vec<(Vec<PathStep>, Placeholder)>) {
    match value {
        Value::String(text) => out.extend(placeholders(text).into_iter().map(|p| (path.clone(), p))),
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                path.push(PathStep::Index(i));
                walk(item, path, out);
                path.pop();
            }
        }
        Value::Object(map) => {
            for (key, item) in map {
                path.push(PathStep::Key(key.clone()));
                walk(item, path, out);
                path.pop();
            }
        }
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

/// `params` with every placeholder replaced by the instance's values.
/// Unknown placeholders are left as written (validation refuses them).
pub fn render(params: &Map<String, Value>, vars: &Map<String, Value>, instance: &str) -> Map<String, Value> {
    params.iter().map(|(k, v)| (k.clone(), render_value(v, vars, instance))).collect()
}

fn render_value(value: &Value, vars: &Map<String, Value>, instance: &str) -> Value {
    match value {
        Value::String(text) => render_string(text, vars, instance),
        Value::Array(items) => Value::Array(items.iter().map(|v| render_value(v, vars, instance)).collect()),
        Value::Object(map) => Value::Object(map.iter().map(|(k, v)| (k.clone(), render_value(v, vars, instance))).collect()),
        other => other.clone(),
    }
}

fn lookup(placeholder: &Placeholder, vars: &Map<String, Value>, instance: &str) -> Option<Value> {
    match placeholder {
        Placeholder::Var(name) => vars.get(name).cloned(),
        Placeholder::VarJson(name) => vars.get(name).map(|v| Value::String(v.to_string())),
        Placeholder::InstanceId => Some(Value::String(instance.to_owned())),
        Placeholder::Unknown(_) => None,
    }
}

fn render_string(text: &str, vars: &Map<String, Value>, instance: &str) -> Value {
    if !text.contains("{{") {
        return Value::String(text.to_owned());
    }
    // Exactly one placeholder: keep the value's JSON type.
    let trimmed = text.trim();
    if trimmed.starts_with("{{") && trimmed.ends_with("}}") && trimmed[2..].find("{{").is_none() {
        if let Some(value) = lookup(&parse(trimmed[2..trimmed.len() - 2].trim()), vars, instance) {
            return value;
        }
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else { break };
        out.push_str(&rest[..start]);
        match lookup(&parse(after[..end].trim()), vars, instance) {
            Some(Value::String(s)) => out.push_str(&s),
            Some(other) => out.push_str(&other.to_string()),
            None => out.push_str(&rest[start..start + 2 + end + 2]),
        }
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Value::String(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn placeholders_render_per_argument_and_keep_types() {
        let params = json!({
            "argv": ["probe", "--url", "{{ vars.target_url }}/healthz", "{{vars.retries}}"],
            "json": {"attempts": "{{ vars.retries }}", "who": "{{ instance.id }}"},
            "left": "{{ vars.missing }} and {{ other }}",
            "budgets": "{{ vars.budgets | json }}",
        });
        let vars = json!({"target_url": "http://127.0.0.1:8080; rm -rf /", "retries": 3, "budgets": {"p95_ms": 300}});
        let rendered = render(params.as_object().unwrap(), vars.as_object().unwrap(), "rel-1");
        assert_eq!(rendered["argv"][2], "http://127.0.0.1:8080; rm -rf //healthz", "one argv element, never shell");
        assert_eq!(rendered["argv"][3], 3);
        assert_eq!(rendered["json"]["attempts"], 3);
        assert_eq!(rendered["json"]["who"], "rel-1");
        assert_eq!(rendered["budgets"], "{\"p95_ms\":300}", "| json gives JSON text");
        assert_eq!(rendered["left"], "{{ vars.missing }} and {{ other }}");
        let found = placeholders_in(params.as_object().unwrap());
        assert!(found.contains(&(vec![PathStep::Key("left".into())], Placeholder::Unknown("other".into()))));
        assert!(found.contains(&(vec![PathStep::Key("argv".into()), PathStep::Index(2)], Placeholder::Var("target_url".into()))));
    }
}
