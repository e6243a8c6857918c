//! From [`WorkflowDef`] to [`Workflow`]: every check a definition must pass,
//! each failure a located [`Diagnostic`], all of them reported in one run.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::time::Duration;

use petgraph::graph::{DiGraph, NodeIndex};

mod gates;
mod phases;
mod reactions;
mod values;

use phases::{reaches, upstream_list};

use super::*;
use crate::expr::{Expr, Names, Scope};
use crate::model::{
    ActionKind, ApprovalDef, DeadlineDef, Diagnostic, Diagnostics, FieldPath, GateDef, Kind, PhaseDef, RetryDef, ScheduleDef, Source,
    StepDef, TaskDef, TriggerDef, VarDef, WatchDef, WorkflowDef,
};

/// The engine's own agent that renders an instance's report to a file.
pub const REPORT_AGENT: &str = "report";

/// The agent names a definition may use: the built-ins plus any the embedding
/// program or configuration registers.
#[derive(Debug, Clone)]
pub struct AgentNames(BTreeSet<String>);

impl AgentNames {
    /// The built-in agents of `phasegate-agents`, and the engine's own
    /// `report` agent.
    pub fn builtin() -> Self {
        let names = phasegate_agents::BUILTIN_AGENTS.iter().copied().chain([REPORT_AGENT]);
        Self(names.map(str::to_owned).collect())
    }

    /// These names plus `name`.
    pub fn with(mut self, name: impl Into<String>) -> Self {
        self.0.insert(name.into());
        self
    }

    /// True if an agent of this name is registered.
    pub fn contains(&self, name: &str) -> bool {
        self.0.contains(name)
    }
}

impl Default for AgentNames {
    fn default() -> Self {
        Self::builtin()
    }
}

/// Reads, parses and validates a definition file; diagnostics carry file and line.
pub fn load(path: &Path, agents: &AgentNames) -> Result<Workflow, Diagnostics> {
    load_source(&Source::read(path)?, agents)
}

/// Parses and validates a definition's text; diagnostics carry the source's
/// file (if any) and lines.
pub fn load_source(source: &Source, agents: &AgentNames) -> Result<Workflow, Diagnostics> {
    let (definition, mut diagnostics) = source.parse_lenient();
    let Some(definition) = definition else {
        return Err(diagnostics);
    };
    match validate(&definition, agents) {
        Ok(workflow) if diagnostics.is_empty() => Ok(workflow),
        Ok(_) => Err(diagnostics),
        Err(more) => {
            diagnostics.0.extend(source.locate(more));
            // Report in the order a reader meets the problems in the file.
            diagnostics.0.sort_by_key(|d| (d.line.unwrap_or(usize::MAX), d.column.unwrap_or(0)));
            Err(diagnostics)
        }
    }
}

/// Checks a raw definition and builds the [`Workflow`] it describes, or
/// returns every problem found (with field paths; see [`Source::locate`] for lines).
pub fn validate(definition: &WorkflowDef, agents: &AgentNames) -> Result<Workflow, Diagnostics> {
    let mut validator = Validator::new(definition, agents);
    let workflow = validator.workflow();
    match (workflow, validator.diagnostics.is_empty()) {
        (Some(workflow), true) => Ok(workflow),
        (_, true) => Err(Diagnostics(vec![Diagnostic::new(
            Kind::InvalidValue,
            &FieldPath::root(),
            "the definition was refused without a specific reason (a phasegate bug; please report it)",
        )])),
        (_, false) => Err(validator.diagnostics),
    }
}

const DEFAULT_MAX_LOOPS: u32 = 3;

struct Validator<'d> {
    definition: &'d WorkflowDef,
    agents: &'d AgentNames,
    diagnostics: Diagnostics,
    names: Names,
    /// Phase id → index (first occurrence).
    phase_index: HashMap<&'d str, usize>,
    /// Task id → (phase index, task index within the phase) (first occurrence).
    task_index: HashMap<&'d str, (usize, usize)>,
    /// `goto` and `rollback --to` targets to check once the phase graph is known:
    /// (target phase, trigger's phase, path of the field).
    upstream_checks: Vec<(usize, usize, FieldPath)>,
    /// The checked variables (for durations written as `{{ vars.NAME }}`).
    checked_vars: BTreeMap<String, Var>,
    /// The phase of the task whose parameters are being checked, if any.
    task_phase: Option<usize>,
    /// Decision inputs read by task parameters, to check once the phase
    /// graph is known: (the gate's phase, the task's phase, path).
    input_checks: Vec<(usize, usize, FieldPath)>,
}

