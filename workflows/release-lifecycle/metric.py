"""Watches: one number, read from the target's /metrics, or from Prometheus
when PROMETHEUS_URL is set and a PromQL query is given.
Arguments: TARGET_URL METRIC_NAME [PROMQL]. Prints {"value": n} (null when
the series is missing, which watches count as no data)."""
import json
import os
import sys
import urllib.parse

from _lib import emit, get, metrics, target_arg, unreachable

target = target_arg()
name = sys.argv[2]
query = sys.argv[3] if len(sys.argv) > 3 else ""
prometheus = os.environ.get("PROMETHEUS_URL", "")
if prometheus and query:
    status, _, body = get(prometheus.rstrip("/") + "/api/v1/query?query=" + urllib.parse.quote(query))
    if status != 200:
        unreachable(f"prometheus answered {status or 'nothing'}: {body[:300]}")
    result = json.loads(body).get("data", {}).get("result", [])
    emit({"value": float(result[0]["value"][1]) if result else None, "source": "prometheus"})
emit({"value": metrics(target).get(name), "source": "target"})
