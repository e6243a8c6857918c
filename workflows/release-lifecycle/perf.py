"""Phase 2: a short load test; latency percentiles and error rate against the NFRs.

Arguments: TARGET_URL [REQUESTS] [CONCURRENCY]."""
import sys
from concurrent.futures import ThreadPoolExecutor

from _lib import get, emit, target_arg, timed, unreachable

target = target_arg()
total = int(sys.argv[2]) if len(sys.argv) > 2 else 200
workers = int(sys.argv[3]) if len(sys.argv) > 3 else 8
if get(target + "/healthz")[0] == 0:
    unreachable(f"{target} is unreachable")


def one(_):
    (status, _, _), ms = timed(lambda: get(target + "/api/items"))
    return status, ms


with ThreadPoolExecutor(max_workers=workers) as pool:
    (results, elapsed_ms) = timed(lambda: list(pool.map(one, range(total))))
latencies = sorted(ms for _, ms in results)
errors = sum(1 for status, _ in results if status != 200)


def percentile(p):
    return round(latencies[min(len(latencies) - 1, int(len(latencies) * p))], 2)


emit({
    "requests": total,
    "error_rate": errors / total,
    "p50_ms": percentile(0.50),
    "p95_ms": percentile(0.95),
    "p99_ms": percentile(0.99),
    "rps": round(total / (elapsed_ms / 1000.0), 1),
    "sources": {
        name: f"{total} GET {target}/api/items, {workers} at a time, measured now"
        for name in ("requests", "error_rate", "p50_ms", "p95_ms", "p99_ms", "rps")
    },
})
