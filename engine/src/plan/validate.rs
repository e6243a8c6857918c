//! From [`WorkflowDef`] to [`Workflow`]: every check a definition must pass,
//! each failure a located [`Diagnostic`], all of them reported in one run.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::time::Duration;

use petgraph::graph::{DiGraph, NodeIndex};

use super::*;
use crate::expr::{Expr, Names, Scope};
use crate::model::{
    ActionKind, ApprovalDef, Diagnostic, Diagnostics, FieldPath, GateDef, Kind, PhaseDef, RetryDef, ScheduleDef, Source, StepDef, TaskDef,
    TriggerDef, VarDef, WatchDef, WorkflowDef,
};

/// The agent names a definition may use: the built-ins plus any the embedding
/// program or configuration registers.
#[derive(Debug, Clone)]
pub struct AgentNames(BTreeSet<String>);

impl AgentNames {
    /// The built-in agents of `phasegate-agents`.
    pub fn builtin() -> Self {
        Self(phasegate_agents::BUILTIN_AGENTS.iter().map(|name| (*name).to_owned()).collect())
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
        let phases: Vec<Option<Phase>> =
            definition.phases.iter().enumerate().map(|(index, phase)| self.phase(index, phase, &phases_path.index(index))).collect();
        let phase_order = self.phase_order();
        if let Some(order) = &phase_order {
            let edges: Vec<Vec<usize>> = phases.iter().map(|phase| phase.as_ref().map(|p| p.after.clone()).unwrap_or_default()).collect();
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
            vars: {
                vars?;
                std::mem::take(&mut self.checked_vars)
            },
            signals: definition.signals.clone(),
            phases,
            phase_order: phase_order?,
            definition: definition.clone(),
        })
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
            let (ty, default, description) = match var {
                VarDef::Plain(value) => match infer_type(value) {
                    Some(ty) => (ty, Some(value.clone()), String::new()),
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
                    (ty, typed.default.clone(), typed.description.clone())
                }
            };
            out.insert(name.clone(), Var { ty, default, description, min_duration: None });
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
            for (w, watch) in phase.watches.iter().enumerate() {
                let watch_path = path.key("watches").index(w).key("id");
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

    fn phase(&mut self, index: usize, def: &'d PhaseDef, path: &FieldPath) -> Option<Phase> {
        if def.tasks.is_empty() && def.gates.is_empty() {
            self.error(
                Kind::EmptyPhase,
                path,
                format!("phase `{}` has neither tasks nor gates", def.id),
                "add the work it does as [[phases.tasks]] or the decision it waits for as [[phases.gates]]",
            );
        }
        let owner = def.owner.as_deref().and_then(|owner| self.principal(owner, &path.key("owner")));
        let after = self.phase_refs(&def.after, &path.key("after"), index);

        let tasks_path = path.key("tasks");
        let mut task_ids: HashMap<&str, usize> = HashMap::new();
        for (t, task) in def.tasks.iter().enumerate() {
            task_ids.entry(&task.id).or_insert(t);
        }
        let tasks: Vec<Option<Task>> =
            def.tasks.iter().enumerate().map(|(t, task)| self.task(def, task, &task_ids, &tasks_path.index(t))).collect();
        let task_order = self.task_order(def, &tasks, path);

        let mut gate_ids = BTreeSet::new();
        let gates: Vec<Option<Gate>> = def
            .gates
            .iter()
            .enumerate()
            .map(|(g, gate)| {
                let gate_path = path.key("gates").index(g);
                if self.check_id(&gate.id, &gate_path.key("id"), "gate") && !gate_ids.insert(gate.id.as_str()) {
                    self.error(
                        Kind::DuplicateId,
                        &gate_path.key("id"),
                        format!("duplicate gate id `{}` in phase `{}`", gate.id, def.id),
                        "gate ids must be unique within their phase",
                    );
                }
                self.gate(gate, &gate_path)
            })
            .collect();
        let watches: Vec<Option<Watch>> =
            def.watches.iter().enumerate().map(|(w, watch)| self.watch(watch, &path.key("watches").index(w))).collect();
        let mut trigger_ids = BTreeSet::new();
        let triggers: Vec<Option<Trigger>> = def
            .triggers
            .iter()
            .enumerate()
            .map(|(i, trigger)| {
                let trigger_path = path.key("triggers").index(i);
                if let Some(id) = &trigger.id {
                    if self.check_id(id, &trigger_path.key("id"), "trigger") && !trigger_ids.insert(id.as_str()) {
                        self.error(
                            Kind::DuplicateId,
                            &trigger_path.key("id"),
                            format!("duplicate trigger id `{id}` in phase `{}`", def.id),
                            "trigger ids must be unique within their phase",
                        );
                    }
                }
                self.trigger(index, def, i, trigger, &trigger_path)
            })
            .collect();
        let mut step_ids = BTreeSet::new();
        let rollback: Vec<Option<Step>> = def
            .rollback
            .iter()
            .enumerate()
            .map(|(s, step)| {
                let step_path = path.key("rollback").index(s);
                match &step.id {
                    None => self.error(
                        Kind::MissingField,
                        &step_path.key("id"),
                        "a phase rollback step needs an id",
                        "give it an id such as `dns-revert`; reports and history name steps by it",
                    ),
                    Some(id) => {
                        if self.check_id(id, &step_path.key("id"), "rollback step") && !step_ids.insert(id.as_str()) {
                            self.error(
                                Kind::DuplicateId,
                                &step_path.key("id"),
                                format!("duplicate rollback step id `{id}` in phase `{}`", def.id),
                                "rollback step ids must be unique within their phase",
                            );
                        }
                    }
                }
                self.step(step, &step_path, &format!("{}-rollback-{s}", def.id))
            })
            .collect();
        let schedule = def.schedule.as_ref().map(|schedule| self.schedule(schedule, &path.key("schedule")));
        let schedule_when = def
            .schedule
            .as_ref()
            .and_then(|s| s.when.as_deref())
            .map(|source| self.expr(source, &path.key("schedule").key("when"), Scope::Condition));

        Some(Phase {
            id: def.id.clone(),
            title: if def.title.is_empty() { def.id.clone() } else { def.title.clone() },
            description: def.description.clone(),
            owner,
            after: after?,
            tasks: tasks.into_iter().collect::<Option<Vec<_>>>()?,
            task_order: task_order?,
            gates: gates.into_iter().collect::<Option<Vec<_>>>()?,
            watches: watches.into_iter().collect::<Option<Vec<_>>>()?,
            triggers: triggers.into_iter().collect::<Option<Vec<_>>>()?,
            rollback: rollback.into_iter().collect::<Option<Vec<_>>>()?,
            schedule: schedule.flatten(),
            schedule_when: schedule_when.checked()?,
        })
    }

    fn phase_refs(&mut self, refs: &[String], path: &FieldPath, own: usize) -> Option<Vec<usize>> {
        let mut out = Vec::new();
        let mut ok = true;
        for (i, id) in refs.iter().enumerate() {
            match self.phase_index.get(id.as_str()) {
                Some(&target) if target == own => {
                    self.error(
                        Kind::Cycle,
                        &path.index(i),
                        format!("phase `{id}` runs after itself"),
                        "remove it from its own `after` list",
                    );
                    ok = false;
                }
                Some(&target) => {
                    if !out.contains(&target) {
                        out.push(target);
                    }
                }
                None => {
                    let hint = self.suggest(id, self.names.phases.iter(), "phases");
                    self.error(Kind::UnknownReference, &path.index(i), format!("unknown phase `{id}`"), hint);
                    ok = false;
                }
            }
        }
        ok.then_some(out)
    }

    /// Checks the placeholders in agent parameters (`{{ vars.NAME }}`,
    /// `{{ instance.id }}`) and returns the parameters unchanged.
    fn params(&mut self, params: &Map<String, Value>, path: &FieldPath) -> Map<String, Value> {
        for (steps, placeholder) in crate::template::placeholders_in(params) {
            let mut at = path.clone();
            for step in steps {
                at = match step {
                    crate::template::PathStep::Key(key) => at.key(&key),
                    crate::template::PathStep::Index(i) => at.index(i),
                };
            }
            match placeholder {
                crate::template::Placeholder::InstanceId => {}
                crate::template::Placeholder::Var(name) | crate::template::Placeholder::VarJson(name)
                    if self.definition.vars.contains_key(&name) => {}
                crate::template::Placeholder::Var(name) | crate::template::Placeholder::VarJson(name) => {
                    let hint = self.suggest(&name, self.definition.vars.keys(), "variables");
                    self.error(Kind::UnknownReference, &at, format!("unknown variable `{name}` in `{{{{ vars.{name} }}}}`"), hint);
                }
                crate::template::Placeholder::Unknown(inner) => self.error(
                    Kind::UnknownReference,
                    &at,
                    format!("unknown placeholder `{{{{ {inner} }}}}`"),
                    "parameters may use {{ vars.NAME }}, {{ vars.NAME | json }} and {{ instance.id }}",
                ),
            }
        }
        params.clone()
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

    fn task(&mut self, phase: &PhaseDef, def: &TaskDef, ids: &HashMap<&str, usize>, path: &FieldPath) -> Option<Task> {
        let agent = self.agent(&def.agent, &path.key("agent"));
        let mut depends_on = Vec::new();
        let mut deps_ok = true;
        for (i, dep) in def.depends_on.iter().enumerate() {
            let dep_path = path.key("depends_on").index(i);
            match ids.get(dep.as_str()) {
                Some(&index) => {
                    if !depends_on.contains(&index) {
                        depends_on.push(index);
                    }
                }
                None => {
                    deps_ok = false;
                    let hint = match self.task_index.get(dep.as_str()) {
                        Some((other, _)) => format!(
                            "task `{dep}` is in phase `{}`; tasks depend only on tasks of their own phase; make phase `{}` run after it instead",
                            self.definition.phases[*other].id, phase.id
                        ),
                        None => self.suggest(dep, phase.tasks.iter().map(|t| &t.id).collect::<Vec<_>>().into_iter(), "tasks in this phase"),
                    };
                    self.error(Kind::UnknownReference, &dep_path, format!("unknown task `{dep}`"), hint);
                }
            }
        }
        let timeout = def.timeout.as_deref().map(|text| self.duration(text, &path.key("timeout"), true));
        let retry = self.retry(def.retry.as_ref(), &path.key("retry"));
        let owner = def.owner.as_deref().map(|owner| self.principal(owner, &path.key("owner")));
        let when = def.when.as_deref().map(|source| self.expr(source, &path.key("when"), Scope::Condition));
        let rollback = def.rollback.as_ref().map(|step| self.step(step, &path.key("rollback"), &format!("{}-compensation", def.id)));
        if !deps_ok {
            return None;
        }
        Some(Task {
            id: def.id.clone(),
            title: if def.title.is_empty() { def.id.clone() } else { def.title.clone() },
            agent: agent?,
            params: self.params(&def.params, &path.key("params")),
            depends_on,
            timeout: timeout.checked()?,
            retry: retry?,
            owner: owner.checked()?,
            when: when.checked()?,
            on_demand: def.on_demand,
            rollback: rollback.checked()?,
        })
    }

    fn task_order(&mut self, def: &PhaseDef, tasks: &[Option<Task>], path: &FieldPath) -> Option<Vec<usize>> {
        let edges: Vec<Vec<usize>> = tasks.iter().map(|task| task.as_ref().map(|t| t.depends_on.clone()).unwrap_or_default()).collect();
        match topological_order(&edges) {
            Ok(order) => Some(order),
            Err(cycles) => {
                for cycle in cycles {
                    let names: Vec<&str> = cycle.iter().map(|&i| def.tasks[i].id.as_str()).collect();
                    self.error(
                        Kind::Cycle,
                        &path.key("tasks").index(cycle[0]).key("depends_on"),
                        format!(
                            "task dependency cycle in phase `{}` (→ reads \"depends on\"): {} → {}",
                            def.id,
                            names.join(" → "),
                            names[0]
                        ),
                        "remove one of these depends_on edges",
                    );
                }
                None
            }
        }
    }

    fn phase_order(&mut self) -> Option<Vec<usize>> {
        let definition = self.definition;
        let edges: Vec<Vec<usize>> = definition
            .phases
            .iter()
            .enumerate()
            .map(|(own, phase)| {
                phase.after.iter().filter_map(|id| self.phase_index.get(id.as_str()).copied()).filter(|&target| target != own).collect()
            })
            .collect();
        match topological_order(&edges) {
            Ok(order) => Some(order),
            Err(cycles) => {
                for cycle in cycles {
                    let names: Vec<&str> = cycle.iter().map(|&i| definition.phases[i].id.as_str()).collect();
                    self.error(
                        Kind::Cycle,
                        &FieldPath::root().key("phases").index(cycle[0]).key("after"),
                        format!("phase dependency cycle (→ reads \"runs after\"): {} → {}", names.join(" → "), names[0]),
                        "phases form a DAG; to repeat earlier work use a `goto` trigger instead of an `after` edge",
                    );
                }
                None
            }
        }
    }

    fn agent(&mut self, name: &str, path: &FieldPath) -> Option<String> {
        if self.agents.contains(name) {
            return Some(name.to_owned());
        }
        let hint = self.suggest(name, self.agents.0.iter(), "agents");
        self.error(Kind::UnknownReference, path, format!("unknown agent `{name}`"), hint);
        None
    }

    fn principal(&mut self, text: &str, path: &FieldPath) -> Option<Principal> {
        let parsed = Principal::parse(text);
        if parsed.is_none() {
            self.error(
                Kind::InvalidValue,
                path,
                format!("`{text}` is not a principal"),
                "write a principal such as `alice` or a role such as `role:qa-director`",
            );
        }
        parsed
    }

    fn principals(&mut self, list: &[String], path: &FieldPath) -> Option<Vec<Principal>> {
        let parsed: Vec<Option<Principal>> = list.iter().enumerate().map(|(i, p)| self.principal(p, &path.index(i))).collect();
        parsed.into_iter().collect()
    }

    fn duration(&mut self, text: &str, path: &FieldPath, positive: bool) -> Option<Duration> {
        self.bounded_duration(text, path, if positive { Duration::from_millis(1) } else { Duration::ZERO })
    }

    /// A duration of at least `min` and at most [`super::MAX_DURATION`].
    fn bounded_duration(&mut self, text: &str, path: &FieldPath, min: Duration) -> Option<Duration> {
        match parse_duration(text) {
            Ok(duration) => match super::check_duration(duration, min) {
                Ok(()) => Some(duration),
                Err(problem) => {
                    let hint = if duration > super::MAX_DURATION {
                        "give a duration of at most 100 years, such as 90d".to_owned()
                    } else if min > Duration::from_millis(1) {
                        format!("give at least {}", super::format_duration(min))
                    } else {
                        "give a positive duration such as `30s`".to_owned()
                    };
                    self.error(Kind::BadDuration, path, format!("duration `{text}`: {problem}"), hint);
                    None
                }
            },
            Err(problem) => {
                self.error(
                    Kind::BadDuration,
                    path,
                    format!("invalid duration `{text}`: {problem}"),
                    "write a number and a unit, such as 90s, 2m, 72h or 90d",
                );
                None
            }
        }
    }

    /// A duration written literally or as `{{ vars.NAME }}` naming a
    /// duration variable: its default, and the variable's name so each
    /// instance uses its own value. The variable remembers the bound so
    /// that values given at start obey it too.
    fn duration_or_var(&mut self, text: &str, path: &FieldPath, min: Duration) -> Option<(Duration, Option<String>)> {
        let trimmed = text.trim();
        let single = trimmed.starts_with("{{") && trimmed.ends_with("}}");
        match crate::template::placeholders(trimmed).as_slice() {
            [crate::template::Placeholder::Var(name)] if single => {
                let Some(var) = self.checked_vars.get(name).cloned() else {
                    let hint = self.suggest(name, self.definition.vars.keys(), "variables");
                    self.error(Kind::UnknownReference, path, format!("unknown variable `{name}`"), hint);
                    return None;
                };
                let default = match (&var.ty, var.default.as_ref().and_then(Value::as_str)) {
                    (VarType::Duration, Some(default)) => default.to_owned(),
                    _ => {
                        self.error(
                            Kind::Type,
                            path,
                            format!("variable `{name}` is not a duration with a default"),
                            format!("declare it as {name} = {{ type = \"duration\", default = \"2m\" }}"),
                        );
                        return None;
                    }
                };
                if let Some(checked) = self.checked_vars.get_mut(name) {
                    if checked.min_duration.as_ref().is_none_or(|(current, _)| *current < min) {
                        checked.min_duration = Some((min, path.to_string()));
                    }
                }
                self.bounded_duration(&default, path, min).map(|d| (d, Some(name.clone())))
            }
            _ => self.bounded_duration(text, path, min).map(|d| (d, None)),
        }
    }

    fn expr(&mut self, source: &str, path: &FieldPath, scope: Scope) -> Option<Expr> {
        match Expr::compile(source, &self.names, scope) {
            Ok(expr) => Some(expr),
            Err(error) => {
                let mut diagnostic = Diagnostic::new(Kind::BadExpression, path, format!("in `{source}`: {}", error.message));
                diagnostic.hint = error.hint;
                self.diagnostics.push(diagnostic);
                None
            }
        }
    }

    fn retry(&mut self, def: Option<&RetryDef>, path: &FieldPath) -> Option<RetryPolicy> {
        let Some(def) = def else {
            return Some(RetryPolicy::none());
        };
        let mut ok = true;
        if def.max_attempts == 0 {
            self.error(Kind::InvalidValue, &path.key("max_attempts"), "max_attempts is 0", "use 1 for a single attempt with no retry");
            ok = false;
        }
        if !(def.multiplier.is_finite() && def.multiplier >= 1.0) {
            self.error(
                Kind::InvalidValue,
                &path.key("multiplier"),
                format!("multiplier {} is below 1", def.multiplier),
                "use 1 for a constant delay, 2 to double it",
            );
            ok = false;
        }
        if !(0.0..=1.0).contains(&def.jitter) {
            self.error(
                Kind::InvalidValue,
                &path.key("jitter"),
                format!("jitter {} is outside 0..1", def.jitter),
                "jitter is the fraction of each delay that is randomised",
            );
            ok = false;
        }
        let initial = self.duration(&def.initial, &path.key("initial"), false);
        let max = self.duration(&def.max, &path.key("max"), false);
        if let (Some(initial), Some(max)) = (initial, max) {
            if initial > max {
                self.error(
                    Kind::InvalidValue,
                    &path.key("max"),
                    format!("max delay {} is shorter than the initial delay {}", def.max, def.initial),
                    "raise max or lower initial",
                );
                ok = false;
            }
        }
        if !ok {
            return None;
        }
        Some(RetryPolicy { max_attempts: def.max_attempts, initial: initial?, max: max?, multiplier: def.multiplier, jitter: def.jitter })
    }

    fn step(&mut self, def: &StepDef, path: &FieldPath, default_id: &str) -> Option<Step> {
        let agent = self.agent(&def.agent, &path.key("agent"));
        let timeout = def.timeout.as_deref().map(|text| self.duration(text, &path.key("timeout"), true));
        let retry = self.retry(def.retry.as_ref(), &path.key("retry"));
        let id = def.id.clone().unwrap_or_else(|| default_id.to_owned());
        Some(Step {
            title: if def.title.is_empty() { id.clone() } else { def.title.clone() },
            id,
            agent: agent?,
            params: self.params(&def.params, &path.key("params")),
            timeout: timeout.checked()?,
            retry: retry?,
        })
    }

    fn gate(&mut self, def: &GateDef, path: &FieldPath) -> Option<Gate> {
        if def.criteria.is_empty() && def.approval.is_none() {
            self.error(
                Kind::EmptyGate,
                path,
                format!("gate `{}` has neither criteria nor an approval", def.id),
                "add criteria = [{ must = \"...\", label = \"...\" }] or an [approval] table",
            );
        }
        let mut criterion_ids = BTreeSet::new();
        let criteria: Vec<Option<Criterion>> = def
            .criteria
            .iter()
            .enumerate()
            .map(|(c, criterion)| {
                let criterion_path = path.key("criteria").index(c);
                let id = criterion.id.clone().unwrap_or_else(|| format!("c{}", c + 1));
                if criterion.id.is_some() && self.check_id(&id, &criterion_path.key("id"), "criterion") && !criterion_ids.insert(id.clone())
                {
                    self.error(
                        Kind::DuplicateId,
                        &criterion_path.key("id"),
                        format!("duplicate criterion id `{id}`"),
                        "criterion ids must be unique within their gate",
                    );
                }
                if criterion.label.trim().is_empty() {
                    self.error(
                        Kind::MissingField,
                        &criterion_path.key("label"),
                        "the criterion has an empty label",
                        "say in words what the criterion checks; reports show it",
                    );
                }
                let (level, source) = match (&criterion.must, &criterion.should) {
                    (Some(source), None) => (Level::Must, source),
                    (None, Some(source)) => (Level::Should, source),
                    (Some(_), Some(_)) => {
                        self.error(
                            Kind::InvalidValue,
                            &criterion_path,
                            "a criterion has both `must` and `should`",
                            "split it into two criteria",
                        );
                        return None;
                    }
                    (None, None) => {
                        self.error(
                            Kind::MissingField,
                            &criterion_path,
                            "a criterion needs `must` or `should`",
                            "add must = \"<condition>\" (fails the gate) or should = \"<condition>\" (warns)",
                        );
                        return None;
                    }
                };
                let field = if level == Level::Must { "must" } else { "should" };
                let expr = self.expr(source, &criterion_path.key(field), Scope::Condition);
                let warning =
                    criterion.warning.as_deref().map(|source| self.expr(source, &criterion_path.key("warning"), Scope::Condition));
                let weight = criterion.weight.unwrap_or(1.0);
                if !(weight.is_finite() && weight > 0.0) {
                    self.error(
                        Kind::InvalidValue,
                        &criterion_path.key("weight"),
                        format!("weight {weight} is not a positive number"),
                        "give a weight above 0, such as 1 or 2.5; leave it out for 1",
                    );
                    return None;
                }
                Some(Criterion { id, label: criterion.label.clone(), level, expr: expr?, weight, warning: warning.checked()? })
            })
            .collect();
        let approval = def.approval.as_ref().map(|approval| self.approval(approval, &path.key("approval")));
        let score = match &def.score {
            Some(score) => {
                let in_range = |v: f64| (0.0..=100.0).contains(&v);
                if !in_range(score.pass) || !in_range(score.warning) {
                    self.error(
                        Kind::InvalidValue,
                        &path.key("score"),
                        format!("score bands pass = {} and warning = {} must lie between 0 and 100 (percent)", score.pass, score.warning),
                        "write percentages, e.g. score = { pass = 90, warning = 75 }",
                    );
                    return None;
                }
                if score.warning > score.pass {
                    self.error(
                        Kind::InvalidValue,
                        &path.key("score").key("warning"),
                        format!("the warning band ({}) is above the pass band ({})", score.warning, score.pass),
                        "the warning band lies below the pass band: warning ≤ pass",
                    );
                    return None;
                }
                if def.criteria.is_empty() {
                    self.error(Kind::InvalidValue, &path.key("score"), "a scored gate has no criteria to score", "add weighted criteria");
                    return None;
                }
                Some(ScoreBands { pass: score.pass, warning: score.warning })
            }
            None => None,
        };
        let criteria = criteria.into_iter().collect::<Option<Vec<_>>>()?;
        let mut baseline_paths: Vec<Vec<String>> = criteria
            .iter()
            .flat_map(|c| c.expr.references().iter().chain(c.warning.iter().flat_map(|w| w.references().iter())))
            .filter(|path| path.first().is_some_and(|root| root == "baseline"))
            .map(|path| path[1..].to_vec())
            .collect();
        baseline_paths.sort();
        baseline_paths.dedup();
        Some(Gate {
            id: def.id.clone(),
            title: if def.title.is_empty() { def.id.clone() } else { def.title.clone() },
            criteria,
            approval: approval.checked()?,
            score,
            baseline_paths,
        })
    }

    fn quorum(&mut self, approvers: &[String], required: u32, path: &FieldPath) -> bool {
        if approvers.is_empty() {
            self.error(
                Kind::MissingField,
                &path.key("approvers"),
                "no approvers are listed",
                "list principals (`alice`) or roles (`role:sre`) allowed to decide",
            );
            return false;
        }
        if required == 0 {
            self.error(
                Kind::InvalidValue,
                &path.key("required"),
                "required is 0",
                "at least one approval is needed; remove the approval table to need none",
            );
            return false;
        }
        // With roles the number of people is known only from the configuration,
        // so the count can be checked here only for lists of named principals.
        let only_users = approvers.iter().all(|a| !a.trim_start().starts_with("role:"));
        if only_users && required as usize > approvers.len() {
            self.error(
                Kind::QuorumTooLarge,
                &path.key("required"),
                format!("required = {required} but only {} approvers are listed", approvers.len()),
                "lower `required` or list more approvers (or a role)",
            );
            return false;
        }
        true
    }

    fn approval(&mut self, def: &ApprovalDef, path: &FieldPath) -> Option<Approval> {
        let mut ok = self.quorum(&def.approvers, def.required, path);
        let approvers = self.principals(&def.approvers, &path.key("approvers"));
        let timeout = def.timeout.as_deref().map(|text| self.duration(text, &path.key("timeout"), true));
        let on_timeout = match (def.timeout.is_some(), def.on_timeout) {
            (true, Some(on_timeout)) => Some(on_timeout),
            (true, None) if !def.escalation.is_empty() => Some(crate::model::OnTimeout::Escalate),
            (true, None) => {
                self.error(
                    Kind::MissingField,
                    &path.key("on_timeout"),
                    "a timeout is set but not what happens at it",
                    "add on_timeout = \"reject\" (or hold, approve, escalate with escalation levels)",
                );
                ok = false;
                None
            }
            (false, Some(_)) => {
                self.error(
                    Kind::InvalidValue,
                    &path.key("on_timeout"),
                    "on_timeout is set but there is no timeout",
                    "add timeout = \"72h\" or remove on_timeout",
                );
                ok = false;
                None
            }
            (false, None) => None,
        };
        if on_timeout == Some(crate::model::OnTimeout::Escalate) && def.escalation.is_empty() {
            self.error(
                Kind::InvalidValue,
                &path.key("on_timeout"),
                "on_timeout = \"escalate\" but there are no escalation levels",
                "add [[...approval.escalation]] levels or choose reject, hold or approve",
            );
            ok = false;
        }
        let escalation: Vec<Option<EscalationLevel>> = def
            .escalation
            .iter()
            .enumerate()
            .map(|(l, level)| {
                let level_path = path.key("escalation").index(l);
                let quorum_ok = self.quorum(&level.approvers, level.required, &level_path);
                let approvers = self.principals(&level.approvers, &level_path.key("approvers"));
                let timeout = level.timeout.as_deref().map(|text| self.duration(text, &level_path.key("timeout"), true));
                if !quorum_ok {
                    return None;
                }
                Some(EscalationLevel { approvers: approvers?, required: level.required, timeout: timeout.checked()? })
            })
            .collect();
        let notify = def.notify.as_ref().map(|step| self.step(step, &path.key("notify"), "notify"));
        if !ok {
            return None;
        }
        Some(Approval {
            approvers: approvers?,
            required: def.required,
            self_approval: def.self_approval,
            timeout: timeout.checked()?,
            on_timeout,
            escalation: escalation.into_iter().collect::<Option<Vec<_>>>()?,
            comment_required: def.comment_required,
            notify: notify.checked()?,
        })
    }

    fn watch(&mut self, def: &WatchDef, path: &FieldPath) -> Option<Watch> {
        let agent = self.agent(&def.agent, &path.key("agent"));
        let interval = self.duration_or_var(&def.interval, &path.key("interval"), super::MIN_WATCH_INTERVAL);
        let condition = self.expr(&def.condition, &path.key("condition"), Scope::Watch);
        let sustain = def.for_.as_deref().map(|text| self.duration_or_var(text, &path.key("for"), Duration::ZERO));
        let timeout = def.timeout.as_deref().map(|text| self.duration(text, &path.key("timeout"), true));
        if def.consecutive_failures == Some(0) {
            self.error(
                Kind::InvalidValue,
                &path.key("consecutive_failures"),
                "consecutive_failures is 0",
                "use 1 to fire on the first breaching sample",
            );
            return None;
        }
        Some(Watch {
            id: def.id.clone(),
            title: if def.title.is_empty() { def.id.clone() } else { def.title.clone() },
            agent: agent?,
            params: self.params(&def.params, &path.key("params")),
            interval: interval.as_ref()?.0,
            interval_var: interval?.1,
            condition: condition?,
            sustain: sustain.clone().checked()?.map(|s| s.0).unwrap_or_default(),
            sustain_var: sustain.checked()?.and_then(|s| s.1),
            consecutive_failures: def.consecutive_failures,
            no_data: def.no_data,
            timeout: timeout.checked()?,
        })
    }

    fn trigger(&mut self, phase: usize, def: &PhaseDef, position: usize, trigger: &TriggerDef, path: &FieldPath) -> Option<Trigger> {
        let on = self.trigger_on(def, &trigger.on, &path.key("on"));
        let when = trigger.when.as_deref().map(|source| self.expr(source, &path.key("when"), Scope::Condition));
        let action = self.action(phase, def, trigger, trigger.action, path, true);
        Some(Trigger {
            id: trigger.id.clone().unwrap_or_else(|| format!("{}-trigger-{}", def.id, position + 1)),
            on: on?,
            when: when.checked()?,
            action: action?,
        })
    }

    fn trigger_on(&mut self, def: &PhaseDef, on: &str, path: &FieldPath) -> Option<TriggerOn> {
        let forms = "write a watch id, watch:<id>, task_failed, task_failed:<task>, gate_failed, gate_failed:<gate> or signal:<name>";
        let (kind, name) = match on.split_once(':') {
            Some((kind, name)) => (kind, Some(name)),
            None => (on, None),
        };
        match (kind, name) {
            ("task_failed", None) => Some(TriggerOn::TaskFailed(None)),
            ("gate_failed", None) => Some(TriggerOn::GateFailed(None)),
            ("task_failed", Some(task)) => match def.tasks.iter().position(|t| t.id == task) {
                Some(index) => Some(TriggerOn::TaskFailed(Some(index))),
                None => {
                    let hint = self.suggest(task, def.tasks.iter().map(|t| &t.id).collect::<Vec<_>>().into_iter(), "tasks in this phase");
                    self.error(Kind::UnknownReference, path, format!("unknown task `{task}` in phase `{}`", def.id), hint);
                    None
                }
            },
            ("gate_failed", Some(gate)) => match def.gates.iter().position(|g| g.id == gate) {
                Some(index) => Some(TriggerOn::GateFailed(Some(index))),
                None => {
                    let hint = self.suggest(gate, def.gates.iter().map(|g| &g.id).collect::<Vec<_>>().into_iter(), "gates in this phase");
                    self.error(Kind::UnknownReference, path, format!("unknown gate `{gate}` in phase `{}`", def.id), hint);
                    None
                }
            },
            ("signal", Some(signal)) => {
                if self.definition.signals.contains_key(signal) {
                    Some(TriggerOn::Signal(signal.to_owned()))
                } else {
                    let hint = match crate::suggest::closest(signal, self.definition.signals.keys()) {
                        Some(close) => format!("did you mean `signal:{close}`?"),
                        None => format!("declare it under [signals.{signal}] at the top of the workflow"),
                    };
                    self.error(Kind::UnknownReference, path, format!("unknown signal `{signal}`"), hint);
                    None
                }
            }
            ("watch", Some(watch)) | (watch, None) => match def.watches.iter().position(|w| w.id == watch) {
                Some(index) => Some(TriggerOn::Watch(index)),
                None => {
                    let known: Vec<&String> = def.watches.iter().map(|w| &w.id).collect();
                    let hint = match crate::suggest::closest(watch, known.iter().copied()) {
                        Some(close) => format!("did you mean `{close}`?"),
                        None => forms.to_owned(),
                    };
                    self.error(Kind::UnknownReference, path, format!("`{on}` is not a watch of phase `{}` nor an event", def.id), hint);
                    None
                }
            },
            (_, Some(_)) => {
                self.error(Kind::UnknownReference, path, format!("unknown event `{on}`"), forms);
                None
            }
        }
    }

    fn action(
        &mut self,
        phase: usize,
        def: &PhaseDef,
        trigger: &TriggerDef,
        kind: ActionKind,
        path: &FieldPath,
        top: bool,
    ) -> Option<Action> {
        let field_action = |field: &str| -> Option<ActionKind> {
            match field {
                "then" | "approval" => Some(ActionKind::HaltForApproval),
                "phase" | "code" | "max_loops" => Some(ActionKind::Goto),
                "to" => Some(ActionKind::Rollback),
                "task" => Some(ActionKind::Run),
                "notify" => Some(ActionKind::Notify),
                _ => None,
            }
        };
        if top {
            // A field that belongs to an action other than the one taken (or its `then`) is a mistake worth naming.
            let then = trigger.then.unwrap_or(ActionKind::Rollback);
            let set: [(&str, bool); 7] = [
                ("then", trigger.then.is_some()),
                ("approval", trigger.approval.is_some()),
                ("phase", trigger.phase.is_some()),
                ("code", trigger.code.is_some()),
                ("max_loops", trigger.max_loops.is_some()),
                ("to", trigger.to.is_some()),
                ("task", trigger.task.is_some()),
            ];
            let notify_set = [("notify", trigger.notify.is_some())];
            for (field, is_set) in set.iter().chain(notify_set.iter()) {
                let Some(owner) = field_action(field) else {
                    continue;
                };
                let applies = owner == kind || (kind == ActionKind::HaltForApproval && owner == then);
                if *is_set && !applies {
                    self.error(
                        Kind::InvalidValue,
                        &path.key(*field),
                        format!("`{field}` does not apply to action `{}`", action_name(kind)),
                        format!("`{field}` belongs to action `{}`; remove it or change the action", action_name(owner)),
                    );
                }
            }
        }
        match kind {
            ActionKind::HaltForApproval => {
                if !top {
                    self.error(
                        Kind::InvalidValue,
                        &path.key("then"),
                        "`then` cannot halt for approval again",
                        "choose rollback, goto, run or notify",
                    );
                    return None;
                }
                let then_kind = trigger.then.unwrap_or(ActionKind::Rollback);
                let approval = match &trigger.approval {
                    Some(approval) => self.approval(approval, &path.key("approval")),
                    None => match def.owner.as_deref().and_then(Principal::parse) {
                        Some(owner) => Some(Approval {
                            approvers: vec![owner],
                            required: 1,
                            self_approval: true,
                            timeout: None,
                            on_timeout: None,
                            escalation: Vec::new(),
                            comment_required: false,
                            notify: None,
                        }),
                        None => {
                            self.error(
                                Kind::MissingField,
                                &path.key("approval"),
                                "halt_for_approval needs to know who decides",
                                "add approval = { approvers = [\"role:sre\"] } or set the phase's owner",
                            );
                            None
                        }
                    },
                };
                let then = self.action(phase, def, trigger, then_kind, path, false);
                Some(Action::HaltForApproval { approval: approval?, then: Box::new(then?) })
            }
            ActionKind::Rollback => {
                let to = match &trigger.to {
                    None => Some(None),
                    Some(id) => self.phase_target(id, phase, &path.key("to")).map(Some),
                };
                Some(Action::Rollback { to: to? })
            }
            ActionKind::Goto => {
                let Some(id) = &trigger.phase else {
                    self.error(
                        Kind::MissingField,
                        &path.key("phase"),
                        "goto needs the phase to re-enter",
                        "add phase = \"<id of this phase or one upstream>\"",
                    );
                    return None;
                };
                let target = self.phase_target(id, phase, &path.key("phase"));
                let max_loops = trigger.max_loops.unwrap_or(DEFAULT_MAX_LOOPS);
                if max_loops == 0 {
                    self.error(
                        Kind::InvalidValue,
                        &path.key("max_loops"),
                        "max_loops is 0, so the loop can never be taken",
                        "use at least 1, or remove the trigger",
                    );
                    return None;
                }
                Some(Action::Goto { phase: target?, code: trigger.code.clone(), reason: trigger.reason.clone(), max_loops })
            }
            ActionKind::Notify => {
                let Some(step) = &trigger.notify else {
                    self.error(
                        Kind::MissingField,
                        &path.key("notify"),
                        "notify needs the step to run",
                        "add notify = { agent = \"webhook\", params = { url_env = \"SLACK_WEBHOOK_URL\" } }",
                    );
                    return None;
                };
                let default_id = format!("{}-notify", trigger.id.as_deref().unwrap_or(&def.id));
                self.step(step, &path.key("notify"), &default_id).map(Action::Notify)
            }
            ActionKind::Run => {
                let Some(task) = &trigger.task else {
                    self.error(
                        Kind::MissingField,
                        &path.key("task"),
                        "run needs the task to start",
                        "add task = \"<id of an on_demand task of this phase>\"",
                    );
                    return None;
                };
                match def.tasks.iter().position(|t| &t.id == task) {
                    Some(index) if def.tasks[index].on_demand => Some(Action::Run { task: index }),
                    Some(_) => {
                        self.error(
                            Kind::InvalidValue,
                            &path.key("task"),
                            format!("task `{task}` is not on_demand, so it already runs with the phase"),
                            "set on_demand = true on the task",
                        );
                        None
                    }
                    None => {
                        let hint =
                            self.suggest(task, def.tasks.iter().map(|t| &t.id).collect::<Vec<_>>().into_iter(), "tasks in this phase");
                        self.error(Kind::UnknownReference, &path.key("task"), format!("unknown task `{task}` in phase `{}`", def.id), hint);
                        None
                    }
                }
            }
        }
    }

    /// Resolves a `goto`/`to` target and queues the upstream check.
    fn phase_target(&mut self, id: &str, from: usize, path: &FieldPath) -> Option<usize> {
        match self.phase_index.get(id) {
            Some(&target) => {
                self.upstream_checks.push((target, from, path.clone()));
                Some(target)
            }
            None => {
                let hint = self.suggest(id, self.names.phases.iter(), "phases");
                self.error(Kind::UnknownReference, path, format!("unknown phase `{id}`"), hint);
                None
            }
        }
    }

    fn schedule(&mut self, def: &ScheduleDef, path: &FieldPath) -> Option<Schedule> {
        match (&def.every, &def.cron) {
            (Some(every), None) => self.bounded_duration(every, &path.key("every"), super::MIN_WATCH_INTERVAL).map(Schedule::Every),
            (None, Some(source)) => match source.parse::<croner::Cron>() {
                Ok(cron) => Some(Schedule::Cron { source: source.clone(), cron: Box::new(cron) }),
                Err(error) => {
                    self.error(
                        Kind::BadSchedule,
                        &path.key("cron"),
                        format!("invalid cron expression `{source}`: {error}"),
                        "write five fields: minute hour day-of-month month day-of-week, e.g. \"0 9 1 */3 *\"",
                    );
                    None
                }
            },
            (Some(_), Some(_)) => {
                self.error(Kind::InvalidValue, path, "a schedule has both `every` and `cron`", "keep one of them");
                None
            }
            (None, None) => {
                self.error(Kind::MissingField, path, "a schedule needs `every` or `cron`", "add every = \"90d\" or cron = \"0 9 1 */3 *\"");
                None
            }
        }
    }
}

fn action_name(kind: ActionKind) -> &'static str {
    match kind {
        ActionKind::HaltForApproval => "halt_for_approval",
        ActionKind::Rollback => "rollback",
        ActionKind::Goto => "goto",
        ActionKind::Notify => "notify",
        ActionKind::Run => "run",
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

/// A topological order of a graph given as "node depends on these nodes", or
/// every cycle found (each as a list of nodes in dependency order).
fn topological_order(depends_on: &[Vec<usize>]) -> Result<Vec<usize>, Vec<Vec<usize>>> {
    let mut graph: DiGraph<usize, ()> = DiGraph::with_capacity(depends_on.len(), 0);
    let nodes: Vec<NodeIndex> = (0..depends_on.len()).map(|i| graph.add_node(i)).collect();
    for (node, deps) in depends_on.iter().enumerate() {
        for &dep in deps {
            graph.add_edge(nodes[dep], nodes[node], ());
        }
    }
    if !petgraph::algo::is_cyclic_directed(&graph) {
        return Ok(stable_order(depends_on));
    }
    let mut cycles = Vec::new();
    for component in petgraph::algo::tarjan_scc(&graph) {
        let self_loop = component.len() == 1 && graph.contains_edge(component[0], component[0]);
        if component.len() < 2 && !self_loop {
            continue;
        }
        cycles.push(cycle_in(&graph, &component));
    }
    cycles.sort();
    Err(cycles)
}

/// Kahn's algorithm, always taking the lowest ready index: among independent
/// nodes the definition order is kept, so output and dispatch are predictable.
fn stable_order(depends_on: &[Vec<usize>]) -> Vec<usize> {
    let mut waiting: Vec<usize> = depends_on.iter().map(Vec::len).collect();
    let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); depends_on.len()];
    for (node, deps) in depends_on.iter().enumerate() {
        for &dep in deps {
            dependents[dep].push(node);
        }
    }
    let mut ready: std::collections::BinaryHeap<std::cmp::Reverse<usize>> =
        waiting.iter().enumerate().filter(|(_, &w)| w == 0).map(|(n, _)| std::cmp::Reverse(n)).collect();
    let mut order = Vec::with_capacity(depends_on.len());
    while let Some(std::cmp::Reverse(node)) = ready.pop() {
        order.push(node);
        for &next in &dependents[node] {
            waiting[next] -= 1;
            if waiting[next] == 0 {
                ready.push(std::cmp::Reverse(next));
            }
        }
    }
    order
}

/// One concrete cycle through the smallest node of a strongly connected
/// component, in the direction a reader follows dependencies.
fn cycle_in(graph: &DiGraph<usize, ()>, component: &[NodeIndex]) -> Vec<usize> {
    let members: BTreeSet<NodeIndex> = component.iter().copied().collect();
    let Some(&start) = component.iter().min_by_key(|n| graph[**n]) else {
        return Vec::new();
    };
    // Breadth-first from start along edges inside the component until an edge returns to start.
    let mut parent: HashMap<NodeIndex, NodeIndex> = HashMap::new();
    let mut queue = std::collections::VecDeque::from([start]);
    let mut last = start;
    'search: while let Some(node) = queue.pop_front() {
        for next in graph.neighbors(node) {
            if next == start {
                last = node;
                break 'search;
            }
            if members.contains(&next) && !parent.contains_key(&next) {
                parent.insert(next, node);
                queue.push_back(next);
            }
        }
    }
    let mut path = vec![graph[last]];
    let mut node = last;
    while node != start {
        match parent.get(&node) {
            Some(&previous) => {
                node = previous;
                path.push(graph[node]);
            }
            None => break,
        }
    }
    // The walk went from `last` back to `start` against the edges, so `path`
    // already reads in "depends on" order ending at `start`; put `start` first.
    path.rotate_right(1);
    path
}

/// True if `target` is `from` or reachable from it along `after` edges.
fn reaches(after: &[Vec<usize>], target: usize, from: usize) -> bool {
    let mut stack = vec![from];
    let mut seen = vec![false; after.len()];
    while let Some(node) = stack.pop() {
        if node == target {
            return true;
        }
        if node >= after.len() || std::mem::replace(&mut seen[node], true) {
            continue;
        }
        stack.extend(after[node].iter().copied());
    }
    false
}

fn upstream_list(after: &[Vec<usize>], from: usize, definition: &WorkflowDef, order: &[usize]) -> String {
    let names: Vec<&str> = order.iter().filter(|&&p| reaches(after, p, from)).map(|&p| definition.phases[p].id.as_str()).collect();
    names.join(", ")
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
