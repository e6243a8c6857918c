//! Phases and tasks: ids, order, dependencies, agents, parameters, retry policies and steps.

use super::*;

impl<'d> Validator<'d> {
    pub(super) fn phase(&mut self, index: usize, def: &'d PhaseDef, path: &FieldPath) -> Option<Phase> {
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
        let watches: Vec<Option<Watch>> = def
            .watches
            .iter()
            .enumerate()
            .map(|(w, watch)| {
                let watch_path = path.key("watches").index(w);
                self.no_span_in_phase(watch.from.as_ref(), watch.until.as_ref(), &watch_path, "watch", "watches");
                self.watch(watch, &watch_path)
            })
            .collect();
        let mut trigger_ids = BTreeSet::new();
        let triggers: Vec<Option<Trigger>> = def
            .triggers
            .iter()
            .enumerate()
            .map(|(i, trigger)| {
                let trigger_path = path.key("triggers").index(i);
                self.no_span_in_phase(trigger.from.as_ref(), trigger.until.as_ref(), &trigger_path, "trigger", "triggers");
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
        let deadline = def.deadline.as_ref().map(|deadline| self.deadline(deadline, &path.key("deadline")));
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
            schedule_var: schedule.clone().flatten().and_then(|(_, var)| var),
            schedule: schedule.flatten().map(|(schedule, _)| schedule),
            schedule_when: schedule_when.checked()?,
            deadline: deadline.checked()?,
        })
    }

