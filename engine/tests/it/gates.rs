//! Gates and human decisions through the embedding API.

use phasegate_engine::machine::payload;
use std::sync::Arc;
use std::time::Duration;

use phasegate_engine::machine::{DecisionKind, Event, GateStatus, Roles, Verdict};
use phasegate_engine::model::{Format, Source};
use phasegate_engine::runtime::{DecisionRequest, Error};
use phasegate_engine::{Engine, StartOptions};
use phasegate_store::MemoryStore;

fn roles() -> Roles {
    let mut roles = Roles::default();
    roles.0.insert("qa".into(), ["quinn".to_owned(), "queenie".to_owned()].into());
    roles.0.insert("cto".into(), ["carla".to_owned()].into());
    roles
}

async fn engine() -> Engine {
    Engine::builder().store(Arc::new(MemoryStore::in_memory())).roles(roles()).build().await.expect("engine")
}

/// One phase with a task and a gate whose approval block is `approval`
/// (TOML, may be empty), then a second phase.
fn workflow(engine: &Engine, criteria: &str, approval: &str) -> phasegate_engine::plan::Workflow {
    let toml = format!(
        r#"
name = "gated"
[[phases]]
id = "qa"
owner = "role:qa"
[[phases.tasks]]
id = "e2e"
agent = "noop"
params = {{ output = {{ failed = 0, passed = 12 }} }}
[[phases.gates]]
id = "signoff"
criteria = [{criteria}]
{approval}
[[phases]]
id = "ship"
after = ["qa"]
[[phases.tasks]]
id = "deploy"
agent = "noop"
"#
    );
    engine.load_definition(&Source::from_text(toml, Format::Toml)).expect("valid")
}

const GREEN: &str = r#"{ must = "tasks.e2e.output.failed == 0", label = "E2E green" }, { should = "tasks.e2e.output.passed > 20", label = "Enough tests" }"#;

async fn start(engine: &Engine, workflow: phasegate_engine::plan::Workflow, by: &str) -> String {
    let id = engine.start(workflow, StartOptions { started_by: by.into(), ..StartOptions::default() }).await.expect("starts");
    engine.run_until_idle().await;
    id
}

fn request(kind: DecisionKind, principal: &str, comment: &str) -> DecisionRequest {
    DecisionRequest {
        kind,
        principal: principal.into(),
        auth: phasegate_engine::machine::Authentication::Local,
        comment: comment.into(),
        request_id: String::new(),
        inputs: Default::default(),
    }
}

fn events(engine: &Engine, id: &str) -> usize {
    engine.history(id).expect("history").len()
}

