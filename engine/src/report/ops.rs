//! The ops report: SLIs from every watch sample, budgets and thresholds in
//! force, measurements against them, incidents and what reacted, rollbacks
//! step by step, loop-backs with their codes, decisions, and open actions.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::common::{cell, list_markdown, or_dash, text, value_cell, values, verdict};
use super::{Document, Header, Input};
use crate::machine::{payload, Event, SampleVerdict, TaskStatus, Verdict};
use crate::plan::{Action, TriggerOn};

/// The ops report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ops {
    /// The period it covers: from the start to the report.
    pub period: Period,
    /// Each watch's samples.
    pub slis: Vec<Sli>,
    /// Variables ending in BUDGETS or TARGETS.
    pub budgets: Map<String, Value>,
    /// Every variable in force.
    pub thresholds: Map<String, Value>,
    /// Numbers and flags that succeeded tasks reported.
    pub measurements: Vec<Measurement>,
    /// Signals received and what reacted.
    pub incidents: Vec<Incident>,
    /// Rollbacks, step by step.
    pub rollbacks: Vec<RollbackEntry>,
    /// Loop-backs with their codes.
    pub loop_backs: Vec<LoopBack>,
    /// Every decision at a gate or trigger halt.
    pub decisions: Vec<OpsDecision>,
    /// Criteria that did not pass.
    pub open_actions: Vec<String>,
    /// What the report describes.
    pub report: Header,
}

/// From when to when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Period {
    /// The instance's start.
    pub from: String,
    /// The report's time.
    pub to: String,
}

/// A watch's samples over the whole log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sli {
    /// The watch.
    pub watch: String,
    /// Its title.
    pub title: String,
    /// Its breach condition.
    pub condition: String,
    /// Samples taken (with and without data).
    pub samples: usize,
    /// The latest value.
    pub latest: Option<f64>,
    /// The lowest value.
    pub min: Option<f64>,
    /// The highest value.
    pub max: Option<f64>,
    /// Samples that breached.
    pub breaching_samples: usize,
    /// Samples with no data.
    pub no_data_samples: usize,
    /// Times a trigger on this watch acted.
    pub firings: usize,
}

/// What a succeeded task measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Measurement {
    /// The phase.
    pub phase: String,
    /// The task.
    pub task: String,
    /// When it succeeded.
    pub at: String,
    /// Its numeric and boolean outputs.
    pub values: Map<String, Value>,
}

/// A signal and what reacted to it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Incident {
    /// The signal.
    pub signal: String,
    /// Its data.
    pub data: Value,
    /// Who sent it.
    pub by: String,
    /// When.
    pub at: String,
    /// What each trigger listening for it did: acted (and how), did not
    /// act (and why), and how a halt it caused was decided.
    pub reactions: Vec<String>,
}

/// A rollback.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RollbackEntry {
    /// When it started.
    pub started_at: String,
    /// Who or what started it.
    pub by: String,
    /// Why.
    pub reason: String,
    /// The phase it re-enters afterwards.
    pub to: Option<String>,
    /// Each compensation attempt.
    pub steps: Vec<RollbackStep>,
    /// in progress or completed.
    pub outcome: String,
    /// When it completed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<String>,
}

/// One compensation attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RollbackStep {
    /// The compensation.
    pub step: String,
    /// Its attempt.
    pub attempt: u32,
    /// succeeded or failed.
    pub result: String,
    /// When.
    pub at: String,
}

/// A loop-back a trigger took.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoopBack {
    /// Its code.
    pub code: Option<String>,
    /// The phase it left.
    pub from: String,
    /// The phase it re-entered.
    pub to: String,
    /// The definition's reason.
    pub reason: String,
    /// What happened.
    pub cause: String,
    /// When.
    pub at: String,
}

/// A decision, for the ops log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpsDecision {
    /// `gate phase/id` or `trigger phase/id`.
    pub what: String,
    /// approve, reject, hold, escalate.
    pub decision: String,
    /// Who.
    pub by: String,
    /// When.
    pub at: String,
    /// Their comment.
    pub comment: String,
}

