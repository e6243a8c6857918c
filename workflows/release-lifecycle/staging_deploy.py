"""Phase 1: the pipeline deploys the release candidate to staging.
Replace with your pipeline's deploy step. Arguments: TARGET_URL VERSION."""
import sys

from _lib import emit, post, target_arg, unreachable

target = target_arg()
version = sys.argv[2]
status, _, body = post(f"{target}/admin/staging/deploy?version={version}")
if status != 200:
    unreachable(f"the staging deploy answered {status or 'nothing'}: {body[:200]}")
emit({"deployed": version, "environment": "staging"})
