"""Rollback step 1: DNS revert: point traffic at the previous release."""
from _lib import emit, post, target_arg, unreachable

target = target_arg()
status, _, body = post(f"{target}/admin/dns?target=previous")
if status != 200:
    unreachable(f"DNS revert answered {status or 'nothing'}: {body[:200]}")
emit({"reverted": True})