#[tokio::test]
async fn approval_reaches_quorum_with_distinct_principals_and_the_dag_continues() {
    let engine = engine().await;
    let approval = "[phases.gates.approval]\napprovers = [\"ann\", \"ben\", \"role:qa\"]\nrequired = 2";
    let id = start(&engine, workflow(&engine, GREEN, approval), "sam").await;
    assert_eq!(engine.instance(&id).expect("loads").0.effective_status(), phasegate_engine::machine::EffectiveStatus::AwaitingApproval);
    let pending = engine.approvals(None).expect("approvals");
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].warnings, ["Enough tests"], "the failed should is a warning the approver sees");
    assert_eq!(engine.approvals(Some("quinn")).expect("for quinn").len(), 1, "quinn holds role:qa");
    assert!(engine.approvals(Some("zed")).expect("for zed").is_empty());

    let first = engine.decide(&id, None, request(DecisionKind::Approve, "ann", "ok")).await.expect("ann approves");
    assert_eq!(first.gate_status, "awaiting_decision");
    let before = events(&engine, &id);
    let twice = engine.decide(&id, None, request(DecisionKind::Approve, "ann", "again")).await.expect_err("ann again");
    assert!(twice.to_string().contains("ann already approved gate signoff"), "{twice}");
    assert_eq!(events(&engine, &id), before, "a refused decision appends nothing");
    let second = engine.decide(&id, Some("qa/signoff"), request(DecisionKind::Approve, "quinn", "")).await.expect("quinn approves");
    assert_eq!(second.gate_status, "passed");
    engine.run_until_idle().await;
    assert_eq!(engine.instance(&id).expect("loads").0.effective_status(), phasegate_engine::machine::EffectiveStatus::Completed);
    assert!(engine.approvals(None).expect("approvals").is_empty(), "the index forgets decided gates");

    // The audit trail: who, how (directly or by role), when, what they saw.
    let decisions: Vec<_> = engine
        .history(&id)
        .expect("history")
        .into_iter()
        .filter_map(|r| match r.event() {
            Event::DecisionRecorded(payload::DecisionRecorded { decision, .. }) => Some((r.at(), decision.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(decisions.len(), 2);
    assert_eq!((decisions[0].1.principal.as_str(), decisions[0].1.via.as_str(), decisions[0].1.comment.as_str()), ("ann", "ann", "ok"));
    assert_eq!((decisions[1].1.principal.as_str(), decisions[1].1.via.as_str()), ("quinn", "role:qa"));
    assert_eq!(decisions[1].1.seen.get("c1"), Some(&Verdict::Pass));
    assert_eq!(decisions[1].1.seen.get("c2"), Some(&Verdict::Fail));
    engine.shutdown().await;
}

#[tokio::test]
async fn authorization_self_approval_and_comments_are_enforced() {
    let engine = engine().await;
    let approval = "[phases.gates.approval]\napprovers = [\"role:qa\", \"sam\"]\ncomment_required = true";
    let id = start(&engine, workflow(&engine, GREEN, approval), "sam").await;
    let before = events(&engine, &id);
    let stranger = engine.decide(&id, None, request(DecisionKind::Approve, "mallory", "hi")).await.expect_err("not listed");
    assert!(
        matches!(&stranger, Error::Forbidden(m) if m == "mallory may not decide gate qa/signoff at level 0; allowed: role:qa, sam"),
        "{stranger}"
    );
    let own = engine.decide(&id, None, request(DecisionKind::Approve, "sam", "mine")).await.expect_err("self-approval");
    assert!(own.to_string().contains("does not allow self-approval"), "{own}");
    let silent = engine.decide(&id, None, request(DecisionKind::Approve, "quinn", "")).await.expect_err("comment required");
    assert!(silent.to_string().contains("requires a comment"), "{silent}");
    let unknown = engine.decide(&id, Some("nope"), request(DecisionKind::Approve, "quinn", "x")).await.expect_err("unknown gate");
    assert!(unknown.to_string().contains("has no gate or trigger `nope`"), "{unknown}");
    assert_eq!(events(&engine, &id), before, "every refusal appended nothing");
    // The starter may still reject their own release.
    engine.decide(&id, None, request(DecisionKind::Reject, "sam", "found a bug")).await.expect("sam rejects");
    engine.run_until_idle().await;
    let (instance, _) = engine.instance(&id).expect("loads");
    assert_eq!(instance.effective_status(), phasegate_engine::machine::EffectiveStatus::Failed);
    assert!(
        matches!(&instance.status, phasegate_engine::machine::InstanceStatus::Failed { reason, .. } if reason.contains("rejected by sam: found a bug"))
    );
    let late = engine.decide(&id, None, request(DecisionKind::Approve, "quinn", "late")).await.expect_err("decided");
    assert!(late.to_string().contains("was already rejected by sam at"), "{late}");
    engine.shutdown().await;
}

#[tokio::test]
async fn hold_then_remediation_reruns_tasks_and_evaluates_again() {
    let engine = engine().await;
    let approval = "[phases.gates.approval]\napprovers = [\"role:qa\"]";
    let id = start(&engine, workflow(&engine, GREEN, approval), "sam").await;
    engine.decide(&id, None, request(DecisionKind::Hold, "quinn", "flaky env")).await.expect("holds");
    assert_eq!(engine.instance(&id).expect("loads").0.effective_status(), phasegate_engine::machine::EffectiveStatus::OnHold);
    let report = engine.advance(&id).await.expect("advance");
    assert_eq!(report.appended, 0);
    assert!(report.blockers[0].message.contains("is on hold"), "{:?}", report.blockers);
    let wrong = engine.retry(&id, "op", Some("deploy")).await.expect_err("deploy is not in the held phase");
    assert!(wrong.to_string().contains("only its tasks can be re-run"), "{wrong}");
    engine.retry(&id, "op", Some("e2e")).await.expect("re-runs e2e");
    engine.run_until_idle().await;
    let (instance, _) = engine.instance(&id).expect("loads");
    assert!(matches!(instance.phases[0].gates[0].status, GateStatus::AwaitingDecision { .. }), "evaluated again");
    assert_eq!(instance.phases[0].tasks[0].attempts, 2, "e2e ran a second time");
    let evaluations = engine.history(&id).expect("history").iter().filter(|r| r.event().kind() == "GateEvaluated").count();
    assert_eq!(evaluations, 2);
    engine.decide(&id, None, request(DecisionKind::Approve, "queenie", "fixed")).await.expect("approves");
    engine.run_until_idle().await;
    assert_eq!(engine.instance(&id).expect("loads").0.effective_status(), phasegate_engine::machine::EffectiveStatus::Completed);
    engine.shutdown().await;
}

#[tokio::test]
async fn a_failed_must_fails_the_phase_and_missing_evidence_halts_for_the_owner() {
    let engine = engine().await;
    let failing = r#"{ must = "tasks.e2e.output.failed > 0", label = "Something failed" }"#;
    let id = start(&engine, workflow(&engine, failing, ""), "sam").await;
    let (instance, _) = engine.instance(&id).expect("loads");
    assert_eq!(instance.effective_status(), phasegate_engine::machine::EffectiveStatus::Failed);
    let report = engine.advance(&id).await.expect("advance");
    assert_eq!(report.appended, 0);
    assert!(report.blockers.iter().any(|b| b.message.contains("must criterion c1 (Something failed) failed")), "{:?}", report.blockers);

    let missing = r#"{ must = "tasks.e2e.output.coverage > 0.8", label = "Coverage" }"#;
    let id = start(&engine, workflow(&engine, missing, ""), "sam").await;
    let (instance, _) = engine.instance(&id).expect("loads");
    assert_eq!(
        instance.effective_status(),
        phasegate_engine::machine::EffectiveStatus::AwaitingApproval,
        "inconclusive is not a silent pass or fail"
    );
    let evaluation = instance.phases[0].gates[0].evaluation.clone().expect("evaluated");
    assert_eq!(evaluation.criteria[0].verdict, Verdict::Inconclusive);
    let owner = engine
        .decide(&id, None, request(DecisionKind::Approve, "queenie", "coverage checked by hand"))
        .await
        .expect("the phase owner decides");
    assert_eq!(owner.gate_status, "passed");
    engine.shutdown().await;
}

#[tokio::test]
async fn deadlines_escalate_through_two_levels_then_fail_closed() {
    let engine = engine().await;
    let approval = "[phases.gates.approval]\napprovers = [\"ann\"]\ntimeout = \"150ms\"\non_timeout = \"escalate\"\n\
                    [[phases.gates.approval.escalation]]\napprovers = [\"role:qa\"]\ntimeout = \"150ms\"\n\
                    [[phases.gates.approval.escalation]]\napprovers = [\"role:cto\"]\ntimeout = \"150ms\"";
    let mut events = engine.subscribe();
    let id = start(&engine, workflow(&engine, GREEN, approval), "sam").await;
    let mut timeouts = Vec::new();
    while timeouts.len() < 3 {
        let note = tokio::time::timeout(Duration::from_secs(20), events.recv()).await.expect("deadlines fire").expect("open");
        if let Event::GateTimedOut(payload::GateTimedOut { level, .. }) = note.record.event() {
            timeouts.push(*level);
            if *level == 0 {
                // At level 1 only role:qa may decide: ann no longer can.
                let refused = engine.decide(&id, None, request(DecisionKind::Approve, "ann", "")).await.expect_err("ann is level 0");
                assert!(matches!(refused, Error::Forbidden(_)), "{refused}");
            }
        }
    }
    assert_eq!(timeouts, [0, 1, 2]);
    engine.run_until_idle().await;
    let (instance, _) = engine.instance(&id).expect("loads");
    assert_eq!(instance.effective_status(), phasegate_engine::machine::EffectiveStatus::Failed);
    assert!(
        matches!(&instance.phases[0].gates[0].status, GateStatus::Failed { reason, .. } if reason.contains("last escalation level (2)"))
    );
    engine.shutdown().await;
}

/// A clock that moves on a millisecond every time it is read: whatever
/// reads the time twice for one decision sees two times.
#[derive(Debug)]
struct Ticking(std::sync::atomic::AtomicU64);

impl phasegate_engine::runtime::Clock for Ticking {
    fn now(&self) -> phasegate_engine::machine::Timestamp {
        phasegate_engine::machine::Timestamp(self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst))
    }
}

/// Regression (CI flake): the outcome of a decision carried the time the
/// request was read, a millisecond before its event was recorded, so a
/// repeated request id answered with a different time on a busy machine.
/// With a clock that ticks on every read, the two times always differed.
#[tokio::test]
async fn a_repeated_request_id_returns_the_original_outcome() {
    let clock = Arc::new(Ticking(std::sync::atomic::AtomicU64::new(1_800_000_000_000)));
    let engine = Engine::builder()
        .store(Arc::new(MemoryStore::in_memory()))
        .roles(roles())
        .clock(clock as Arc<dyn phasegate_engine::runtime::Clock>)
        .build()
        .await
        .expect("engine");
    let approval = "[phases.gates.approval]\napprovers = [\"role:qa\"]";
    let id = start(&engine, workflow(&engine, GREEN, approval), "sam").await;
    let mut first = request(DecisionKind::Approve, "quinn", "ship it");
    first.request_id = "req-1".into();
    let original = engine.decide(&id, None, first.clone()).await.expect("approves");
    assert!(!original.replayed);
    engine.run_until_idle().await;
    let before = events(&engine, &id);
    let again = engine.decide(&id, None, first.clone()).await.expect("same request");
    assert!(again.replayed);
    let recorded = engine.history(&id).expect("history").into_iter().find(|r| r.event().kind() == "DecisionRecorded").expect("decided");
    assert_eq!(original.at, recorded.at(), "the outcome's time is the record's");
    assert_eq!((again.kind, again.principal.as_str(), again.at), (original.kind, original.principal.as_str(), original.at));
    assert_eq!(events(&engine, &id), before, "nothing appended");
    let mut other = first;
    other.kind = DecisionKind::Reject;
    let reused = engine.decide(&id, None, other).await.expect_err("same id, other decision");
    assert!(reused.to_string().contains("request id req-1 was already used by quinn to approve"), "{reused}");
    engine.shutdown().await;
}

#[tokio::test]
async fn racing_approve_and_reject_accept_exactly_one() {
    let engine = Arc::new(engine().await);
    let approval = "[phases.gates.approval]\napprovers = [\"role:qa\"]";
    for round in 0..25 {
        let id = start(&engine, workflow(&engine, GREEN, approval), "sam").await;
        let approve = {
            let engine = Arc::clone(&engine);
            let id = id.clone();
            tokio::spawn(async move { engine.decide(&id, None, request(DecisionKind::Approve, "quinn", "go")).await })
        };
        let reject = {
            let engine = Arc::clone(&engine);
            let id = id.clone();
            tokio::spawn(async move { engine.decide(&id, None, request(DecisionKind::Reject, "queenie", "stop")).await })
        };
        let results = [approve.await.expect("task"), reject.await.expect("task")];
        let accepted = results.iter().filter(|r| r.is_ok()).count();
        assert_eq!(accepted, 1, "round {round}: {results:?}");
        let refused = results.iter().find_map(|r| r.as_ref().err()).expect("one refused");
        assert!(refused.to_string().contains("already"), "round {round}: {refused}");
        let decisions = engine.history(&id).expect("history").iter().filter(|r| r.event().kind() == "DecisionRecorded").count();
        assert_eq!(decisions, 1, "round {round}");
    }
}

/// Deadlines on an injected clock: time moves when the test says, so the
/// deadline fires because it is due, not because the machine was fast.
#[tokio::test]
async fn a_decision_and_a_deadline_survive_a_restart_and_the_deadline_fires_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("db");
    let clock = Arc::new(phasegate_engine::runtime::ManualClock::at(phasegate_engine::runtime::clock::system_now()));
    let open = || Engine::builder().store_path(&db).roles(roles()).clock(Arc::clone(&clock) as Arc<dyn phasegate_engine::runtime::Clock>);
    let approval = "[phases.gates.approval]\napprovers = [\"role:qa\"]\ntimeout = \"1h\"\non_timeout = \"reject\"";
    let (decided, timed) = {
        let engine = open().build().await.expect("engine");
        let a = start(&engine, workflow(&engine, GREEN, approval), "sam").await;
        let b = start(&engine, workflow(&engine, GREEN, approval), "sam").await;
        engine.shutdown().await;
        (a, b)
    };
    let engine = open().build().await.expect("reopens");
    engine.decide(&decided, None, request(DecisionKind::Approve, "quinn", "after restart")).await.expect("decides after restart");
    engine.run_until_idle().await;
    assert_eq!(
        engine.instance(&timed).expect("loads").0.effective_status(),
        phasegate_engine::machine::EffectiveStatus::AwaitingApproval,
        "not due yet"
    );
    clock.advance(Duration::from_secs(2 * 3600));
    engine.wake().await;
    engine.run_until_idle().await;
    engine.shutdown().await;
    drop(engine);
    // Open once more, later still: the deadline must not fire again.
    clock.advance(Duration::from_secs(3600));
    let engine = open().build().await.expect("reopens again");
    engine.wake().await;
    engine.run_until_idle().await;
    assert_eq!(engine.instance(&decided).expect("loads").0.effective_status(), phasegate_engine::machine::EffectiveStatus::Completed);
    let (instance, _) = engine.instance(&timed).expect("loads");
    assert_eq!(instance.effective_status(), phasegate_engine::machine::EffectiveStatus::Failed);
    // The deadline's answer is on the record like a person's decision.
    let answers: Vec<_> = instance.phases.iter().flat_map(|p| &p.gates).flat_map(|g| &g.decisions).map(|(_, d)| d).collect();
    assert_eq!(answers.len(), 1, "{answers:?}");
    assert_eq!((answers[0].kind, answers[0].principal.as_str()), (DecisionKind::Reject, "phasegate"));
    assert!(answers[0].comment.contains("on_timeout = reject"), "{}", answers[0].comment);
    let fired = engine.history(&timed).expect("history").iter().filter(|r| r.event().kind() == "GateTimedOut").count();
    assert_eq!(fired, 1, "the deadline fires exactly once");
    let fired = engine.history(&decided).expect("history").iter().filter(|r| r.event().kind() == "GateTimedOut").count();
    assert_eq!(fired, 0, "a decided gate's deadline does not fire");
    engine.shutdown().await;
}

#[tokio::test]
async fn waiting_and_escalating_gates_notify() {
    let engine = engine().await;
    let dir = tempfile::tempdir().expect("tempdir");
    // Each notification into its own file: they run concurrently.
    let inbox = dir.path().join("inbox");
    std::fs::create_dir(&inbox).expect("inbox");
    let approval = format!(
        "[phases.gates.approval]\napprovers = [\"role:qa\"]\n\
         [[phases.gates.approval.escalation]]\napprovers = [\"role:cto\"]\n\
         [phases.gates.approval.notify]\nagent = \"exec\"\nparams = {{ argv = [\"sh\", \"-c\", \"cat > \\\"$(mktemp '{}/note.XXXXXX')\\\"\"] }}",
        inbox.display()
    );
    let id = start(&engine, workflow(&engine, GREEN, &approval), "sam").await;
    engine.decide(&id, None, request(DecisionKind::Escalate, "quinn", "needs the CTO")).await.expect("escalates");
    let mut notes: Vec<serde_json::Value> = Vec::new();
    for _ in 0..200 {
        notes = std::fs::read_dir(&inbox)
            .expect("inbox")
            .filter_map(|entry| std::fs::read_to_string(entry.ok()?.path()).ok())
            .filter_map(|text| serde_json::from_str(&text).ok())
            .collect();
        if notes.len() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let whats: std::collections::BTreeSet<&str> = notes.iter().filter_map(|n| n["what"].as_str()).collect();
    assert_eq!(whats, ["awaiting_decision", "escalated"].into(), "{notes:?}");
    let escalated = notes.iter().find(|n| n["what"] == "escalated").expect("escalated note");
    assert_eq!(escalated["approvers"], serde_json::json!(["role:cto"]));
    assert_eq!(escalated["instance"], id);
    engine.shutdown().await;
}
