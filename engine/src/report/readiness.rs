//! The Production Readiness Report: every phase that has started (with
//! `phase`, only that phase and those it runs after), its work, its gates,
//! and whether every must criterion evaluated so far passed.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::common::{list_markdown, or_dash, tasks_markdown, text, GateEntry, PhaseStatusEntry, TaskEntry};
use super::{phase_named, Document, Header, Input};
use crate::machine::{GateStatus, InstanceStatus, PhaseStatus, Verdict};
use crate::plan::Level;

/// The Production Readiness Report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Readiness {
    /// The last phase covered, if one was asked for.
    pub scope: Option<String>,
    /// The `release_version` variable.
    pub release: Option<Value>,
    /// The `target_url` variable.
    pub target: Option<Value>,
    /// In words: ready, not ready (and why), or not assessed.
    pub assessment: String,
    /// True only when every must criterion evaluated so far passed, every
    /// sign-off the covered gates ask for was given, no gate failed or was
    /// rejected, and the run did not fail, roll back or end cancelled.
    pub ready: bool,
    /// What keeps the release from being ready beyond its criteria: a gate
    /// that failed or was rejected, a sign-off not (yet) given, a run that
    /// failed, rolled back or was cancelled.
    pub blocked_by: Vec<String>,
    /// Criteria that passed.
    pub criteria_passed: usize,
    /// Criteria evaluated.
    pub criteria_evaluated: usize,
    /// `passed / evaluated` in percent, every criterion counting the same
    /// (null before any evaluation): a share, not the weighted score.
    pub criteria_passed_percent: Option<f64>,
    /// The weighted readiness score a scored gate judged the release by
    /// (the latest one covered), as that gate computed it.
    pub readiness_score: Option<ScoreEntry>,
    /// Must criteria that failed (blocking defects).
    pub must_failed: Vec<String>,
    /// Should criteria that failed, and criteria in their warning band.
    pub should_failed: Vec<String>,
    /// Criteria whose evidence is missing.
    pub inconclusive: Vec<String>,
    /// Gates people approved.
    pub sign_offs: Vec<SignOff>,
    /// Each phase covered.
    pub phases: Vec<PhaseEntry>,
    /// What the report describes.
    pub report: Header,
}

/// A scored gate's weighted score, as it judged the release.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScoreEntry {
    /// `phase/gate`.
    pub gate: String,
    /// Points earned of `total`, and the percentage.
    pub points: f64,
    /// Points possible (the sum of the weights).
    pub total: f64,
    /// `points / total`, in percent.
    pub percent: f64,
    /// The band it fell in: `pass`, `warning` or `fail`.
    pub band: String,
}

/// A gate people approved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignOff {
    /// `phase/gate`.
    pub gate: String,
    /// Who approved it.
    pub by: Vec<String>,
    /// When it passed.
    pub at: String,
}

/// A phase in the readiness report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PhaseEntry {
    /// Its id.
    pub id: String,
    /// Its title.
    pub title: String,
    /// Who owns it.
    pub owner: Option<String>,
    /// Its attempt.
    pub attempt: u32,
    /// Where it stands.
    pub status: PhaseStatusEntry,
    /// How it was entered again (a loop-back, a rollback, a scheduled cycle).
    pub entered: Option<String>,
    /// Its tasks.
    pub tasks: Vec<TaskEntry>,
    /// Its gates.
    pub gates: Vec<GateEntry>,
}