impl<'d> Validator<'d> {
    fn new(definition: &'d WorkflowDef, agents: &'d AgentNames) -> Self {
        Self {
            definition,
            agents,
            diagnostics: Diagnostics::default(),
            names: Names::default(),
            phase_index: HashMap::new(),
            task_index: HashMap::new(),
            upstream_checks: Vec::new(),
            checked_vars: BTreeMap::new(),
            task_phase: None,
            input_checks: Vec::new(),
        }
    }

    fn error(&mut self, kind: Kind, path: &FieldPath, message: impl Into<String>, hint: impl Into<String>) {
        self.diagnostics.push(Diagnostic::new(kind, path, message).with_hint(hint));
    }

    fn workflow(&mut self) -> Option<Workflow> {
        let definition = self.definition;
        let root = FieldPath::root();
        if definition.name.trim().is_empty() {
            self.error(Kind::MissingField, &root.key("name"), "the workflow name is empty", "give the workflow a name");
        }
        self.text_fields();
        let vars = self.vars();
        self.checked_vars = vars.clone().unwrap_or_default();
        self.signals();
        self.collect_ids();

        let phases_path = root.key("phases");
        if definition.phases.is_empty() {
            self.error(Kind::MissingField, &phases_path, "the workflow has no phases", "add at least one [[phases]] table");
        }
        let mut phases: Vec<Option<Phase>> =
            definition.phases.iter().enumerate().map(|(index, phase)| self.phase(index, phase, &phases_path.index(index))).collect();
        let phase_order = self.phase_order();
        if let Some(order) = &phase_order {
            let edges: Vec<Vec<usize>> = phases.iter().map(|phase| phase.as_ref().map(|p| p.after.clone()).unwrap_or_default()).collect();
            self.workflow_reactions(&mut phases, &edges, order);
            for (gate_phase, task_phase, path) in std::mem::take(&mut self.input_checks) {
                if gate_phase == task_phase || !reaches(&edges, gate_phase, task_phase) {
                    let (gate_id, task_id) = (&definition.phases[gate_phase].id, &definition.phases[task_phase].id);
                    self.error(
                        Kind::InvalidValue,
                        &path,
                        format!(
                            "phase `{task_id}` does not run after phase `{gate_id}`, so its gate has not been decided when the task runs"
                        ),
                        format!("read the input in a task of a phase that runs after `{gate_id}`"),
                    );
                }
            }
            for (target, from, path) in std::mem::take(&mut self.upstream_checks) {
                if !reaches(&edges, target, from) {
                    let target_id = &definition.phases[target].id;
                    let from_id = &definition.phases[from].id;
                    self.error(
                        Kind::GotoNotUpstream,
                        &path,
                        format!("phase `{target_id}` is not `{from_id}` itself or a phase it runs after"),
                        format!(
                            "a loop-back can only re-enter work already done; phases upstream of `{from_id}` are: {}",
                            upstream_list(&edges, from, definition, order)
                        ),
                    );
                }
            }
        }
        let deadline = definition.deadline.as_ref().map(|deadline| self.deadline(deadline, &root.key("deadline")));
        let notify = definition.notify.as_ref().map(|step| self.step(step, &root.key("notify"), "notify"));
        let owners = self.principals(&definition.owners, &root.key("owners"));
        let phases = phases.into_iter().collect::<Option<Vec<_>>>()?;
        let task_index = phases
            .iter()
            .enumerate()
            .flat_map(|(p, phase)| phase.tasks.iter().enumerate().map(move |(t, task)| (task.id.clone(), (p, t))))
            .collect();
        Some(Workflow {
            task_index,
            name: definition.name.clone(),
            version: definition.version,
            description: definition.description.clone(),
            owners: owners?,
            vars: {
                vars?;
                std::mem::take(&mut self.checked_vars)
            },
            signals: definition.signals.clone(),
            phases,
            phase_order: phase_order?,
            definition: definition.clone(),
            deadline: deadline.checked()?,
            notify: notify.checked()?,
        })
        .and_then(|workflow| self.waits_within_deadlines(workflow))
    }

