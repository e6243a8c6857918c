"""QG-PHASE8 success metrics: P1 response time, MTTR, uptime, alert accuracy;
and for the ongoing gate, whether incidents were resolved with postmortems.
Incidents and alerts come from the team's records (data/incidents.json,
data/alerts.json; replace them with exports from your incident tool); uptime
is measured on the target over UPTIME_WINDOW. With nothing to measure (no
P0/P1 incident, no alert fired, less history than the window) a value is
null: no evidence, so its criterion is inconclusive and a person decides.
Arguments: TARGET_URL DIRECTORY [UPTIME_WINDOW, default 30d]."""
import sys

from _lib import Evidence, count, records, sli, target_arg, when

target = target_arg()
base = sys.argv[2]
window = sys.argv[3] if len(sys.argv) > 3 else "30d"
ev = Evidence()

incidents, incidents_file = records(base, "incidents.json")
if incidents is None:
    for name in ("p1_response_minutes", "mttr_hours", "postmortems_done", "all_resolved"):
        ev.missing(name, f"{incidents_file} does not exist: export the incident records there")
    incidents = []
else:
    detected = [when(i.get("detected_at"), f"{incidents_file} {i.get('id', '?')}.detected_at") for i in incidents]
    period = f" from {min(detected):%Y-%m-%d} to {max(detected):%Y-%m-%d}" if detected else ""
    described = f"{incidents_file} ({len(incidents)} incident(s){period})"
    major = [i for i in incidents if i.get("severity") in ("P0", "P1")]

    def minutes(i, field):
        return (when(i[field], f"{incidents_file} {i.get('id', '?')}.{field}") - when(i["detected_at"], incidents_file)).total_seconds() / 60

    responded = [minutes(i, "responded_at") for i in major if i.get("responded_at")]
    if responded:
        ev.measured("p1_response_minutes", round(max(responded), 1), f"the slowest first response of {len(responded)} P0/P1 incident(s) in {described}")
    else:
        ev.missing("p1_response_minutes", f"no P0/P1 incident with a response time in {described}")
    resolved = [minutes(i, "resolved_at") / 60 for i in major if i.get("resolved_at")]
    still_open = len(major) - len(resolved)
    if resolved:
        note = f"; {still_open} still open, not counted" if still_open else ""
        ev.measured("mttr_hours", round(sum(resolved) / len(resolved), 2), f"mean detection-to-resolution of {len(resolved)} resolved P0/P1 incident(s) in {described}{note}")
    else:
        ev.missing("mttr_hours", f"no resolved P0/P1 incident in {described}")
    closed = [i for i in incidents if i.get("resolved_at")]
    if closed:
        ev.measured("postmortems_done", all(i.get("postmortem") for i in closed), f"postmortems of the {len(closed)} resolved incident(s) in {described}")
    else:
        ev.missing("postmortems_done", f"no resolved incident in {described}")
    if incidents:
        ev.measured("all_resolved", all(i.get("resolved_at") for i in incidents), described)
    else:
        ev.missing("all_resolved", f"{incidents_file} holds no incident")
    # The records themselves, for the ops report's incident list with postmortems.
    ev.measured("incident_records", incidents, described)

availability, _, note = sli(target, window)
if availability is None:
    ev.missing("uptime", note)
else:
    ev.measured("uptime", round(availability, 6), note)

alerts, alerts_file = records(base, "alerts.json")
fired = sum(count(a, "fired", f"{alerts_file} rule {a.get('rule', '?')}") for a in alerts or [])
if alerts is None:
    ev.missing("alert_false_positive_rate", f"{alerts_file} does not exist: export the alert history there")
elif fired == 0:
    ev.missing("alert_false_positive_rate", f"no alert fired in {alerts_file}")
else:
    false_positives = sum(count(a, "false_positive", f"{alerts_file} rule {a.get('rule', '?')}") for a in alerts)
    ev.measured("alert_false_positive_rate", round(false_positives / fired, 4), f"{false_positives} false positive(s) of {fired} alert(s) in {alerts_file}")

ev.emit(incidents=len(incidents))
