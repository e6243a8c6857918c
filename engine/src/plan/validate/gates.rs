//! Gates: criteria, scores, baselines, approvals, quorums and escalation.

use super::*;

impl<'d> Validator<'d> {
    pub(super) fn gate(&mut self, def: &GateDef, path: &FieldPath) -> Option<Gate> {
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
                self.label_placeholders(&criterion.label, &criterion_path.key("label"));
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

    pub(super) fn quorum(&mut self, approvers: &[String], required: u32, path: &FieldPath, by_role: bool) -> bool {
        if approvers.is_empty() {
            if by_role {
                return true;
            }
            self.error(
                Kind::MissingField,
                &path.key("approvers"),
                "no approvers are listed",
                "list principals (`alice`) or roles (`role:sre`) allowed to decide, or the approvals needed per role in required_from",
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

    /// `required_from`: approvals needed per role or principal, each at
    /// least 1, a named principal at most 1 (a principal counts once).
    pub(super) fn required_from(&mut self, def: &BTreeMap<String, u32>, path: &FieldPath) -> Option<Vec<(Principal, u32)>> {
        let mut out = Vec::new();
        let mut ok = true;
        for (who, &count) in def {
            let entry = path.key(who);
            let Some(principal) = self.principal(who, &entry) else {
                ok = false;
                continue;
            };
            match (&principal, count) {
                (_, 0) => {
                    self.error(Kind::InvalidValue, &entry, format!("`{who}` = 0 needs no approval"), "use at least 1, or remove the entry");
                    ok = false;
                }
                (Principal::User(_), n) if n > 1 => {
                    self.error(
                        Kind::QuorumTooLarge,
                        &entry,
                        format!("`{who}` = {n}, but a named principal counts once"),
                        "use 1, or name a role whose members can give several approvals",
                    );
                    ok = false;
                }
                _ => out.push((principal, count)),
            }
        }
        ok.then_some(out)
    }

    /// The inputs an approval carries: identifiers, typed (declared, or
    /// inferred from the default or the options), defaults and options of
    /// that type, a default among the options.
    pub(super) fn inputs(&mut self, def: &BTreeMap<String, crate::model::InputDef>, path: &FieldPath) -> Option<BTreeMap<String, Input>> {
        let mut out = BTreeMap::new();
        let mut ok = true;
        for (name, input) in def {
            let entry = path.key(name);
            if !is_identifier(name) {
                self.error(
                    Kind::BadId,
                    &entry,
                    format!("input name `{name}` is not an identifier"),
                    "use letters, digits and `_`, so conditions can read `decisions.<gate>.inputs.<name>`",
                );
                ok = false;
                continue;
            }
            let inferred = input.default.as_ref().or(input.options.first()).and_then(infer_type);
            let Some(ty) = input.ty.or(inferred) else {
                self.error(
                    Kind::MissingField,
                    &entry.key("type"),
                    format!("input `{name}` has neither a type, a default nor options"),
                    "add type = \"string\" (or number, integer, boolean, list, object, duration)",
                );
                ok = false;
                continue;
            };
            let given = input.default.iter().map(|v| ("default", v)).chain(input.options.iter().map(|v| ("options", v)));
            for (field, value) in given {
                let field = if field == "options" { "option" } else { field };
                if let Err(problem) = check_var_value(ty, value) {
                    self.error(
                        Kind::Type,
                        &entry.key(field),
                        format!("input `{name}`: its {field} {problem}"),
                        "make it match the input's type",
                    );
                    ok = false;
                }
            }
            if let Some(default) = &input.default {
                if !input.options.is_empty() && !input.options.contains(default) {
                    self.error(
                        Kind::InvalidValue,
                        &entry.key("default"),
                        format!("the default of input `{name}` is not one of its options"),
                        "choose one of the options as the default",
                    );
                    ok = false;
                }
            }
            let var = Var {
                ty,
                default: input.default.clone(),
                description: input.description.clone(),
                min_duration: None,
                bounds: Bounds::default(),
            };
            out.insert(name.clone(), Input { var, options: input.options.clone() });
        }
        ok.then_some(out)
    }

    /// Refuses `on_timeout = "approve"` when an input has no default (a
    /// deadline cannot choose it); true when the answer can be given.
    fn approve_has_inputs(
        &mut self,
        on_timeout: Option<crate::model::OnTimeout>,
        required_input: Option<&String>,
        path: &FieldPath,
    ) -> bool {
        let (Some(crate::model::OnTimeout::Approve), Some(name)) = (on_timeout, required_input) else {
            return true;
        };
        self.error(
            Kind::InvalidValue,
            path,
            format!("on_timeout = \"approve\" cannot choose input `{name}`, which has no default"),
            "give the input a default, or choose another on_timeout",
        );
        false
    }

    pub(super) fn approval(&mut self, def: &ApprovalDef, path: &FieldPath) -> Option<Approval> {
        let inputs = self.inputs(&def.inputs, &path.key("inputs"));
        let required_input = def.inputs.iter().find(|(_, input)| input.default.is_none()).map(|(name, _)| name);
        self.approve_has_inputs(def.on_timeout, required_input, &path.key("on_timeout"));
        let mut ok = self.quorum(&def.approvers, def.required, path, !def.required_from.is_empty());
        let required_from = self.required_from(&def.required_from, &path.key("required_from"));
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
                let quorum_ok = self.quorum(&level.approvers, level.required, &level_path, !level.required_from.is_empty());
                let approvers = self.principals(&level.approvers, &level_path.key("approvers"));
                let required_from = self.required_from(&level.required_from, &level_path.key("required_from"));
                let timeout = level.timeout.as_deref().map(|text| self.duration(text, &level_path.key("timeout"), true));
                let mut level_ok = quorum_ok;
                if level.on_timeout.is_some() && level.timeout.is_none() {
                    self.error(
                        Kind::InvalidValue,
                        &level_path.key("on_timeout"),
                        "on_timeout is set but this level has no timeout",
                        "add timeout = \"15m\" to the level or remove its on_timeout",
                    );
                    level_ok = false;
                }
                level_ok &= self.approve_has_inputs(level.on_timeout, required_input, &level_path.key("on_timeout"));
                if !level_ok {
                    return None;
                }
                Some(EscalationLevel {
                    approvers: approvers?,
                    required: level.required,
                    required_from: required_from?,
                    join: level.join,
                    timeout: timeout.checked()?,
                    on_timeout: level.on_timeout,
                })
            })
            .collect();
        let notify = def.notify.as_ref().map(|step| self.step(step, &path.key("notify"), "notify"));
        if !ok {
            return None;
        }
        Some(Approval {
            approvers: approvers?,
            required: def.required,
            required_from: required_from?,
            inputs: inputs?,
            self_approval: def.self_approval,
            timeout: timeout.checked()?,
            on_timeout,
            escalation: escalation.into_iter().collect::<Option<Vec<_>>>()?,
            comment_required: def.comment_required,
            notify: notify.checked()?,
        })
    }
}
