"""Protocol 9, step 3: cost and performance: monthly cost against
COST_TARGETS, latency hotspots against SLO_BUDGETS. A target that exposes no
cost or latency metric has no evidence for them: null, never $0.
Arguments: TARGET_URL COST_TARGETS_JSON SLO_BUDGETS_JSON."""
import json
import sys

from _lib import Evidence, metrics, target_arg

target = target_arg()
costs = json.loads(sys.argv[2])
budgets = json.loads(sys.argv[3])
m = metrics(target)
ev = Evidence()
hourly = m.get("demo_infra_cost_per_hour")
if hourly is None:
    ev.missing("monthly_cost_usd", f"{target}/metrics has no demo_infra_cost_per_hour: connect the cost export")
    ev.missing("within_cost_target", "no cost measured")
else:
    monthly = round(hourly * 730, 2)
    ev.measured("monthly_cost_usd", monthly, f"demo_infra_cost_per_hour ({hourly} USD) × 730 h, from {target}/metrics")
    ev.measured("within_cost_target", monthly <= costs["monthly_usd_max"], f"{monthly} USD against COST_TARGETS.monthly_usd_max {costs['monthly_usd_max']}")
p95 = m.get("demo_latency_p95_seconds")
if p95 is None:
    ev.missing("p95_ms", f"{target}/metrics has no demo_latency_p95_seconds")
    ev.missing("hotspots", "no latency measured")
else:
    p95_ms = round(p95 * 1000, 2)
    ev.measured("p95_ms", p95_ms, f"demo_latency_p95_seconds from {target}/metrics")
    ev.measured("hotspots", [] if p95_ms <= budgets["p95_ms"] else ["api latency"], f"p95 {p95_ms} ms against SLO_BUDGETS.p95_ms {budgets['p95_ms']}")
ev.emit()
