"""Protocol 9, step 1: patch and upgrade cadence: scheduled updates, change
windows, test gates, rollback procedures. Argument: DIRECTORY."""
import os
import sys

from _lib import emit, load_data

base = sys.argv[1]
plan = load_data(os.path.join(base, "data", "maintenance.json"))
emit({
    "cadence_days": plan["dependency_updates_every_days"],
    "change_windows": len(plan["change_windows"]),
    "test_gate": plan["updates_require_green_pipeline"],
    "rollback_procedure": os.path.isfile(os.path.join(base, plan["rollback_procedure"])),
    "sources": {
        "cadence_days": "data/maintenance.json dependency_updates_every_days",
        "change_windows": "data/maintenance.json change_windows",
        "test_gate": "data/maintenance.json updates_require_green_pipeline",
        "rollback_procedure": f"the file data/maintenance.json names ({plan['rollback_procedure']}) exists",
    },
})
