//! Reports rendered from an instance's state and event log: the documents
//! the seeds ask for, built from what actually happened, never typed by hand.
//!
//! Each report is built once as structured JSON (what `--format json`
//! prints) and rendered to Markdown from that same value, so the two never
//! disagree. Values whose key looks like a secret (token, password, ...) and
//! passwords inside URLs are redacted before anything is rendered.

use crate::machine::payload;
use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde_json::{json, Map, Value};

use crate::machine::{Event, GateStatus, Instance, PhaseStatus, Record, TaskStatus, Timestamp, Verdict};
use crate::plan::{Action, Level, Workflow};

/// The reports phasegate renders.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The Production Readiness Report: what hardening found and whether the release is ready.
    Readiness,
    /// The gate validation report: every criterion, its values and verdict, every decision.
    Gate,
    /// The compliance checklist: Must Pass and Should Pass items with their evidence.
    Checklist,
    /// A phase completion certificate.
    Certificate,
    /// The ops report: SLIs, budgets, incidents, rollbacks, loop-backs.
    Ops,
}

impl Kind {
    /// Every kind, as the CLI spells it.
    pub const ALL: [(&'static str, Kind); 5] = [
        ("readiness", Kind::Readiness),
        ("gate", Kind::Gate),
        ("checklist", Kind::Checklist),
        ("certificate", Kind::Certificate),
        ("ops", Kind::Ops),
    ];

    /// Parses a kind name; the error lists the known ones.
    pub fn parse(name: &str) -> Result<Self, String> {
        Self::ALL
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, k)| *k)
            .ok_or_else(|| format!("unknown report kind `{name}`; choose one of {}", Self::ALL.map(|(n, _)| n).join(", ")))
    }

    fn name(self) -> &'static str {
        Self::ALL.iter().find(|(_, k)| *k == self).map_or("report", |(n, _)| n)
    }
}

/// A rendered report.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// Structured content (`--format json`).
    pub data: Value,
    /// The same content as Markdown (`--format md`).
    pub markdown: String,
}

/// What a report is built from.
pub struct Input<'a> {
    /// The instance's current state.
    pub instance: &'a Instance,
    /// Its pinned workflow.
    pub workflow: &'a Workflow,
    /// Its whole event log.
    pub history: &'a [Record],
    /// When the report is generated.
    pub now: Timestamp,
    /// For `certificate`, the phase (default: the last phase that passed);
    /// for `readiness`, the last phase covered (default: every phase started).
    pub phase: Option<&'a str>,
}

/// Renders one report; the error says why it cannot be (a certificate for a
/// phase that has not passed, say).
pub fn render(kind: Kind, input: &Input<'_>) -> Result<Report, String> {
    let mut data = match kind {
        Kind::Readiness => readiness(input)?,
        Kind::Gate => gates(input),
        Kind::Checklist => checklist(input),
        Kind::Certificate => certificate(input)?,
        Kind::Ops => ops(input),
    };
    redact(&mut data);
    let header = json!({
        "kind": kind.name(),
        "instance": input.instance.id,
        "workflow": input.workflow.name,
        "workflow_version": input.workflow.version,
        "definition": input.instance.definition_hash,
        "status": input.instance.effective_status(),
        "started_by": input.instance.started_by,
        "started_at": input.instance.started_at.to_string(),
        "generated_at": input.now.to_string(),
        "events": input.history.len(),
    });
    if let Value::Object(map) = &mut data {
        map.insert("report".to_owned(), header);
    }
    let markdown = markdown(kind, &data);
    Ok(Report { data, markdown })
}

/// Keys whose values never appear in a report.
fn secret_key(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    ["token", "secret", "password", "passwd", "api_key", "apikey", "authorization", "credential", "private_key"]
        .iter()
        .any(|s| key.contains(s))
}