    pub(super) fn phase_refs(&mut self, refs: &[String], path: &FieldPath, own: usize) -> Option<Vec<usize>> {
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
    pub(super) fn params(&mut self, params: &Map<String, Value>, path: &FieldPath) -> Map<String, Value> {
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
                crate::template::Placeholder::Input { gate, name, .. } => self.input_placeholder(&gate, &name, &at),
                crate::template::Placeholder::Unknown(inner) => self.error(
                    Kind::UnknownReference,
                    &at,
                    format!("unknown placeholder `{{{{ {inner} }}}}`"),
                    "parameters may use {{ vars.NAME }}, {{ vars.NAME | json }}, {{ instance.id }} and, in tasks, \
                     {{ decisions.GATE.inputs.NAME }}",
                ),
            }
        }
        params.clone()
    }

    /// A criterion label may show the threshold in force as
    /// `{{ vars.NAME }}`; nothing else is replaced in it.
    pub(super) fn label_placeholders(&mut self, label: &str, at: &FieldPath) {
        for placeholder in crate::template::placeholders(label) {
            match placeholder {
                crate::template::Placeholder::Var(name) if self.definition.vars.contains_key(&name) => {}
                crate::template::Placeholder::Var(name) => {
                    let hint = self.suggest(&name, self.definition.vars.keys(), "variables");
                    self.error(Kind::UnknownReference, at, format!("unknown variable `{name}` in `{{{{ vars.{name} }}}}`"), hint);
                }
                other => self.error(
                    Kind::UnknownReference,
                    at,
                    format!("`{}` cannot be shown in a label", describe(&other)),
                    "a label may show a variable's value in force as {{ vars.NAME }}",
                ),
            }
        }
    }

    /// `{{ decisions.GATE.inputs.NAME }}`: only in a task's parameters, naming
    /// an input a gate declares in a phase upstream of the task's, so the
    /// approval that passed it exists when the task runs.
    fn input_placeholder(&mut self, gate: &str, name: &str, at: &FieldPath) {
        let Some(task_phase) = self.task_phase else {
            self.error(
                Kind::InvalidValue,
                at,
                format!("`{{{{ decisions.{gate}.inputs.{name} }}}}` is read only by task parameters"),
                "pass the value to a task of a phase after the gate",
            );
            return;
        };
        let found = self.definition.phases.iter().enumerate().find_map(|(p, phase)| {
            phase.gates.iter().find(|g| g.id == gate).map(|g| (p, g.approval.as_ref().is_some_and(|a| a.inputs.contains_key(name))))
        });
        match found {
            Some((gate_phase, true)) => self.input_checks.push((gate_phase, task_phase, at.clone())),
            Some((_, false)) => self.error(
                Kind::UnknownReference,
                at,
                format!("gate `{gate}` declares no input `{name}`"),
                format!("declare it under the gate's approval: inputs = {{ {name} = {{ type = \"string\" }} }}"),
            ),
            None => {
                let gates: Vec<String> = self.definition.phases.iter().flat_map(|p| p.gates.iter().map(|g| g.id.clone())).collect();
                let hint = self.suggest(gate, gates.iter(), "gates");
                self.error(
                    Kind::UnknownReference,
                    at,
                    format!("unknown gate `{gate}` in `{{{{ decisions.{gate}.inputs.{name} }}}}`"),
                    hint,
                );
            }
        }
    }

    pub(super) fn task(&mut self, phase: &PhaseDef, def: &TaskDef, ids: &HashMap<&str, usize>, path: &FieldPath) -> Option<Task> {
        let wait = (def.agent == WAIT_AGENT).then(|| self.wait(def, path));
        let agent = if wait.is_some() { Some(WAIT_AGENT.to_owned()) } else { self.agent(&def.agent, &path.key("agent")) };
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
            params: {
                self.task_phase = self.phase_index.get(phase.id.as_str()).copied();
                let params = self.params(&def.params, &path.key("params"));
                self.task_phase = None;
                params
            },
            depends_on,
            timeout: timeout.checked()?,
            retry: retry?,
            owner: owner.checked()?,
            when: when.checked()?,
            on_demand: def.on_demand,
            rollback: rollback.checked()?,
            wait: wait.checked()?,
        })
    }

    /// A `wait` task: `params = { duration = "…" }` and nothing an agent's
    /// attempt would need (a wait cannot fail, time out or be undone).
    fn wait(&mut self, def: &TaskDef, path: &FieldPath) -> Option<Wait> {
        let params = path.key("params");
        let mut ok = true;
        for (field, set) in [("timeout", def.timeout.is_some()), ("retry", def.retry.is_some()), ("rollback", def.rollback.is_some())] {
            if set {
                self.error(
                    Kind::InvalidValue,
                    &path.key(field),
                    format!("a wait task has no `{field}`: no agent runs, so nothing can time out, fail or need undoing"),
                    "remove it, or bound the wait with the phase's `deadline`",
                );
                ok = false;
            }
        }
        for key in def.params.keys().filter(|k| k.as_str() != "duration") {
            self.error(
                Kind::InvalidValue,
                &params.key(key),
                format!("a wait task takes only `duration`, not `{key}`"),
                "write params = { duration = \"30m\" }",
            );
            ok = false;
        }
        let duration = match def.params.get("duration") {
            Some(Value::String(text)) => self.duration_or_var(text, &params.key("duration"), Duration::from_millis(1)),
            Some(_) => {
                self.error(
                    Kind::Type,
                    &params.key("duration"),
                    "a wait's duration is not a string",
                    "write a duration such as \"30m\" or \"{{ vars.soak }}\"",
                );
                None
            }
            None => {
                self.error(
                    Kind::MissingField,
                    &params.key("duration"),
                    format!("wait task `{}` does not say how long it waits", def.id),
                    "write params = { duration = \"30m\" } (or \"{{ vars.NAME }}\" for a duration variable)",
                );
                None
            }
        };
        let (duration, duration_var) = duration?;
        ok.then_some(Wait { duration, duration_var })
    }

    /// A phase's or the instance's overall deadline.
    pub(super) fn deadline(&mut self, def: &DeadlineDef, path: &FieldPath) -> Option<Deadline> {
        let (after, after_var) = self.duration_or_var(&def.after, &path.key("after"), Duration::from_millis(1))?;
        Some(Deadline { after, after_var, outcome: def.outcome })
    }

    pub(super) fn task_order(&mut self, def: &PhaseDef, tasks: &[Option<Task>], path: &FieldPath) -> Option<Vec<usize>> {
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

    pub(super) fn phase_order(&mut self) -> Option<Vec<usize>> {
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

    pub(super) fn agent(&mut self, name: &str, path: &FieldPath) -> Option<String> {
        if self.agents.contains(name) {
            return Some(name.to_owned());
        }
        let hint = self.suggest(name, self.agents.0.iter(), "agents");
        self.error(Kind::UnknownReference, path, format!("unknown agent `{name}`"), hint);
        None
    }

    pub(super) fn principal(&mut self, text: &str, path: &FieldPath) -> Option<Principal> {
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

    pub(super) fn principals(&mut self, list: &[String], path: &FieldPath) -> Option<Vec<Principal>> {
        let parsed: Vec<Option<Principal>> = list.iter().enumerate().map(|(i, p)| self.principal(p, &path.index(i))).collect();
        parsed.into_iter().collect()
    }

    pub(super) fn retry(&mut self, def: Option<&RetryDef>, path: &FieldPath) -> Option<RetryPolicy> {
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

    pub(super) fn step(&mut self, def: &StepDef, path: &FieldPath, default_id: &str) -> Option<Step> {
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
}

/// A topological order of a graph given as "node depends on these nodes", or
/// every cycle found (each as a list of nodes in dependency order).
pub(super) fn topological_order(depends_on: &[Vec<usize>]) -> Result<Vec<usize>, Vec<Vec<usize>>> {
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
pub(super) fn stable_order(depends_on: &[Vec<usize>]) -> Vec<usize> {
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
pub(super) fn cycle_in(graph: &DiGraph<usize, ()>, component: &[NodeIndex]) -> Vec<usize> {
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
pub(super) fn reaches(after: &[Vec<usize>], target: usize, from: usize) -> bool {
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

pub(super) fn upstream_list(after: &[Vec<usize>], from: usize, definition: &WorkflowDef, order: &[usize]) -> String {
    let names: Vec<&str> = order.iter().filter(|&&p| reaches(after, p, from)).map(|&p| definition.phases[p].id.as_str()).collect();
    names.join(", ")
}

/// A placeholder as written, for messages.
fn describe(placeholder: &crate::template::Placeholder) -> String {
    use crate::template::Placeholder;
    match placeholder {
        Placeholder::Var(name) => format!("{{{{ vars.{name} }}}}"),
        Placeholder::VarJson(name) => format!("{{{{ vars.{name} | json }}}}"),
        Placeholder::InstanceId => "{{ instance.id }}".to_owned(),
        Placeholder::Input { gate, name, json } => {
            format!("{{{{ decisions.{gate}.inputs.{name}{} }}}}", if *json { " | json" } else { "" })
        }
        Placeholder::Unknown(inner) => format!("{{{{ {inner} }}}}"),
    }
}
