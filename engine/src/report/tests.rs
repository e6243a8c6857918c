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
                        "metrics" => json!({
                            "error_ratio": 0.02,
                            "monthly_cost_usd": 800,
                            "sources": {"error_ratio": "prometheus, 30 days", "incident_records": "records/incidents.json"},
                            "incident_records": [
                                {"id": "INC-1", "severity": "P1", "detected_at": "2026-01-01T00:00:00Z", "resolved_at": "2026-01-01T02:00:00Z", "postmortem": "https://wiki/pm/1"},
                                {"id": "INC-2", "severity": "P2", "detected_at": "2026-01-01T03:00:00Z"}
                            ]
                        }),
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
        Input {
            instance: &self.instance,
            workflow: &self.workflow,
            history: &self.records,
            now: Timestamp(self.now.0 + 60_000),
            phase,
            since: Some(Timestamp(1_767_225_600_000)),
            until: None,
        }
    }
}

fn history() -> History {
    release(started(RELEASE, vec!["soak"], &[]))
}

/// An instance of `source` started at 2026-01-01T00:00:00Z with `overrides`
/// over its variables' defaults, settled.
fn started(source: &str, held: Vec<&'static str>, overrides: &[(&str, Value)]) -> History {
    let workflow = plan::load_source(&Source::from_text(source, Format::Toml), &AgentNames::builtin()).unwrap_or_else(|e| panic!("{e}"));
    let start = Timestamp(1_767_225_600_000);
    let mut vars: Map<String, Value> = workflow.vars.iter().filter_map(|(k, v)| v.default.clone().map(|d| (k.clone(), d))).collect();
    vars.extend(overrides.iter().map(|(k, v)| ((*k).to_owned(), v.clone())));
    let event = Event::InstanceStarted(payload::InstanceStarted {
        workflow: workflow.name.clone(),
        definition_hash: "0123456789abcdef0123".into(),
        vars,
        started_by: "rel-bot".into(),
    });
    let instance = machine::replay("rel-7", &workflow, &[Record::new(1, start, event.clone())]).unwrap_or_else(|r| panic!("{r}"));
    let mut h = History { workflow, instance, records: vec![Record::new(1, start, event)], now: start, held };
    h.settle();
    h
}

/// The fixed release history: approved, launched, rolled back by a P1.
fn release(mut h: History) -> History {
    approve_hardening(&mut h);
    h.apply(Event::SignalReceived(payload::SignalReceived {
        name: "incident".into(),
        data: json!({"severity": "P1", "summary": "checkout errors"}),
        by: "pager".into(),
    }));
    h.settle();
    h
}

