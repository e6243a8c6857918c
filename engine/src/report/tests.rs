//! Every report over one fixed history, as JSON and as Markdown, pinned by
//! insta snapshots (`engine/src/report/snapshots/`): a release whose
//! hardening gate passes with a should warning and a person's approval, whose
//! launch deploys, and whose P1 incident rolls it back. Time, outputs and
//! durations are fixed, so the snapshots only change when a report does.
//! `INSTA_UPDATE=always cargo test -p phasegate-engine --lib report` rewrites them.

use serde_json::{json, Map, Value};

use super::{render, Input, Kind};
use crate::machine::{self, payload, Decision, DecisionKind, Effect, Event, Instance, Record, Timestamp};
use crate::model::{Format, Source};
use crate::plan::{self, AgentNames, Workflow};

const RELEASE: &str = r#"
name = "release"
version = 3
[vars]
release_version = "2.4.0"
target_url = "https://ops:hunter2@shop.example/"
[signals.incident]
description = "an incident with a severity"

[[phases]]
id = "harden"
title = "Hardening"
owner = "role:qa"
[[phases.tasks]]
id = "e2e"
title = "End-to-end suite"
agent = "noop"
[[phases.gates]]
id = "quality"
title = "Quality gate"
[[phases.gates.criteria]]
id = "no-failures"
label = "No failing journeys"
must = "tasks.e2e.output.failed == 0"
[[phases.gates.criteria]]
id = "fast"
label = "p95 under 100 ms"
should = "tasks.e2e.output.p95_ms < 100"
[phases.gates.approval]
approvers = ["role:qa"]

[[phases]]
id = "launch"
title = "Launch"
after = ["harden"]
[[phases.tasks]]
id = "deploy"
title = "Blue-green deploy"
agent = "noop"
rollback = { id = "undeploy", agent = "noop" }
[[phases.tasks]]
id = "soak"
title = "Soak"
agent = "noop"
depends_on = ["deploy"]
[[phases.triggers]]
id = "p1"
on = "signal:incident"
when = "signals.incident.severity == 'P1'"
action = "rollback"
"#;

/// The instance, its workflow and its log, stepped through the machine at
/// fixed times: one second per event from 2026-01-01T00:00:00Z.
struct History {
    workflow: Workflow,
    instance: Instance,
    records: Vec<Record>,
    now: Timestamp,
    /// Tasks whose attempts stay in flight until released.
    held: Vec<&'static str>,
}

impl History {
    fn apply(&mut self, event: Event) {
        self.now = Timestamp(self.now.0 + 1_000);
        let effects = machine::step(&mut self.instance, &self.workflow, &event, self.now).unwrap_or_else(|r| panic!("{r}"));
        self.records.push(Record::new(self.records.len() as u64 + 1, self.now, event));
        self.instance.seq = self.records.len() as u64;
        for effect in effects {
            match effect {
                Effect::Dispatch { phase, task, attempt, .. } => {
                    let (phase, task) = (self.workflow.phases[phase].id.clone(), self.workflow.phases[phase].tasks[task].id.clone());
                    if self.held.contains(&task.as_str()) {
                        continue;
                    }
                    let output = match task.as_str() {
                        "e2e" => json!({"failed": 0, "p95_ms": 140, "api_token": "tok-123"}),
                        _ => json!({"version": "2.4.0"}),
                    };
                    self.apply(Event::TaskSucceeded(payload::TaskSucceeded { phase, task, attempt, output, duration_ms: 42 }));
                }
                Effect::Compensate { step, attempt, .. } => {
                    let id = self.instance.rollback.as_ref().map(|r| r.steps[step].state.id.clone()).unwrap_or_default();
                    self.apply(Event::CompensationSucceeded(payload::CompensationSucceeded {
                        step,
                        id,
                        attempt,
                        output: json!({}),
                        duration_ms: 7,
                    }));
                }
                Effect::Cancel { key, reason } => {
                    if let Some((p, t, attempt, _)) = self.instance.in_flight().into_iter().find(|(.., k)| *k == key) {
                        let (phase, task) = (self.instance.phases[p].id.clone(), self.instance.phases[p].tasks[t].id.clone());
                        self.apply(Event::TaskCancelled(payload::TaskCancelled { phase, task, attempt, reason }));
                    }
                }
                Effect::Notify { .. }
                | Effect::TriggerNotify { .. }
                | Effect::WriteOutbox { .. }
                | Effect::DeleteOutbox { .. }
                | Effect::WriteRequest { .. }
                | Effect::WriteBaseline { .. } => {}
            }
        }
    }

