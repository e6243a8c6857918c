//! Conditions, in CEL (the Common Expression Language, through the `cel` crate).
//!
//! CEL was chosen over evalexpr because it is a specified language used for
//! exactly this job elsewhere (Kubernetes admission rules, Envoy, Google IAM
//! conditions): it has no side effects, no host access, no I/O and no
//! unbounded loops (its only iteration is macros such as `all`/`exists` over
//! finite lists), and it reads nested evidence naturally
//! (`tasks.e2e.output.failed == 0`). We add static checks on top: a size bound,
//! a nesting bound for comprehensions, and a scope check that every name an
//! expression reads exists in the workflow. docs/definitions.md gives the
//! grammar users see.

use std::collections::BTreeSet;
use std::fmt;
use std::sync::Arc;

use cel::common::ast::{EntryExpr, Expr as Node, LiteralValue};
use cel::IdedExpr;
use serde::Serialize;

mod check;
mod cost;
mod fold;

use check::{qualified_name, Checker};

pub use cost::MAX_EVALUATION_STEPS;

/// Longest expression source accepted, in bytes.
pub const MAX_SOURCE_BYTES: usize = 4096;
/// Most AST nodes an expression may have after macro expansion.
pub const MAX_NODES: usize = 2048;
/// Deepest nesting of comprehensions (`all`, `exists`, `map`, `filter`).
/// Evaluation work is bounded by the evidence size to this power.
pub const MAX_COMPREHENSION_DEPTH: usize = 2;
/// Deepest syntactic nesting the parser accepts.
pub const MAX_PARSE_DEPTH: u16 = 48;

/// The names every condition may start with.
pub const ROOTS: [&str; 6] = ["vars", "tasks", "metrics", "signals", "phases", "decisions"];

/// Fields of `tasks.<id>` an expression may read.
pub const TASK_FIELDS: [&str; 5] = ["output", "status", "attempts", "error", "duration_ms"];
/// Fields of `metrics.<watch>` an expression may read.
pub const METRIC_FIELDS: [&str; 4] = ["value", "firing", "samples", "breaching_since"];
/// Fields of `decisions.<gate>` an expression may read.
pub const DECISION_FIELDS: [&str; 3] = ["decision", "by", "inputs"];
/// Fields of `phases.<id>` an expression may read.
pub const PHASE_FIELDS: [&str; 3] = ["status", "attempt", "loops"];

/// The names defined by a workflow, against which expressions are checked.
#[derive(Debug, Default, Clone)]
pub struct Names {
    /// Declared variables.
    pub vars: BTreeSet<String>,
    /// Task ids (unique across the workflow).
    pub tasks: BTreeSet<String>,
    /// Watch ids (readable as `metrics.<id>`).
    pub watches: BTreeSet<String>,
    /// Declared signals.
    pub signals: BTreeSet<String>,
    /// Phase ids.
    pub phases: BTreeSet<String>,
    /// Ids of gates with an approval (readable as `decisions.<gate>`).
    pub decisions: BTreeSet<String>,
}

/// Extra names one kind of expression may read besides [`ROOTS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Gate criteria, task `when`, trigger `when`.
    Condition,
    /// A watch condition, which also reads `value`, the current sample.
    Watch,
}

/// A compiled, checked condition.
#[derive(Clone)]
pub struct Expr {
    source: String,
    program: Arc<cel::Program>,
    references: Arc<Vec<Vec<String>>>,
    /// Whether it has a macro, whose cost is bounded before it runs.
    iterates: bool,
    /// Whether it names `null` itself (`x == null`): then a null value is
    /// something it tests, not missing evidence.
    tests_null: bool,
}

impl Expr {
    /// The dotted evidence paths the expression reads, as segments.
    pub fn references(&self) -> &[Vec<String>] {
        &self.references
    }
}

impl fmt::Debug for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Expr").field(&self.source).finish()
    }
}

impl PartialEq for Expr {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

/// Why an expression was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompileError {
    /// What is wrong.
    pub message: String,
    /// What to do about it.
    pub hint: Option<String>,
}

