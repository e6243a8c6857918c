//! The gate validation report: every evaluation of every gate in the log,
//! in order, with each criterion's values, verdict, baseline deltas and
//! points, the decisions that followed, and decisions at trigger halts.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::common::{cell, level, or_dash, sourced_values, text, verdict, DecisionEntry};
use super::{Document, Header, Input};
use crate::machine::{gate::Score, payload, Event};

/// The gate validation report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GateReport {
    /// Every gate evaluation, in the order they happened.
    pub evaluations: Vec<EvaluationEntry>,
    /// Decisions at trigger halts for approval.
    pub trigger_decisions: Vec<HaltDecision>,
    /// What the report describes.
    pub report: Header,
}

/// One evaluation of a gate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvaluationEntry {
    /// The phase.
    pub phase: String,
    /// The gate.
    pub gate: String,
    /// The phase's attempt it was evaluated in.
    pub phase_attempt: Option<u32>,
    /// When.
    pub evaluated_at: String,
    /// Each criterion's result.
    pub criteria: Vec<EvaluatedCriterion>,
    /// The score, for a scored gate.
    pub score: Option<Score>,
    /// The decisions (and deadline answers) that followed it.
    pub decisions: Vec<DecisionEntry>,
    /// Where the gate stands now for the latest attempt, or that a later attempt superseded it.
    pub outcome: Option<String>,
}

/// One criterion's result in an evaluation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvaluatedCriterion {
    /// Its id.
    pub id: String,
    /// Its label.
    pub label: String,
    /// must or should.
    pub level: String,
    /// The condition as written.
    pub condition: String,
    /// pass, fail, inconclusive, warning.
    pub verdict: String,
    /// The evidence it read.
    pub values: Map<String, Value>,
    /// Why, when it did not pass.
    pub detail: String,
    /// Its weight in the score.
    pub weight: f64,
    /// What it contributed.
    pub points: f64,
    /// Relative change from the baseline, by evidence path.
    pub deltas: BTreeMap<String, f64>,
    /// Where each value came from, as the task that reported it said.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub sources: BTreeMap<String, String>,
}

/// A decision at a trigger's halt for approval, or its deadline's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HaltDecision {
    /// The phase declaring the trigger.
    pub phase: String,
    /// The trigger.
    pub trigger: String,
    /// approve, reject, hold, escalate, or `deadline`.
    pub decision: String,
    /// Who (`phasegate` for a deadline).
    pub by: String,
    /// When.
    pub at: String,
    /// Their comment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// The escalation level whose deadline passed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level: Option<usize>,
}

/// The decisions of the latest evaluation of `phase/gate`.
fn latest<'e>(evaluations: &'e mut [EvaluationEntry], phase: &str, gate: &str) -> Option<&'e mut Vec<DecisionEntry>> {
    evaluations.iter_mut().rev().find(|e| e.phase == phase && e.gate == gate).map(|e| &mut e.decisions)
}

impl GateReport {
    pub(super) fn build(input: &Input<'_>, report: Header) -> Self {
        let mut evaluations: Vec<EvaluationEntry> = Vec::new();
        let mut attempts: BTreeMap<String, u32> = BTreeMap::new();
        let mut halts = Vec::new();
        for record in input.history {
            let at = record.at().to_string();
            match record.event() {
                Event::PhaseStarted(e) => {
                    attempts.insert(e.phase.clone(), e.attempt);
                }
                Event::GateEvaluated(payload::GateEvaluated { phase, gate, evaluation }) => evaluations.push(EvaluationEntry {
                    phase: phase.clone(),
                    gate: gate.clone(),
                    phase_attempt: attempts.get(phase).copied(),
                    evaluated_at: at,
                    criteria: evaluation
                        .criteria
                        .iter()
                        .map(|c| EvaluatedCriterion {
                            id: c.id.clone(),
                            label: c.label.clone(),
                            level: level(c.level).to_owned(),
                            condition: c.condition.clone(),
                            verdict: verdict(c.verdict).to_owned(),
                            values: c.values.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
                            detail: c.detail.clone(),
                            weight: c.weight,
                            points: c.points,
                            deltas: c.deltas.clone(),
                            sources: super::common::with_origins(&c.values, &c.sources, input),
                        })
                        .collect(),
                    score: evaluation.score,
                    decisions: Vec::new(),
                    outcome: None,
                }),
                Event::DecisionRecorded(payload::DecisionRecorded { phase, gate, decision }) => {
                    if let Some(list) = latest(&mut evaluations, phase, gate) {
                        list.push(DecisionEntry::of(&record.at(), decision));
                    }
                }
                Event::GateTimedOut(payload::GateTimedOut { phase, gate, level, action }) => {
                    if let Some(list) = latest(&mut evaluations, phase, gate) {
                        list.push(DecisionEntry {
                            decision: format!("deadline: {}", action.name()),
                            by: "phasegate".to_owned(),
                            via: String::new(),
                            authenticated: String::new(),
                            level: *level,
                            at,
                            comment: "no decision before the deadline".to_owned(),
                            inputs: Default::default(),
                        });
                    }
                }
                Event::TriggerDecided(payload::TriggerDecided { phase, trigger, decision }) => halts.push(HaltDecision {
                    phase: phase.clone(),
                    trigger: trigger.clone(),
                    decision: decision.kind.verb().to_owned(),
                    by: decision.principal.clone(),
                    at,
                    comment: Some(decision.comment.clone()),
                    level: None,
                }),
                Event::TriggerTimedOut(payload::TriggerTimedOut { phase, trigger, level, .. }) => halts.push(HaltDecision {
                    phase: phase.clone(),
                    trigger: trigger.clone(),
                    decision: "deadline".to_owned(),
                    by: "phasegate".to_owned(),
                    at,
                    comment: None,
                    level: Some(*level),
                }),
                _ => {}
            }
        }
        // The outcome each evaluation led to: the gate's current state for its
        // latest evaluation; earlier ones were superseded by a later attempt
        // of the phase, or, within one attempt, by a re-evaluation after
        // remediation.
        for i in 0..evaluations.len() {
            let later = evaluations[i + 1..].iter().find(|e| e.phase == evaluations[i].phase && e.gate == evaluations[i].gate);
            let entry = &evaluations[i];
            let phase = input.instance.phases.iter().find(|p| p.id == entry.phase);
            let outcome = match later {
                Some(next) if next.phase_attempt == entry.phase_attempt => Some("superseded by a later evaluation".to_owned()),
                Some(_) => Some("superseded by a later attempt".to_owned()),
                None if entry.phase_attempt != phase.map(|p| p.attempt) => Some("superseded by a later attempt".to_owned()),
                None => phase.and_then(|p| p.gates.iter().find(|g| g.id == entry.gate)).map(|g| waiting_for(input, &entry.phase, g)),
            };
            evaluations[i].outcome = outcome;
        }
        GateReport { evaluations, trigger_decisions: halts, report }
    }
}

