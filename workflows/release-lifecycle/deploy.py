"""Phase 3: deploy the release: switch the target to the new version and
apply its database migration. Arguments: TARGET_URL VERSION."""
import sys

from _lib import emit, post, target_arg, unreachable

target = target_arg()
version = sys.argv[2]
status, _, body = post(f"{target}/admin/deploy?version={version}")
if status != 200:
    unreachable(f"deploy answered {status or 'nothing'}: {body[:200]}")
migration = "0002_" + version.replace(".", "_")
status, _, _ = post(f"{target}/admin/migrations/apply?id={migration}")
if status != 200:
    unreachable(f"migration {migration} answered {status or 'nothing'}")
emit({"deployed": version, "migration": migration})
