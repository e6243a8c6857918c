//! Turns a [`FieldPath`] back into a line and column of the source text.
//!
//! serde forgets where values came from, so the loader re-reads the text with
//! span-keeping parsers (toml_edit for TOML, jsonc-parser for JSON) only when
//! there is something to report.

use std::ops::Range;

use super::format::Format;
use super::path::{FieldPath, Segment};

/// A 1-based line and column.
pub(crate) type LineColumn = (usize, usize);

/// Finds the line of a field path in one document.
pub(crate) enum Locator<'a> {
    Toml(toml_edit::Document<&'a str>, &'a str),
    Json(Option<jsonc_parser::ast::Value<'a>>, &'a str),
    None,
}

impl<'a> Locator<'a> {
    pub(crate) fn new(text: &'a str, format: Format) -> Self {
        match format {
            Format::Toml => match toml_edit::Document::parse(text) {
                Ok(document) => Locator::Toml(document, text),
                Err(_) => Locator::None,
            },
            Format::Json => {
                let parsed =
                    jsonc_parser::parse_to_ast(text, &jsonc_parser::CollectOptions::default(), &jsonc_parser::ParseOptions::default());
                match parsed {
                    Ok(result) => Locator::Json(result.value, text),
                    Err(_) => Locator::None,
                }
            }
        }
    }

    /// The line and column of the deepest part of `path` present in the text.
    pub(crate) fn locate(&self, path: &FieldPath) -> Option<LineColumn> {
        match self {
            Locator::Toml(document, text) => toml_span(document, path).map(|span| line_column(text, span.start)),
            Locator::Json(Some(value), text) => json_span(value, path).map(|span| line_column(text, span.start)),
            Locator::Json(None, _) | Locator::None => None,
        }
    }
}

/// 1-based line and column of a byte offset.
pub(crate) fn line_column(text: &str, offset: usize) -> LineColumn {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

#[derive(Clone, Copy)]
enum TomlNode<'d> {
    Item(&'d toml_edit::Item),
    Table(&'d toml_edit::Table),
    Value(&'d toml_edit::Value),
}

fn toml_span(document: &toml_edit::Document<&str>, path: &FieldPath) -> Option<Range<usize>> {
    let mut node = TomlNode::Table(document.as_table());
    // A field missing from the top level is reported at the start of the file.
    let mut best = Some(0..0);
    for segment in path.segments() {
        let table = match node {
            TomlNode::Table(table) | TomlNode::Item(toml_edit::Item::Table(table)) => Some(table),
            _ => None,
        };
        let inline = match node {
            TomlNode::Value(toml_edit::Value::InlineTable(inline))
            | TomlNode::Item(toml_edit::Item::Value(toml_edit::Value::InlineTable(inline))) => Some(inline),
            _ => None,
        };
        let array = match node {
            TomlNode::Value(toml_edit::Value::Array(array)) | TomlNode::Item(toml_edit::Item::Value(toml_edit::Value::Array(array))) => {
                Some(array)
            }
            _ => None,
        };
        let next = match segment {
            Segment::Key(key) => {
                if let Some(table) = table {
                    if let Some(span) = table.key(key).and_then(|k| k.span()) {
                        best = Some(span);
                    }
                    table.get(key).map(TomlNode::Item)
                } else if let Some(inline) = inline {
                    if let Some(span) = inline.key(key).and_then(|k| k.span()) {
                        best = Some(span);
                    }
                    inline.get(key).map(TomlNode::Value)
                } else {
                    None
                }
            }
            Segment::Index(index) => match (node, array) {
                (TomlNode::Item(toml_edit::Item::ArrayOfTables(tables)), _) => tables.get(*index).map(TomlNode::Table),
                (_, Some(array)) => array.get(*index).map(TomlNode::Value),
                _ => None,
            },
        };
        let Some(next) = next else { break };
        let span = match &next {
            TomlNode::Item(item) => item.span(),
            TomlNode::Table(table) => table.span(),
            TomlNode::Value(value) => value.span(),
        };
        // A key's span is more useful than its value's when the value is a
        // table: a table's span may be missing or start at its header.
        if let (Some(span), Segment::Index(_)) = (span.clone(), segment) {
            best = Some(span);
        } else if best.is_none() {
            best = span;
        }
        node = next;
    }
    best
}

fn json_span(root: &jsonc_parser::ast::Value<'_>, path: &FieldPath) -> Option<Range<usize>> {
    use jsonc_parser::ast::Value;
    use jsonc_parser::common::Ranged;
    let mut node = root;
    let mut best = root.range();
    for segment in path.segments() {
        match (segment, node) {
            (Segment::Key(key), Value::Object(object)) => {
                let Some(property) = object.properties.iter().find(|p| p.name.as_str() == key) else {
                    break;
                };
                best = property.range;
                node = &property.value;
            }
            (Segment::Index(index), Value::Array(array)) => {
                let Some(element) = array.elements.get(*index) else {
                    break;
                };
                best = element.range();
                node = element;
            }
            _ => break,
        }
    }
    Some(best.start..best.end)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_lines_in_toml_and_json() {
        let toml = "name = \"x\"\n\n[[phases]]\nid = \"a\"\n\n[[phases.tasks]]\nid = \"t\"\nagent = \"noop\"\n";
        let locator = Locator::new(toml, Format::Toml);
        let path = FieldPath::root().key("phases").index(0).key("tasks").index(0).key("agent");
        assert_eq!(locator.locate(&path).map(|l| l.0), Some(8));
        let json = "{\n  \"name\": \"x\",\n  \"phases\": [\n    {\"id\": \"a\",\n     \"tasks\": []}\n  ]\n}\n";
        let locator = Locator::new(json, Format::Json);
        let path = FieldPath::root().key("phases").index(0).key("tasks");
        assert_eq!(locator.locate(&path).map(|l| l.0), Some(5));
    }

    #[test]
    fn line_column_counts_from_one() {
        assert_eq!(line_column("ab\ncd", 4), (2, 2));
        assert_eq!(line_column("", 10), (1, 1));
    }
}