/// A gate's state for its latest evaluation; while it awaits a decision,
/// who has approved per role and who is still needed.
fn waiting_for(input: &Input<'_>, phase: &str, gate: &crate::machine::GateState) -> String {
    let crate::machine::GateStatus::AwaitingDecision { level, .. } = &gate.status else {
        return gate.status.kind().to_owned();
    };
    let p = input.workflow.phase_index(phase);
    let g = p.and_then(|p| input.workflow.phases[p].gates.iter().position(|x| x.id == gate.id));
    match p.zip(g).and_then(|(p, g)| crate::machine::Target::gate(input.workflow, p, g).authority(*level)) {
        Some(authority) => format!("awaiting_decision at level {level}: {}", authority.still_needed(&gate.approvals_via())),
        None => gate.status.kind().to_owned(),
    }
}

impl Document for GateReport {
    fn markdown(&self) -> String {
        let mut out = String::new();
        self.report.markdown(&mut out, "Gate validation report");
        for e in &self.evaluations {
            let _ =
                writeln!(out, "## `{}/{}` (phase attempt {}), evaluated {}\n", e.phase, e.gate, or_dash(e.phase_attempt), e.evaluated_at);
            let _ = writeln!(out, "Outcome: **{}**\n", or_dash(e.outcome.as_ref()));
            if let Some(score) = &e.score {
                let band = serde_json::to_value(score.band).map(|v| text(&v)).unwrap_or_default();
                let _ = writeln!(
                    out,
                    "Score: **{} %** ({} of {} points), {band} band (pass ≥ {} %, warning ≥ {} %)\n",
                    text(&Value::from(score.percent)),
                    text(&Value::from(score.points)),
                    text(&Value::from(score.total)),
                    text(&Value::from(score.bands.pass)),
                    text(&Value::from(score.bands.warning))
                );
            }
            let _ = writeln!(
                out,
                "| criterion | level | condition | values | Δ vs baseline | points | verdict |\n|---|---|---|---|---|---|---|"
            );
            for c in &e.criteria {
                let verdict = if c.detail.is_empty() { c.verdict.clone() } else { format!("{} ({})", c.verdict, cell(&c.detail)) };
                let deltas = if c.deltas.is_empty() {
                    "—".to_owned()
                } else {
                    c.deltas.iter().map(|(path, delta)| format!("`{path}` {:+.1} %", delta * 100.0)).collect::<Vec<_>>().join("; ")
                };
                let _ = writeln!(
                    out,
                    "| {} | {} | `{}` | {} | {deltas} | {}/{} | {verdict} |",
                    cell(&c.label),
                    c.level,
                    cell(&c.condition),
                    sourced_values(Some(&c.values), &c.sources),
                    text(&Value::from(c.points)),
                    text(&Value::from(c.weight)),
                );
            }
            out.push('\n');
            for d in &e.decisions {
                let _ = writeln!(out, "- {} by **{}**{} at {} (level {}): {}", d.decision, d.by, d.qualifiers(), d.at, d.level, d.comment);
            }
            out.push('\n');
        }
        if !self.trigger_decisions.is_empty() {
            let _ = writeln!(out, "## Decisions at trigger halts\n");
            for d in &self.trigger_decisions {
                let _ = writeln!(out, "- `{}/{}`: {} by **{}** at {}", d.phase, d.trigger, d.decision, d.by, d.at);
            }
        }
        out
    }
}
