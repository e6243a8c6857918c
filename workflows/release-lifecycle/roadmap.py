"""Protocol 9, step 4: roadmap and experiments: the Phase 2+ plan, A/B tests,
UX debt cleanup, success metrics. Argument: DIRECTORY."""
import os
import sys

from _lib import emit, load_data

base = sys.argv[1]
roadmap = load_data(os.path.join(base, "data", "roadmap.json"))
emit({
    "initiatives": len(roadmap["initiatives"]),
    "experiments": len(roadmap["experiments"]),
    "ux_debt_items": len(roadmap["ux_debt"]),
    "success_metrics_defined": all(i.get("success_metric") for i in roadmap["initiatives"]),
    "sources": {name: "data/roadmap.json" for name in ("initiatives", "experiments", "ux_debt_items", "success_metrics_defined")},
})
