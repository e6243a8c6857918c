"""QG-PHASE8, Incident Response (Must Pass): on-call coverage, playbooks,
communication templates, post-incident review, tested escalation.
Argument: the directory holding runbooks/ and data/ (replace the shipped
examples with your team's records or exports)."""
import os
import sys

from _lib import emit, load_data

base = sys.argv[1]
oncall = load_data(os.path.join(base, "data", "oncall.json"))
covered = {(shift["day"], hour) for shift in oncall["shifts"] for hour in range(shift["from_hour"], shift["to_hour"])}
runbooks = os.path.join(base, "runbooks")
playbooks = [f for f in os.listdir(runbooks) if f.startswith("playbook-") and f.endswith(".md")]
templates = open(os.path.join(runbooks, "communication-templates.md"), encoding="utf-8").read()
drills = load_data(os.path.join(base, "data", "escalation-drills.json"))
emit({
    "oncall_24x7": len(covered) == 7 * 24,
    "playbooks": len(playbooks),
    "communication_templates": all(f"## {sev}" in templates for sev in ("P0", "P1", "P2", "P3")),
    "post_incident_review": os.path.isfile(os.path.join(runbooks, "post-incident-review.md")),
    "escalation_tested": any(d.get("outcome") == "passed" for d in drills),
    "sources": {
        "oncall_24x7": "data/oncall.json shifts, hour by hour over a week",
        "playbooks": "runbooks/playbook-*.md",
        "communication_templates": "runbooks/communication-templates.md (a section per severity P0-P3)",
        "post_incident_review": "runbooks/post-incident-review.md",
        "escalation_tested": "data/escalation-drills.json (a drill that passed)",
    },
})