/// Redacts secret-looking keys and passwords in URLs, in place.
pub fn redact(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (key, item) in map.iter_mut() {
                if secret_key(key) {
                    *item = Value::String("[redacted]".to_owned());
                } else {
                    redact(item);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(redact),
        Value::String(text) => {
            if let Some(scheme) = text.find("://") {
                let rest = &text[scheme + 3..];
                let host_end = rest.find('/').unwrap_or(rest.len());
                if let Some(at) = rest[..host_end].rfind('@') {
                    let userinfo = &rest[..at];
                    let user = userinfo.split(':').next().unwrap_or_default();
                    *text = format!("{}{user}:[redacted]{}", &text[..scheme + 3], &rest[at..]);
                }
            }
        }
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

fn phase_status(status: &PhaseStatus) -> Value {
    match status {
        PhaseStatus::Passed { at } => json!({"status": "passed", "at": at.to_string()}),
        PhaseStatus::Failed { reason, at } => json!({"status": "failed", "reason": reason, "at": at.to_string()}),
        other => json!({"status": other.kind()}),
    }
}

fn task_entry(state: &crate::machine::TaskState, title: &str, owner: Option<String>) -> Value {
    let mut entry = json!({"id": state.id, "title": title, "status": state.status.kind(), "attempts": state.attempts, "owner": owner});
    match &state.status {
        TaskStatus::Succeeded { output, duration_ms, at, .. } => {
            entry["output"] = output.clone();
            entry["duration_ms"] = json!(duration_ms);
            entry["at"] = json!(at.to_string());
        }
        TaskStatus::Failed { error, .. } | TaskStatus::RetryWaiting { error, .. } => entry["error"] = json!(error),
        TaskStatus::Skipped { reason } => entry["reason"] = json!(reason),
        TaskStatus::Pending | TaskStatus::Dispatched { .. } | TaskStatus::Cancelled { .. } => {}
    }
    entry
}

fn verdict(verdict: Verdict) -> &'static str {
    match verdict {
        Verdict::Pass => "pass",
        Verdict::Fail => "fail",
        Verdict::Inconclusive => "inconclusive",
        Verdict::Warning => "warning",
    }
}

fn level(level: Level) -> &'static str {
    match level {
        Level::Must => "must",
        Level::Should => "should",
    }
}

/// A gate of the current state: criteria with values and verdicts, and decisions.
fn gate_entry(phase: &str, gate: &crate::machine::GateState, plan: &crate::plan::Gate) -> Value {
    let criteria: Vec<Value> = match &gate.evaluation {
        Some(evaluation) => evaluation
            .criteria
            .iter()
            .map(|c| {
                json!({"id": c.id, "label": c.label, "level": level(c.level), "condition": c.condition,
                       "verdict": verdict(c.verdict), "values": c.values, "detail": c.detail})
            })
            .collect(),
        None => plan
            .criteria
            .iter()
            .map(|c| json!({"id": c.id, "label": c.label, "level": level(c.level), "condition": c.expr.source(), "verdict": "not evaluated"}))
            .collect(),
    };
    let decisions: Vec<Value> = gate
        .decisions
        .iter()
        .map(|(at, d)| json!({"decision": d.kind.verb(), "by": d.principal, "via": d.via, "level": d.level, "at": at.to_string(), "comment": d.comment}))
        .collect();
    let status = match &gate.status {
        GateStatus::Passed { at, by } => json!({"status": "passed", "at": at.to_string(), "approved_by": by}),
        GateStatus::Failed { at, reason } => json!({"status": "failed", "at": at.to_string(), "reason": reason}),
        GateStatus::AwaitingDecision { level, deadline, approvals, .. } => {
            json!({"status": "awaiting_decision", "level": level, "deadline": deadline.map(|d| d.to_string()), "approvals": approvals})
        }
        GateStatus::OnHold { since, by } => json!({"status": "on_hold", "since": since.to_string(), "by": by}),
        GateStatus::Pending => json!({"status": "pending"}),
    };
    json!({"phase": phase, "gate": gate.id, "title": plan.title, "status": status, "criteria": criteria, "decisions": decisions})
}

fn phase_named(workflow: &Workflow, id: &str) -> Result<usize, String> {
    workflow.phase_index(id).ok_or_else(|| {
        format!(
            "workflow `{}` has no phase `{id}`; phases: {}",
            workflow.name,
            workflow.phases.iter().map(|p| p.id.as_str()).collect::<Vec<_>>().join(", ")
        )
    })
}

/// The Production Readiness Report: every phase that has started (with
/// `phase`, only that phase and those it runs after).
fn readiness(input: &Input<'_>) -> Result<Value, String> {
    let (instance, workflow) = (input.instance, input.workflow);
    let limit = input.phase.map(|id| phase_named(workflow, id)).transpose()?;
    let mut phases = Vec::new();
    let mut must_failed = Vec::new();
    let mut warnings = Vec::new();
    let mut inconclusive = Vec::new();
    let mut must_inconclusive = 0usize;
    let (mut passed, mut total) = (0usize, 0usize);
    for &p in &workflow.phase_order {
        let state = &instance.phases[p];
        let plan = &workflow.phases[p];
        if (matches!(state.status, PhaseStatus::Pending) && state.attempt == 0) || limit.is_some_and(|l| !workflow.is_upstream(p, l)) {
            continue;
        }
        let tasks: Vec<Value> = state
            .tasks
            .iter()
            .zip(&plan.tasks)
            .filter(|(t, tp)| !(tp.on_demand && matches!(t.status, TaskStatus::Pending)))
            .map(|(t, tp)| task_entry(t, &tp.title, tp.owner.as_ref().map(ToString::to_string)))
            .collect();
        let gates: Vec<Value> = state.gates.iter().zip(&plan.gates).map(|(g, gp)| gate_entry(&plan.id, g, gp)).collect();
        for gate in &state.gates {
            if let Some(evaluation) = &gate.evaluation {
                for c in &evaluation.criteria {
                    total += 1;
                    let item = format!("{}/{}: {}", plan.id, gate.id, c.label);
                    match (c.verdict, c.level) {
                        (Verdict::Pass, _) => passed += 1,
                        (Verdict::Fail, Level::Must) => must_failed.push(item),
                        (Verdict::Fail, Level::Should) => warnings.push(item),
                        (Verdict::Warning, _) => warnings.push(format!("{item} (warning band)")),
                        (Verdict::Inconclusive, Level::Must) => {
                            must_inconclusive += 1;
                            inconclusive.push(item);
                        }
                        (Verdict::Inconclusive, Level::Should) => inconclusive.push(item),
                    }
                }
            }
        }
        phases.push(json!({"id": plan.id, "title": plan.title, "owner": plan.owner.as_ref().map(ToString::to_string),
                           "attempt": state.attempt, "status": phase_status(&state.status), "entered": state.entered,
                           "tasks": tasks, "gates": gates}));
    }
    let signed_off: Vec<Value> = instance
        .phases
        .iter()
        .enumerate()
        .filter(|(p, _)| limit.is_none_or(|l| workflow.is_upstream(*p, l)))
        .flat_map(|(_, p)| p.gates.iter().map(move |g| (p, g)))
        .filter_map(|(p, g)| match &g.status {
            GateStatus::Passed { at, by } if !by.is_empty() => {
                Some(json!({"gate": format!("{}/{}", p.id, g.id), "by": by, "at": at.to_string()}))
            }
            _ => None,
        })
        .collect();
    // Missing evidence for a should criterion (a first release has no
    // baseline, say) is shown, and a person judged it at the gate; only
    // musts decide readiness.
    let ready = must_failed.is_empty() && must_inconclusive == 0 && total > 0;
    let assessment = if ready {
        "ready: every must criterion evaluated so far passed".to_owned()
    } else if total == 0 {
        "not assessed: no gate has been evaluated yet".to_owned()
    } else {
        format!("not ready: {} must criteria failed, {must_inconclusive} inconclusive", must_failed.len())
    };
    Ok(json!({
        "scope": input.phase,
        "release": instance.vars.get("release_version"),
        "target": instance.vars.get("target_url"),
        "assessment": assessment,
        "ready": ready,
        "criteria_passed": passed,
        "criteria_evaluated": total,
        "readiness_score": if total == 0 { Value::Null } else { json!(((passed as f64 / total as f64) * 1000.0).round() / 10.0) },
        "must_failed": must_failed,
        "should_failed": warnings,
        "inconclusive": inconclusive,
        "sign_offs": signed_off,
        "phases": phases,
    }))
}

/// Every gate evaluation and decision in the log, in order, plus trigger halts.
fn gates(input: &Input<'_>) -> Value {
    let mut evaluations: Vec<Value> = Vec::new();
    let mut attempts: BTreeMap<String, u32> = BTreeMap::new();
    for record in input.history {
        let at = record.at().to_string();
        match record.event() {
            Event::PhaseStarted(payload::PhaseStarted { phase, attempt }) => {
                attempts.insert(phase.clone(), *attempt);
            }
            Event::GateEvaluated(payload::GateEvaluated { phase, gate, evaluation }) => {
                let criteria: Vec<Value> = evaluation
                    .criteria
                    .iter()
                    .map(|c| {
                        json!({"id": c.id, "label": c.label, "level": level(c.level), "condition": c.condition,
                               "verdict": verdict(c.verdict), "values": c.values, "detail": c.detail, "weight": c.weight, "points": c.points, "deltas": c.deltas})
                    })
                    .collect();
                evaluations.push(json!({"phase": phase, "gate": gate, "phase_attempt": attempts.get(phase), "evaluated_at": at,
                                        "criteria": criteria, "score": evaluation.score, "decisions": [], "outcome": Value::Null}));
            }
            Event::DecisionRecorded(payload::DecisionRecorded { phase, gate, decision }) => {
                if let Some(entry) = evaluations.iter_mut().rev().find(|e| e["phase"] == *phase && e["gate"] == *gate) {
                    if let Some(list) = entry["decisions"].as_array_mut() {
                        list.push(json!({"decision": decision.kind.verb(), "by": decision.principal, "via": decision.via,
                                         "level": decision.level, "at": at, "comment": decision.comment}));
                    }
                }
            }
            Event::GateTimedOut(payload::GateTimedOut { phase, gate, level, action }) => {
                if let Some(entry) = evaluations.iter_mut().rev().find(|e| e["phase"] == *phase && e["gate"] == *gate) {
                    if let Some(list) = entry["decisions"].as_array_mut() {
                        list.push(json!({"decision": format!("deadline: {}", serde_json::to_value(action).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()),
                                         "by": "phasegate", "level": level, "at": at, "comment": "no decision before the deadline"}));
                    }
                }
            }
            _ => {}
        }
    }
    // The outcome each evaluation led to, from the current state for the latest one.
    for entry in &mut evaluations {
        let phase = entry["phase"].as_str().unwrap_or_default().to_owned();
        let gate = entry["gate"].as_str().unwrap_or_default().to_owned();
        let state = input.instance.phases.iter().find(|p| p.id == phase).and_then(|p| p.gates.iter().find(|g| g.id == gate));
        let current_attempt = input.instance.phases.iter().find(|p| p.id == phase).map(|p| p.attempt);
        if entry["phase_attempt"].as_u64() == current_attempt.map(u64::from) {
            entry["outcome"] = json!(state.map(|g| g.status.kind()));
        } else {
            entry["outcome"] = json!("superseded by a later attempt");
        }
    }
    let halts: Vec<Value> = input
        .history
        .iter()
        .filter_map(|r| match r.event() {
            Event::TriggerDecided(payload::TriggerDecided { phase, trigger, decision }) => Some(json!({"phase": phase, "trigger": trigger, "decision": decision.kind.verb(),
                                                                           "by": decision.principal, "at": r.at().to_string(), "comment": decision.comment})),
            Event::TriggerTimedOut(payload::TriggerTimedOut { phase, trigger, level, .. }) => Some(json!({"phase": phase, "trigger": trigger, "decision": "deadline", "by": "phasegate",
                                                                             "level": level, "at": r.at().to_string()})),
            _ => None,
        })
        .collect();
    json!({"evaluations": evaluations, "trigger_decisions": halts})
}

fn checklist(input: &Input<'_>) -> Value {
    let mut gates = Vec::new();
    for &p in &input.workflow.phase_order {
        let plan = &input.workflow.phases[p];
        let state = &input.instance.phases[p];
        for (g, gate_plan) in plan.gates.iter().enumerate() {
            if gate_plan.criteria.is_empty() {
                continue;
            }
            let gate = &state.gates[g];
            let items: Vec<Value> = gate_plan
                .criteria
                .iter()
                .map(|criterion| {
                    let result = gate.evaluation.as_ref().and_then(|e| e.criteria.iter().find(|c| c.id == criterion.id));
                    json!({
                        "id": criterion.id,
                        "label": criterion.label,
                        "level": level(criterion.level),
                        "checked": result.is_some_and(|r| r.verdict == Verdict::Pass),
                        "verdict": result.map_or("not evaluated", |r| verdict(r.verdict)),
                        "evidence": result.map(|r| json!(r.values)).unwrap_or(Value::Null),
                        "condition": criterion.expr.source(),
                    })
                })
                .collect();
            let must_open = items.iter().filter(|i| i["level"] == "must" && i["checked"] != true).count();
            gates.push(json!({"phase": plan.id, "gate": gate_plan.id, "title": gate_plan.title, "status": gate.status.kind(),
                              "must_open": must_open, "items": items}));
        }
    }
    json!({"gates": gates})
}

fn certificate(input: &Input<'_>) -> Result<Value, String> {
    let (instance, workflow) = (input.instance, input.workflow);
    let p = match input.phase {
        Some(id) => phase_named(workflow, id)?,
        None => workflow
            .phase_order
            .iter()
            .rev()
            .copied()
            .find(|&p| matches!(instance.phases[p].status, PhaseStatus::Passed { .. }))
            .ok_or_else(|| format!("instance {} has no phase that passed yet; there is nothing to certify", instance.id))?,
    };
    let state = &instance.phases[p];
    let plan = &workflow.phases[p];
    let PhaseStatus::Passed { at } = &state.status else {
        return Err(format!("phase {} is {}, not passed; a certificate is issued only for a passed phase", plan.id, state.status.kind()));
    };
    let gates: Vec<Value> = state.gates.iter().zip(&plan.gates).map(|(g, gp)| gate_entry(&plan.id, g, gp)).collect();
    let approvals: Vec<Value> = state
        .gates
        .iter()
        .flat_map(|g| {
            g.decisions
                .iter()
                .filter(|(_, d)| d.kind == crate::machine::DecisionKind::Approve)
                .map(move |(at, d)| json!({"gate": g.id, "by": d.principal, "via": d.via, "at": at.to_string(), "comment": d.comment}))
        })
        .collect();
    let warnings: Vec<String> =
        state.gates.iter().filter_map(|g| g.evaluation.as_ref()).flat_map(|e| e.warnings().map(|c| c.label.clone())).collect();
    let next: Vec<&str> =
        workflow.phases.iter().filter(|candidate| candidate.after.contains(&p)).map(|candidate| candidate.id.as_str()).collect();
    Ok(json!({
        "phase": plan.id,
        "title": plan.title,
        "owner": plan.owner.as_ref().map(ToString::to_string),
        "attempt": state.attempt,
        "passed_at": at.to_string(),
        "gates": gates,
        "approvals": approvals,
        "should_warnings": warnings,
        "tasks": state.tasks.iter().zip(&plan.tasks)
            .filter(|(t, tp)| !(tp.on_demand && matches!(t.status, TaskStatus::Pending)))
            .map(|(t, tp)| task_entry(t, &tp.title, tp.owner.as_ref().map(ToString::to_string))).collect::<Vec<_>>(),
        "authorizes": next,
    }))
}

fn ops(input: &Input<'_>) -> Value {
    let (instance, workflow) = (input.instance, input.workflow);
    // SLIs: every watch's samples over the whole log.
    let mut slis: BTreeMap<String, (Vec<f64>, usize, usize, usize)> = BTreeMap::new();
    let mut incidents = Vec::new();
    let mut rollbacks: Vec<Value> = Vec::new();
    let mut loopbacks = Vec::new();
    let mut decisions = Vec::new();
    let mut last_halt: Option<String> = None;
    let open = |rollbacks: &Vec<Value>| rollbacks.last().is_some_and(|r| r["outcome"] == "in progress");
    for record in input.history {
        let at = record.at().to_string();
        match record.event() {
            Event::WatchSampled(payload::WatchSampled { watch, value, verdict, .. }) => {
                let entry = slis.entry(watch.clone()).or_default();
                if let Some(v) = value {
                    entry.0.push(*v);
                }
                match verdict {
                    crate::machine::SampleVerdict::Breach => entry.1 += 1,
                    crate::machine::SampleVerdict::NoData => entry.2 += 1,
                    crate::machine::SampleVerdict::Ok => {}
                }
            }
            Event::TriggerFired(payload::TriggerFired { phase, trigger, cause }) => {
                let action = workflow.trigger(phase, trigger).map(|(_, t)| &t.action);
                match action {
                    Some(Action::Goto { phase: target, code, reason, .. }) => loopbacks.push(json!({
                        "code": code, "from": phase, "to": workflow.phases[*target].id, "reason": reason, "cause": cause, "at": at,
                    })),
                    Some(Action::Rollback { to }) => rollbacks.push(json!({
                        "started_at": at, "by": format!("trigger:{trigger}"), "reason": cause,
                        "to": to.map(|t| workflow.phases[t].id.clone()), "steps": [], "outcome": "in progress",
                    })),
                    Some(Action::HaltForApproval { .. }) => last_halt = Some(format!("trigger:{trigger} ({cause})")),
                    Some(_) | None => {}
                }
                if cause.contains("fired") {
                    if let Some(watch) = cause.strip_prefix("watch ").and_then(|c| c.split(' ').next()) {
                        if let Some(entry) = slis.get_mut(watch) {
                            entry.3 += 1;
                        }
                    }
                }
            }
            Event::SignalReceived(payload::SignalReceived { name, data, by }) => {
                incidents.push(json!({"signal": name, "data": data, "by": by, "at": at, "reactions": []}));
            }
            Event::TriggerSkipped(payload::TriggerSkipped { trigger, reason, .. }) => {
                if let Some(last) = incidents.last_mut() {
                    if let Some(list) = last["reactions"].as_array_mut() {
                        list.push(json!(format!("{trigger}: did not act ({reason})")));
                    }
                }
            }
            Event::RollbackStarted(payload::RollbackStarted { by, reason, to }) => {
                rollbacks.push(json!({"started_at": at, "by": by, "reason": reason, "to": to, "steps": [], "outcome": "in progress"}));
            }
            Event::CompensationDispatched(_) if !open(&rollbacks) => {
                // Started by an approved (or timed-out) trigger halt.
                rollbacks.push(json!({"started_at": at, "by": last_halt.clone().unwrap_or_else(|| "a trigger halt".to_owned()),
                                      "reason": "approved at the trigger's halt", "to": Value::Null, "steps": [], "outcome": "in progress"}));
            }
            Event::CompensationSucceeded(payload::CompensationSucceeded { id, attempt, .. }) | Event::CompensationFailed(payload::CompensationFailed { id, attempt, .. }) => {
                let ok = matches!(record.event(), Event::CompensationSucceeded(_));
                if let Some(list) = rollbacks.last_mut().and_then(|r| r["steps"].as_array_mut()) {
                    list.push(json!({"step": id, "attempt": attempt, "result": if ok { "succeeded" } else { "failed" }, "at": at}));
                }
            }
            Event::RollbackCompleted => {
                if let Some(last) = rollbacks.last_mut() {
                    last["outcome"] = json!("completed");
                    last["completed_at"] = json!(at);
                }
            }
            Event::DecisionRecorded(payload::DecisionRecorded { phase, gate, decision }) => decisions.push(json!({
                "what": format!("gate {phase}/{gate}"), "decision": decision.kind.verb(), "by": decision.principal, "at": at, "comment": decision.comment,
            })),
            Event::TriggerDecided(payload::TriggerDecided { phase, trigger, decision }) => decisions.push(json!({
                "what": format!("trigger {phase}/{trigger}"), "decision": decision.kind.verb(), "by": decision.principal, "at": at, "comment": decision.comment,
            })),
            _ => {}
        }
    }
    let slis: Vec<Value> = workflow
        .phases
        .iter()
        .flat_map(|p| p.watches.iter())
        .map(|w| {
            let (values, breaches, no_data, firings) = slis.get(&w.id).cloned().unwrap_or_default();
            let min = values.iter().copied().fold(f64::INFINITY, f64::min);
            let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            json!({
                "watch": w.id, "title": w.title, "condition": w.condition.source(), "samples": values.len() + no_data,
                "latest": values.last(), "min": if values.is_empty() { Value::Null } else { json!(min) },
                "max": if values.is_empty() { Value::Null } else { json!(max) },
                "breaching_samples": breaches, "no_data_samples": no_data, "firings": firings,
            })
        })
        .collect();
    let budgets: Map<String, Value> = instance
        .vars
        .iter()
        .filter(|(name, value)| {
            value.is_object() && (name.to_ascii_uppercase().ends_with("BUDGETS") || name.to_ascii_uppercase().ends_with("TARGETS"))
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let measurements: Vec<Value> = workflow
        .phase_order
        .iter()
        .flat_map(|&p| instance.phases[p].tasks.iter().map(move |t| (p, t)))
        .filter_map(|(p, t)| match &t.status {
            TaskStatus::Succeeded { output: Value::Object(output), at, .. } => {
                let scalars: Map<String, Value> =
                    output.iter().filter(|(_, v)| v.is_number() || v.is_boolean()).map(|(k, v)| (k.clone(), v.clone())).collect();
                (!scalars.is_empty())
                    .then(|| json!({"phase": workflow.phases[p].id, "task": t.id, "at": at.to_string(), "values": scalars}))
            }
            _ => None,
        })
        .collect();
    let open_actions: Vec<String> = instance
        .phases
        .iter()
        .flat_map(|p| p.gates.iter().map(move |g| (p, g)))
        .filter_map(|(p, g)| g.evaluation.as_ref().map(|e| (p, g, e)))
        .flat_map(|(p, g, e)| {
            e.criteria
                .iter()
                .filter(|c| c.verdict != Verdict::Pass)
                .map(move |c| format!("{}/{}: {} ({})", p.id, g.id, c.label, verdict(c.verdict)))
        })
        .collect();
    json!({
        "period": {"from": instance.started_at.to_string(), "to": input.now.to_string()},
        "slis": slis,
        "budgets": budgets,
        "thresholds": instance.vars,
        "measurements": measurements,
        "incidents": incidents,
        "rollbacks": rollbacks,
        "loop_backs": loopbacks,
        "decisions": decisions,
        "open_actions": open_actions,
    })
}

// ---------------------------------------------------------------------------
// Markdown.

fn text(value: &Value) -> String {
    match value {
        Value::Null => "—".to_owned(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn cell(value: &Value) -> String {
    text(value).replace('|', "\\|").replace('\n', " ")
}

fn values(value: &Value) -> String {
    match value.as_object() {
        Some(map) if !map.is_empty() => map.iter().map(|(k, v)| format!("`{k}` = {}", cell(v))).collect::<Vec<_>>().join("; "),
        _ => "—".to_owned(),
    }
}

fn items(value: &Value) -> impl Iterator<Item = &Value> {
    value.as_array().into_iter().flatten()
}

fn header(out: &mut String, title: &str, data: &Value) {
    let r = &data["report"];
    let _ = writeln!(out, "# {title}\n");
    let _ = writeln!(
        out,
        "| | |\n|---|---|\n| Instance | `{}` |\n| Workflow | {} v{} (definition `{}`) |\n| Status | {} |\n| Started | {} by {} |\n| Generated | {} from {} events |\n",
        text(&r["instance"]),
        text(&r["workflow"]),
        text(&r["workflow_version"]),
        text(&r["definition"]).chars().take(12).collect::<String>(),
        text(&r["status"]),
        text(&r["started_at"]),
        text(&r["started_by"]),
        text(&r["generated_at"]),
        text(&r["events"]),
    );
}

fn gate_md(out: &mut String, gate: &Value) {
    let _ = writeln!(out, "#### Gate `{}/{}`: {}\n", text(&gate["phase"]), text(&gate["gate"]), text(&gate["title"]));
    let status = &gate["status"];
    let _ = writeln!(
        out,
        "Status: **{}**{}\n",
        text(&status["status"]),
        match status.get("approved_by").and_then(Value::as_array) {
            Some(by) if !by.is_empty() => format!(" (approved by {})", by.iter().map(text).collect::<Vec<_>>().join(", ")),
            _ => String::new(),
        }
    );
    if items(&gate["criteria"]).next().is_some() {
        let _ = writeln!(out, "| criterion | level | verdict | evidence |\n|---|---|---|---|");
        for c in items(&gate["criteria"]) {
            let _ = writeln!(out, "| {} | {} | {} | {} |", cell(&c["label"]), text(&c["level"]), text(&c["verdict"]), values(&c["values"]));
        }
        out.push('\n');
    }
    for d in items(&gate["decisions"]) {
        let comment = text(&d["comment"]);
        let _ = writeln!(
            out,
            "- {} by **{}** at {} (level {}){}",
            text(&d["decision"]),
            text(&d["by"]),
            text(&d["at"]),
            text(&d["level"]),
            if comment.is_empty() || comment == "—" { String::new() } else { format!(": {comment}") }
        );
    }
    out.push('\n');
}

fn tasks_md(out: &mut String, tasks: &Value) {
    if items(tasks).next().is_none() {
        return;
    }
    let _ = writeln!(out, "| task | owner | status | attempts | result |\n|---|---|---|---|---|");
    for t in items(tasks) {
        let result = match (&t.get("output"), &t.get("error"), &t.get("reason")) {
            (Some(output), _, _) => values(output),
            (_, Some(error), _) => format!("error: {}", cell(error)),
            (_, _, Some(reason)) => cell(reason),
            _ => "—".to_owned(),
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} |",
            cell(&t["title"]),
            text(&t["owner"]),
            text(&t["status"]),
            text(&t["attempts"]),
            result
        );
    }
    out.push('\n');
}

fn list_md(out: &mut String, title: &str, list: &Value) {
    let entries: Vec<String> = items(list).map(text).collect();
    if entries.is_empty() {
        let _ = writeln!(out, "**{title}:** none\n");
    } else {
        let _ = writeln!(out, "**{title}:**\n");
        for entry in entries {
            let _ = writeln!(out, "- {entry}");
        }
        out.push('\n');
    }
}

fn markdown(kind: Kind, data: &Value) -> String {
    let mut out = String::new();
    match kind {
        Kind::Readiness => {
            header(&mut out, "Production Readiness Report", data);
            let _ = writeln!(out, "## Assessment\n\n**{}**\n", text(&data["assessment"]));
            let _ = writeln!(out, "- Release: {} on {}", text(&data["release"]), text(&data["target"]));
            let _ = writeln!(
                out,
                "- Criteria passed: {} of {} (readiness score {} %)\n",
                text(&data["criteria_passed"]),
                text(&data["criteria_evaluated"]),
                text(&data["readiness_score"])
            );
            list_md(&mut out, "Must criteria failed (blocking defects)", &data["must_failed"]);
            list_md(&mut out, "Should criteria failed (warnings)", &data["should_failed"]);
            list_md(&mut out, "Inconclusive (evidence missing)", &data["inconclusive"]);
            let sign_offs: Vec<String> = items(&data["sign_offs"])
                .map(|s| {
                    format!("{} by {} at {}", text(&s["gate"]), items(&s["by"]).map(text).collect::<Vec<_>>().join(", "), text(&s["at"]))
                })
                .collect();
            list_md(&mut out, "Sign-offs", &json!(sign_offs));
            let _ = writeln!(out, "## Activities and findings\n");
            for phase in items(&data["phases"]) {
                let _ = writeln!(
                    out,
                    "### Phase `{}`: {} ({}, attempt {}, owner {})\n",
                    text(&phase["id"]),
                    text(&phase["title"]),
                    text(&phase["status"]["status"]),
                    text(&phase["attempt"]),
                    text(&phase["owner"])
                );
                if let Some(entered) = phase["entered"].as_str() {
                    let _ = writeln!(out, "Entered: {entered}\n");
                }
                tasks_md(&mut out, &phase["tasks"]);
                for gate in items(&phase["gates"]) {
                    gate_md(&mut out, gate);
                }
            }
        }
        Kind::Gate => {
            header(&mut out, "Gate validation report", data);
            for e in items(&data["evaluations"]) {
                let _ = writeln!(
                    out,
                    "## `{}/{}` (phase attempt {}), evaluated {}\n",
                    text(&e["phase"]),
                    text(&e["gate"]),
                    text(&e["phase_attempt"]),
                    text(&e["evaluated_at"])
                );
                let _ = writeln!(out, "Outcome: **{}**\n", text(&e["outcome"]));
                if let Some(score) = e["score"].as_object() {
                    let _ = writeln!(
                        out,
                        "Score: **{} %** ({} of {} points), {} band (pass ≥ {} %, warning ≥ {} %)\n",
                        text(&score["percent"]),
                        text(&score["points"]),
                        text(&score["total"]),
                        text(&score["band"]),
                        text(&score["bands"]["pass"]),
                        text(&score["bands"]["warning"])
                    );
                }
                let _ = writeln!(
                    out,
                    "| criterion | level | condition | values | Δ vs baseline | points | verdict |\n|---|---|---|---|---|---|---|"
                );
                for c in items(&e["criteria"]) {
                    let detail = text(&c["detail"]);
                    let verdict = if detail.is_empty() || detail == "—" {
                        text(&c["verdict"])
                    } else {
                        format!("{} ({})", text(&c["verdict"]), cell(&c["detail"]))
                    };
                    let deltas = match c["deltas"].as_object() {
                        Some(map) if !map.is_empty() => map
                            .iter()
                            .map(|(path, delta)| format!("`{path}` {:+.1} %", delta.as_f64().unwrap_or_default() * 100.0))
                            .collect::<Vec<_>>()
                            .join("; "),
                        _ => "—".to_owned(),
                    };
                    let _ = writeln!(
                        out,
                        "| {} | {} | `{}` | {} | {deltas} | {}/{} | {} |",
                        cell(&c["label"]),
                        text(&c["level"]),
                        cell(&c["condition"]),
                        values(&c["values"]),
                        text(&c["points"]),
                        text(&c["weight"]),
                        verdict
                    );
                }
                out.push('\n');
                for d in items(&e["decisions"]) {
                    let _ = writeln!(
                        out,
                        "- {} by **{}** at {} (level {}): {}",
                        text(&d["decision"]),
                        text(&d["by"]),
                        text(&d["at"]),
                        text(&d["level"]),
                        text(&d["comment"])
                    );
                }
                out.push('\n');
            }
            if items(&data["trigger_decisions"]).next().is_some() {
                let _ = writeln!(out, "## Decisions at trigger halts\n");
                for d in items(&data["trigger_decisions"]) {
                    let _ = writeln!(
                        out,
                        "- `{}/{}`: {} by **{}** at {}",
                        text(&d["phase"]),
                        text(&d["trigger"]),
                        text(&d["decision"]),
                        text(&d["by"]),
                        text(&d["at"])
                    );
                }
            }
        }
        Kind::Checklist => {
            header(&mut out, "Compliance checklist", data);
            for gate in items(&data["gates"]) {
                let _ = writeln!(
                    out,
                    "## `{}/{}`: {} ({}; {} must item(s) open)\n",
                    text(&gate["phase"]),
                    text(&gate["gate"]),
                    text(&gate["title"]),
                    text(&gate["status"]),
                    text(&gate["must_open"])
                );
                for (title, level) in [("Must Pass", "must"), ("Should Pass", "should")] {
                    let rows: Vec<&Value> = items(&gate["items"]).filter(|i| i["level"] == level).collect();
                    if rows.is_empty() {
                        continue;
                    }
                    let _ = writeln!(out, "### {title}\n");
                    for item in rows {
                        let mark = if item["checked"] == true { "x" } else { " " };
                        let _ = writeln!(
                            out,
                            "- [{mark}] {} ({}); evidence: {}",
                            text(&item["label"]),
                            text(&item["verdict"]),
                            values(&item["evidence"])
                        );
                    }
                    out.push('\n');
                }
            }
        }
        Kind::Certificate => {
            header(&mut out, &format!("Phase completion certificate: {}", text(&data["title"])), data);
            let _ = writeln!(
                out,
                "This certifies that phase **`{}`** ({}) passed at **{}** (attempt {}), owner {}.\n",
                text(&data["phase"]),
                text(&data["title"]),
                text(&data["passed_at"]),
                text(&data["attempt"]),
                text(&data["owner"])
            );
            let _ = writeln!(out, "## Quality criteria and evidence\n");
            for gate in items(&data["gates"]) {
                gate_md(&mut out, gate);
            }
            let approvals: Vec<String> = items(&data["approvals"])
                .map(|a| {
                    format!(
                        "{} approved `{}` at {} (as {}): {}",
                        text(&a["by"]),
                        text(&a["gate"]),
                        text(&a["at"]),
                        text(&a["via"]),
                        text(&a["comment"])
                    )
                })
                .collect();
            list_md(&mut out, "Human approvals (sign-offs)", &json!(approvals));
            list_md(&mut out, "Should criteria not met (accepted by the approvers)", &data["should_warnings"]);
            let _ = writeln!(out, "## Work performed\n");
            tasks_md(&mut out, &data["tasks"]);
            let next: Vec<String> = items(&data["authorizes"]).map(text).collect();
            let _ = writeln!(
                out,
                "**Authorization to proceed:** {}\n",
                if next.is_empty() { "this is the last phase".to_owned() } else { next.join(", ") }
            );
        }
        Kind::Ops => {
            header(&mut out, "Ops report", data);
            let _ = writeln!(out, "Period: {} to {}\n", text(&data["period"]["from"]), text(&data["period"]["to"]));
            let _ = writeln!(out, "## SLIs (watches)\n\n| watch | condition (breach) | samples | latest | min | max | breaching | no data | firings |\n|---|---|---|---|---|---|---|---|---|");
            for s in items(&data["slis"]) {
                let _ = writeln!(
                    out,
                    "| {} | `{}` | {} | {} | {} | {} | {} | {} | {} |",
                    cell(&s["title"]),
                    cell(&s["condition"]),
                    text(&s["samples"]),
                    text(&s["latest"]),
                    text(&s["min"]),
                    text(&s["max"]),
                    text(&s["breaching_samples"]),
                    text(&s["no_data_samples"]),
                    text(&s["firings"])
                );
            }
            out.push('\n');
            let _ = writeln!(out, "## Budgets and targets\n");
            match data["budgets"].as_object() {
                Some(budgets) if !budgets.is_empty() => {
                    for (name, value) in budgets {
                        let _ = writeln!(out, "- `{name}`: {}", values(value));
                    }
                }
                _ => {
                    let _ = writeln!(out, "- none declared (variables ending in BUDGETS or TARGETS)");
                }
            }
            let _ = writeln!(out, "\n## Thresholds in force\n");
            if let Some(vars) = data["thresholds"].as_object() {
                for (name, value) in vars {
                    let shown = if value.is_object() { values(value) } else { cell(value) };
                    let _ = writeln!(out, "- `{name}`: {shown}");
                }
            }
            let _ = writeln!(out, "\n## Measurements against them\n\n| phase | task | when | values |\n|---|---|---|---|");
            for m in items(&data["measurements"]) {
                let _ = writeln!(out, "| {} | {} | {} | {} |", text(&m["phase"]), text(&m["task"]), text(&m["at"]), values(&m["values"]));
            }
            let _ = writeln!(out, "\n## Incidents\n");
            if items(&data["incidents"]).next().is_none() {
                let _ = writeln!(out, "None recorded.");
            }
            for i in items(&data["incidents"]) {
                let _ = writeln!(out, "- {} at {} from {}: {}", text(&i["signal"]), text(&i["at"]), text(&i["by"]), text(&i["data"]));
                for r in items(&i["reactions"]) {
                    let _ = writeln!(out, "  - {}", text(r));
                }
            }
            let _ = writeln!(out, "\n## Rollbacks\n");
            if items(&data["rollbacks"]).next().is_none() {
                let _ = writeln!(out, "None.");
            }
            for r in items(&data["rollbacks"]) {
                let _ = writeln!(
                    out,
                    "- started {} by {}: {} (to {}): **{}**",
                    text(&r["started_at"]),
                    text(&r["by"]),
                    text(&r["reason"]),
                    text(&r["to"]),
                    text(&r["outcome"])
                );
                for s in items(&r["steps"]) {
                    let _ = writeln!(out, "  - {} {} {}", text(&s["step"]), text(&s["result"]), text(&s["at"]));
                }
            }
            let _ = writeln!(out, "\n## Loop-backs\n");
            if items(&data["loop_backs"]).next().is_none() {
                let _ = writeln!(out, "None.");
            }
            for l in items(&data["loop_backs"]) {
                let _ = writeln!(
                    out,
                    "- **{}** {} → {} at {}: {} ({})",
                    text(&l["code"]),
                    text(&l["from"]),
                    text(&l["to"]),
                    text(&l["at"]),
                    text(&l["reason"]),
                    text(&l["cause"])
                );
            }
            let _ = writeln!(out, "\n## Decisions\n");
            for d in items(&data["decisions"]) {
                let _ = writeln!(
                    out,
                    "- {}: {} by {} at {}: {}",
                    text(&d["what"]),
                    text(&d["decision"]),
                    text(&d["by"]),
                    text(&d["at"]),
                    text(&d["comment"])
                );
            }
            out.push('\n');
            list_md(&mut out, "Open actions (criteria not passed)", &data["open_actions"]);
        }
    }
    out
}
