//! Variables given at start, checked against their declared types, and generated instance ids.

use super::*;

/// Applies `name=value` overrides over the declared defaults, typing each
/// value by its declaration; every variable must end up with a value.
pub fn resolve_vars(workflow: &Workflow, overrides: &[(String, String)]) -> Result<Map<String, Value>, Error> {
    let mut vars = Map::new();
    for (name, var) in &workflow.vars {
        if let Some(default) = &var.default {
            vars.insert(name.clone(), default.clone());
        }
    }
    for (name, text) in overrides {
        let Some(var) = workflow.vars.get(name) else {
            let known: Vec<&str> = workflow.vars.keys().map(String::as_str).collect();
            return Err(Error::Invalid(format!(
                "--var {name}: workflow `{}` has no variable `{name}` (it has: {})",
                workflow.name,
                if known.is_empty() { "none".to_owned() } else { known.join(", ") }
            )));
        };
        let value = parse_var(var, text).map_err(|problem| Error::Invalid(format!("--var {name}={text}: {problem}")))?;
        vars.insert(name.clone(), value);
    }
    let missing: Vec<&str> = workflow.vars.keys().filter(|name| !vars.contains_key(*name)).map(String::as_str).collect();
    if !missing.is_empty() {
        return Err(Error::Invalid(format!(
            "variables without a default must be given at start: {}",
            missing.iter().map(|m| format!("--var {m}=...")).collect::<Vec<_>>().join(" ")
        )));
    }
    Ok(vars)
}

fn parse_var(var: &crate::plan::Var, text: &str) -> Result<Value, String> {
    let value = match var.ty {
        VarType::String => Value::String(text.to_owned()),
        VarType::Duration => {
            let duration = humantime::parse_duration(text.trim()).map_err(|e| format!("expected a duration such as 90s or 2m ({e})"))?;
            // The same rules as the default: the bound of every duration and
            // the tightest one the variable's uses need.
            let (min, used_by) = var.min_duration.clone().unwrap_or((Duration::ZERO, String::new()));
            crate::plan::check_duration(duration, min).map_err(|problem| {
                if used_by.is_empty() {
                    problem
                } else {
                    format!("{problem} (it is used as {used_by})")
                }
            })?;
            Value::String(text.trim().to_owned())
        }
        VarType::Number => serde_json::Number::from_f64(text.trim().parse::<f64>().map_err(|_| "expected a number".to_owned())?)
            .map(Value::Number)
            .ok_or_else(|| "expected a finite number".to_owned())?,
        VarType::Integer => Value::from(text.trim().parse::<i64>().map_err(|_| "expected an integer".to_owned())?),
        VarType::Boolean => match text.trim() {
            "true" => Value::Bool(true),
            "false" => Value::Bool(false),
            _ => return Err("expected true or false".to_owned()),
        },
        VarType::List => match serde_json::from_str::<Value>(text) {
            Ok(value @ Value::Array(_)) => value,
            _ => return Err("expected a JSON list such as [1, 2]".to_owned()),
        },
        VarType::Object => match serde_json::from_str::<Value>(text) {
            Ok(value @ Value::Object(_)) => value,
            _ => return Err("expected a JSON object such as {\"k\": 1}".to_owned()),
        },
    };
    Ok(value)
}

/// A new instance id: the workflow's name (as an id: letters, digits, `-`
/// and `_`, starting with a letter or digit) and a UUIDv7, so ids are unique
/// and sort by creation time.
pub(super) fn generated_id(workflow: &str) -> String {
    let stem: String = workflow.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '-' }).take(64).collect();
    let stem = stem.trim_matches(|c: char| c == '-' || c == '_');
    let stem = if stem.is_empty() { "instance" } else { stem };
    format!("{stem}-{}", uuid::Uuid::now_v7().simple())
}