impl Readiness {
    pub(super) fn build(input: &Input<'_>, report: Header) -> Result<Self, String> {
        let (instance, workflow) = (input.instance, input.workflow);
        let limit = input.phase.map(|id| phase_named(workflow, id)).transpose()?;
        let mut phases = Vec::new();
        let (mut must_failed, mut warnings, mut inconclusive) = (Vec::new(), Vec::new(), Vec::new());
        let mut must_inconclusive = 0usize;
        let (mut passed, mut total) = (0usize, 0usize);
        let mut readiness_score = None;
        let mut sign_offs_missing = Vec::new();
        for &p in &workflow.phase_order {
            let state = &instance.phases[p];
            let plan = &workflow.phases[p];
            if (matches!(state.status, PhaseStatus::Pending) && state.attempt == 0) || limit.is_some_and(|l| !workflow.is_upstream(p, l)) {
                continue;
            }
            for (gate, gate_plan) in state.gates.iter().zip(&plan.gates) {
                if let Some(score) = gate.evaluation.as_ref().and_then(|e| e.score.as_ref()) {
                    readiness_score = Some(ScoreEntry {
                        gate: format!("{}/{}", plan.id, gate.id),
                        points: score.points,
                        total: score.total,
                        percent: score.percent,
                        band: score.band.name().to_owned(),
                    });
                }
                let name = format!("{}/{}", plan.id, gate.id);
                match &gate.status {
                    GateStatus::AwaitingDecision { .. } => sign_offs_missing.push(format!("sign-off missing: {name} awaits a decision")),
                    GateStatus::OnHold { by, .. } => sign_offs_missing.push(format!("{name} is on hold for remediation (held by {by})")),
                    GateStatus::Pending if gate_plan.approval.is_some() => {
                        sign_offs_missing.push(format!("sign-off missing: {name} has not been evaluated yet"))
                    }
                    GateStatus::Pending | GateStatus::Passed { .. } | GateStatus::Failed { .. } => {}
                }
                for c in gate.evaluation.iter().flat_map(|e| &e.criteria) {
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
            phases.push(PhaseEntry {
                id: plan.id.clone(),
                title: plan.title.clone(),
                owner: plan.owner.as_ref().map(ToString::to_string),
                attempt: state.attempt,
                status: PhaseStatusEntry::of(&state.status),
                entered: state.entered.clone(),
                tasks: TaskEntry::of_phase(&state.tasks, &plan.tasks),
                gates: state.gates.iter().zip(&plan.gates).map(|(g, gp)| GateEntry::of(&plan.id, g, gp, input)).collect(),
            });
        }
        let sign_offs = instance
            .phases
            .iter()
            .enumerate()
            .filter(|(p, _)| limit.is_none_or(|l| workflow.is_upstream(*p, l)))
            .flat_map(|(_, p)| p.gates.iter().map(move |g| (p, g)))
            .filter_map(|(p, g)| match &g.status {
                GateStatus::Passed { at, by } if !by.is_empty() => {
                    Some(SignOff { gate: format!("{}/{}", p.id, g.id), by: by.clone(), at: at.to_string() })
                }
                _ => None,
            })
            .collect();
        // A run that failed, rolled back or was cancelled, and a gate that
        // failed or a person rejected, are never ready, whatever the criteria said.
        let mut blocked_by: Vec<String> = phases
            .iter()
            .flat_map(|phase| &phase.gates)
            .filter(|gate| gate.status.status == "failed")
            .map(|gate| format!("gate {}/{} failed: {}", gate.phase, gate.gate, gate.status.reason.as_deref().unwrap_or("—")))
            .collect();
        let run = match &instance.status {
            InstanceStatus::Failed { reason, .. } => Some(format!("the release failed: {reason}")),
            InstanceStatus::RollingBack { .. } | InstanceStatus::RolledBack { .. } => {
                let why = instance.rollback.as_ref().map(|r| format!(" by {}: {}", r.by, r.reason)).unwrap_or_default();
                Some(format!("the release was rolled back{why}"))
            }
            InstanceStatus::Cancelled { by, reason, .. } => Some(format!("the release was cancelled by {by}: {reason}")),
            InstanceStatus::Running
            | InstanceStatus::Halted { .. }
            | InstanceStatus::AwaitingDecision { .. }
            | InstanceStatus::Completed { .. } => None,
        };
        blocked_by.extend(run);
        // Missing evidence for a should criterion (a first release has no
        // baseline, say) is shown, and a person judged it at the gate; of the
        // criteria, only musts decide readiness.
        let criteria_ok = must_failed.is_empty() && must_inconclusive == 0 && total > 0;
        let awaiting_only = criteria_ok && blocked_by.is_empty() && !sign_offs_missing.is_empty();
        blocked_by.extend(sign_offs_missing);
        let ready = criteria_ok && blocked_by.is_empty();
        let assessment = if ready {
            "ready: every must criterion evaluated so far passed and every sign-off was given".to_owned()
        } else if awaiting_only {
            format!("not ready until signed off: every must criterion evaluated so far passed; {}", blocked_by.join("; "))
        } else if !blocked_by.is_empty() {
            format!("not ready: {}", blocked_by.join("; "))
        } else if total == 0 {
            "not assessed: no gate has been evaluated yet".to_owned()
        } else {
            format!("not ready: {} must criteria failed, {must_inconclusive} inconclusive", must_failed.len())
        };
        Ok(Readiness {
            scope: input.phase.map(str::to_owned),
            release: instance.vars.get("release_version").cloned(),
            target: instance.vars.get("target_url").cloned(),
            assessment,
            ready,
            blocked_by,
            criteria_passed: passed,
            criteria_evaluated: total,
            criteria_passed_percent: (total > 0).then(|| ((passed as f64 / total as f64) * 1000.0).round() / 10.0),
            readiness_score,
            must_failed,
            should_failed: warnings,
            inconclusive,
            sign_offs,
            phases,
            report,
        })
    }
}

impl Document for Readiness {
    fn markdown(&self) -> String {
        let mut out = String::new();
        self.report.markdown(&mut out, "Production Readiness Report");
        let _ = writeln!(out, "## Assessment\n\n**{}**\n", self.assessment);
        let shown = |value: &Option<Value>| value.as_ref().map_or_else(|| "—".to_owned(), text);
        let _ = writeln!(out, "- Release: {} on {}", shown(&self.release), shown(&self.target));
        let _ = writeln!(
            out,
            "- Criteria passed: {} of {} ({} %, each counting the same)",
            self.criteria_passed,
            self.criteria_evaluated,
            self.criteria_passed_percent.map_or_else(|| "—".to_owned(), |share| text(&Value::from(share)))
        );
        match &self.readiness_score {
            Some(score) => {
                let _ = writeln!(
                    out,
                    "- Readiness score (weighted, as `{}` judged it): {} % ({} of {} points, {} band)\n",
                    score.gate,
                    text(&Value::from(score.percent)),
                    text(&Value::from(score.points)),
                    text(&Value::from(score.total)),
                    score.band
                );
            }
            None => {
                let _ = writeln!(out, "- Readiness score: no scored gate has been evaluated\n");
            }
        }
        list_markdown(&mut out, "Blocked by", &self.blocked_by);
        list_markdown(&mut out, "Must criteria failed (blocking defects)", &self.must_failed);
        list_markdown(&mut out, "Should criteria failed (warnings)", &self.should_failed);
        list_markdown(&mut out, "Inconclusive (evidence missing)", &self.inconclusive);
        let sign_offs: Vec<String> = self.sign_offs.iter().map(|s| format!("{} by {} at {}", s.gate, s.by.join(", "), s.at)).collect();
        list_markdown(&mut out, "Sign-offs", &sign_offs);
        let _ = writeln!(out, "## Activities and findings\n");
        for phase in &self.phases {
            let _ = writeln!(
                out,
                "### Phase `{}`: {} ({}, attempt {}, owner {})\n",
                phase.id,
                phase.title,
                phase.status.status,
                phase.attempt,
                or_dash(phase.owner.as_ref())
            );
            if let Some(entered) = &phase.entered {
                let _ = writeln!(out, "Entered: {entered}\n");
            }
            tasks_markdown(&mut out, &phase.tasks);
            for gate in &phase.gates {
                gate.markdown(&mut out);
            }
        }
        out
    }
}
