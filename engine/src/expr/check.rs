//! The scope check of a compiled condition: every name it reads is evidence
//! the definition provides, every function is one phasegate allows, and its
//! size and nesting stay within bounds.

use super::*;

pub(super) struct Checker<'n> {
    pub(super) names: &'n Names,
    /// Dotted names of evidence the expression reads, for reports.
    pub(super) references: Vec<Vec<String>>,
    pub(super) scope: Scope,
    /// Variables bound by enclosing comprehensions (`x` in `list.all(x, ...)`).
    pub(super) bound: Vec<String>,
    pub(super) nodes: usize,
    pub(super) comprehension_depth: usize,
    pub(super) errors: Vec<CompileError>,
}

impl Checker<'_> {
    pub(super) fn walk(&mut self, expr: &IdedExpr) {
        self.nodes += 1;
        if self.nodes == MAX_NODES + 1 {
            self.errors
                .push(CompileError::new(format!("the expression has more than {MAX_NODES} parts"), "split it into several criteria"));
        }
        match &expr.expr {
            Node::Unspecified | Node::Literal(_) => {}
            Node::Ident(name) => self.check_path(&[name.as_str()]),
            Node::Select(select) => match qualified_name(expr) {
                Some(segments) => self.check_path(&segments),
                None => self.walk(&select.operand),
            },
            Node::Call(call) => {
                // `metrics["error-rate"]` is how ids with dashes are read;
                // check them like `metrics.name`.
                if call.func_name == cel::common::ast::operators::INDEX && call.args.len() == 2 {
                    if let Some(segments) = qualified_name(expr) {
                        let root = segments[0];
                        if (ROOTS.contains(&root) || root == "baseline") && !self.bound.iter().any(|b| b == root) {
                            self.check_path(&segments);
                            return;
                        }
                    }
                }
                let is_function = call.func_name.chars().next().is_some_and(|c| c.is_ascii_alphabetic());
                if is_function && !function_exists(&call.func_name, call.target.is_some(), call.args.len()) {
                    self.errors.push(CompileError::new(
                        format!("unknown function `{}`", call.func_name),
                        "see the functions listed in docs/definitions.md#conditions",
                    ));
                }
                if let Some(target) = &call.target {
                    self.walk(target);
                }
                for argument in &call.args {
                    self.walk(argument);
                }
            }
            Node::Comprehension(comprehension) => {
                self.walk(&comprehension.iter_range);
                self.walk(&comprehension.accu_init);
                self.comprehension_depth += 1;
                if self.comprehension_depth == MAX_COMPREHENSION_DEPTH + 1 {
                    self.errors.push(CompileError::new(
                        format!("macros such as all/exists/map/filter nest more than {MAX_COMPREHENSION_DEPTH} deep"),
                        "flatten the condition; evaluation work grows with each level",
                    ));
                }
                let before = self.bound.len();
                self.bound.push(comprehension.iter_var.clone());
                self.bound.extend(comprehension.iter_var2.iter().cloned());
                self.bound.push(comprehension.accu_var.clone());
                self.walk(&comprehension.loop_cond);
                self.walk(&comprehension.loop_step);
                self.walk(&comprehension.result);
                self.bound.truncate(before);
                self.comprehension_depth -= 1;
            }
            Node::List(list) => {
                for element in &list.elements {
                    self.walk(element);
                }
            }
            Node::Map(map) => {
                for entry in &map.entries {
                    match &entry.expr {
                        EntryExpr::MapEntry(entry) => {
                            self.walk(&entry.key);
                            self.walk(&entry.value);
                        }
                        EntryExpr::StructField(field) => self.walk(&field.value),
                    }
                }
            }
            Node::Struct(structure) => {
                self.errors.push(CompileError::new(
                    format!("message construction `{}{{...}}` is not supported", structure.type_name),
                    "use a map literal `{\"key\": value}` instead",
                ));
            }
        }
    }

    /// Checks a dotted name such as `tasks.e2e.output.failed`.
    pub(super) fn check_path(&mut self, segments: &[&str]) {
        let root = segments[0];
        if self.bound.iter().any(|bound| bound == root) {
            return;
        }
        // `baseline.tasks.perf.output.p95_ms`: the same evidence as it was
        // when the gate last passed; checked like the path after `baseline.`.
        if root == "baseline" {
            self.references.push(segments.iter().map(|s| (*s).to_owned()).collect());
            if segments.len() < 3 {
                self.errors.push(CompileError::new(
                    "`baseline` is read with a path, e.g. `baseline.tasks.perf.output.p95_ms`",
                    "name the evidence whose earlier value you compare with",
                ));
                return;
            }
            let recorded = self.references.len();
            self.check_path(&segments[1..]);
            self.references.truncate(recorded);
            return;
        }
        if segments.len() > 1 || root == "value" {
            self.references.push(segments.iter().map(|s| (*s).to_owned()).collect());
        }
        if root == "value" && self.scope == Scope::Watch {
            return;
        }
        let (known, fields, what): (&BTreeSet<String>, &[&str], &str) = match root {
            "vars" => (&self.names.vars, &[], "variable"),
            "tasks" => (&self.names.tasks, &TASK_FIELDS, "task"),
            "metrics" => (&self.names.watches, &METRIC_FIELDS, "watch"),
            "signals" => (&self.names.signals, &[], "signal"),
            "phases" => (&self.names.phases, &PHASE_FIELDS, "phase"),
            "decisions" => (&self.names.decisions, &DECISION_FIELDS, "gate with an approval"),
            _ => {
                let allowed = match self.scope {
                    Scope::Condition => ROOTS.join(", "),
                    Scope::Watch => format!("value, {}", ROOTS.join(", ")),
                };
                self.errors.push(CompileError::new(format!("unknown name `{root}`"), format!("conditions may read only {allowed}")));
                return;
            }
        };
        let Some(name) = segments.get(1) else { return };
        if !known.contains(*name) {
            let hint = match crate::suggest::closest(name, known.iter()) {
                Some(close) => format!("did you mean `{root}.{close}`?"),
                None if known.is_empty() => format!("the workflow declares no {what}s"),
                None => format!("known {what}s: {}", known.iter().cloned().collect::<Vec<_>>().join(", ")),
            };
            let dashed = known.iter().find(|k| k.starts_with(&format!("{name}-")));
            let hint = match dashed {
                Some(dashed) => format!("ids with dashes are read as {root}[\"{dashed}\"]"),
                None => hint,
            };
            self.errors.push(CompileError::new(format!("unknown {what} `{name}` in `{root}.{name}`"), hint));
            return;
        }
        if let Some(field) = segments.get(2) {
            if !fields.is_empty() && !fields.contains(field) {
                self.errors.push(CompileError::new(
                    format!("`{root}.{name}` has no field `{field}`"),
                    format!("its fields are: {}", fields.join(", ")),
                ));
            }
        }
    }
}