impl fmt::Display for CompileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl CompileError {
    fn new(message: impl Into<String>, hint: impl Into<String>) -> Self {
        Self { message: message.into(), hint: Some(hint.into()) }
    }
}

impl Expr {
    /// Parses `source` and checks it against the workflow's names.
    pub fn compile(source: &str, names: &Names, scope: Scope) -> Result<Self, CompileError> {
        if source.trim().is_empty() {
            return Err(CompileError::new("the expression is empty", "write a condition such as `vars.x > 1`"));
        }
        if source.len() > MAX_SOURCE_BYTES {
            return Err(CompileError::new(
                format!("the expression is {} bytes long; the limit is {MAX_SOURCE_BYTES}", source.len()),
                "split it into several criteria",
            ));
        }
        let parser = cel::parser::Parser::new().max_recursion_depth(MAX_PARSE_DEPTH);
        let parsed = parser.parse(source).map_err(|errors| {
            // Past the depth bound the parser's own messages are its internals.
            if errors.errors.iter().any(|e| e.msg.contains("Recursion limit")) {
                return CompileError::new(
                    format!("the expression nests deeper than the limit of {MAX_PARSE_DEPTH} levels (parentheses, calls and operators)"),
                    "split it into several criteria, or name intermediate values as task outputs",
                );
            }
            let detail: Vec<String> = errors.errors.iter().map(|e| format!("{}:{}: {}", e.pos.0, e.pos.1, e.msg)).collect();
            CompileError::new(
                format!("cannot parse the expression: {}", detail.join("; ")),
                "conditions are CEL; see docs/definitions.md#conditions",
            )
        })?;
        let mut checker =
            Checker { names, scope, bound: Vec::new(), nodes: 0, comprehension_depth: 0, errors: Vec::new(), references: Vec::new() };
        checker.walk(&parsed);
        if let Some(error) = checker.errors.into_iter().next() {
            return Err(error);
        }
        // The depth-bounded parse above is what the checks read; the program
        // that runs is compiled by the crate's own entry point, which cannot
        // take a parser with our bound (the text passed it already).
        let program = cel::Program::compile(source).map_err(|errors| {
            CompileError::new(format!("cannot compile the expression: {errors}"), "see docs/definitions.md#conditions")
        })?;
        fold::check(program.expression())?;
        let mut references = checker.references;
        references.sort();
        references.dedup();
        let iterates = cost::has_comprehension(program.expression());
        let tests_null = source.split(|c: char| !c.is_ascii_alphanumeric() && c != '_').any(|word| word == "null");
        Ok(Self { source: source.to_owned(), program: Arc::new(program), references: Arc::new(references), iterates, tests_null })
    }

    /// The expression as written.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Evaluates the expression and also returns the values of the evidence it
    /// reads (dotted name → value; missing names are left out), for audit.
    pub fn evaluate_with_values(
        &self,
        evidence: &serde_json::Map<String, serde_json::Value>,
    ) -> (Outcome, std::collections::BTreeMap<String, serde_json::Value>) {
        let mut values = std::collections::BTreeMap::new();
        for path in self.references.iter() {
            let mut current = evidence.get(&path[0]);
            for segment in &path[1..] {
                current = current.and_then(|value| value.get(segment));
            }
            if let Some(value) = current {
                // Whole task outputs can be large; reports want the leaves.
                if !value.is_object() && !value.is_array() || value.to_string().len() <= 256 {
                    values.insert(path.join("."), value.clone());
                }
            }
        }
        (self.evaluate(evidence), values)
    }

    /// Where each value the expression reads came from, when the evidence
    /// says so: a task output that carries a `sources` object beside its
    /// values (`{"p95_ms": 212, "sources": {"p95_ms": "k6 over 5 minutes"}}`)
    /// gives `tasks.perf.output.p95_ms` → `k6 over 5 minutes`.
    pub fn sources(&self, evidence: &serde_json::Map<String, serde_json::Value>) -> std::collections::BTreeMap<String, String> {
        let mut out = std::collections::BTreeMap::new();
        for path in self.references.iter() {
            let Some((leaf, parent)) = path.split_last() else { continue };
            let Some((root, rest)) = parent.split_first() else { continue };
            let mut current = evidence.get(root);
            for segment in rest {
                current = current.and_then(|value| value.get(segment));
            }
            if let Some(source) = current.and_then(|p| p.get("sources")).and_then(|s| s.get(leaf)).and_then(|s| s.as_str()) {
                out.insert(path.join("."), source.to_owned());
            }
        }
        out
    }

