//! The deployment confirmation (seed 002's launch deliverable): which
//! release went where, the deploy and the checks that verified it, what
//! would undo it,
//! the launch's live watches, who approved, and whether the deployment
//! stands. It is confirmed only when the phase passed and the release was
//! not rolled back or cancelled afterwards; otherwise it says why not.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::common::{list_markdown, or_dash, tasks_markdown, value_cell, GateEntry, TaskEntry};
use super::{phase_named, Document, Header, Input};
use crate::machine::{payload, Event, InstanceStatus, PhaseStatus, SampleVerdict};

/// A deployment confirmation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Deployment {
    /// The phase that deployed.
    pub phase: String,
    /// Its title.
    pub title: String,
    /// Its attempt.
    pub attempt: u32,
    /// The release (`vars.release_version`), if the workflow declares one.
    pub release: Option<Value>,
    /// Where it went (`vars.target_url`, credentials redacted).
    pub target: Option<Value>,
    /// True only when the phase passed and the release was neither rolled
    /// back nor cancelled afterwards.
    pub confirmed: bool,
    /// The confirmation, or why there is none, in one sentence.
    pub assessment: String,
    /// When the phase passed.
    pub passed_at: Option<String>,
    /// The phase's work: the deployment and the checks that verified it.
    pub tasks: Vec<TaskEntry>,
    /// What undoes it, in the order it would run: each task's rollback step
    /// (latest task first), then the phase's own rollback steps.
    pub rollback_procedure: Vec<String>,
    /// Its gates, with each criterion's evidence and the decisions.
    pub gates: Vec<GateEntry>,
    /// The phase's live watches over its attempts.
    pub watches: Vec<WatchSummary>,
    /// The rollback, when there was one: by whom, why, and how it ended.
    pub rollback: Option<String>,
    /// What the report describes.
    pub report: Header,
}

/// A live watch of the deploying phase, over every sample it took.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WatchSummary {
    /// The watch.
    pub watch: String,
    /// Its title.
    pub title: String,
    /// Its breach condition.
    pub condition: String,
    /// Samples taken.
    pub samples: usize,
    /// Samples that breached.
    pub breaching: usize,
    /// Samples without data.
    pub no_data: usize,
    /// The last value.
    pub last: Option<f64>,
}

