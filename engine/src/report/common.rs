//! What several reports show the same way: tasks, gates with their criteria
//! and decisions, phase statuses, and the Markdown helpers that write them.

use std::fmt::{Display, Write as _};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::machine::{GateState, GateStatus, PhaseStatus, TaskState, TaskStatus, Verdict};
use crate::plan::{self, Level};

/// A task as reports show it: its result, error or skip reason.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskEntry {
    /// The task's id.
    pub id: String,
    /// Its title.
    pub title: String,
    /// pending, dispatched, succeeded, ...
    pub status: String,
    /// Attempts made.
    pub attempts: u32,
    /// Who owns it.
    pub owner: Option<String>,
    /// The agent's output, when it succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<Value>,
    /// How long the succeeding attempt took.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    /// When it succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<String>,
    /// The latest error, when it failed or waits to retry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Why it was skipped, or since and until when it waits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl TaskEntry {
    /// The entry of a task's state.
    pub(crate) fn of(state: &TaskState, plan: &plan::Task) -> Self {
        let mut entry = TaskEntry {
            id: state.id.clone(),
            title: plan.title.clone(),
            status: state.status.kind().to_owned(),
            attempts: state.attempts,
            owner: plan.owner.as_ref().map(ToString::to_string),
            output: None,
            duration_ms: None,
            at: None,
            error: None,
            reason: None,
        };
        match &state.status {
            TaskStatus::Succeeded { output, duration_ms, at, .. } => {
                entry.output = Some(output.clone());
                entry.duration_ms = Some(*duration_ms);
                entry.at = Some(at.to_string());
            }
            TaskStatus::Failed { error, .. } | TaskStatus::RetryWaiting { error, .. } => entry.error = Some(error.clone()),
            TaskStatus::Skipped { reason } => entry.reason = Some(reason.clone()),
            TaskStatus::Waiting { since, due, .. } => entry.reason = Some(format!("waiting since {since}, until {due}")),
            TaskStatus::Pending | TaskStatus::Dispatched { .. } | TaskStatus::Cancelled { .. } => {}
        }
        entry
    }

    /// The tasks of a phase that ran or are due (on-demand tasks nobody asked for are left out).
    pub(crate) fn of_phase(states: &[TaskState], plans: &[plan::Task]) -> Vec<Self> {
        states
            .iter()
            .zip(plans)
            .filter(|(t, tp)| !(tp.on_demand && matches!(t.status, TaskStatus::Pending)))
            .map(|(t, tp)| TaskEntry::of(t, tp))
            .collect()
    }
}

/// A phase's status, with when it passed or why it failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PhaseStatusEntry {
    /// pending, running, passed, failed, ...
    pub status: String,
    /// When it passed or failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<String>,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl PhaseStatusEntry {
    /// The entry of a phase status.
    pub(crate) fn of(status: &PhaseStatus) -> Self {
        match status {
            PhaseStatus::Passed { at } => PhaseStatusEntry { status: "passed".into(), at: Some(at.to_string()), reason: None },
            PhaseStatus::Failed { reason, at } => {
                PhaseStatusEntry { status: "failed".into(), at: Some(at.to_string()), reason: Some(reason.clone()) }
            }
            PhaseStatus::Pending | PhaseStatus::Running { .. } | PhaseStatus::AwaitingApproval { .. } | PhaseStatus::OnHold { .. } => {
                PhaseStatusEntry { status: status.kind().to_owned(), at: None, reason: None }
            }
        }
    }
}

/// One criterion of a gate as the current state holds it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CriterionEntry {
    /// Its id.
    pub id: String,
    /// Its label.
    pub label: String,
    /// must or should.
    pub level: String,
    /// The condition as written.
    pub condition: String,
    /// pass, fail, inconclusive, warning, or `not evaluated`.
    pub verdict: String,
    /// The evidence it read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub values: Option<Map<String, Value>>,
    /// Why, when it did not pass.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// Where each value came from, as the task that reported it said.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub sources: std::collections::BTreeMap<String, String>,
}

/// A recorded decision, as reports list it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DecisionEntry {
    /// approve, reject, hold, escalate.
    pub decision: String,
    /// Who (`phasegate` for a deadline's answer).
    pub by: String,
    /// The approver entry that allowed it.
    #[serde(default)]
    pub via: String,
    /// How the decider was authenticated (`token …`, `proxy …`, `asserted
    /// (local, unauthenticated)`); empty for decisions recorded before
    /// phasegate kept it.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub authenticated: String,
    /// The escalation level.
    pub level: usize,
    /// When.
    pub at: String,
    /// Their comment.
    #[serde(default)]
    pub comment: String,
    /// The inputs an approval carried.
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub inputs: serde_json::Map<String, serde_json::Value>,
}

/// A gate's status, with who passed it, why it failed, or who holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GateStatusEntry {
    /// pending, awaiting_decision, on_hold, passed, failed.
    pub status: String,
    /// When it passed or failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<String>,
    /// Who approved it (empty when the criteria alone passed it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approved_by: Option<Vec<String>>,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The escalation level it waits at.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level: Option<usize>,
    /// When the level's deadline falls (null: none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline: Option<Option<String>>,
    /// Approvals so far.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approvals: Option<Vec<String>>,
    /// Since when it is on hold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
    /// Who put it on hold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
}

