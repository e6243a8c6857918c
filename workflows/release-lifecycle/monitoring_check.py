"""QG-PHASE8, Monitoring Infrastructure (Must Pass): the series each criterion
needs are being collected. Replace the metric names with your stack's."""
from _lib import emit, get, metrics, target_arg

target = target_arg()
m = metrics(target)
has = lambda *names: all(any(k == n or k.startswith(n + "{") for k in m) for n in names)  # noqa: E731
emit({
    "apm": has("demo_http_requests_total", "demo_http_errors_total", "demo_latency_p95_seconds"),
    "error_tracking": has("demo_http_errors_total", "demo_error_ratio"),
    "uptime_monitoring": has("demo_up", "demo_availability_ratio") and get(target + "/healthz")[0] == 200,
    "database_monitoring": has("demo_db_query_p95_seconds"),
    "infrastructure_monitoring": has("demo_cpu_utilization", "demo_memory_bytes", "demo_disk_free_ratio", "demo_network_bytes_total"),
    "security_logging": has("demo_auth_failures_total", "demo_log_lines_total"),
    "series": len(m),
    "sources": {
        name: f"the series {target}/metrics exposes now (collected, not alert rules)"
        for name in ("apm", "error_tracking", "uptime_monitoring", "database_monitoring", "infrastructure_monitoring", "security_logging", "series")
    },
})