impl Deployment {
    pub(super) fn build(input: &Input<'_>, report: Header) -> Result<Self, String> {
        let (instance, workflow) = (input.instance, input.workflow);
        let deploys = |p: usize| workflow.phases[p].tasks.iter().any(|t| t.rollback.is_some()) || !workflow.phases[p].rollback.is_empty();
        let p = match input.phase {
            Some(id) => phase_named(workflow, id)?,
            None => workflow
                .phase_order
                .iter()
                .rev()
                .copied()
                .find(|&p| deploys(p) && !matches!(instance.phases[p].status, PhaseStatus::Pending))
                .ok_or_else(|| {
                    format!(
                        "instance {} has not started a phase that deploys (one whose tasks declare a rollback); name one with --phase",
                        instance.id
                    )
                })?,
        };
        let (plan, state) = (&workflow.phases[p], &instance.phases[p]);
        let passed_at = match &state.status {
            PhaseStatus::Passed { at } => Some(at.to_string()),
            _ => None,
        };
        let rollback = instance.rollback.as_ref().map(|r| format!("by {}: {}", r.by, r.reason));
        let when = if passed_at.is_some() { "after" } else { "during" };
        let (confirmed, assessment) = match (&passed_at, &instance.status) {
            (_, InstanceStatus::RollingBack { .. } | InstanceStatus::RolledBack { .. }) => {
                (false, format!("not confirmed: the release was rolled back {when} {} ({})", plan.id, rollback.clone().unwrap_or_default()))
            }
            (_, InstanceStatus::Cancelled { by, reason, .. }) => {
                (false, format!("not confirmed: the release was cancelled by {by} {when} {}: {reason}", plan.id))
            }
            (None, _) => (false, format!("not confirmed: phase {} is {}, not passed", plan.id, state.status.kind())),
            (Some(at), InstanceStatus::Failed { reason, .. }) => {
                (true, format!("deployed at {at}; the release failed later ({reason}) and was not rolled back"))
            }
            (
                Some(at),
                InstanceStatus::Running
                | InstanceStatus::Halted { .. }
                | InstanceStatus::AwaitingDecision { .. }
                | InstanceStatus::Completed { .. },
            ) => (true, format!("confirmed: phase {} passed at {at} and the release stands", plan.id)),
        };
        let step =
            |s: &crate::plan::Step| if s.title.is_empty() || s.title == s.id { s.id.clone() } else { format!("{} ({})", s.id, s.title) };
        let rollback_procedure = plan
            .tasks
            .iter()
            .rev()
            .filter_map(|t| t.rollback.as_ref().map(|r| format!("{} (undoes task {})", step(r), t.id)))
            .chain(plan.rollback.iter().map(step))
            .collect();
        let mut samples: BTreeMap<&str, WatchSummary> = plan
            .watches
            .iter()
            .map(|w| {
                let summary = WatchSummary {
                    watch: w.id.clone(),
                    title: w.title.clone(),
                    condition: w.condition.source().to_owned(),
                    samples: 0,
                    breaching: 0,
                    no_data: 0,
                    last: None,
                };
                (w.id.as_str(), summary)
            })
            .collect();
        for record in input.history {
            if let Event::WatchSampled(payload::WatchSampled { phase, watch, value, verdict, .. }) = record.event() {
                if let Some(summary) = samples.get_mut(watch.as_str()).filter(|_| *phase == plan.id) {
                    summary.samples += 1;
                    summary.last = value.or(summary.last);
                    match verdict {
                        SampleVerdict::Breach => summary.breaching += 1,
                        SampleVerdict::NoData => summary.no_data += 1,
                        SampleVerdict::Ok => {}
                    }
                }
            }
        }
        Ok(Deployment {
            phase: plan.id.clone(),
            title: plan.title.clone(),
            attempt: state.attempt,
            release: instance.vars.get("release_version").cloned(),
            target: instance.vars.get("target_url").cloned(),
            confirmed,
            assessment,
            passed_at,
            tasks: TaskEntry::of_phase(&state.tasks, &plan.tasks),
            rollback_procedure,
            gates: state.gates.iter().zip(&plan.gates).map(|(g, gp)| GateEntry::of(&plan.id, g, gp, input)).collect(),
            watches: samples.into_values().collect(),
            rollback,
            report,
        })
    }
}

impl Document for Deployment {
    fn markdown(&self) -> String {
        let mut out = String::new();
        self.report.markdown(&mut out, &format!("Deployment confirmation: {}", self.title));
        let _ = writeln!(
            out,
            "Release {} to {}, phase `{}` attempt {}.\n",
            self.release.as_ref().map_or_else(|| "—".to_owned(), value_cell),
            self.target.as_ref().map_or_else(|| "—".to_owned(), value_cell),
            self.phase,
            self.attempt
        );
        let _ = writeln!(out, "**{}**\n", if self.confirmed { "Confirmed" } else { "Not confirmed" });
        let _ = writeln!(out, "{}\n", self.assessment);
        let _ = writeln!(out, "## Deployment and verification\n");
        tasks_markdown(&mut out, &self.tasks);
        for gate in &self.gates {
            gate.markdown(&mut out);
        }
        if !self.watches.is_empty() {
            let _ = writeln!(
                out,
                "## Live watches\n\n| watch | breach when | samples | breaching | no data | last |\n|---|---|---|---|---|---|"
            );
            for w in &self.watches {
                let _ = writeln!(
                    out,
                    "| {} | `{}` | {} | {} | {} | {} |",
                    w.title,
                    w.condition,
                    w.samples,
                    w.breaching,
                    w.no_data,
                    or_dash(w.last)
                );
            }
            out.push('\n');
        }
        list_markdown(&mut out, "Rollback procedure (what undoes this deployment, in order)", &self.rollback_procedure);
        let _ = writeln!(out, "Rollback: {}\n", self.rollback.as_deref().unwrap_or("none"));
        out
    }
}
