//! The ops report (seed 003's monthly ops report): over a period (by default
//! the last calendar month), SLIs from every watch sample, each budget and
//! target (SLO_BUDGETS, COST_TARGETS) against the criterion that measured it
//! with its verdict and the actions taken, measurements with their sources,
//! incidents (signalled to the release, and from the team's records with
//! their postmortems) and what reacted, rollbacks step by step, loop-backs
//! with their codes, decisions, and open actions.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::common::{cell, list_markdown, or_dash, sourced_values, text, value_cell, values, verdict};
use super::{last_calendar_month, Document, Header, Input};
use crate::machine::{payload, Event, SampleVerdict, Timestamp, Verdict};
use crate::plan::{Action, TriggerOn};

/// The ops report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ops {
    /// The period it covers.
    pub period: Period,
    /// Each watch's samples in the period.
    pub slis: Vec<Sli>,
    /// Variables ending in BUDGETS or TARGETS.
    pub budgets: Map<String, Value>,
    /// Each budget or target entry against the criteria that measured it
    /// in the period: the verdict table with the actions taken.
    pub objectives: Vec<Objective>,
    /// Every variable in force.
    pub thresholds: Map<String, Value>,
    /// Numbers and flags that succeeded tasks reported.
    pub measurements: Vec<Measurement>,
    /// Signals received and what reacted.
    pub incidents: Vec<Incident>,
    /// Incidents from the team's records (a task's `incident_records`),
    /// with their postmortems.
    pub recorded_incidents: Vec<RecordedIncident>,
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
    /// Its start (inclusive).
    pub from: String,
    /// Its end (exclusive).
    pub to: String,
    /// How it was chosen: the last calendar month (the default) or `--since`/`--until`.
    pub chosen: String,
}

/// One budget or target entry (`SLO_BUDGETS.availability` = 0.999) and how
/// the period's latest evaluation of a criterion reading it came out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Objective {
    /// The entry: `SLO_BUDGETS.availability`.
    pub objective: String,
    /// Its value in force.
    pub target: Value,
    /// `phase/gate/criterion` that measured it (none: nothing did in the period).
    pub criterion: Option<String>,
    /// The criterion's label.
    pub label: String,
    /// Its condition.
    pub condition: String,
    /// The measured values it read (variables left out).
    pub measured: Map<String, Value>,
    /// Where each measured value came from.
    pub sources: BTreeMap<String, String>,
    /// pass, fail, warning, inconclusive, or `not measured`.
    pub verdict: String,
    /// When it was evaluated.
    pub evaluated_at: Option<String>,
    /// What was done about it: the decisions at its gate after the
    /// evaluation, loop-backs and rollbacks of its phase.
    pub actions: Vec<String>,
}

/// An incident from the team's records, as a task reported it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordedIncident {
    /// Its id.
    pub id: String,
    /// P0, P1, P2...
    pub severity: Option<String>,
    /// When it was detected.
    pub detected_at: Option<String>,
    /// When it was resolved (none: still open).
    pub resolved_at: Option<String>,
    /// Its postmortem: a link, true, or false/absent when none was written.
    pub postmortem: Value,
    /// Which task reported it, when, and from which record.
    pub source: String,
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
    /// Where each value came from, as the task said (its output's `sources`).
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub sources: Map<String, Value>,
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

/// Whether a variable holds budgets or targets (`SLO_BUDGETS`, `COST_TARGETS`).
fn is_budget(name: &str) -> bool {
    let name = name.to_ascii_uppercase();
    name.ends_with("BUDGETS") || name.ends_with("TARGETS")
}

/// The period a report covers, and how it was chosen.
fn period(input: &Input<'_>) -> (Timestamp, Timestamp, String) {
    match (input.since, input.until) {
        (None, None) => match last_calendar_month(input.now) {
            // A release that did not exist last month: the month so far.
            (_, to) if input.instance.started_at >= to => (
                input.instance.started_at,
                input.now,
                "the month so far: the default, since the instance started after the last calendar month; choose another with --since and --until"
                    .to_owned(),
            ),
            (from, to) => (from, to, "the last calendar month (the default; choose another with --since and --until)".to_owned()),
        },
        (Some(from), None) => (from, input.now, "from the start given (--since) to now".to_owned()),
        (None, Some(to)) => (input.instance.started_at, to, "from the instance's start to the end given (--until)".to_owned()),
        (Some(from), Some(to)) => (from, to, "as given (--since and --until)".to_owned()),
    }
}

