"""QG-PHASE8, Optimization Readiness (Must Pass): a measured performance
baseline with an improvement target, actionable feedback, experimentation,
gradual rollouts, a prioritized backlog.
Arguments: TARGET_URL DIRECTORY IMPROVEMENT_TARGET."""
import json
import os
import sys

from _lib import emit, get, load_data, metrics, target_arg

target = target_arg()
base = sys.argv[2]
improvement = float(sys.argv[3])
baseline = metrics(target).get("demo_latency_p95_seconds")
feedback = load_data(os.path.join(base, "data", "feedback.json"))
experiments = load_data(os.path.join(base, "data", "experiments.json"))
backlog = load_data(os.path.join(base, "data", "optimization-backlog.json"))
status, _, body = get(target + "/version")
emit({
    "baseline_p95_ms": None if baseline is None else round(baseline * 1000, 2),
    "target_improvement": improvement,
    "actionable_feedback": sum(1 for item in feedback if item.get("actionable")),
    "experimentation_ready": bool(experiments.get("flag_system")) and len(experiments.get("experiments", [])) > 0,
    "gradual_rollouts": status == 200 and "dns" in json.loads(body),
    "backlog_prioritized": len(backlog) > 0 and all("priority" in i and "business_impact" in i for i in backlog),
})
