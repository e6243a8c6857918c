//! The compliance checklist: every gate's Must Pass and Should Pass items,
//! checked only when the evidence passed them, with that evidence.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::common::{level, sourced_values, verdict};
use super::{Document, Header, Input};
use crate::machine::gate::label_in_force;
use crate::machine::Verdict;

/// The compliance checklist.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Checklist {
    /// Every gate with criteria, in phase order.
    pub gates: Vec<ChecklistGate>,
    /// What the report describes.
    pub report: Header,
}

/// One gate's items.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChecklistGate {
    /// The phase.
    pub phase: String,
    /// The gate.
    pub gate: String,
    /// Its title.
    pub title: String,
    /// Where it stands.
    pub status: String,
    /// Must items not checked.
    pub must_open: usize,
    /// Every item.
    pub items: Vec<ChecklistItem>,
}

/// One item: a criterion and whether its evidence passed it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChecklistItem {
    /// The criterion's id.
    pub id: String,
    /// Its label.
    pub label: String,
    /// must or should.
    pub level: String,
    /// True only when it was evaluated and passed.
    pub checked: bool,
    /// pass, fail, inconclusive, warning, or `not evaluated`.
    pub verdict: String,
    /// The evidence it read (null before it was evaluated).
    pub evidence: Option<Map<String, Value>>,
    /// The condition as written.
    pub condition: String,
    /// Where each value came from, as the task that reported it said.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub sources: std::collections::BTreeMap<String, String>,
}

impl Checklist {
    pub(super) fn build(input: &Input<'_>, report: Header) -> Self {
        let mut gates = Vec::new();
        for &p in &input.workflow.phase_order {
            let plan = &input.workflow.phases[p];
            let state = &input.instance.phases[p];
            for (g, gate_plan) in plan.gates.iter().enumerate().filter(|(_, g)| !g.criteria.is_empty()) {
                let gate = &state.gates[g];
                let items: Vec<ChecklistItem> = gate_plan
                    .criteria
                    .iter()
                    .map(|criterion| {
                        let result = gate.evaluation.as_ref().and_then(|e| e.criteria.iter().find(|c| c.id == criterion.id));
                        ChecklistItem {
                            id: criterion.id.clone(),
                            label: result.map_or_else(|| label_in_force(&criterion.label, &input.instance.vars), |r| r.label.clone()),
                            level: level(criterion.level).to_owned(),
                            checked: result.is_some_and(|r| r.verdict == Verdict::Pass),
                            verdict: result.map_or("not evaluated", |r| verdict(r.verdict)).to_owned(),
                            evidence: result.map(|r| r.values.iter().map(|(k, v)| (k.clone(), v.clone())).collect()),
                            condition: criterion.expr.source().to_owned(),
                            sources: result.map(|r| super::common::with_origins(&r.values, &r.sources, input)).unwrap_or_default(),
                        }
                    })
                    .collect();
                let must_open = items.iter().filter(|i| i.level == "must" && !i.checked).count();
                gates.push(ChecklistGate {
                    phase: plan.id.clone(),
                    gate: gate_plan.id.clone(),
                    title: gate_plan.title.clone(),
                    status: gate.status.kind().to_owned(),
                    must_open,
                    items,
                });
            }
        }
        Checklist { gates, report }
    }
}

impl Document for Checklist {
    fn markdown(&self) -> String {
        let mut out = String::new();
        self.report.markdown(&mut out, "Compliance checklist");
        for gate in &self.gates {
            let _ = writeln!(
                out,
                "## `{}/{}`: {} ({}; {} must item(s) open)\n",
                gate.phase, gate.gate, gate.title, gate.status, gate.must_open
            );
            for (title, wanted) in [("Must Pass", "must"), ("Should Pass", "should")] {
                let rows: Vec<&ChecklistItem> = gate.items.iter().filter(|i| i.level == wanted).collect();
                if rows.is_empty() {
                    continue;
                }
                let _ = writeln!(out, "### {title}\n");
                for item in rows {
                    let mark = if item.checked { "x" } else { " " };
                    let _ = writeln!(
                        out,
                        "- [{mark}] {} ({}); evidence: {}",
                        item.label,
                        item.verdict,
                        sourced_values(item.evidence.as_ref(), &item.sources)
                    );
                }
                out.push('\n');
            }
        }
        out
    }
}