    /// Refuses a wait longer than a deadline containing it, with the
    /// variables' defaults (start checks the values given).
    fn waits_within_deadlines(&mut self, workflow: Workflow) -> Option<Workflow> {
        let defaults: Map<String, Value> =
            workflow.vars.iter().filter_map(|(name, var)| var.default.clone().map(|value| (name.clone(), value))).collect();
        let beyond = workflow.waits_beyond_deadlines(&defaults);
        for (p, t, why) in &beyond {
            let path = FieldPath::root().key("phases").index(*p).key("tasks").index(*t).key("params").key("duration");
            self.error(Kind::InvalidValue, &path, why.clone(), "a deadline contains every wait of its phase (or instance)");
        }
        beyond.is_empty().then_some(workflow)
    }

    fn vars(&mut self) -> Option<BTreeMap<String, Var>> {
        let mut out = BTreeMap::new();
        let mut ok = true;
        for (name, var) in &self.definition.vars {
            let path = FieldPath::root().key("vars").key(name);
            if !is_identifier(name) {
                self.error(
                    Kind::BadId,
                    &path,
                    format!("variable name `{name}` is not an identifier"),
                    "use letters, digits and `_`, starting with a letter, so conditions can read `vars.<name>`",
                );
                ok = false;
                continue;
            }
            self.names.vars.insert(name.clone());
            let (ty, default, description, bounds) = match var {
                VarDef::Plain(value) => match infer_type(value) {
                    Some(ty) => (ty, Some(value.clone()), String::new(), Bounds::default()),
                    None => {
                        self.error(
                            Kind::Type,
                            &path,
                            format!("variable `{name}` has no usable default (null)"),
                            "give a value, or write { type = \"string\" } for a variable set at start",
                        );
                        ok = false;
                        continue;
                    }
                },
                VarDef::Typed(typed) => {
                    let inferred = typed.default.as_ref().and_then(infer_type);
                    let Some(ty) = typed.ty.or(inferred) else {
                        self.error(
                            Kind::MissingField,
                            &path.key("type"),
                            format!("variable `{name}` has neither a type nor a default"),
                            "add type = \"string\" (or number, integer, boolean, list, object, duration)",
                        );
                        ok = false;
                        continue;
                    };
                    if let Some(default) = &typed.default {
                        if let Err(problem) = check_var_value(ty, default) {
                            self.error(
                                Kind::Type,
                                &path.key("default"),
                                format!("the default of `{name}` {problem}"),
                                "make the default match the declared type",
                            );
                            ok = false;
                        }
                    }
                    let bounds = Bounds { min: typed.min, max: typed.max, min_length: typed.min_length };
                    let numeric = matches!(ty, VarType::Number | VarType::Integer);
                    for (field, set, applies) in [
                        ("min", typed.min.is_some(), numeric),
                        ("max", typed.max.is_some(), numeric),
                        ("min_length", typed.min_length.is_some(), ty == VarType::String),
                    ] {
                        if set && !applies {
                            self.error(
                                Kind::InvalidValue,
                                &path.key(field),
                                format!("`{field}` does not apply to `{name}`, a {} variable", var_type_name(ty)),
                                "min and max bound numbers and integers; min_length bounds strings",
                            );
                            ok = false;
                        }
                    }
                    if let (Some(min), Some(max)) = (typed.min, typed.max) {
                        if min > max {
                            self.error(
                                Kind::InvalidValue,
                                &path.key("max"),
                                format!("max {max} is below min {min}"),
                                "raise max or lower min",
                            );
                            ok = false;
                        }
                    }
                    // Bounds that contradict each other say nothing about the default.
                    let contradictory = typed.min.zip(typed.max).is_some_and(|(min, max)| min > max);
                    if let Some(Err(problem)) = typed.default.as_ref().filter(|_| !contradictory).map(|default| bounds.check(default)) {
                        self.error(
                            Kind::InvalidValue,
                            &path.key("default"),
                            format!("the default of `{name}`: {problem}"),
                            "give a default within the bounds",
                        );
                        ok = false;
                    }
                    (ty, typed.default.clone(), typed.description.clone(), bounds)
                }
            };
            out.insert(name.clone(), Var { ty, default, description, min_duration: None, bounds });
        }
        ok.then_some(out)
    }