/// A gate of the current state: its criteria with values and verdicts, and its decisions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GateEntry {
    /// The phase.
    pub phase: String,
    /// The gate's id.
    pub gate: String,
    /// Its title.
    pub title: String,
    /// Where it stands.
    pub status: GateStatusEntry,
    /// Each criterion.
    pub criteria: Vec<CriterionEntry>,
    /// Every decision recorded.
    pub decisions: Vec<DecisionEntry>,
}

impl GateEntry {
    /// The entry of gate `gate` (of `plan`) in phase `phase` of the input's
    /// instance, whose variables fill the labels of criteria not evaluated yet.
    pub(crate) fn of(phase: &str, gate: &GateState, plan: &plan::Gate, input: &super::Input<'_>) -> Self {
        let criteria = match &gate.evaluation {
            Some(evaluation) => evaluation
                .criteria
                .iter()
                .map(|c| CriterionEntry {
                    id: c.id.clone(),
                    label: c.label.clone(),
                    level: level(c.level).to_owned(),
                    condition: c.condition.clone(),
                    verdict: verdict(c.verdict).to_owned(),
                    values: Some(c.values.iter().map(|(k, v)| (k.clone(), v.clone())).collect()),
                    detail: Some(c.detail.clone()),
                    sources: with_origins(&c.values, &c.sources, input),
                })
                .collect(),
            None => plan
                .criteria
                .iter()
                .map(|c| CriterionEntry {
                    id: c.id.clone(),
                    label: crate::machine::gate::label_in_force(&c.label, &input.instance.vars),
                    level: level(c.level).to_owned(),
                    condition: c.expr.source().to_owned(),
                    verdict: "not evaluated".to_owned(),
                    values: None,
                    detail: None,
                    sources: Default::default(),
                })
                .collect(),
        };
        let decisions = gate.decisions.iter().map(|(at, d)| DecisionEntry::of(at, d)).collect();
        let empty = GateStatusEntry {
            status: gate.status.kind().to_owned(),
            at: None,
            approved_by: None,
            reason: None,
            level: None,
            deadline: None,
            approvals: None,
            since: None,
            by: None,
        };
        let status = match &gate.status {
            GateStatus::Passed { at, by } => GateStatusEntry { at: Some(at.to_string()), approved_by: Some(by.clone()), ..empty },
            GateStatus::Failed { at, reason } => GateStatusEntry { at: Some(at.to_string()), reason: Some(reason.clone()), ..empty },
            GateStatus::AwaitingDecision { level, deadline, approvals, .. } => GateStatusEntry {
                level: Some(*level),
                deadline: Some(deadline.map(|d| d.to_string())),
                approvals: Some(approvals.clone()),
                ..empty
            },
            GateStatus::OnHold { since, by } => GateStatusEntry { since: Some(since.to_string()), by: Some(by.clone()), ..empty },
            GateStatus::Pending => empty,
        };
        GateEntry { phase: phase.to_owned(), gate: gate.id.clone(), title: plan.title.clone(), status, criteria, decisions }
    }

    /// Markdown: the gate's status, criteria table and decisions.
    pub(crate) fn markdown(&self, out: &mut String) {
        let _ = writeln!(out, "#### Gate `{}/{}`: {}\n", self.phase, self.gate, self.title);
        let approved = match &self.status.approved_by {
            Some(by) if !by.is_empty() => format!(" (approved by {})", by.join(", ")),
            _ => String::new(),
        };
        let _ = writeln!(out, "Status: **{}**{approved}\n", self.status.status);
        if !self.criteria.is_empty() {
            let _ = writeln!(out, "| criterion | level | verdict | evidence |\n|---|---|---|---|");
            for c in &self.criteria {
                let _ = writeln!(
                    out,
                    "| {} | {} | {} | {} |",
                    cell(&c.label),
                    c.level,
                    c.verdict,
                    sourced_values(c.values.as_ref(), &c.sources)
                );
            }
            out.push('\n');
        }
        for d in &self.decisions {
            let comment = if d.comment.is_empty() { String::new() } else { format!(": {}", d.comment) };
            let _ = writeln!(out, "- {} by **{}**{} at {} (level {}){comment}", d.decision, d.by, d.qualifiers(), d.at, d.level);
        }
        out.push('\n');
    }
}

impl DecisionEntry {
    /// The entry of a recorded decision.
    pub(crate) fn of(at: &crate::machine::Timestamp, d: &crate::machine::Decision) -> Self {
        DecisionEntry {
            decision: d.kind.verb().to_owned(),
            by: d.principal.clone(),
            via: d.via.clone(),
            authenticated: authenticated(&d.auth),
            level: d.level,
            at: at.to_string(),
            comment: d.comment.clone(),
            inputs: d.inputs.clone(),
        }
    }

