//! Problems found in a definition, each located by file, field path and line.

use std::fmt;
use std::path::PathBuf;

use serde::Serialize;

use super::path::FieldPath;

/// What kind of problem a [`Diagnostic`] reports; stable, so scripts and tests
/// can match on it (it is printed in `--output json`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// The file could not be read.
    Io,
    /// The file's extension names no supported format.
    UnsupportedFormat,
    /// The text is not valid TOML or JSON.
    Syntax,
    /// A field holds a value of the wrong type or shape.
    Type,
    /// A field the format does not know (often a typo).
    UnknownField,
    /// A required field is missing or empty.
    MissingField,
    /// Two phases, tasks, gates, watches, triggers or steps share an id.
    DuplicateId,
    /// An id that is not a plain identifier.
    BadId,
    /// A reference to a phase, task, gate, watch, agent, signal or var that does not exist.
    UnknownReference,
    /// The phase graph or a task graph has a cycle.
    Cycle,
    /// A duration string that does not parse.
    BadDuration,
    /// A cron expression that does not parse.
    BadSchedule,
    /// A condition that does not parse or uses names outside its scope.
    BadExpression,
    /// A phase with neither tasks nor gates.
    EmptyPhase,
    /// A gate with neither criteria nor an approval.
    EmptyGate,
    /// An approval (or escalation level) needs more approvals than it lists approvers.
    QuorumTooLarge,
    /// A `goto` trigger whose target is not the phase itself or one it depends on.
    GotoNotUpstream,
    /// A value outside its allowed range, or fields that contradict each other.
    InvalidValue,
}

/// One problem in a definition, with enough location to find and fix it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Diagnostic {
    /// The kind of problem.
    pub kind: Kind,
    /// The file the definition came from, when it came from a file.
    pub file: Option<PathBuf>,
    /// The field, e.g. `phases[2].tasks[1].depends_on`; empty for the whole document.
    pub path: String,
    /// 1-based line in the file, where the format gives one.
    pub line: Option<usize>,
    /// 1-based column in the file, where the format gives one.
    pub column: Option<usize>,
    /// What is wrong.
    pub message: String,
    /// What to do about it.
    pub hint: Option<String>,
}

impl Diagnostic {
    /// A diagnostic for the field at `path`, not yet tied to a file.
    pub fn new(kind: Kind, path: &FieldPath, message: impl Into<String>) -> Self {
        Self { kind, file: None, path: path.to_string(), line: None, column: None, message: message.into(), hint: None }
    }

    /// The same diagnostic with a hint on how to fix it.
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut location = String::new();
        if let Some(file) = &self.file {
            location.push_str(&file.display().to_string());
            if let Some(line) = self.line {
                location.push_str(&format!(":{line}"));
                if let Some(column) = self.column {
                    location.push_str(&format!(":{column}"));
                }
            }
        }
        match (location.is_empty(), self.path.is_empty()) {
            (false, false) => write!(f, "{location}: {}: {}", self.path, self.message)?,
            (false, true) => write!(f, "{location}: {}", self.message)?,
            (true, false) => write!(f, "{}: {}", self.path, self.message)?,
            (true, true) => f.write_str(&self.message)?,
        }
        if let Some(hint) = &self.hint {
            write!(f, "\n  hint: {hint}")?;
        }
        Ok(())
    }
}

/// Every problem found in one definition, in document order of discovery.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(transparent)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl Diagnostics {
    /// True when nothing is wrong.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// How many problems were found.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Iterates over the problems.
    pub fn iter(&self) -> std::slice::Iter<'_, Diagnostic> {
        self.0.iter()
    }

    pub(crate) fn push(&mut self, diagnostic: Diagnostic) {
        self.0.push(diagnostic);
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, diagnostic) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "error: {diagnostic}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Diagnostics {}

impl IntoIterator for Diagnostics {
    type Item = Diagnostic;
    type IntoIter = std::vec::IntoIter<Diagnostic>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}
