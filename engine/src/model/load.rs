//! Reading a definition file into a [`WorkflowDef`], collecting every problem
//! of shape (syntax, types, unknown fields) with its location.

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde_json::Value;

use super::def::{PhaseDef, WorkflowDef};
use super::diagnostic::{Diagnostic, Diagnostics, Kind};
use super::format::Format;
use super::locate::{line_column, Locator};
use super::path::FieldPath;
use super::schema;

/// Definition files larger than this are refused before parsing: a workflow
/// is written by people, and a bound keeps a stray binary file from costing
/// memory and time.
pub const MAX_DEFINITION_BYTES: usize = 4 * 1024 * 1024;

/// A definition's text together with where it came from.
#[derive(Debug, Clone)]
pub struct Source {
    /// The file, when the text came from one.
    pub file: Option<PathBuf>,
    /// The format of the text.
    pub format: Format,
    /// The text itself.
    pub text: String,
}

impl Source {
    /// Reads a definition file; the format follows the extension.
    pub fn read(path: &Path) -> Result<Self, Diagnostics> {
        let fail = |kind, message: String, hint: &str| {
            let mut diagnostic = Diagnostic::new(kind, &FieldPath::root(), message).with_hint(hint);
            diagnostic.file = Some(path.to_path_buf());
            Diagnostics(vec![diagnostic])
        };
        let Some(format) = Format::from_path(path) else {
            return Err(fail(
                Kind::UnsupportedFormat,
                "unsupported file type: definitions are .toml or .json files".to_owned(),
                "rename the file with a .toml or .json extension",
            ));
        };
        let bytes = std::fs::read(path)
            .map_err(|error| fail(Kind::Io, format!("cannot read the file: {error}"), "check the path and its permissions"))?;
        if bytes.len() > MAX_DEFINITION_BYTES {
            return Err(fail(
                Kind::Io,
                format!("the file is {} bytes; definitions are at most {MAX_DEFINITION_BYTES}", bytes.len()),
                "split the workflow or remove the stray content",
            ));
        }
        let text = String::from_utf8(bytes).map_err(|error| {
            fail(
                Kind::Syntax,
                format!("the file is not UTF-8 text (invalid byte at offset {})", error.utf8_error().valid_up_to()),
                "save the file as UTF-8",
            )
        })?;
        Ok(Self { file: Some(path.to_path_buf()), format, text })
    }

    /// A definition given as text, e.g. from an API request.
    pub fn from_text(text: impl Into<String>, format: Format) -> Self {
        Self { file: None, format, text: text.into() }
    }

    /// Parses the text into the raw model, reporting every problem of shape.
    pub fn parse(&self) -> Result<WorkflowDef, Diagnostics> {
        match self.parse_lenient() {
            (Some(def), diagnostics) if diagnostics.is_empty() => Ok(def),
            (_, diagnostics) => Err(diagnostics),
        }
    }

    /// Parses the text into the raw model, returning the model whenever its
    /// shape allowed decoding (unknown fields do not prevent it) together with
    /// every located problem, so later checks can add theirs to the same report.
    pub fn parse_lenient(&self) -> (Option<WorkflowDef>, Diagnostics) {
        let mut diagnostics = Diagnostics::default();
        let parsed = match self.to_value() {
            Ok(value) => decode_workflow(value, &mut diagnostics),
            Err(diagnostic) => {
                diagnostics.push(*diagnostic);
                None
            }
        };
        (parsed, self.locate(diagnostics))
    }

    /// Fills in file, line and column of diagnostics that point into this source.
    pub fn locate(&self, mut diagnostics: Diagnostics) -> Diagnostics {
        let needs_lines = diagnostics.iter().any(|d| d.line.is_none());
        let locator = if needs_lines { Locator::new(&self.text, self.format) } else { Locator::None };
        for diagnostic in &mut diagnostics.0 {
            if diagnostic.file.is_none() {
                diagnostic.file.clone_from(&self.file);
            }
            if diagnostic.line.is_none() {
                if let Some(path) = parse_printed_path(&diagnostic.path) {
                    if let Some((line, column)) = locator.locate(&path) {
                        diagnostic.line = Some(line);
                        diagnostic.column = Some(column);
                    }
                }
            }
        }
        diagnostics
    }

    fn to_value(&self) -> Result<Value, Box<Diagnostic>> {
        match self.format {
            Format::Toml => toml::from_str::<Value>(&self.text).map_err(|error| {
                let mut diagnostic = Diagnostic::new(Kind::Syntax, &FieldPath::root(), format!("invalid TOML: {}", error.message().trim()))
                    .with_hint("fix the syntax at the line shown; `phasegate validate` checks again");
                if let Some(span) = error.span() {
                    let (line, column) = line_column(&self.text, span.start);
                    diagnostic.line = Some(line);
                    diagnostic.column = Some(column);
                }
                Box::new(diagnostic)
            }),
            Format::Json => super::strict_json::from_str(&self.text).map_err(|error| {
                let mut diagnostic = Diagnostic::new(Kind::Syntax, &FieldPath::root(), format!("invalid JSON: {error}"))
                    .with_hint("fix the syntax at the line shown; `phasegate validate` checks again");
                if error.line() > 0 {
                    diagnostic.line = Some(error.line());
                    diagnostic.column = Some(error.column());
                }
                Box::new(diagnostic)
            }),
        }
    }
}

