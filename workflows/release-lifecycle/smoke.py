"""Phase 3: post-deployment smoke tests in production. A failed smoke test
fails the task (exit 3, a verdict, listing what failed), so the LAUNCH-002
loop-back acts on it; an unreachable target is exit 1 (retried)."""
from _lib import emit, get, target_arg, unreachable, verdict

target = target_arg()
if get(target + "/version")[0] == 0:
    unreachable(f"{target} is unreachable")
checks = {
    "health": get(target + "/healthz")[0] == 200,
    "home page": get(target + "/")[0] == 200,
    "api": get(target + "/api/items")[0] == 200,
}
failed = [name for name, ok in checks.items() if not ok]
if failed:
    verdict(f"smoke tests failed against {target}: {', '.join(failed)}")
emit({"passed": len(checks), "failed": 0, "failures": [], "sources": {"passed": f"GET /healthz, /, /api/items on {target}"}})
