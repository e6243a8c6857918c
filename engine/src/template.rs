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
    /// `{{ decisions.GATE.inputs.NAME }}` (with `| json`: as JSON text): an
    /// input of the approval that passed gate GATE, for task parameters.
    Input {
        /// The gate's id.
        gate: String,
        /// The input's name.
        name: String,
        /// Whether `| json` asks for JSON text.
        json: bool,
    },
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
            Placeholder::Input { gate, name, .. } => Placeholder::Input { gate, name, json: true },
            _ => Placeholder::Unknown(inner.to_owned()),
        };
    }
    let id = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if let Some((gate, name)) = inner.strip_prefix("decisions.").and_then(|rest| rest.split_once(".inputs.")) {
        if id(gate) && id(name) {
            return Placeholder::Input { gate: gate.to_owned(), name: name.to_owned(), json: false };
        }
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

/// What placeholders are replaced with: the instance's variables and id,
/// and the inputs of the approvals that passed its gates.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    /// The instance's variables.
    pub vars: &'a Map<String, Value>,
    /// Gate id → the inputs its latest approval carried.
    pub decisions: &'a Map<String, Value>,
    /// The instance's id.
    pub instance: &'a str,
}

/// `params` with every `{{ vars.* }}` and `{{ instance.id }}` placeholder
/// replaced by the instance's values. Unknown placeholders are left as
/// written (validation refuses them).
pub fn render(params: &Map<String, Value>, vars: &Map<String, Value>, instance: &str) -> Map<String, Value> {
    render_in(params, Context { vars, decisions: &Map::new(), instance })
}

/// `params` with every placeholder replaced from `context`, decision inputs included.
pub fn render_in(params: &Map<String, Value>, context: Context<'_>) -> Map<String, Value> {
    params.iter().map(|(k, v)| (k.clone(), render_value(v, context))).collect()
}

/// One string with its placeholders replaced from `context` (a string that
/// is exactly one placeholder takes the value's JSON type).
pub fn render_text(text: &str, context: Context<'_>) -> Value {
    render_string(text, context)
}

fn render_value(value: &Value, context: Context<'_>) -> Value {
    match value {
        Value::String(text) => render_string(text, context),
        Value::Array(items) => Value::Array(items.iter().map(|v| render_value(v, context)).collect()),
        Value::Object(map) => Value::Object(map.iter().map(|(k, v)| (k.clone(), render_value(v, context))).collect()),
        other => other.clone(),
    }
}

fn lookup(placeholder: &Placeholder, context: Context<'_>) -> Option<Value> {
    match placeholder {
        Placeholder::Var(name) => context.vars.get(name).cloned(),
        Placeholder::VarJson(name) => context.vars.get(name).map(|v| Value::String(v.to_string())),
        Placeholder::InstanceId => Some(Value::String(context.instance.to_owned())),
        Placeholder::Input { gate, name, json } => {
            let value = context.decisions.get(gate)?.get(name)?;
            Some(if *json { Value::String(value.to_string()) } else { value.clone() })
        }
        Placeholder::Unknown(_) => None,
    }
}

fn render_string(text: &str, context: Context<'_>) -> Value {
    if !text.contains("{{") {
        return Value::String(text.to_owned());
    }
    // Exactly one placeholder: keep the value's JSON type.
    let trimmed = text.trim();
    if trimmed.starts_with("{{") && trimmed.ends_with("}}") && trimmed[2..].find("{{").is_none() {
        if let Some(value) = lookup(&parse(trimmed[2..trimmed.len() - 2].trim()), context) {
            return value;
        }
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else { break };
        out.push_str(&rest[..start]);
        match lookup(&parse(after[..end].trim()), context) {
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

    #[test]
    fn decision_inputs_render_from_the_approval_that_passed_the_gate() {
        let params =
            json!({"regions": "{{ decisions.go-live.inputs.regions }}", "arg": "--regions={{ decisions.go-live.inputs.regions | json }}"});
        let decisions = json!({"go-live": {"regions": ["eu", "us"]}});
        let vars = Map::new();
        let context = Context { vars: &vars, decisions: decisions.as_object().unwrap(), instance: "i" };
        let rendered = render_in(params.as_object().unwrap(), context);
        assert_eq!(rendered["regions"], json!(["eu", "us"]), "one placeholder keeps the JSON type");
        assert_eq!(rendered["arg"], "--regions=[\"eu\",\"us\"]");
        assert_eq!(
            placeholders("{{ decisions.go-live.inputs.regions }}"),
            [Placeholder::Input { gate: "go-live".into(), name: "regions".into(), json: false }]
        );
    }
}
