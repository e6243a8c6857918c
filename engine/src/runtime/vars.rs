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
        let value = var.parse(text).map_err(|problem| Error::Invalid(format!("--var {name}={text}: {problem}")))?;
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

/// A new instance id: the workflow's name (as an id: letters, digits, `-`
/// and `_`, starting with a letter or digit) and a UUIDv7, so ids are unique
/// and sort by creation time.
pub(super) fn generated_id(workflow: &str) -> String {
    let stem: String = workflow.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '-' }).take(64).collect();
    let stem = stem.trim_matches(|c: char| c == '-' || c == '_');
    let stem = if stem.is_empty() { "instance" } else { stem };
    format!("{stem}-{}", uuid::Uuid::now_v7().simple())
}