    /// Evaluates the expression over `evidence`, a JSON object whose keys are
    /// the roots (`vars`, `tasks`, ... and `value` for watches).
    pub fn evaluate(&self, evidence: &serde_json::Map<String, serde_json::Value>) -> Outcome {
        // A check that had nothing to measure reports null: that is no
        // evidence (a person decides), never a value to compare.
        if !self.tests_null {
            let null = |path: &Vec<String>| {
                let mut current = evidence.get(&path[0]);
                for segment in &path[1..] {
                    current = current.and_then(|value| value.get(segment));
                }
                current.is_some_and(serde_json::Value::is_null)
            };
            if let Some(path) = self.references.iter().find(|path| null(path)) {
                return Outcome::Missing(format!("no evidence for `{}`: it is null", path.join(".")));
            }
        }
        if self.iterates {
            let steps = cost::estimate(self.program.expression(), evidence);
            if steps > MAX_EVALUATION_STEPS {
                return Outcome::Error(format!(
                    "the condition was not evaluated: over this evidence it could take {steps} steps, more than the limit of {MAX_EVALUATION_STEPS} \
                     (its macros iterate over large lists); compare fewer items, or have the task output a summary the condition reads"
                ));
            }
        }
        let mut context = context();
        for (name, value) in evidence {
            context.add_variable_from_value(name.as_str(), to_cel(value));
        }
        match self.program.execute(&context) {
            Ok(cel::Value::Bool(true)) => Outcome::True,
            Ok(cel::Value::Bool(false)) => Outcome::False,
            Ok(other) => Outcome::Error(format!("the condition gave {:?}, not true or false", other.type_of())),
            Err(cel::ExecutionError::NoSuchKey(key)) => Outcome::Missing(format!("no evidence for `{key}`")),
            Err(cel::ExecutionError::UndeclaredReference(name)) => Outcome::Missing(format!("no evidence for `{name}`")),
            Err(error) => Outcome::Error(error.to_string()),
        }
    }
}

/// A context with phasegate's functions and no variables.
fn context() -> cel::Context<'static, 'static> {
    let mut context = cel::Context::default();
    let _ = context.add_function("pct_change", pct_change);
    context
}

/// Converts JSON evidence to CEL values. Integers become CEL `int` whenever
/// they fit, so `tasks.t.output.count * 2` works: CEL does not mix `uint` and
/// `int` in arithmetic, and a generic serde conversion would make every
/// positive JSON integer a `uint`.
fn to_cel(value: &serde_json::Value) -> cel::Value {
    use serde_json::Value as Json;
    match value {
        Json::Null => cel::Value::Null,
        Json::Bool(b) => cel::Value::Bool(*b),
        Json::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => cel::Value::Int(i),
            (None, Some(u)) => cel::Value::UInt(u),
            (None, None) => cel::Value::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        Json::String(s) => cel::Value::String(Arc::new(s.clone())),
        Json::Array(items) => cel::Value::List(Arc::new(items.iter().map(to_cel).collect())),
        Json::Object(map) => {
            let map: std::collections::HashMap<cel::objects::Key, cel::Value> =
                map.iter().map(|(key, value)| (cel::objects::Key::String(Arc::new(key.clone())), to_cel(value))).collect();
            cel::Value::Map(cel::objects::Map { map: Arc::new(map) })
        }
    }
}

/// The result of evaluating a condition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "outcome", content = "detail")]
pub enum Outcome {
    /// The condition holds.
    True,
    /// The condition does not hold.
    False,
    /// The evidence it reads does not exist (yet): neither a pass nor a fail.
    Missing(String),
    /// The evidence exists but the condition cannot be applied to it (wrong type, say).
    Error(String),
}

