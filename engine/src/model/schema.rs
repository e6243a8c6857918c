//! The JSON Schema of the definition format, generated from the model, and the
//! field lookups that make "did you mean" hints.

use std::sync::OnceLock;

use serde_json::Value;

use super::def::WorkflowDef;
use super::path::{FieldPath, Segment};

/// The JSON Schema of [`WorkflowDef`] as a JSON value.
pub fn json_schema() -> &'static Value {
    static SCHEMA: OnceLock<Value> = OnceLock::new();
    SCHEMA.get_or_init(|| {
        let schema = schemars::schema_for!(WorkflowDef);
        serde_json::to_value(schema).unwrap_or(Value::Null)
    })
}

/// The JSON Schema, pretty-printed with a trailing newline, as `phasegate schema` prints it.
pub fn json_schema_text() -> String {
    let mut text = serde_json::to_string_pretty(json_schema()).unwrap_or_default();
    text.push('\n');
    text
}

/// The field names the format allows in the table at `path`.
pub(crate) fn known_fields(path: &FieldPath) -> Vec<String> {
    let root = json_schema();
    let mut current = vec![root];
    for segment in path.segments() {
        let mut next = Vec::new();
        for schema in current {
            for schema in alternatives(root, schema) {
                let child = match segment {
                    Segment::Key(key) => schema
                        .get("properties")
                        .and_then(|p| p.get(key))
                        .or_else(|| schema.get("additionalProperties").filter(|a| a.is_object())),
                    Segment::Index(_) => schema.get("items"),
                };
                next.extend(child);
            }
        }
        current = next;
    }
    let mut fields: Vec<String> = current
        .into_iter()
        .flat_map(|schema| alternatives(root, schema))
        .filter_map(|schema| schema.get("properties").and_then(Value::as_object))
        .flat_map(|properties| properties.keys().cloned())
        .collect();
    fields.sort();
    fields.dedup();
    fields
}

/// A schema with its `$ref` resolved and its `anyOf`/`oneOf`/`allOf` branches spread out.
fn alternatives<'s>(root: &'s Value, schema: &'s Value) -> Vec<&'s Value> {
    let mut out = Vec::new();
    let mut pending = vec![schema];
    // Bounded: the generated schema has no reference cycles deeper than this.
    let mut budget = 64;
    while let Some(schema) = pending.pop() {
        budget -= 1;
        if budget == 0 {
            break;
        }
        if let Some(reference) = schema.get("$ref").and_then(Value::as_str) {
            let target = reference.strip_prefix("#/").map(|pointer| format!("/{pointer}"));
            if let Some(resolved) = target.and_then(|pointer| root.pointer(&pointer)) {
                pending.push(resolved);
            }
            continue;
        }
        for key in ["anyOf", "oneOf", "allOf"] {
            if let Some(branches) = schema.get(key).and_then(Value::as_array) {
                pending.extend(branches.iter());
            }
        }
        out.push(schema);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn knows_the_fields_of_nested_tables() {
        let task = FieldPath::root().key("phases").index(0).key("tasks").index(3);
        let fields = known_fields(&task);
        assert!(fields.contains(&"depends_on".to_owned()), "{fields:?}");
        let approval = FieldPath::root().key("phases").index(0).key("gates").index(0).key("approval");
        assert!(known_fields(&approval).contains(&"self_approval".to_owned()));
        assert!(known_fields(&FieldPath::root()).contains(&"phases".to_owned()));
    }
}
