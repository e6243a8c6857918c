"""Phase 3: verify availability and core functionality: the expected version
is live (a wrong or missing version fails the task, exit 1, so LAUNCH-003
acts) and a sample of requests succeeds (the launch success rate, which the
launch-success gate judges; a shortfall there is LAUNCH-004).
Arguments: TARGET_URL EXPECTED_VERSION [REQUESTS]."""
import json
import sys

from _lib import Evidence, get, target_arg

target = target_arg()
expected = sys.argv[2]
requests = int(sys.argv[3]) if len(sys.argv) > 3 else 50
status, _, body = get(target + "/version")
live = json.loads(body).get("version") if status == 200 else None
if live != expected:
    print(f"{target} serves version {live!r} (GET /version answered {status}), not the released {expected!r}", file=sys.stderr)
    sys.exit(1)
ok = sum(1 for _ in range(requests) if get(target + "/api/items")[0] == 200)
if ok == 0:
    print(f"none of {requests} requests to {target}/api/items succeeded: core functionality is down", file=sys.stderr)
    sys.exit(1)
ev = Evidence()
ev.measured("version", live, f"GET {target}/version")
ev.measured("version_ok", True, f"{live!r} is the released version")
ev.measured("success_rate", ok / requests, f"{ok} of {requests} GET {target}/api/items answered 200")
ev.emit(requests=requests)