/// QA's approval of the hardening gate, and what follows it.
fn approve_hardening(h: &mut History) {
    let decision = Decision {
        kind: DecisionKind::Approve,
        principal: "quinn".into(),
        auth: crate::machine::Authentication::Token { token: "5e1f0a9c2b7d".into() },
        via: "role:qa".into(),
        comment: "p95 regression accepted for 2.4.0".into(),
        request_id: String::new(),
        level: 0,
        seen: Default::default(),
        inputs: Default::default(),
    };
    h.apply(Event::DecisionRecorded(payload::DecisionRecorded { phase: "harden".into(), gate: "quality".into(), decision }));
    h.settle();
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
        ("deployment", Kind::Deployment, None),
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
        if kind == Kind::Deployment {
            // A launch rolled back by its P1 trigger is not a deployment that stands.
            assert_eq!(report.data["confirmed"], false, "{:#}", report.data);
            assert_eq!(report.data["phase"], "launch", "the default is the phase that deploys");
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

const MONTHLY: &str = r#"
name = "monthly"
version = 1
[vars]
error_budget = { default = 0.01, description = "the error ratio allowed" }
SLO_BUDGETS = { default = { error_rate = 0.01, p95_ms = 300 } }
COST_TARGETS = { default = { monthly_usd_max = 1000 } }

[[phases]]
id = "observe"
title = "Observe"
[[phases.tasks]]
id = "metrics"
title = "Monthly metrics"
agent = "noop"
[[phases.gates]]
id = "slo"
title = "Objectives"
[[phases.gates.criteria]]
id = "errors"
label = "Error ratio within {{ vars.error_budget }}"
must = "tasks.metrics.output.error_ratio <= vars.SLO_BUDGETS.error_rate"
[[phases.gates.criteria]]
id = "cost"
label = "Cost within target"
should = "tasks.metrics.output.monthly_cost_usd <= vars.COST_TARGETS.monthly_usd_max"
"#;

fn ops(h: &History, since: Option<Timestamp>, until: Option<Timestamp>) -> Value {
    let input = Input { since, until, ..h.input(None) };
    render(Kind::Ops, &input).unwrap_or_else(|e| panic!("{e}")).data
}

#[test]
fn the_ops_report_judges_each_budget_and_target_against_what_measured_it() {
    let h = started(MONTHLY, vec![], &[]);
    let data = ops(&h, Some(Timestamp(1_767_225_600_000)), None);
    let objective = |name: &str| {
        data["objectives"]
            .as_array()
            .and_then(|all| all.iter().find(|o| o["objective"] == name))
            .cloned()
            .unwrap_or_else(|| panic!("no {name}: {data:#}"))
    };
    let errors = objective("SLO_BUDGETS.error_rate");
    assert_eq!(errors["verdict"], "fail", "{errors:#}");
    assert_eq!(errors["criterion"], "observe/slo/errors");
    assert_eq!(errors["measured"]["tasks.metrics.output.error_ratio"], 0.02);
    assert_eq!(errors["sources"]["tasks.metrics.output.error_ratio"], "prometheus, 30 days", "the value says where it came from");
    assert_eq!(objective("COST_TARGETS.monthly_usd_max")["verdict"], "pass", "$800 is within the $1,000 target");
    assert_eq!(objective("SLO_BUDGETS.p95_ms")["verdict"], "not measured", "no criterion read it: never a pass");
    let incidents = data["recorded_incidents"].as_array().expect("recorded incidents");
    assert_eq!(incidents.len(), 2, "{data:#}");
    assert_eq!(incidents[0]["postmortem"], "https://wiki/pm/1");
    assert!(incidents[1]["resolved_at"].is_null() && incidents[1]["postmortem"].is_null(), "INC-2 is open, without a postmortem");
    assert!(incidents[0]["source"].as_str().is_some_and(|s| s.contains("records/incidents.json")), "{}", incidents[0]);
}

#[test]
fn the_ops_report_covers_only_its_period_and_defaults_to_the_last_calendar_month() {
    let h = started(MONTHLY, vec![], &[]);
    // The run happened on 2026-01-01; a period from 2026-01-02 saw none of it.
    let later = ops(&h, Some(Timestamp(1_767_312_000_000)), None);
    assert!(later["objectives"].as_array().is_some_and(|all| all.iter().all(|o| o["verdict"] == "not measured")), "{later:#}");
    assert_eq!(later["recorded_incidents"], json!([]));
    assert_eq!(later["measurements"], json!([]));
    // Without --since/--until, on 2026-03-15: February, which the run
    // (in January) is not in.
    let march = Input { since: None, until: None, now: Timestamp(1_773_532_800_000), ..h.input(None) };
    let default = render(Kind::Ops, &march).unwrap_or_else(|e| panic!("{e}")).data;
    assert_eq!(default["period"]["from"], "2026-02-01T00:00:00.000Z");
    assert_eq!(default["period"]["to"], "2026-03-01T00:00:00.000Z");
    assert_eq!(default["measurements"], json!([]));
    // On the day it started, last month had no release: the month so far.
    let today = ops(&h, None, None);
    assert_eq!(today["period"]["from"], "2026-01-01T00:00:00.000Z");
    assert!(today["period"]["chosen"].as_str().is_some_and(|c| c.starts_with("the month so far")), "{today:#}");
    assert_eq!(today["recorded_incidents"].as_array().map(Vec::len), Some(2));
    // --until alone starts at the instance's start and so sees it all.
    let until = ops(&h, None, Some(Timestamp(1_767_312_000_000)));
    assert_eq!(until["recorded_incidents"].as_array().map(Vec::len), Some(2));
}

#[test]
fn regression_an_ops_report_up_to_now_includes_what_was_measured_in_the_same_millisecond() {
    let h = started(MONTHLY, vec![], &[]);
    // Rendered at the very millisecond the measuring task succeeded, as a
    // report task right after it may be.
    let now = h
        .records
        .iter()
        .find(|r| matches!(r.event(), Event::TaskSucceeded(payload::TaskSucceeded { task, .. }) if task == "metrics"))
        .map(Record::at)
        .expect("the metrics task succeeded");
    let input = Input { since: Some(Timestamp(1_767_225_600_000)), until: None, now, ..h.input(None) };
    let data = render(Kind::Ops, &input).unwrap_or_else(|e| panic!("{e}")).data;
    assert!(data["measurements"].as_array().is_some_and(|m| !m.is_empty()), "{data:#}");
}

#[test]
fn a_label_shows_the_threshold_in_force_after_a_var_override() {
    let h = started(MONTHLY, vec![], &[("error_budget", json!(0.05))]);
    let report = render(Kind::Gate, &h.input(None)).unwrap_or_else(|e| panic!("{e}"));
    assert!(report.markdown.contains("Error ratio within 0.05"), "{}", report.markdown);
    assert!(!report.markdown.contains("{{"), "no placeholder is left in a label");
    assert!(report.markdown.contains("(prometheus, 30 days)"), "a value shows its source: {}", report.markdown);
    let criterion = &report.data["evaluations"][0]["criteria"][0];
    assert_eq!(criterion["sources"]["vars.SLO_BUDGETS.error_rate"], "variable SLO_BUDGETS, its default", "{criterion:#}");
    let set = started(MONTHLY, vec![], &[("SLO_BUDGETS", json!({"error_rate": 0.05, "p95_ms": 300}))]);
    let report = render(Kind::Gate, &set.input(None)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        report.data["evaluations"][0]["criteria"][0]["sources"]["vars.SLO_BUDGETS.error_rate"],
        "variable SLO_BUDGETS, set at start"
    );
    let fresh = started(MONTHLY, vec!["metrics"], &[("error_budget", json!(0.05))]);
    let checklist = render(Kind::Checklist, &fresh.input(None)).unwrap_or_else(|e| panic!("{e}"));
    assert!(checklist.markdown.contains("Error ratio within 0.05"), "a criterion not evaluated yet shows it too: {}", checklist.markdown);
}

#[test]
fn a_deployment_is_confirmed_only_when_its_phase_passed_and_the_release_stands() {
    let mut h = started(RELEASE, vec![], &[]);
    approve_hardening(&mut h);
    assert_eq!(h.instance.effective_status(), crate::machine::EffectiveStatus::Completed, "nothing held: the release completes");
    let report = render(Kind::Deployment, &h.input(None)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(report.data["confirmed"], true, "{:#}", report.data);
    assert_eq!(report.data["release"], "2.4.0");
    assert_eq!(report.data["tasks"][0]["id"], "deploy");
    assert_eq!(report.data["rollback_procedure"], json!(["undeploy (undoes task deploy)"]), "what would undo it");
    assert!(report.markdown.contains("**Confirmed**"), "{}", report.markdown);
    assert!(!report.markdown.contains("hunter2"), "the target's password is redacted");
    let early = started(RELEASE, vec![], &[]);
    let refused = render(Kind::Deployment, &early.input(None)).expect_err("launch has not started");
    assert!(refused.contains("has not started a phase that deploys"), "{refused}");
}

#[test]
fn certificates_for_every_passed_phase_with_phase_all() {
    let mut h = started(RELEASE, vec![], &[]);
    approve_hardening(&mut h);
    let report = render(Kind::Certificate, &h.input(Some("all"))).unwrap_or_else(|e| panic!("{e}"));
    let phases: Vec<&Value> = report.data["certificates"].as_array().expect("certificates").iter().map(|c| &c["phase"]).collect();
    assert_eq!(phases, [&json!("harden"), &json!("launch")]);
    assert_eq!(report.markdown.matches("Phase completion certificate").count(), 2);
    let none = started(RELEASE, vec![], &[]);
    assert!(render(Kind::Certificate, &none.input(Some("all"))).is_err(), "nothing passed: nothing to certify");
}
