"""P2 incidents: ship a hotfix without rolling back (here: clear the injected
fault on the target)."""
from _lib import emit, post, target_arg, unreachable

target = target_arg()
status, _, body = post(f"{target}/admin/inject?error_rate=0")
if status != 200:
    unreachable(f"hotfix answered {status or 'nothing'}: {body[:200]}")
emit({"patched": True})
