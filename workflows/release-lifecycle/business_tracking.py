"""QG-PHASE8, Business Value Tracking (Should Pass). Arguments: TARGET_URL DIRECTORY."""
import os
import sys

from _lib import emit, metrics, target_arg

target = target_arg()
base = sys.argv[2]
m = metrics(target)
emit({
    "kpis_correlated": "demo_signups_total" in m and "demo_error_ratio" in m,
    "journey_analytics": any(k.startswith("demo_funnel_") for k in m),
    "cost_tracking": "demo_infra_cost_per_hour" in m,
    "tech_debt_monitoring": os.path.isfile(os.path.join(base, "data", "tech-debt.json")),
})
