"""Phase 1: the staging environment answers, serves a version, and exposes metrics.

Replace with your pipeline's own readiness check (last green build, image
pushed, staging config matching production)."""
from _lib import emit, get, target_arg

target = target_arg()
health, _, _ = get(target + "/healthz")
version_status, _, version = get(target + "/version")
metrics_status, _, metrics = get(target + "/metrics")
emit({
    "healthy": health == 200,
    "version_served": version_status == 200 and '"version"' in version,
    "metrics_exposed": metrics_status == 200 and "_total" in metrics,
})