    fn signals(&mut self) {
        for name in self.definition.signals.keys() {
            if is_identifier(name) {
                self.names.signals.insert(name.clone());
            } else {
                self.error(
                    Kind::BadId,
                    &FieldPath::root().key("signals").key(name),
                    format!("signal name `{name}` is not an identifier"),
                    "use letters, digits and `_`, so conditions can read `signals.<name>`",
                );
            }
        }
    }

    /// Records every phase, task and watch id (their names are needed before
    /// any expression can be checked) and reports duplicates and bad ids.
    fn collect_ids(&mut self) {
        let definition = self.definition;
        let mut watch_seen: HashMap<&str, FieldPath> = HashMap::new();
        let workflow_watches = definition.watches.iter().enumerate().map(|(w, watch)| (FieldPath::root().key("watches").index(w), watch));
        let phase_watches = definition.phases.iter().enumerate().flat_map(|(p, phase)| {
            phase
                .watches
                .iter()
                .enumerate()
                .map(move |(w, watch)| (FieldPath::root().key("phases").index(p).key("watches").index(w), watch))
        });
        for (path, watch) in phase_watches.chain(workflow_watches) {
            let watch_path = path.key("id");
            if !self.check_id(&watch.id, &watch_path, "watch") {
                continue;
            }
            if watch_seen.contains_key(watch.id.as_str()) {
                self.error(
                    Kind::DuplicateId,
                    &watch_path,
                    format!("duplicate watch id `{}`", watch.id),
                    "watch ids are unique across the workflow because conditions read them as metrics.<id>",
                );
            } else {
                watch_seen.insert(&watch.id, watch_path);
                self.names.watches.insert(watch.id.clone());
            }
        }
        for (p, phase) in definition.phases.iter().enumerate() {
            let path = FieldPath::root().key("phases").index(p);
            if self.check_id(&phase.id, &path.key("id"), "phase") {
                if self.phase_index.contains_key(phase.id.as_str()) {
                    self.error(
                        Kind::DuplicateId,
                        &path.key("id"),
                        format!("duplicate phase id `{}`", phase.id),
                        "phase ids must be unique; rename one of them",
                    );
                } else {
                    self.phase_index.insert(&phase.id, p);
                    self.names.phases.insert(phase.id.clone());
                }
            }
            for gate in phase.gates.iter().filter(|g| g.approval.is_some()) {
                self.names.decisions.insert(gate.id.clone());
            }
            for (t, task) in phase.tasks.iter().enumerate() {
                let task_path = path.key("tasks").index(t).key("id");
                if !self.check_id(&task.id, &task_path, "task") {
                    continue;
                }
                match self.task_index.get(task.id.as_str()) {
                    Some((other_phase, _)) => {
                        let other = &definition.phases[*other_phase].id;
                        self.error(
                            Kind::DuplicateId,
                            &task_path,
                            format!("duplicate task id `{}` (also in phase `{other}`)", task.id),
                            "task ids are unique across the workflow because conditions read them as tasks.<id>",
                        );
                    }
                    None => {
                        self.task_index.insert(&task.id, (p, t));
                        self.names.tasks.insert(task.id.clone());
                    }
                }
            }
        }
    }

    /// Names, titles, descriptions and labels are shown to people: none may
    /// hold a control or bidirectional-override character.
    fn text_fields(&mut self) {
        let Ok(value) = serde_json::to_value(self.definition) else { return };
        let mut found = Vec::new();
        unsafe_text(&value, &FieldPath::root(), &mut found);
        for (path, c) in found {
            self.error(
                Kind::InvalidValue,
                &path,
                format!("contains the invisible character U+{:04X}, which can make text display other than it reads", c as u32),
                "remove control and bidirectional-override characters from names, titles and descriptions",
            );
        }
    }

