"""Phase 1: the staging environment answers, serves the release candidate
(the version being released, not merely some version), and exposes metrics.
Replace with your pipeline's own readiness check (last green build, image
pushed, staging config matching production).
Arguments: TARGET_URL RELEASE_VERSION."""
import json
import sys

from _lib import Evidence, get, target_arg, unreachable

target = target_arg()
expected = sys.argv[2]
ev = Evidence()
health, _, _ = get(target + "/healthz")
if health == 0:
    unreachable(f"{target} is unreachable")
ev.measured("healthy", health == 200, f"GET {target}/healthz answered {health}")
status, _, body = get(target + "/staging/version")
served = json.loads(body).get("version") if status == 200 else None
ev.measured("staging_version", served, f"GET {target}/staging/version answered {status}")
ev.measured("version_served", served == expected, f"staging serves {served!r}; the release is {expected!r}")
metrics_status, _, metrics = get(target + "/metrics")
ev.measured("metrics_exposed", metrics_status == 200 and "_total" in metrics, f"GET {target}/metrics answered {metrics_status}")
ev.emit()
