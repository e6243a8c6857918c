"""Phase 3: post-deployment smoke tests in production."""
from _lib import emit, get, target_arg

target = target_arg()
checks = {
    "health": get(target + "/healthz")[0] == 200,
    "home page": get(target + "/")[0] == 200,
    "api": get(target + "/api/items")[0] == 200,
}
failed = [name for name, ok in checks.items() if not ok]
emit({"passed": len(checks) - len(failed), "failed": len(failed), "failures": failed})
