"""Phase 3: verify availability and core functionality: the expected version
is live and a sample of requests succeeds (the launch success rate, which
the launch-success gate judges; a shortfall there is LAUNCH-004). A wrong or
missing version, or no request succeeding, is exit 3 (a verdict: the task
fails for good and LAUNCH-003 acts); an unreachable target is exit 1
(retried). Arguments: TARGET_URL EXPECTED_VERSION [REQUESTS]."""
import json
import sys

from _lib import Evidence, get, target_arg, unreachable, verdict

target = target_arg()
expected = sys.argv[2]
requests = int(sys.argv[3]) if len(sys.argv) > 3 else 50
status, _, body = get(target + "/version")
if status == 0:
    unreachable(f"{target} is unreachable")
live = json.loads(body).get("version") if status == 200 else None
if live != expected:
    verdict(f"{target} serves version {live!r} (GET /version answered {status}), not the released {expected!r}")
ok = sum(1 for _ in range(requests) if get(target + "/api/items")[0] == 200)
if ok == 0:
    verdict(f"none of {requests} requests to {target}/api/items succeeded: core functionality is down")
ev = Evidence()
ev.measured("version", live, f"GET {target}/version")
ev.measured("version_ok", True, f"{live!r} is the released version")
ev.measured("success_rate", ok / requests, f"{ok} of {requests} GET {target}/api/items answered 200")
ev.emit(requests=requests)
