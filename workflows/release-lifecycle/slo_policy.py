"""Protocol 9, step 2: SLO monitoring and incident response: the error
budget left against SLO_BUDGETS over the SLO window, the error rate over it,
postmortems. Less history than the window is no evidence (null).
Arguments: TARGET_URL DIRECTORY SLO_BUDGETS_JSON [SLO_WINDOW, default 30d]."""
import json
import sys

from _lib import Evidence, records, sli, target_arg

target = target_arg()
base = sys.argv[2]
budgets = json.loads(sys.argv[3])
window = sys.argv[4] if len(sys.argv) > 4 else "30d"
ev = Evidence()
availability, error_ratio, note = sli(target, window)
if availability is None:
    for name in ("availability", "error_budget_remaining"):
        ev.missing(name, note)
else:
    ev.measured("availability", round(availability, 6), note)
    allowed = 1.0 - budgets["availability"]
    remaining = round(1.0 - (1.0 - availability) / allowed, 4) if allowed > 0 else None
    if remaining is None:
        ev.missing("error_budget_remaining", "SLO_BUDGETS.availability is 1.0: there is no budget to spend")
    else:
        ev.measured("error_budget_remaining", remaining, f"1 - (1 - {availability:.6f}) / (1 - SLO_BUDGETS.availability {budgets['availability']}), {note}")
if error_ratio is None:
    ev.missing("error_ratio", note)
    ev.missing("error_rate_within_budget", note)
else:
    ev.measured("error_ratio", round(error_ratio, 6), note)
    ev.measured("error_rate_within_budget", error_ratio <= budgets["error_rate"], f"{error_ratio:.6f} against SLO_BUDGETS.error_rate {budgets['error_rate']}")
incidents, incidents_file = records(base, "incidents.json")
if incidents is not None:
    # The records themselves, for the ops report's incident list with postmortems.
    ev.measured("incident_records", incidents, incidents_file)
closed = [i for i in incidents or [] if i.get("resolved_at")]
if closed:
    ev.measured("postmortems_done", all(i.get("postmortem") for i in closed), f"postmortems of the {len(closed)} resolved incident(s) in {incidents_file}")
else:
    ev.missing("postmortems_done", f"no resolved incident in {incidents_file}")
ev.emit()