fn function_exists(name: &str, member: bool, arity: usize) -> bool {
    if EXTRA_FUNCTIONS.contains(&(name, member, arity)) {
        return true;
    }
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};
    /// (name, called as a member, arity) → defined.
    type Cache = Mutex<HashMap<(String, bool, usize), bool>>;
    static KNOWN: OnceLock<Cache> = OnceLock::new();
    let key = (name.to_owned(), member, arity.min(8));
    let cache = KNOWN.get_or_init(|| Mutex::new(HashMap::new()));
    if let Some(known) = cache.lock().ok().and_then(|cache| cache.get(&key).copied()) {
        return known;
    }
    let arguments = vec!["1"; key.2].join(", ");
    let trial = if member { format!("1.{name}({arguments})") } else { format!("{name}({arguments})") };
    let exists = match cel::Program::compile(&trial) {
        Ok(program) => !matches!(
            program.execute(&cel::Context::default()),
            Err(cel::ExecutionError::UndeclaredReference(ref missing)) if missing.as_str() == name
        ),
        // A name the parser itself refuses as a call cannot be a function.
        Err(_) => false,
    };
    if let Ok(mut cache) = cache.lock() {
        cache.insert(key, exists);
    }
    exists
}

/// The segments of a plain dotted name (`a.b.c`), or `None` if the expression
/// is something else (a call, an index, a `has()` test).
pub(super) fn qualified_name(expr: &IdedExpr) -> Option<Vec<&str>> {
    let mut segments = Vec::new();
    let mut current = expr;
    loop {
        match &current.expr {
            Node::Ident(name) => {
                segments.push(name.as_str());
                segments.reverse();
                return Some(segments);
            }
            Node::Select(select) => {
                segments.push(select.field.as_str());
                current = &select.operand;
            }
            // `tasks["e2e-suite"].output.failed`: a dashed id read by index.
            Node::Call(call) if call.func_name == cel::common::ast::operators::INDEX && call.args.len() == 2 => {
                let Node::Literal(LiteralValue::String(key)) = &call.args[1].expr else {
                    return None;
                };
                segments.push(key.inner());
                current = &call.args[0];
            }
            _ => return None,
        }
    }
}