#[derive(Default, Clone)]
struct Samples {
    values: Vec<f64>,
    breaches: usize,
    no_data: usize,
    firings: usize,
}

impl Ops {
    pub(super) fn build(input: &Input<'_>, report: Header) -> Self {
        let (instance, workflow) = (input.instance, input.workflow);
        let mut slis: BTreeMap<String, Samples> = BTreeMap::new();
        let mut incidents: Vec<Incident> = Vec::new();
        let mut rollbacks: Vec<RollbackEntry> = Vec::new();
        let mut loop_backs = Vec::new();
        let mut decisions = Vec::new();
        let mut last_halt: Option<String> = None;
        // Loop-backs fired per trigger: one past `max_loops` fails its phase instead of looping back.
        let mut fired_gotos: BTreeMap<String, u32> = BTreeMap::new();
        // The incident a trigger's cause names (`signal incident #2: ...`).
        let incident_of = |incidents: &[Incident], cause: &str| -> Option<usize> {
            let signal = cause.strip_prefix("signal ")?.split(" #").next()?;
            incidents.iter().rposition(|i| i.signal == signal)
        };
        let open = |rollbacks: &Vec<RollbackEntry>| rollbacks.last().is_some_and(|r| r.outcome == "in progress");
        let started = |at: &str, by: String, reason: String, to: Option<String>| RollbackEntry {
            started_at: at.to_owned(),
            by,
            reason,
            to,
            steps: Vec::new(),
            outcome: "in progress".to_owned(),
            completed_at: None,
        };
        for record in input.history {
            let at = record.at().to_string();
            match record.event() {
                Event::WatchSampled(payload::WatchSampled { watch, value, verdict, .. }) => {
                    let entry = slis.entry(watch.clone()).or_default();
                    entry.values.extend(*value);
                    match verdict {
                        SampleVerdict::Breach => entry.breaches += 1,
                        SampleVerdict::NoData => entry.no_data += 1,
                        SampleVerdict::Ok => {}
                    }
                }
                Event::TriggerFired(payload::TriggerFired { phase, trigger, cause }) => {
                    let declared = workflow.trigger(phase, trigger);
                    if let (Some(i), Some((_, t))) = (incident_of(&incidents, cause), declared) {
                        incidents[i].reactions.push(format!("{trigger}: acted ({})", t.action.name()));
                    }
                    match declared.map(|(_, t)| &t.action) {
                        Some(Action::Goto { phase: target, code, reason, max_loops }) => {
                            let fired = fired_gotos.entry(trigger.clone()).or_insert(0);
                            *fired += 1;
                            // Past its max_loops the trigger failed its phase: no loop-back was taken.
                            if *fired <= *max_loops {
                                loop_backs.push(LoopBack {
                                    code: code.clone(),
                                    from: phase.clone(),
                                    to: workflow.phases[*target].id.clone(),
                                    reason: reason.clone(),
                                    cause: cause.clone(),
                                    at: at.clone(),
                                });
                            }
                        }
                        Some(Action::Rollback { to }) => rollbacks.push(started(
                            &at,
                            format!("trigger:{trigger}"),
                            cause.clone(),
                            to.map(|t| workflow.phases[t].id.clone()),
                        )),
                        Some(Action::HaltForApproval { .. }) => last_halt = Some(format!("trigger:{trigger} ({cause})")),
                        Some(Action::Notify(_) | Action::Run { .. }) | None => {}
                    }
                    // A firing counts for the watch the trigger reacts to, as the definition declares it.
                    if let Some((p, TriggerOn::Watch(w))) = declared.map(|(p, t)| (p, &t.on)) {
                        slis.entry(workflow.phases[p].watches[*w].id.clone()).or_default().firings += 1;
                    }
                }
                Event::SignalReceived(payload::SignalReceived { name, data, by }) => {
                    incidents.push(Incident { signal: name.clone(), data: data.clone(), by: by.clone(), at, reactions: Vec::new() })
                }
                Event::TriggerSkipped(payload::TriggerSkipped { trigger, reason, .. }) => {
                    if let Some(last) = incidents.last_mut() {
                        last.reactions.push(format!("{trigger}: did not act ({reason})"));
                    }
                }
                Event::RollbackStarted(payload::RollbackStarted { by, reason, to }) => {
                    rollbacks.push(started(&at, by.clone(), reason.clone(), to.clone()));
                }
                Event::CompensationDispatched(_) if !open(&rollbacks) => {
                    // Started by an approved (or timed-out) trigger halt.
                    let by = last_halt.clone().unwrap_or_else(|| "a trigger halt".to_owned());
                    rollbacks.push(started(&at, by, "approved at the trigger's halt".to_owned(), None));
                }
                Event::CompensationSucceeded(payload::CompensationSucceeded { id, attempt, .. })
                | Event::CompensationFailed(payload::CompensationFailed { id, attempt, .. }) => {
                    let result = if matches!(record.event(), Event::CompensationSucceeded(_)) { "succeeded" } else { "failed" };
                    if let Some(last) = rollbacks.last_mut() {
                        last.steps.push(RollbackStep { step: id.clone(), attempt: *attempt, result: result.to_owned(), at });
                    }
                }
                Event::RollbackCompleted => {
                    if let Some(last) = rollbacks.last_mut() {
                        last.outcome = "completed".to_owned();
                        last.completed_at = Some(at);
                    }
                }
                Event::DecisionRecorded(payload::DecisionRecorded { phase, gate, decision }) => decisions.push(OpsDecision {
                    what: format!("gate {phase}/{gate}"),
                    decision: decision.kind.verb().to_owned(),
                    by: decision.principal.clone(),
                    at,
                    comment: decision.comment.clone(),
                }),
                Event::TriggerDecided(payload::TriggerDecided { phase, trigger, decision }) => {
                    if let Some(i) =
                        last_halt.as_deref().and_then(|halt| halt.split_once(" (")).and_then(|(_, cause)| incident_of(&incidents, cause))
                    {
                        incidents[i].reactions.push(format!("{trigger}: {} by {}", decision.kind.past(), decision.principal));
                    }
                    decisions.push(OpsDecision {
                        what: format!("trigger {phase}/{trigger}"),
                        decision: decision.kind.verb().to_owned(),
                        by: decision.principal.clone(),
                        at,
                        comment: decision.comment.clone(),
                    })
                }
                _ => {}
            }
        }
        let slis = workflow
            .phases
            .iter()
            .flat_map(|p| p.watches.iter())
            .map(|w| {
                let s = slis.get(&w.id).cloned().unwrap_or_default();
                Sli {
                    watch: w.id.clone(),
                    title: w.title.clone(),
                    condition: w.condition.source().to_owned(),
                    samples: s.values.len() + s.no_data,
                    latest: s.values.last().copied(),
                    min: s.values.iter().copied().reduce(f64::min),
                    max: s.values.iter().copied().reduce(f64::max),
                    breaching_samples: s.breaches,
                    no_data_samples: s.no_data,
                    firings: s.firings,
                }
            })
            .collect();
        let budgets = instance
            .vars
            .iter()
            .filter(|(name, value)| {
                value.is_object() && (name.to_ascii_uppercase().ends_with("BUDGETS") || name.to_ascii_uppercase().ends_with("TARGETS"))
            })
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let measurements = workflow
            .phase_order
            .iter()
            .flat_map(|&p| instance.phases[p].tasks.iter().map(move |t| (p, t)))
            .filter_map(|(p, t)| match &t.status {
                TaskStatus::Succeeded { output: Value::Object(output), at, .. } => {
                    let scalars: Map<String, Value> =
                        output.iter().filter(|(_, v)| v.is_number() || v.is_boolean()).map(|(k, v)| (k.clone(), v.clone())).collect();
                    (!scalars.is_empty()).then(|| Measurement {
                        phase: workflow.phases[p].id.clone(),
                        task: t.id.clone(),
                        at: at.to_string(),
                        values: scalars,
                    })
                }
                _ => None,
            })
            .collect();
        let open_actions = instance
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
        Ops {
            period: Period { from: instance.started_at.to_string(), to: input.now.to_string() },
            slis,
            budgets,
            thresholds: instance.vars.clone(),
            measurements,
            incidents,
            rollbacks,
            loop_backs,
            decisions,
            open_actions,
            report,
        }
    }
}