/// Decodes the document piece by piece (the header, then each phase) so that a
/// type error in one phase does not hide the problems of the others.
fn decode_workflow(value: Value, diagnostics: &mut Diagnostics) -> Option<WorkflowDef> {
    let root = FieldPath::root();
    let Value::Object(mut table) = value else {
        diagnostics.push(
            Diagnostic::new(Kind::Type, &root, "the definition must be a table (TOML) or an object (JSON)")
                .with_hint("start from workflows/hello.toml"),
        );
        return None;
    };
    let phases_value = table.remove("phases");
    table.insert("phases".to_owned(), Value::Array(Vec::new()));
    let header: Option<WorkflowDef> = decode_part(Value::Object(table), &root, diagnostics);

    let phases_path = root.key("phases");
    let phases = match phases_value {
        None => {
            diagnostics.push(
                Diagnostic::new(Kind::MissingField, &phases_path, "the workflow has no `phases`")
                    .with_hint("add at least one [[phases]] table with an id and tasks or gates"),
            );
            None
        }
        Some(Value::Array(items)) => {
            let decoded: Vec<Option<PhaseDef>> =
                items.into_iter().enumerate().map(|(i, item)| decode_part(item, &phases_path.index(i), diagnostics)).collect();
            decoded.into_iter().collect::<Option<Vec<_>>>()
        }
        Some(other) => {
            diagnostics.push(
                Diagnostic::new(Kind::Type, &phases_path, format!("`phases` must be an array of tables, found {}", json_type_name(&other)))
                    .with_hint("write each phase as a [[phases]] table"),
            );
            None
        }
    };
    let mut workflow = header?;
    workflow.phases = phases?;
    Some(workflow)
}

/// Decodes one part of the document, recording unknown fields (with a "did you
/// mean") and the first type error with their full paths.
fn decode_part<T: DeserializeOwned>(value: Value, base: &FieldPath, diagnostics: &mut Diagnostics) -> Option<T> {
    let mut unknown = Vec::new();
    let mut track = serde_path_to_error::Track::new();
    let result = {
        let deserializer = serde_path_to_error::Deserializer::new(value, &mut track);
        serde_ignored::deserialize(deserializer, |path| unknown.push(FieldPath::from_ignored_path(&path)))
    };
    for path in unknown {
        diagnostics.push(unknown_field(&base.join(&path)));
    }
    match result {
        Ok(decoded) => Some(decoded),
        Err(error) => {
            let path = base.join(&FieldPath::from_serde_path(&track.path()));
            diagnostics.push(type_error(&path, &error.to_string()));
            None
        }
    }
}

fn unknown_field(path: &FieldPath) -> Diagnostic {
    let name = path.last_key().unwrap_or_default();
    let known = schema::known_fields(&path.parent());
    let mut diagnostic = Diagnostic::new(Kind::UnknownField, path, format!("unknown field `{name}`"));
    diagnostic.hint = Some(match crate::suggest::closest(name, &known) {
        Some(suggestion) => format!("did you mean `{suggestion}`?"),
        None if known.is_empty() => "remove it".to_owned(),
        None => format!("remove it; the fields allowed here are: {}", known.join(", ")),
    });
    diagnostic
}

fn type_error(path: &FieldPath, message: &str) -> Diagnostic {
    // serde's messages are precise ("invalid type: string \"x\", expected u32");
    // the kind is recovered from their stable prefixes.
    let kind = if message.starts_with("missing field") {
        Kind::MissingField
    } else if message.starts_with("unknown field") {
        Kind::UnknownField
    } else if message.starts_with("unknown variant") {
        Kind::InvalidValue
    } else {
        Kind::Type
    };
    let hint = match kind {
        Kind::MissingField => "add the field; docs/definitions.md lists every field",
        Kind::UnknownField => "remove or rename the field; docs/definitions.md lists every field",
        Kind::InvalidValue => "use one of the values listed",
        _ => "docs/definitions.md gives the type of every field",
    };
    Diagnostic::new(kind, path, message.to_owned()).with_hint(hint)
}

fn json_type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "a table",
    }
}

/// Reads a printed path (`phases[2].tasks[1].id`, with `"quoted keys"`) back
/// into a [`FieldPath`], so located diagnostics need not carry both forms.
fn parse_printed_path(printed: &str) -> Option<FieldPath> {
    let mut path = FieldPath::root();
    let mut chars = printed.chars().peekable();
    while let Some(&c) = chars.peek() {
        match c {
            '.' => {
                chars.next();
            }
            '[' => {
                chars.next();
                let digits: String = chars.by_ref().take_while(|c| *c != ']').collect();
                path = path.index(digits.parse().ok()?);
            }
            '"' => {
                chars.next();
                let mut key = String::new();
                let mut escaped = false;
                for c in chars.by_ref() {
                    match (escaped, c) {
                        (false, '\\') => escaped = true,
                        (false, '"') => break,
                        _ => {
                            escaped = false;
                            key.push(c);
                        }
                    }
                }
                path = path.key(key);
            }
            _ => {
                let mut key = String::new();
                while let Some(&c) = chars.peek() {
                    if c == '.' || c == '[' {
                        break;
                    }
                    key.push(c);
                    chars.next();
                }
                path = path.key(key);
            }
        }
    }
    Some(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printed_paths_round_trip() {
        for printed in ["", "phases[2].tasks[1].depends_on", "vars.\"a b\"", "phases[0].gates[1].approval.escalation[0]"] {
            let path = parse_printed_path(printed).expect("parses");
            assert_eq!(path.to_string(), printed);
        }
    }
}