impl Ops {
    pub(super) fn build(input: &Input<'_>, report: Header) -> Self {
        let (instance, workflow) = (input.instance, input.workflow);
        let (from, to, chosen) = period(input);
        // A period that ends now includes what happened in this very
        // millisecond (the measurement a report task reads right after it).
        let within = |at: Timestamp| at >= from && (at < to || (to == input.now && at == to));
        let mut slis: BTreeMap<String, Samples> = BTreeMap::new();
        let mut incidents: Vec<Incident> = Vec::new();
        // Each rollback with when it started and completed.
        let mut rollbacks: Vec<(Timestamp, Option<Timestamp>, RollbackEntry)> = Vec::new();
        let mut loop_backs = Vec::new();
        let mut decisions = Vec::new();
        let mut measurements = Vec::new();
        let mut recorded: BTreeMap<String, RecordedIncident> = BTreeMap::new();
        // (phase, gate, criterion) → its latest evaluation in the period.
        let mut evaluated: BTreeMap<(String, String, String), (Timestamp, crate::machine::CriterionResult)> = BTreeMap::new();
        // (phase, gate) → decisions at it in the period, with their times.
        let mut gate_decisions: BTreeMap<(String, String), Vec<(Timestamp, String)>> = BTreeMap::new();
        // phase → what a trigger did to it in the period (loop-backs, rollbacks, failures).
        let mut phase_actions: BTreeMap<String, Vec<(Timestamp, String)>> = BTreeMap::new();
        let mut last_halt: Option<String> = None;
        // Loop-backs fired per trigger: one past `max_loops` fails its phase instead of looping back.
        let mut fired_gotos: BTreeMap<String, u32> = BTreeMap::new();
        // The incident a trigger's cause names (`signal incident #2: ...`).
        let incident_of = |incidents: &[Incident], cause: &str| -> Option<usize> {
            let signal = cause.strip_prefix("signal ")?.split(" #").next()?;
            incidents.iter().rposition(|i| i.signal == signal)
        };
        let open =
            |rollbacks: &Vec<(Timestamp, Option<Timestamp>, RollbackEntry)>| rollbacks.last().is_some_and(|(_, end, _)| end.is_none());
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
            let when = record.at();
            let at = when.to_string();
            match record.event() {
                Event::WatchSampled(payload::WatchSampled { watch, value, verdict, .. }) if within(when) => {
                    let entry = slis.entry(watch.clone()).or_default();
                    entry.values.extend(*value);
                    match verdict {
                        SampleVerdict::Breach => entry.breaches += 1,
                        SampleVerdict::NoData => entry.no_data += 1,
                        SampleVerdict::Ok => {}
                    }
                }
                Event::TaskSucceeded(payload::TaskSucceeded { phase, task, output: Value::Object(output), .. }) if within(when) => {
                    let scalars: Map<String, Value> =
                        output.iter().filter(|(_, v)| v.is_number() || v.is_boolean()).map(|(k, v)| (k.clone(), v.clone())).collect();
                    let sources = output.get("sources").and_then(Value::as_object).cloned().unwrap_or_default();
                    if let Some(Value::Array(items)) = output.get("incident_records") {
                        let from_record = sources.get("incident_records").map_or_else(String::new, |s| format!(" from {}", text(s)));
                        for item in items {
                            let field = |name: &str| item.get(name).and_then(Value::as_str).map(str::to_owned);
                            let Some(id) = field("id") else { continue };
                            recorded.insert(
                                id.clone(),
                                RecordedIncident {
                                    id,
                                    severity: field("severity"),
                                    detected_at: field("detected_at"),
                                    resolved_at: field("resolved_at"),
                                    postmortem: item.get("postmortem").cloned().unwrap_or(Value::Null),
                                    source: format!("task {phase}/{task} at {at}{from_record}"),
                                },
                            );
                        }
                    }
                    if !scalars.is_empty() {
                        let sources = sources.into_iter().filter(|(k, _)| scalars.contains_key(k)).collect();
                        measurements.push(Measurement {
                            phase: phase.clone(),
                            task: task.clone(),
                            at: at.clone(),
                            values: scalars,
                            sources,
                        });
                    }
                }
                Event::GateEvaluated(payload::GateEvaluated { phase, gate, evaluation }) if within(when) => {
                    for criterion in &evaluation.criteria {
                        evaluated.insert((phase.clone(), gate.clone(), criterion.id.clone()), (when, criterion.clone()));
                    }
                }
                Event::TriggerFired(payload::TriggerFired { phase, trigger, cause }) if within(when) => {
                    let declared = workflow.trigger(phase, trigger);
                    if let (Some(i), Some((_, t))) = (incident_of(&incidents, cause), declared) {
                        incidents[i].reactions.push(format!("{trigger}: acted ({})", t.action.name()));
                    }
                    match declared.map(|(_, t)| &t.action) {
                        Some(Action::Goto { phase: target, code, reason, max_loops }) => {
                            let fired = fired_gotos.entry(trigger.clone()).or_insert(0);
                            *fired += 1;
                            // Past its max_loops the trigger failed its phase: no loop-back was taken.
                            let target = workflow.phases[*target].id.clone();
                            if *fired <= *max_loops {
                                phase_actions.entry(phase.clone()).or_default().push((when, format!("loop-back to {target} by {trigger}")));
                                loop_backs.push(LoopBack {
                                    code: code.clone(),
                                    from: phase.clone(),
                                    to: target,
                                    reason: reason.clone(),
                                    cause: cause.clone(),
                                    at: at.clone(),
                                });
                            } else {
                                phase_actions.entry(phase.clone()).or_default().push((when, format!("{trigger} failed the phase")));
                            }
                        }
                        Some(Action::Rollback { to }) => {
                            phase_actions.entry(phase.clone()).or_default().push((when, format!("rollback by {trigger}")));
                            rollbacks.push((
                                when,
                                None,
                                started(&at, format!("trigger:{trigger}"), cause.clone(), to.map(|t| workflow.phases[t].id.clone())),
                            ));
                        }
                        Some(Action::HaltForApproval { .. }) => last_halt = Some(format!("trigger:{trigger} ({cause})")),
                        Some(Action::Notify(_) | Action::Run { .. }) | None => {}
                    }
                    // A firing counts for the watch the trigger reacts to, as the definition declares it.
                    if let Some((p, TriggerOn::Watch(w))) = declared.map(|(p, t)| (p, &t.on)) {
                        slis.entry(workflow.phases[p].watches[*w].id.clone()).or_default().firings += 1;
                    }
                }
                Event::SignalReceived(payload::SignalReceived { name, data, by }) if within(when) => {
                    incidents.push(Incident { signal: name.clone(), data: data.clone(), by: by.clone(), at, reactions: Vec::new() })
                }
                Event::TriggerSkipped(payload::TriggerSkipped { trigger, reason, .. }) if within(when) => {
                    if let Some(last) = incidents.last_mut() {
                        last.reactions.push(format!("{trigger}: did not act ({reason})"));
                    }
                }
                Event::RollbackStarted(payload::RollbackStarted { by, reason, to }) => {
                    rollbacks.push((when, None, started(&at, by.clone(), reason.clone(), to.clone())));
                }
                Event::CompensationDispatched(_) if !open(&rollbacks) => {
                    // Started by an approved (or timed-out) trigger halt.
                    let by = last_halt.clone().unwrap_or_else(|| "a trigger halt".to_owned());
                    rollbacks.push((when, None, started(&at, by, "approved at the trigger's halt".to_owned(), None)));
                }
                Event::CompensationSucceeded(payload::CompensationSucceeded { id, attempt, .. })
                | Event::CompensationFailed(payload::CompensationFailed { id, attempt, .. }) => {
                    let result = if matches!(record.event(), Event::CompensationSucceeded(_)) { "succeeded" } else { "failed" };
                    if let Some((_, _, last)) = rollbacks.last_mut() {
                        last.steps.push(RollbackStep { step: id.clone(), attempt: *attempt, result: result.to_owned(), at });
                    }
                }
                Event::RollbackCompleted => {
                    if let Some((_, end, last)) = rollbacks.last_mut() {
                        *end = Some(when);
                        last.outcome = "completed".to_owned();
                        last.completed_at = Some(at);
                    }
                }
                Event::DecisionRecorded(payload::DecisionRecorded { phase, gate, decision }) if within(when) => {
                    let comment = if decision.comment.is_empty() { String::new() } else { format!(": {}", decision.comment) };
                    gate_decisions
                        .entry((phase.clone(), gate.clone()))
                        .or_default()
                        .push((when, format!("{} by {} at {at}{comment}", decision.kind.past(), decision.principal)));
                    decisions.push(OpsDecision {
                        what: format!("gate {phase}/{gate}"),
                        decision: decision.kind.verb().to_owned(),
                        by: decision.principal.clone(),
                        at,
                        comment: decision.comment.clone(),
                    })
                }
                Event::TriggerDecided(payload::TriggerDecided { phase, trigger, decision }) if within(when) => {
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
        // A rollback belongs to the period if it ran during any of it.
        let rollbacks: Vec<RollbackEntry> = rollbacks
            .into_iter()
            .filter(|(started, end, _)| *started < to && end.is_none_or(|end| end >= from))
            .map(|(_, _, r)| r)
            .collect();
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
        let budgets: Map<String, Value> = instance
            .vars
            .iter()
            .filter(|(name, value)| value.is_object() && is_budget(name))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let objectives = objectives(&budgets, &evaluated, &gate_decisions, &phase_actions);
        let open_actions = evaluated
            .iter()
            .filter(|(_, (_, c))| c.verdict != Verdict::Pass)
            .map(|((phase, gate, _), (at, c))| format!("{phase}/{gate}: {} ({}, evaluated {at})", c.label, verdict(c.verdict)))
            .collect();
        Ops {
            period: Period { from: from.to_string(), to: to.to_string(), chosen },
            slis,
            budgets,
            objectives,
            thresholds: instance.vars.clone(),
            measurements,
            incidents,
            recorded_incidents: recorded.into_values().collect(),
            rollbacks,
            loop_backs,
            decisions,
            open_actions,
            report,
        }
    }
}

/// The verdict table: each entry of each budget variable against every
/// criterion that read it in the period (its latest evaluation), or one row
/// saying nothing measured it.
fn objectives(
    budgets: &Map<String, Value>,
    evaluated: &BTreeMap<(String, String, String), (Timestamp, crate::machine::CriterionResult)>,
    gate_decisions: &BTreeMap<(String, String), Vec<(Timestamp, String)>>,
    phase_actions: &BTreeMap<String, Vec<(Timestamp, String)>>,
) -> Vec<Objective> {
    let mut out = Vec::new();
    for (name, entries) in budgets {
        let Some(entries) = entries.as_object() else { continue };
        for (key, target) in entries {
            let path = format!("vars.{name}.{key}");
            let mut measured_by = evaluated.iter().filter(|(_, (_, c))| c.values.contains_key(&path)).peekable();
            if measured_by.peek().is_none() {
                out.push(Objective {
                    objective: format!("{name}.{key}"),
                    target: target.clone(),
                    criterion: None,
                    label: String::new(),
                    condition: String::new(),
                    measured: Map::new(),
                    sources: BTreeMap::new(),
                    verdict: "not measured".to_owned(),
                    evaluated_at: None,
                    actions: vec!["none: no criterion read it in this period".to_owned()],
                });
                continue;
            }
            for ((phase, gate, id), (at, c)) in measured_by {
                let after = |list: Option<&Vec<(Timestamp, String)>>| {
                    list.into_iter().flatten().filter(|(t, _)| t >= at).map(|(_, what)| what.clone()).collect::<Vec<_>>()
                };
                let mut actions = after(gate_decisions.get(&(phase.clone(), gate.clone())));
                actions.extend(after(phase_actions.get(phase)));
                if actions.is_empty() {
                    actions.push("none recorded".to_owned());
                }
                let measured: Map<String, Value> =
                    c.values.iter().filter(|(k, _)| !k.starts_with("vars.")).map(|(k, v)| (k.clone(), v.clone())).collect();
                out.push(Objective {
                    objective: format!("{name}.{key}"),
                    target: target.clone(),
                    criterion: Some(format!("{phase}/{gate}/{id}")),
                    label: c.label.clone(),
                    condition: c.condition.clone(),
                    measured,
                    sources: c.sources.clone(),
                    verdict: verdict(c.verdict).to_owned(),
                    evaluated_at: Some(at.to_string()),
                    actions,
                });
            }
        }
    }
    out
}

impl Document for Ops {
    fn markdown(&self) -> String {
        let mut out = String::new();
        self.report.markdown(&mut out, "Ops report");
        let _ = writeln!(out, "Period: {} to {} ({})\n", self.period.from, self.period.to, self.period.chosen);
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
        if !self.objectives.is_empty() {
            let _ = writeln!(
                out,
                "\n## Budgets and targets against what was measured\n\n| objective | target | criterion | measured (source) | verdict | actions taken |\n|---|---|---|---|---|---|"
            );
        }
        for o in &self.objectives {
            let criterion = match (&o.criterion, &o.evaluated_at) {
                (Some(c), Some(at)) => format!("{} (`{c}`, {at})", cell(&o.label)),
                _ => "—".to_owned(),
            };
            let _ = writeln!(
                out,
                "| `{}` | {} | {criterion} | {} | **{}** | {} |",
                o.objective,
                value_cell(&o.target),
                sourced_values(Some(&o.measured), &o.sources),
                o.verdict,
                cell(&o.actions.join("; "))
            );
        }
        let _ = writeln!(out, "\n## Thresholds in force\n");
        for (name, value) in &self.thresholds {
            let shown = if value.is_object() { values(value.as_object()) } else { value_cell(value) };
            let _ = writeln!(out, "- `{name}`: {shown}");
        }
        let _ = writeln!(out, "\n## Measurements in the period\n\n| phase | task | when | values | sources |\n|---|---|---|---|---|");
        for m in &self.measurements {
            let _ = writeln!(out, "| {} | {} | {} | {} | {} |", m.phase, m.task, m.at, values(Some(&m.values)), values(Some(&m.sources)));
        }
        let _ = writeln!(out, "\n## Incidents signalled to this release\n");
        if self.incidents.is_empty() {
            let _ = writeln!(out, "None was signalled to this release in this period (incidents from the team's records follow).");
        }
        for i in &self.incidents {
            let _ = writeln!(out, "- {} at {} from {}: {}", i.signal, i.at, i.by, text(&i.data));
            for r in &i.reactions {
                let _ = writeln!(out, "  - {r}");
            }
        }
        let _ = writeln!(out, "\n## Incidents in the team's records\n");
        if self.recorded_incidents.is_empty() {
            let _ = writeln!(out, "No task reported incident records in this period.");
        } else {
            let _ = writeln!(out, "| incident | severity | detected | resolved | postmortem | source |\n|---|---|---|---|---|---|");
        }
        for i in &self.recorded_incidents {
            let postmortem = match &i.postmortem {
                Value::Null | Value::Bool(false) => "**missing**".to_owned(),
                Value::Bool(true) => "written".to_owned(),
                other => value_cell(other),
            };
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {postmortem} | {} |",
                cell(&i.id),
                or_dash(i.severity.as_ref()),
                or_dash(i.detected_at.as_ref()),
                i.resolved_at.as_deref().unwrap_or("**open**"),
                cell(&i.source)
            );
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