/// Whether CEL's standard environment defines a function of this name.
///
/// The `cel` crate has no public lookup by name, so the function is tried on
/// integer arguments in an empty context: an unknown name fails with
/// `UndeclaredReference(name)`, a known one succeeds or fails on its argument
/// types. Answers are cached; the set of names is small.
/// `pct_change(value, base)`: the relative change from `base` to `value`
/// (0.1 is 10 % more, -0.1 is 10 % less), for comparisons with baselines:
/// `pct_change(tasks.perf.output.p95_ms, baseline.tasks.perf.output.p95_ms) <= 0.10`.
fn pct_change(cel::extractors::Arguments(args): cel::extractors::Arguments) -> Result<cel::Value, cel::ExecutionError> {
    let number = |value: &cel::Value| match value {
        cel::Value::Int(i) => Some(*i as f64),
        cel::Value::UInt(u) => Some(*u as f64),
        cel::Value::Float(f) => Some(*f),
        _ => None,
    };
    match (args.first().and_then(number), args.get(1).and_then(number), args.len()) {
        (Some(value), Some(base), 2) => {
            if base.abs() < f64::MIN_POSITIVE {
                Err(cel::ExecutionError::function_error("pct_change", "the base is 0; compare absolute values"))
            } else {
                Ok(cel::Value::Float((value - base) / base.abs()))
            }
        }
        _ => Err(cel::ExecutionError::function_error("pct_change", "takes two numbers: pct_change(value, base)")),
    }
}

