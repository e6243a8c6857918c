//! Field paths into a definition document, such as `phases[2].tasks[1].depends_on`.
//!
//! One path type serves every stage: serde's error and ignored-field paths are
//! converted into it, validation builds it while walking the model, and the
//! locators turn it back into a line of the source file.

use std::fmt;

/// One step of a [`FieldPath`]: a table key or an array index.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Segment {
    /// A key of a table / object.
    Key(String),
    /// An index into an array.
    Index(usize),
}

/// A path from the document root to a field, printed as `phases[2].tasks[1].id`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct FieldPath {
    segments: Vec<Segment>,
}

impl FieldPath {
    /// The document root (prints as an empty string).
    pub fn root() -> Self {
        Self::default()
    }

    /// This path extended by a key.
    pub fn key(&self, key: impl Into<String>) -> Self {
        let mut next = self.clone();
        next.segments.push(Segment::Key(key.into()));
        next
    }

    /// This path extended by an array index.
    pub fn index(&self, index: usize) -> Self {
        let mut next = self.clone();
        next.segments.push(Segment::Index(index));
        next
    }

    /// The steps from the root.
    pub fn segments(&self) -> &[Segment] {
        &self.segments
    }

    /// The path without its last step (the root stays the root).
    pub fn parent(&self) -> Self {
        let mut parent = self.clone();
        parent.segments.pop();
        parent
    }

    /// The last key of the path, if it ends in a key.
    pub fn last_key(&self) -> Option<&str> {
        match self.segments.last() {
            Some(Segment::Key(key)) => Some(key),
            _ => None,
        }
    }

    /// Builds a path from serde_path_to_error's path.
    pub(crate) fn from_serde_path(path: &serde_path_to_error::Path) -> Self {
        let mut out = Self::root();
        for segment in path.iter() {
            match segment {
                serde_path_to_error::Segment::Seq { index } => out.segments.push(Segment::Index(*index)),
                serde_path_to_error::Segment::Map { key } => out.segments.push(Segment::Key(key.clone())),
                serde_path_to_error::Segment::Enum { .. } | serde_path_to_error::Segment::Unknown => {}
            }
        }
        out
    }

    /// Builds a path from serde_ignored's path of an ignored (unknown) field.
    pub(crate) fn from_ignored_path(path: &serde_ignored::Path<'_>) -> Self {
        fn walk(path: &serde_ignored::Path<'_>, out: &mut Vec<Segment>) {
            match path {
                serde_ignored::Path::Root => {}
                serde_ignored::Path::Seq { parent, index } => {
                    walk(parent, out);
                    out.push(Segment::Index(*index));
                }
                serde_ignored::Path::Map { parent, key } => {
                    walk(parent, out);
                    out.push(Segment::Key(key.clone()));
                }
                serde_ignored::Path::Some { parent }
                | serde_ignored::Path::NewtypeStruct { parent }
                | serde_ignored::Path::NewtypeVariant { parent } => walk(parent, out),
            }
        }
        let mut segments = Vec::new();
        walk(path, &mut segments);
        Self { segments }
    }

    /// This path with `other` appended (used when a part of the document is
    /// deserialized on its own and its errors must point into the whole).
    pub(crate) fn join(&self, other: &FieldPath) -> Self {
        let mut joined = self.clone();
        joined.segments.extend(other.segments.iter().cloned());
        joined
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, segment) in self.segments.iter().enumerate() {
            match segment {
                Segment::Index(index) => write!(f, "[{index}]")?,
                Segment::Key(key) => {
                    if i > 0 {
                        f.write_str(".")?;
                    }
                    let plain = !key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
                    if plain {
                        f.write_str(key)?;
                    } else {
                        write!(f, "{key:?}")?;
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prints_like_a_reader_would_write_it() {
        let path = FieldPath::root().key("phases").index(2).key("tasks").index(1).key("depends_on");
        assert_eq!(path.to_string(), "phases[2].tasks[1].depends_on");
        assert_eq!(FieldPath::root().key("vars").key("a b").to_string(), "vars.\"a b\"");
        assert_eq!(FieldPath::root().to_string(), "");
    }
}
