"""Phase 3: post-deployment smoke tests in production. A failed smoke test
fails the task (exit 1, listing what failed), so the task's retries and then
the LAUNCH-002 loop-back act on it."""
import sys

from _lib import emit, get, target_arg

target = target_arg()
checks = {
    "health": get(target + "/healthz")[0] == 200,
    "home page": get(target + "/")[0] == 200,
    "api": get(target + "/api/items")[0] == 200,
}
failed = [name for name, ok in checks.items() if not ok]
if failed:
    print(f"smoke tests failed against {target}: {', '.join(failed)}", file=sys.stderr)
    sys.exit(1)
emit({"passed": len(checks), "failed": 0, "failures": [], "sources": {"passed": f"GET /healthz, /, /api/items on {target}"}})
