"""Rollback step 2: roll back the release's database migration."""
import json

from _lib import emit, post, target_arg, unreachable

target = target_arg()
status, _, body = post(f"{target}/admin/migrations/rollback")
if status != 200:
    unreachable(f"migration rollback answered {status or 'nothing'}: {body[:200]}")
emit({"reverted_migration": json.loads(body).get("reverted")})
