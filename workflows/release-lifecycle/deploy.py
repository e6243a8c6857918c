"""Phase 3: deploy the release: switch the target to the new version and
apply its database migration. A refused deploy is exit 3 (a verdict: the
task fails for good and LAUNCH-001 acts); an unreachable pipeline is exit 1
(retried). Arguments: TARGET_URL VERSION."""
import sys

from _lib import emit, post, target_arg, unreachable, verdict

target = target_arg()
version = sys.argv[2]
status, _, body = post(f"{target}/admin/deploy?version={version}")
if 400 <= status < 500:
    verdict(f"the deploy of {version} was refused ({status}): {body[:200]}")
if status != 200:
    unreachable(f"deploy answered {status or 'nothing'}: {body[:200]}")
migration = "0002_" + version.replace(".", "_")
status, _, _ = post(f"{target}/admin/migrations/apply?id={migration}")
if status != 200:
    unreachable(f"migration {migration} answered {status or 'nothing'}")
emit({"deployed": version, "migration": migration, "sources": {"deployed": f"POST {target}/admin/deploy"}})
