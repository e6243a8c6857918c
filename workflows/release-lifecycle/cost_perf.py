"""Protocol 9, step 3: cost and performance: monthly cost against
COST_TARGETS, latency hotspots against SLO_BUDGETS.
Arguments: TARGET_URL COST_TARGETS_JSON SLO_BUDGETS_JSON."""
import json
import sys

from _lib import emit, metrics, target_arg

target = target_arg()
costs = json.loads(sys.argv[2])
budgets = json.loads(sys.argv[3])
m = metrics(target)
monthly = round(m.get("demo_infra_cost_per_hour", 0.0) * 730, 2)
p95_ms = round(m.get("demo_latency_p95_seconds", 0.0) * 1000, 2)
emit({
    "monthly_cost_usd": monthly,
    "within_cost_target": monthly <= costs["monthly_usd_max"],
    "p95_ms": p95_ms,
    "hotspots": [] if p95_ms <= budgets["p95_ms"] else ["api latency"],
})
