"""QG-PHASE8 success metrics: P1 response time, MTTR, uptime, alert accuracy.
Incidents and alerts come from the team's records (data/incidents.json,
data/alerts.json; replace them with exports from your incident tool); uptime
from the target. Arguments: TARGET_URL DIRECTORY."""
import os
import sys
from datetime import datetime

from _lib import emit, load_data, metrics, target_arg

target = target_arg()
base = sys.argv[2]
incidents = load_data(os.path.join(base, "data", "incidents.json"))
alerts = load_data(os.path.join(base, "data", "alerts.json"))
at = lambda text: datetime.fromisoformat(text.replace("Z", "+00:00"))  # noqa: E731
p1 = [i for i in incidents if i["severity"] in ("P0", "P1")]
response = [(at(i["responded_at"]) - at(i["detected_at"])).total_seconds() / 60 for i in p1]
recovery = [(at(i["resolved_at"]) - at(i["detected_at"])).total_seconds() / 3600 for i in p1 if i.get("resolved_at")]
fired = sum(a["fired"] for a in alerts)
false_positives = sum(a["false_positive"] for a in alerts)
emit({
    "p1_response_minutes": round(max(response), 1) if response else 0.0,
    "mttr_hours": round(sum(recovery) / len(recovery), 2) if recovery else 0.0,
    "uptime": metrics(target).get("demo_availability_ratio"),
    "alert_false_positive_rate": round(false_positives / fired, 4) if fired else 0.0,
    "incidents": len(incidents),
    "postmortems_done": all(i.get("postmortem") for i in incidents if i.get("resolved_at")),
    "all_resolved": all(i.get("resolved_at") for i in incidents),
})
