"""Phase 3: verify availability and core functionality: the expected version
is live and a sample of requests succeeds (the launch success rate).
Arguments: TARGET_URL EXPECTED_VERSION [REQUESTS]."""
import json
import sys

from _lib import emit, get, target_arg

target = target_arg()
expected = sys.argv[2]
requests = int(sys.argv[3]) if len(sys.argv) > 3 else 50
status, _, body = get(target + "/version")
live = json.loads(body).get("version") if status == 200 else None
ok = sum(1 for _ in range(requests) if get(target + "/api/items")[0] == 200)
emit({"version": live, "version_ok": live == expected, "success_rate": ok / requests, "requests": requests})
