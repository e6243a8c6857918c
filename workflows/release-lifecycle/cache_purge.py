"""Rollback step 3: purge asset caches (CDN, browser caches)."""
import json

from _lib import emit, post, target_arg, unreachable

target = target_arg()
status, _, body = post(f"{target}/admin/cache/purge")
if status != 200:
    unreachable(f"cache purge answered {status or 'nothing'}: {body[:200]}")
emit({"purged": json.loads(body).get("purged")})
