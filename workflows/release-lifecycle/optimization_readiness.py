"""QG-PHASE8, Optimization Readiness (Must Pass): a measured performance
baseline with the improvement target the team documented for it,
actionable feedback, experimentation, gradual rollouts the deployment
pipeline really performs, a prioritized backlog.
Arguments: TARGET_URL DIRECTORY RELEASE_VERSION."""
import json
import sys

from _lib import Evidence, get, metrics, post, records, target_arg, unreachable

target = target_arg()
base = sys.argv[2]
version = sys.argv[3] if len(sys.argv) > 3 else ""
ev = Evidence()

baseline = metrics(target).get("demo_latency_p95_seconds")
if baseline is None:
    ev.missing("baseline_p95_ms", f"{target}/metrics has no demo_latency_p95_seconds to take the baseline from")
else:
    ev.measured("baseline_p95_ms", round(baseline * 1000, 2), f"demo_latency_p95_seconds from {target}/metrics")
targets, targets_file = records(base, "improvement-targets.json")
documented = [t for t in targets or [] if t.get("metric") == "p95_ms" and isinstance(t.get("improvement"), (int, float))]
if documented:
    ev.measured("target_improvement", float(documented[0]["improvement"]), f"the p95_ms target in {targets_file}")
else:
    ev.missing("target_improvement", f"{targets_file} documents no improvement target for p95_ms")

feedback, feedback_file = records(base, "feedback.json")
if feedback is None:
    ev.missing("actionable_feedback", f"{feedback_file} does not exist: export the user feedback there")
else:
    ev.measured("actionable_feedback", sum(1 for item in feedback if item.get("actionable")), f"items marked actionable of {len(feedback)} in {feedback_file}")
experiments, experiments_file = records(base, "experiments.json")
if experiments is None:
    ev.missing("experimentation_ready", f"{experiments_file} does not exist")
else:
    ready = bool(experiments.get("flag_system")) and any(e.get("status") == "ready" for e in experiments.get("experiments", []))
    ev.measured("experimentation_ready", ready, f"a flag system and an experiment ready in {experiments_file}")

# Gradual rollouts: ask the deployment pipeline for a 10 % rollout of the
# version live now (no change to what users get), read it back, end it.
status, _, body = get(target + "/version")
if status != 200:
    unreachable(f"GET {target}/version answered {status or 'nothing'}")
live = json.loads(body).get("version") or version
started, _, answer = post(f"{target}/admin/rollout?version={live}&weight=0.1")
if started == 404:
    ev.measured("gradual_rollouts", False, f"{target} has no rollout API (/admin/rollout answered 404)")
elif started != 200:
    unreachable(f"POST {target}/admin/rollout answered {started or 'nothing'}: {answer[:200]}")
else:
    _, _, after = get(target + "/version")
    canary = json.loads(after).get("canary") or {}
    ended, _, _ = post(f"{target}/admin/rollout?version={live}&weight=0")
    ok = canary.get("weight") == 0.1 and ended == 200
    ev.measured("gradual_rollouts", ok, f"{target}/admin/rollout {'ran and ended' if ok else 'did not hold'} a 10 % rollout of {live}")

backlog, backlog_file = records(base, "optimization-backlog.json")
if not backlog:
    ev.missing("backlog_prioritized", f"{backlog_file} holds no backlog item")
else:
    ev.measured("backlog_prioritized", all("priority" in i and "business_impact" in i for i in backlog), f"{len(backlog)} item(s) in {backlog_file}, each with a priority and a business impact")
ev.emit()