/// Functions phasegate adds to CEL's standard ones: (name, member call, arity).
const EXTRA_FUNCTIONS: [(&str, bool, usize); 1] = [("pct_change", false, 2)];

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> Names {
        Names {
            vars: ["error_rate_max".to_owned()].into(),
            tasks: ["e2e".to_owned()].into(),
            watches: ["error-rate".to_owned()].into(),
            signals: ["incident".to_owned()].into(),
            phases: ["launch".to_owned()].into(),
            decisions: Default::default(),
        }
    }

    fn evidence(json: serde_json::Value) -> serde_json::Map<String, serde_json::Value> {
        json.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn accepts_names_the_workflow_defines() {
        for source in [
            "tasks.e2e.output.failed == 0",
            "has(signals.incident) && signals.incident.severity == 'P0'",
            "tasks.e2e.output.results.all(r, r.ok)",
            "phases.launch.status == 'passed' && vars.error_rate_max < 1.0",
            "metrics[\"error-rate\"].value > 0.1",
        ] {
            Expr::compile(source, &names(), Scope::Condition).unwrap_or_else(|e| panic!("{source}: {e}"));
        }
        Expr::compile("value > vars.error_rate_max", &names(), Scope::Watch).expect("watch scope reads value");
    }

    #[test]
    fn refuses_unknown_names_with_a_suggestion() {
        let error = Expr::compile("tasks.e2ee.output.failed == 0", &names(), Scope::Condition).unwrap_err();
        assert_eq!(error.message, "unknown task `e2ee` in `tasks.e2ee`");
        assert_eq!(error.hint.as_deref(), Some("did you mean `tasks.e2e`?"));
        let error = Expr::compile("value > 1", &names(), Scope::Condition).unwrap_err();
        assert_eq!(error.message, "unknown name `value`");
        let error = Expr::compile("tasks.e2e.outptu.x == 1", &names(), Scope::Condition).unwrap_err();
        assert!(error.message.contains("has no field `outptu`"), "{}", error.message);
    }

    #[test]
    fn refuses_syntax_errors_and_bounds_work() {
        assert!(Expr::compile("tasks.e2e.output.failed ==", &names(), Scope::Condition).is_err());
        let deep = format!("{}1{}", "(".repeat(200), ")".repeat(200));
        assert!(Expr::compile(&deep, &names(), Scope::Condition).is_err());
        let nested = "vars.l.all(a, vars.l.all(b, vars.l.all(c, true)))";
        let mut with_list = names();
        with_list.vars.insert("l".to_owned());
        let error = Expr::compile(nested, &with_list, Scope::Condition).unwrap_err();
        assert!(error.message.contains("nest more than"), "{}", error.message);
    }

    /// Every function and form docs/definitions.md promises evaluates.
    #[test]
    fn documented_grammar_evaluates() {
        let mut names = names();
        names.vars.insert("s".to_owned());
        names.vars.insert("l".to_owned());
        let data = evidence(serde_json::json!({
            "vars": {"s": "release-1.2", "l": [1, 2, 3], "error_rate_max": 0.1},
            "signals": {"incident": {"severity": "P1"}},
        }));
        for source in [
            "size(vars.l) == 3",
            "vars.s.contains('1.2') && vars.s.startsWith('rel') && vars.s.endsWith('.2')",
            "vars.s.matches('^release-[0-9.]+$')",
            "int('3') == 3 && double(1) == 1.0 && string(1) == '1'",
            "vars.l.all(x, x > 0) && vars.l.exists(x, x == 2) && vars.l.exists_one(x, x == 3)",
            "vars.l.map(x, x * 2)[2] == 6 && size(vars.l.filter(x, x > 1)) == 2",
            "'P1' in ['P0', 'P1'] && has(signals.incident) && !has(signals.incident.owner)",
            "(signals.incident.severity == 'P1' ? 15 : 0) == 15",
            "2.0 * vars.error_rate_max < 0.5 && 7 % 4 == 3",
        ] {
            let expr = Expr::compile(source, &names, Scope::Condition).unwrap_or_else(|e| panic!("{source}: {e}"));
            assert_eq!(expr.evaluate(&data), Outcome::True, "{source}");
        }
    }

    #[test]
    fn evaluates_and_reports_missing_evidence() {
        let expr = Expr::compile("tasks.e2e.output.failed == 0", &names(), Scope::Condition).expect("compiles");
        let pass = evidence(serde_json::json!({"tasks": {"e2e": {"output": {"failed": 0}}}}));
        assert_eq!(expr.evaluate(&pass), Outcome::True);
        let fail = evidence(serde_json::json!({"tasks": {"e2e": {"output": {"failed": 3}}}}));
        assert_eq!(expr.evaluate(&fail), Outcome::False);
        let missing = evidence(serde_json::json!({"tasks": {"e2e": {"output": {}}}}));
        assert!(matches!(expr.evaluate(&missing), Outcome::Missing(_)));
        let nothing = evidence(serde_json::json!({}));
        assert!(matches!(expr.evaluate(&nothing), Outcome::Missing(_)));
        let not_bool = Expr::compile("vars.error_rate_max", &names(), Scope::Condition).expect("compiles");
        let vars = evidence(serde_json::json!({"vars": {"error_rate_max": 0.1}}));
        assert!(matches!(not_bool.evaluate(&vars), Outcome::Error(_)));
    }

    /// Issue 17: a script that had nothing to measure reports `null`; a
    /// criterion over it is inconclusive (a person decides), never a pass
    /// because `null < 15` happened to hold or a fail because it errored.
    #[test]
    fn regression_a_null_measurement_is_no_evidence_not_a_pass() {
        let mut names = names();
        names.vars.insert("p1_response_minutes_max".to_owned());
        names.tasks.insert("sm".to_owned());
        let expr = Expr::compile("tasks.sm.output.p1_response_minutes < vars.p1_response_minutes_max", &names, Scope::Condition)
            .expect("compiles");
        let none = evidence(
            serde_json::json!({"tasks": {"sm": {"output": {"p1_response_minutes": null}}}, "vars": {"p1_response_minutes_max": 15}}),
        );
        assert_eq!(expr.evaluate(&none), Outcome::Missing("no evidence for `tasks.sm.output.p1_response_minutes`: it is null".to_owned()));
        let flag = Expr::compile("tasks.sm.output.ok", &names, Scope::Condition).expect("compiles");
        assert!(matches!(flag.evaluate(&evidence(serde_json::json!({"tasks": {"sm": {"output": {"ok": null}}}}))), Outcome::Missing(_)));
        // A condition that tests for null itself still can.
        let tests = Expr::compile("tasks.sm.output.ok == null", &names, Scope::Condition).expect("compiles");
        assert_eq!(tests.evaluate(&evidence(serde_json::json!({"tasks": {"sm": {"output": {"ok": null}}}}))), Outcome::True);
    }
}
