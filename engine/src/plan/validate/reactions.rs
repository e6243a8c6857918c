//! Watches, triggers and their actions, and schedules.

use super::*;

impl<'d> Validator<'d> {
    pub(super) fn watch(&mut self, def: &WatchDef, path: &FieldPath) -> Option<Watch> {
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
            span: None,
        })
    }

    pub(super) fn trigger(
        &mut self,
        phase: usize,
        def: &PhaseDef,
        position: usize,
        trigger: &TriggerDef,
        path: &FieldPath,
    ) -> Option<Trigger> {
        let on = self.trigger_on(def, &trigger.on, &path.key("on"));
        let when = trigger.when.as_deref().map(|source| self.expr(source, &path.key("when"), Scope::Condition));
        let action = self.action(phase, def, trigger, trigger.action, path, true);
        Some(Trigger {
            id: trigger.id.clone().unwrap_or_else(|| format!("{}-trigger-{}", def.id, position + 1)),
            on: on?,
            when: when.checked()?,
            action: action?,
            span: None,
        })
    }

    /// Refuses `from` and `until` on a phase's own watch or trigger: it lives
    /// with its phase; a span belongs to workflow-level reactions.
    pub(super) fn no_span_in_phase(&mut self, from: Option<&String>, until: Option<&String>, path: &FieldPath, what: &str, list: &str) {
        for (field, set) in [("from", from.is_some()), ("until", until.is_some())] {
            if set {
                self.error(
                    Kind::InvalidValue,
                    &path.key(field),
                    format!("`{field}` does not apply to a phase's {what}: it is live while its phase is active"),
                    format!("move the {what} to the workflow's top-level [[{list}]] to give it a span"),
                );
            }
        }
    }

    /// Checks the workflow-level watches and triggers and adds each to its
    /// home phase ([`Span::home`]) with its span. `edges` are the phases'
    /// `after` lists, `order` their topological order.
    pub(super) fn workflow_reactions(&mut self, phases: &mut [Option<Phase>], edges: &[Vec<usize>], order: &[usize]) {
        let definition = self.definition;
        let root = FieldPath::root();
        // Workflow-level watches by id: their span, and index within the home phase.
        let mut spans: HashMap<&str, (Span, usize)> = HashMap::new();
        for (w, def) in definition.watches.iter().enumerate() {
            let path = root.key("watches").index(w);
            let span = self.span(def.from.as_deref(), def.until.as_deref(), &path, edges);
            let watch = self.watch(def, &path);
            let (Some(span), Some(mut watch)) = (span, watch) else { continue };
            let Some(phase) = phases.get_mut(span.home(order)).and_then(Option::as_mut) else { continue };
            watch.span = Some(span);
            spans.insert(&def.id, (span, phase.watches.len()));
            phase.watches.push(watch);
        }
        let mut ids = BTreeSet::new();
        for (i, def) in definition.triggers.iter().enumerate() {
            let path = root.key("triggers").index(i);
            let id = def.id.clone().unwrap_or_else(|| format!("workflow-trigger-{}", i + 1));
            if self.check_id(&id, &path.key("id"), "trigger") && !ids.insert(id.clone()) {
                self.error(
                    Kind::DuplicateId,
                    &path.key("id"),
                    format!("duplicate trigger id `{id}`"),
                    "workflow-level trigger ids must be unique",
                );
            }
            let own = self.span(def.from.as_deref(), def.until.as_deref(), &path, edges);
            let Some((on, span)) = self.workflow_trigger_on(def, &path, &spans, own) else { continue };
            let home = span.home(order);
            let runs = def.action == ActionKind::Run || (def.action == ActionKind::HaltForApproval && def.then == Some(ActionKind::Run));
            if runs {
                self.error(
                    Kind::InvalidValue,
                    &path.key("action"),
                    "a workflow-level trigger cannot `run` a task: `run` starts an on-demand task of the trigger's own phase",
                    "declare the trigger in the phase that holds the task",
                );
                continue;
            }
            if def.action == ActionKind::HaltForApproval && def.approval.is_none() {
                self.error(
                    Kind::MissingField,
                    &path.key("approval"),
                    "a workflow-level halt_for_approval needs to know who decides: there is no phase owner to default to",
                    "add approval = { approvers = [\"role:incident-commander\"] }",
                );
                continue;
            }
            let when = def.when.as_deref().map(|source| self.expr(source, &path.key("when"), Scope::Condition));
            let action = self.action(home, &definition.phases[home], def, def.action, &path, true);
            let (Some(when), Some(action)) = (when.checked(), action) else { continue };
            let Some(phase) = phases.get_mut(home).and_then(Option::as_mut) else { continue };
            if phase.triggers.iter().any(|t| t.id == id) {
                self.error(
                    Kind::DuplicateId,
                    &path.key("id"),
                    format!("trigger id `{id}` is also a trigger of phase `{}`", phase.id),
                    "give the workflow-level trigger an id no phase uses",
                );
                continue;
            }
            phase.triggers.push(Trigger { id, on, when, action, span: Some(span) });
        }
    }

    /// A workflow-level trigger's event, and the span it is live for: a
    /// workflow-level watch (whose span it takes), a signal, or any task's or
    /// gate's failure.
    fn workflow_trigger_on(
        &mut self,
        def: &TriggerDef,
        path: &FieldPath,
        watches: &HashMap<&str, (Span, usize)>,
        own: Option<Span>,
    ) -> Option<(TriggerOn, Span)> {
        let on_path = path.key("on");
        let forms = "write the id of a workflow-level watch, task_failed, gate_failed or signal:<name>";
        let (kind, name) = match def.on.split_once(':') {
            Some((kind, name)) => (kind, Some(name)),
            None => (def.on.as_str(), None),
        };
        let event = match (kind, name) {
            ("task_failed", None) => TriggerOn::TaskFailed(None),
            ("gate_failed", None) => TriggerOn::GateFailed(None),
            ("task_failed" | "gate_failed", Some(_)) => {
                self.error(
                    Kind::InvalidValue,
                    &on_path,
                    format!("a workflow-level trigger reacts to any {}, not to one by name", kind.replace('_', " ")),
                    "write the bare event, or declare the trigger in the phase that holds the task or gate",
                );
                return None;
            }
            // A signal does not depend on a phase; any phase's definition resolves it.
            ("signal", Some(_)) => self.trigger_on(self.definition.phases.first()?, &def.on, &on_path)?,
            ("watch", Some(watch)) | (watch, None) => {
                let Some(&(span, index)) = watches.get(watch) else {
                    let phase = self.definition.phases.iter().find(|p| p.watches.iter().any(|w| w.id == watch));
                    match phase {
                        Some(phase) => self.error(
                            Kind::InvalidValue,
                            &on_path,
                            format!("watch `{watch}` belongs to phase `{}`", phase.id),
                            "react to it with a trigger of that phase, or move the watch to the workflow's [[watches]]",
                        ),
                        None => {
                            let known: Vec<&String> = self.definition.watches.iter().map(|w| &w.id).collect();
                            let hint = match crate::suggest::closest(watch, known.iter().copied()) {
                                Some(close) => format!("did you mean `{close}`?"),
                                None => forms.to_owned(),
                            };
                            self.error(
                                Kind::UnknownReference,
                                &on_path,
                                format!("`{}` is not a workflow-level watch nor an event", def.on),
                                hint,
                            );
                        }
                    }
                    return None;
                };
                let given = def.from.is_some() || def.until.is_some();
                if given && own != Some(span) {
                    self.error(
                        Kind::InvalidValue,
                        &path.key(if def.from.is_some() { "from" } else { "until" }),
                        format!("a trigger on watch `{watch}` is live exactly when its watch is"),
                        "remove `from` and `until` from the trigger; the watch's span applies",
                    );
                    return None;
                }
                return Some((TriggerOn::Watch(index), span));
            }
            (_, Some(_)) => {
                self.error(Kind::UnknownReference, &on_path, format!("unknown event `{}`", def.on), forms);
                return None;
            }
        };
        Some((event, own?))
    }

    /// Resolves `from` and `until` of a workflow-level reaction; `until`
    /// must be `from` or a phase that runs after it.
    fn span(&mut self, from: Option<&str>, until: Option<&str>, path: &FieldPath, edges: &[Vec<usize>]) -> Option<Span> {
        let resolve = |this: &mut Self, id: Option<&str>, field: &str| -> Option<Option<usize>> {
            let Some(id) = id else { return Some(None) };
            match this.phase_index.get(id) {
                Some(&index) => Some(Some(index)),
                None => {
                    let hint = this.suggest(id, this.names.phases.iter(), "phases");
                    this.error(Kind::UnknownReference, &path.key(field), format!("unknown phase `{id}`"), hint);
                    None
                }
            }
        };
        let from_index = resolve(self, from, "from");
        let until_index = resolve(self, until, "until");
        let span = Span { from: from_index?, until: until_index? };
        if let (Some(f), Some(u)) = (span.from, span.until) {
            if !super::phases::reaches(edges, f, u) {
                let (from, until) = (&self.definition.phases[f].id, &self.definition.phases[u].id);
                self.error(
                    Kind::InvalidValue,
                    &path.key("until"),
                    format!("phase `{until}` does not run after phase `{from}`, so the span from `{from}` until `{until}` is empty"),
                    format!("name `{from}` itself or a phase downstream of it"),
                );
                return None;
            }
        }
        Some(span)
    }

    pub(super) fn trigger_on(&mut self, def: &PhaseDef, on: &str, path: &FieldPath) -> Option<TriggerOn> {
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

    pub(super) fn action(
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
                            required_from: Vec::new(),
                            inputs: BTreeMap::new(),
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
    pub(super) fn phase_target(&mut self, id: &str, from: usize, path: &FieldPath) -> Option<usize> {
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

    /// The schedule, and the variable its `every` reads, if any.
    pub(super) fn schedule(&mut self, def: &ScheduleDef, path: &FieldPath) -> Option<(Schedule, Option<String>)> {
        match (&def.every, &def.cron) {
            (Some(every), None) => {
                self.duration_or_var(every, &path.key("every"), super::MIN_WATCH_INTERVAL).map(|(d, var)| (Schedule::Every(d), var))
            }
            (None, Some(source)) => match source.parse::<croner::Cron>() {
                Ok(cron) => Some((Schedule::Cron { source: source.clone(), cron: Box::new(cron) }, None)),
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

pub(super) fn action_name(kind: ActionKind) -> &'static str {
    match kind {
        ActionKind::HaltForApproval => "halt_for_approval",
        ActionKind::Rollback => "rollback",
        ActionKind::Goto => "goto",
        ActionKind::Notify => "notify",
        ActionKind::Run => "run",
    }
}
