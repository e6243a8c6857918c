"""Protocol 9, step 2: SLO monitoring and incident response: the error
budget left against SLO_BUDGETS, alert tuning, postmortems.
Arguments: TARGET_URL DIRECTORY SLO_BUDGETS_JSON."""
import json
import os
import sys

from _lib import emit, load_data, metrics, target_arg

target = target_arg()
base = sys.argv[2]
budgets = json.loads(sys.argv[3])
m = metrics(target)
availability = m.get("demo_availability_ratio", 0.0)
error_ratio = m.get("demo_error_ratio", 1.0)
allowed = 1.0 - budgets["availability"]
spent = 1.0 - availability
incidents = load_data(os.path.join(base, "data", "incidents.json"))
emit({
    "availability": availability,
    "error_ratio": error_ratio,
    "error_budget_remaining": round(1.0 - spent / allowed, 4) if allowed > 0 else 0.0,
    "error_rate_within_budget": error_ratio <= budgets["error_rate"],
    "postmortems_done": all(i.get("postmortem") for i in incidents if i.get("resolved_at")),
})