    fn check_id(&mut self, id: &str, path: &FieldPath, what: &str) -> bool {
        if id.is_empty() {
            self.error(Kind::MissingField, path, format!("the {what} id is empty"), "give it a short id such as `smoke-tests`");
            return false;
        }
        let valid = id.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
            && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            && id.len() <= 64;
        if !valid {
            self.error(
                Kind::BadId,
                path,
                format!("{what} id `{id}` is not a plain identifier"),
                "use at most 64 letters, digits, `-` and `_`, starting with a letter or digit",
            );
        }
        valid
    }

    fn suggest<'n>(&self, name: &str, known: impl Iterator<Item = &'n String> + Clone, what: &str) -> String {
        match crate::suggest::closest(name, known.clone()) {
            Some(close) => format!("did you mean `{close}`?"),
            None => {
                let list: Vec<&str> = known.map(String::as_str).collect();
                if list.is_empty() {
                    format!("there are no {what} to refer to")
                } else {
                    format!("known {what}: {}", list.join(", "))
                }
            }
        }
    }
}

/// The fields people read in definitions, where unsafe characters are refused.
const SHOWN_FIELDS: [&str; 6] = ["name", "title", "description", "label", "owner", "comment"];

/// Collects the shown fields of `value` (at any depth) that hold an unsafe character.
fn unsafe_text(value: &Value, path: &FieldPath, found: &mut Vec<(FieldPath, char)>) {
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                let child_path = path.key(key);
                if let Some(c) = crate::text::first_unsafe(key) {
                    found.push((child_path.clone(), c));
                }
                match child {
                    Value::String(text) if SHOWN_FIELDS.contains(&key.as_str()) => {
                        if let Some(c) = crate::text::first_unsafe(text) {
                            found.push((child_path, c));
                        }
                    }
                    other => unsafe_text(other, &child_path, found),
                }
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                unsafe_text(item, &path.index(i), found);
            }
        }
        _ => {}
    }
}

/// Parses a humane duration (`90s`, `2m`, `72h`, `90d`, `1h 30m`).
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text.trim()).map_err(|error| error.to_string())
}

fn is_identifier(name: &str) -> bool {
    name.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_') && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn infer_type(value: &Value) -> Option<VarType> {
    Some(match value {
        Value::Null => return None,
        Value::Bool(_) => VarType::Boolean,
        Value::Number(n) if n.is_i64() || n.is_u64() => VarType::Integer,
        Value::Number(_) => VarType::Number,
        Value::String(_) => VarType::String,
        Value::Array(_) => VarType::List,
        Value::Object(_) => VarType::Object,
    })
}

/// Checks a value against a variable type; the error completes "the value …".
pub(crate) fn check_var_value(ty: VarType, value: &Value) -> Result<(), String> {
    let ok = match ty {
        VarType::String => value.is_string(),
        VarType::Number => value.is_number(),
        VarType::Integer => value.is_i64() || value.is_u64(),
        VarType::Boolean => value.is_boolean(),
        VarType::List => value.is_array(),
        VarType::Object => value.is_object(),
        VarType::Duration => {
            return match value.as_str() {
                Some(text) => parse_duration(text)
                    .map_err(|e| format!("is not a duration ({e})"))
                    .and_then(|d| super::check_duration(d, Duration::ZERO)),
                None => Err("is not a duration string".to_owned()),
            }
        }
    };
    if ok {
        Ok(())
    } else {
        Err(format!("is {value}, not a {}", var_type_name(ty)))
    }
}

pub(crate) fn var_type_name(ty: VarType) -> &'static str {
    match ty {
        VarType::String => "string",
        VarType::Number => "number",
        VarType::Integer => "integer",
        VarType::Boolean => "boolean",
        VarType::List => "list",
        VarType::Object => "object",
        VarType::Duration => "duration",
    }
}

/// An optional field that was checked: absent (`None`), valid (`Some(Some)`)
/// or refused (`Some(None)`, already reported).
trait CheckedOptional<T> {
    /// `Some(None)` when absent, `Some(Some(v))` when valid, `None` when refused.
    fn checked(self) -> Option<Option<T>>;
}

impl<T> CheckedOptional<T> for Option<Option<T>> {
    fn checked(self) -> Option<Option<T>> {
        match self {
            None => Some(None),
            Some(Some(value)) => Some(Some(value)),
            Some(None) => None,
        }
    }
}