    /// ` (token …)`, ` as role:sre` when a role allowed it, and ` with inputs window="…"`, for Markdown.
    pub(crate) fn qualifiers(&self) -> String {
        let mut out = String::new();
        if !self.authenticated.is_empty() {
            out.push_str(&format!(" ({})", self.authenticated));
        }
        if !self.via.is_empty() && self.via != self.by {
            out.push_str(&format!(" as {}", self.via));
        }
        if !self.inputs.is_empty() {
            let inputs: Vec<String> = self.inputs.iter().map(|(k, v)| format!("{k}={v}")).collect();
            out.push_str(&format!(" with inputs {}", inputs.join(", ")));
        }
        out
    }
}

/// How a decider was authenticated, as reports write it (empty when not recorded).
pub(crate) fn authenticated(auth: &crate::machine::Authentication) -> String {
    if auth.is_unrecorded() {
        String::new()
    } else {
        auth.to_string()
    }
}

/// A verdict as reports write it.
pub fn verdict(verdict: Verdict) -> &'static str {
    match verdict {
        Verdict::Pass => "pass",
        Verdict::Fail => "fail",
        Verdict::Inconclusive => "inconclusive",
        Verdict::Warning => "warning",
    }
}

/// A criterion level as reports write it.
pub(crate) fn level(level: Level) -> &'static str {
    match level {
        Level::Must => "must",
        Level::Should => "should",
    }
}

/// A JSON value as text (`—` for null).
pub(crate) fn text(value: &Value) -> String {
    match value {
        Value::Null => "—".to_owned(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// An optional value as text (`—` for none).
pub(crate) fn or_dash<T: Display>(value: Option<T>) -> String {
    value.map_or_else(|| "—".to_owned(), |v| v.to_string())
}

/// Text fit for one Markdown table cell.
pub(crate) fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

/// A JSON value fit for one Markdown table cell.
pub(crate) fn value_cell(value: &Value) -> String {
    cell(&text(value))
}

/// Evidence values as `key` = value pairs (`—` for none).
pub(crate) fn values(map: Option<&Map<String, Value>>) -> String {
    match map {
        Some(map) if !map.is_empty() => map.iter().map(|(k, v)| format!("`{k}` = {}", value_cell(v))).collect::<Vec<_>>().join("; "),
        _ => "—".to_owned(),
    }
}

/// Where each value of a criterion came from: what the task that measured
/// it said, and for the values the engine supplies, which variable (its
/// default, or set at start) or which baseline.
pub(crate) fn with_origins(
    values: &std::collections::BTreeMap<String, Value>,
    recorded: &std::collections::BTreeMap<String, String>,
    input: &super::Input<'_>,
) -> std::collections::BTreeMap<String, String> {
    let mut out = recorded.clone();
    for key in values.keys().filter(|k| !recorded.contains_key(*k)) {
        let mut parts = key.splitn(3, '.');
        let origin = match (parts.next(), parts.next()) {
            (Some("vars"), Some(name)) => {
                let default = input.workflow.vars.get(name).and_then(|v| v.default.as_ref());
                match (input.instance.vars.get(name), default) {
                    (Some(value), Some(default)) if value == default => format!("variable {name}, its default"),
                    (Some(_), _) => format!("variable {name}, set at start"),
                    (None, _) => continue,
                }
            }
            (Some("baseline"), _) => "the baseline: the evidence this gate passed with in an earlier cycle or release".to_owned(),
            (Some("signals"), Some(name)) => format!("signal {name}, as received"),
            _ => continue,
        };
        out.insert(key.clone(), origin);
    }
    out
}

/// Evidence values as `key` = value pairs, each followed by where it came
/// from when its task said so (`—` for none).
pub(crate) fn sourced_values(map: Option<&Map<String, Value>>, sources: &std::collections::BTreeMap<String, String>) -> String {
    match map {
        Some(map) if !map.is_empty() => map
            .iter()
            .map(|(k, v)| match sources.get(k) {
                Some(source) => format!("`{k}` = {} ({})", value_cell(v), cell(source)),
                None => format!("`{k}` = {}", value_cell(v)),
            })
            .collect::<Vec<_>>()
            .join("; "),
        _ => "—".to_owned(),
    }
}

/// A table of tasks (nothing when there are none).
pub(crate) fn tasks_markdown(out: &mut String, tasks: &[TaskEntry]) {
    if tasks.is_empty() {
        return;
    }
    let _ = writeln!(out, "| task | owner | status | attempts | result |\n|---|---|---|---|---|");
    for t in tasks {
        let result = match (&t.output, &t.error, &t.reason) {
            (Some(output), _, _) => values(output.as_object()),
            (_, Some(error), _) => format!("error: {}", cell(error)),
            (_, _, Some(reason)) => cell(reason),
            _ => "—".to_owned(),
        };
        let _ = writeln!(out, "| {} | {} | {} | {} | {result} |", cell(&t.title), or_dash(t.owner.as_ref()), t.status, t.attempts);
    }
    out.push('\n');
}

/// A titled bullet list (`none` when empty).
pub(crate) fn list_markdown(out: &mut String, title: &str, entries: &[String]) {
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
