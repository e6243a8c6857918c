//! People are told (issue 17, item 5): a workflow-level `notify` step is
//! asked for at every halt that waits for a person, every escalation and
//! timeout, and every trigger that acts; and a rollback decision's
//! escalation chain can end in a rollback when nobody answers.

use super::*;

const MINUTE: u64 = 60_000;

/// A release whose `ship` phase halts for a rollback decision on a P1
/// (the on-call for 15 minutes, then the command group may decide for 15
/// minutes, then it rolls back), rolls back at once on a P0, and has a
/// gate; `notify` is the workflow-level line (or empty).
fn told(notify: &str) -> Harness {
    let mut h = harness_for(&format!(
        r#"
name = "release"
{notify}
[signals.incident]
description = "an incident with a severity"

[[phases]]
id = "build"
[[phases.tasks]]
id = "compile"
agent = "noop"
rollback = {{ id = "uncompile", agent = "noop" }}

[[phases]]
id = "ship"
after = ["build"]
[[phases.tasks]]
id = "deploy"
agent = "noop"
[[phases.gates]]
id = "go"
approval = {{ approvers = ["alice"] }}
[[phases.triggers]]
id = "p0"
on = "signal:incident"
when = "signals.incident.severity == 'P0'"
action = "rollback"
[[phases.triggers]]
id = "p1"
on = "signal:incident"
when = "signals.incident.severity == 'P1'"
action = "halt_for_approval"
approval = {{ approvers = ["oncall"], timeout = "15m", on_timeout = "escalate", escalation = [{{ approvers = ["command"], join = "may", timeout = "15m", on_timeout = "approve" }}] }}
then = "rollback"
"#
    ));
    h.settle(0);
    h
}

/// What each notification effect announced, in order.
fn announced(h: &Harness) -> Vec<String> {
    h.effects
        .iter()
        .filter_map(|effect| match effect {
            Effect::Notify { phase, gate, what } => {
                Some(format!("gate {}/{}: {what}", h.workflow.phases[*phase].id, h.workflow.phases[*phase].gates[*gate].id))
            }
            Effect::TriggerNotify { phase, trigger, what } => {
                Some(format!("trigger {}/{}: {what}", h.workflow.phases[*phase].id, h.workflow.phases[*phase].triggers[*trigger].id))
            }
            _ => None,
        })
        .collect()
}

const WEBHOOK: &str = r#"notify = { agent = "webhook", params = { url_env = "RELEASE_WEBHOOK" } }"#;

#[test]
fn a_workflow_notify_announces_every_halt_escalation_timeout_and_rollback() {
    let mut h = told(WEBHOOK);
    assert_eq!(announced(&h), ["gate ship/go: awaiting_decision"], "the gate names no notify of its own; the workflow's is used");

    // A P1: the halt waits for the on-call, escalates to the command group
    // after 15 minutes, and rolls back 15 minutes after that.
    h.incident("P1");
    assert_eq!(h.instance.status.kind(), "awaiting_decision");
    assert_eq!(announced(&h).last().map(String::as_str), Some("trigger ship/p1: awaiting_decision"));
    h.settle(15 * MINUTE);
    let InstanceStatus::AwaitingDecision { approval, .. } = &h.instance.status else { panic!("still waits: {:?}", h.kinds()) };
    assert!(matches!(approval.status, GateStatus::AwaitingDecision { level: 1, deadline: Some(_), .. }), "{:?}", approval.status);
    assert_eq!(announced(&h).last().map(String::as_str), Some("trigger ship/p1: timed_out: escalated"));
    h.settle(15 * MINUTE);
    assert_eq!(h.instance.status.kind(), "rolled_back", "nobody decided at the last level: its on_timeout approves: {:?}", h.kinds());
    let told = announced(&h);
    assert!(
        told.last().is_some_and(|t| t.starts_with("trigger ship/p1: acted: rollback") && t.contains("no decision before the deadline")),
        "the rollback is announced, with why: {told:?}"
    );
    h.assert_replays();
}

#[test]
fn an_immediate_rollback_is_announced_and_nothing_is_without_a_notify_step() {
    let mut h = told(WEBHOOK);
    h.incident("P0");
    assert_eq!(h.instance.status.kind(), "rolled_back");
    assert!(announced(&h).iter().any(|t| t.starts_with("trigger ship/p0: acted: rollback (signal incident")), "{:?}", announced(&h));

    let mut quiet = told("");
    quiet.incident("P0");
    assert_eq!(quiet.instance.status.kind(), "rolled_back");
    assert!(announced(&quiet).is_empty(), "no step, no notification: {:?}", announced(&quiet));
}

#[test]
fn an_escalation_level_without_a_timeout_cannot_say_what_happens_at_it() {
    let toml = r#"
name = "release"
[[phases]]
id = "ship"
[[phases.tasks]]
id = "deploy"
agent = "noop"
[[phases.gates]]
id = "go"
approval = { approvers = ["a"], timeout = "1h", on_timeout = "escalate", escalation = [{ approvers = ["b"], on_timeout = "approve" }] }
"#;
    let error = plan::load_source(&Source::from_text(toml, Format::Toml), &AgentNames::builtin()).expect_err("refused").to_string();
    assert!(error.contains("escalation[0].on_timeout") && error.contains("this level has no timeout"), "{error}");
}