    fn settle(&mut self) {
        for _ in 0..100 {
            let next = machine::decide(&self.instance, &self.workflow, self.now);
            if next.events.is_empty() {
                return;
            }
            for event in next.events {
                self.apply(event);
            }
        }
        panic!("the history does not settle");
    }

    fn input(&self, phase: Option<&'static str>) -> Input<'_> {
        Input { instance: &self.instance, workflow: &self.workflow, history: &self.records, now: Timestamp(self.now.0 + 60_000), phase }
    }
}

fn history() -> History {
    let workflow = plan::load_source(&Source::from_text(RELEASE, Format::Toml), &AgentNames::builtin()).unwrap_or_else(|e| panic!("{e}"));
    let start = Timestamp(1_767_225_600_000);
    let vars: Map<String, Value> = workflow.vars.iter().filter_map(|(k, v)| v.default.clone().map(|d| (k.clone(), d))).collect();
    let event = Event::InstanceStarted(payload::InstanceStarted {
        workflow: "release".into(),
        definition_hash: "0123456789abcdef0123".into(),
        vars,
        started_by: "rel-bot".into(),
    });
    let instance = machine::replay("rel-7", &workflow, &[Record::new(1, start, event.clone())]).unwrap_or_else(|r| panic!("{r}"));
    let mut h = History { workflow, instance, records: vec![Record::new(1, start, event)], now: start, held: vec!["soak"] };
    h.settle();
    let decision = Decision {
        kind: DecisionKind::Approve,
        principal: "quinn".into(),
        via: "role:qa".into(),
        comment: "p95 regression accepted for 2.4.0".into(),
        request_id: String::new(),
        level: 0,
        seen: Default::default(),
        inputs: Default::default(),
    };
    h.apply(Event::DecisionRecorded(payload::DecisionRecorded { phase: "harden".into(), gate: "quality".into(), decision }));
    h.settle();
    h.apply(Event::SignalReceived(payload::SignalReceived {
        name: "incident".into(),
        data: json!({"severity": "P1", "summary": "checkout errors"}),
        by: "pager".into(),
    }));
    h.settle();
    h
}

#[test]
fn every_report_over_a_fixed_history() {
    let h = history();
    assert_eq!(h.instance.effective_status(), crate::machine::EffectiveStatus::RolledBack, "the history ends rolled back");
    for (name, kind, phase) in [
        ("readiness", Kind::Readiness, None),
        ("gate", Kind::Gate, None),
        ("checklist", Kind::Checklist, None),
        ("certificate", Kind::Certificate, Some("harden")),
        ("ops", Kind::Ops, None),
    ] {
        let report = render(kind, &h.input(phase)).unwrap_or_else(|e| panic!("{name}: {e}"));
        if kind == Kind::Readiness {
            // Regression (typed core issue): every criterion passed or was
            // accepted, but the run rolled back: never "ready".
            assert_eq!(report.data["ready"], false, "a rolled-back release is not ready");
            assert!(report.data["assessment"].as_str().is_some_and(|a| a.starts_with("not ready: the release was rolled back")));
        }
        if kind == Kind::Certificate {
            // Regression (issue 17): the certificate of a phase that passed
            // before the release rolled back granted "authorization to proceed".
            assert_eq!(report.data["authorizes"], serde_json::json!([]), "a rolled-back release authorizes nothing");
            assert!(report.data["void"].as_str().is_some_and(|v| v.starts_with("the release was rolled back after this phase passed")));
        }
        let json = serde_json::to_string_pretty(&report.data).expect("json");
        assert!(!json.contains("tok-123") && !json.contains("hunter2"), "{name}: a secret reached the JSON");
        assert!(!report.markdown.contains("tok-123") && !report.markdown.contains("hunter2"), "{name}: a secret reached the Markdown");
        insta::assert_snapshot!(format!("{name}.json"), json);
        insta::assert_snapshot!(format!("{name}.md"), report.markdown);
    }
}

#[test]
fn a_certificate_is_refused_for_a_phase_that_did_not_pass() {
    let h = history();
    let refused = render(Kind::Certificate, &h.input(Some("launch"))).expect_err("launch was rolled back");
    assert!(refused.contains("not passed"), "{refused}");
}
