"""Rollback step 4: monitoring validation: the rollback worked when the
service is healthy and its error ratio is back under the threshold. Retries
(exit 1) until then. Arguments: TARGET_URL ERROR_RATE_MAX."""
import sys

from _lib import emit, get, metrics, target_arg, unreachable

target = target_arg()
limit = float(sys.argv[2])
healthy = get(target + "/healthz")[0] == 200
ratio = metrics(target).get("demo_error_ratio")
if not healthy or ratio is None or ratio > limit:
    unreachable(f"not recovered yet: healthy={healthy}, error ratio={ratio} (limit {limit})")
emit({"healthy": healthy, "error_ratio": ratio})