impl Document for Ops {
    fn markdown(&self) -> String {
        let mut out = String::new();
        self.report.markdown(&mut out, "Ops report");
        let _ = writeln!(out, "Period: {} to {}\n", self.period.from, self.period.to);
        let _ = writeln!(out, "## SLIs (watches)\n\n| watch | condition (breach) | samples | latest | min | max | breaching | no data | firings |\n|---|---|---|---|---|---|---|---|---|");
        let number = |v: Option<f64>| v.map_or_else(|| "—".to_owned(), |v| text(&Value::from(v)));
        for s in &self.slis {
            let _ = writeln!(
                out,
                "| {} | `{}` | {} | {} | {} | {} | {} | {} | {} |",
                cell(&s.title),
                cell(&s.condition),
                s.samples,
                number(s.latest),
                number(s.min),
                number(s.max),
                s.breaching_samples,
                s.no_data_samples,
                s.firings
            );
        }
        out.push('\n');
        let _ = writeln!(out, "## Budgets and targets\n");
        if self.budgets.is_empty() {
            let _ = writeln!(out, "- none declared (variables ending in BUDGETS or TARGETS)");
        }
        for (name, value) in &self.budgets {
            let _ = writeln!(out, "- `{name}`: {}", values(value.as_object()));
        }
        let _ = writeln!(out, "\n## Thresholds in force\n");
        for (name, value) in &self.thresholds {
            let shown = if value.is_object() { values(value.as_object()) } else { value_cell(value) };
            let _ = writeln!(out, "- `{name}`: {shown}");
        }
        let _ = writeln!(out, "\n## Measurements against them\n\n| phase | task | when | values |\n|---|---|---|---|");
        for m in &self.measurements {
            let _ = writeln!(out, "| {} | {} | {} | {} |", m.phase, m.task, m.at, values(Some(&m.values)));
        }
        let _ = writeln!(out, "\n## Incidents signalled to this release\n");
        if self.incidents.is_empty() {
            let _ = writeln!(out, "None was signalled to this release (the incident records the checks read are under Measurements).");
        }
        for i in &self.incidents {
            let _ = writeln!(out, "- {} at {} from {}: {}", i.signal, i.at, i.by, text(&i.data));
            for r in &i.reactions {
                let _ = writeln!(out, "  - {r}");
            }
        }
        let _ = writeln!(out, "\n## Rollbacks\n");
        if self.rollbacks.is_empty() {
            let _ = writeln!(out, "None.");
        }
        for r in &self.rollbacks {
            let _ =
                writeln!(out, "- started {} by {}: {} (to {}): **{}**", r.started_at, r.by, r.reason, or_dash(r.to.as_ref()), r.outcome);
            for s in &r.steps {
                let _ = writeln!(out, "  - {} {} {}", s.step, s.result, s.at);
            }
        }
        let _ = writeln!(out, "\n## Loop-backs\n");
        if self.loop_backs.is_empty() {
            let _ = writeln!(out, "None.");
        }
        for l in &self.loop_backs {
            let _ = writeln!(out, "- **{}** {} → {} at {}: {} ({})", or_dash(l.code.as_ref()), l.from, l.to, l.at, l.reason, l.cause);
        }
        let _ = writeln!(out, "\n## Decisions\n");
        for d in &self.decisions {
            let _ = writeln!(out, "- {}: {} by {} at {}: {}", d.what, d.decision, d.by, d.at, d.comment);
        }
        out.push('\n');
        list_markdown(&mut out, "Open actions (criteria not passed)", &self.open_actions);
        out
    }
}
