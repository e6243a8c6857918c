"""QG-PHASE8, Business Value Tracking (Should Pass): KPIs correlated with
technical metrics (a correlation computed over a window of both series,
which needs their history: PROMETHEUS_URL), journey analytics, cost
tracking, technical debt monitoring. Arguments: TARGET_URL DIRECTORY [WINDOW, default 7d]."""
import json
import math
import os
import sys
import time
import urllib.parse

from _lib import Evidence, get, metrics, records, seconds, target_arg, unreachable

target = target_arg()
base = sys.argv[2]
window = sys.argv[3] if len(sys.argv) > 3 else "7d"
m = metrics(target)
ev = Evidence()


def pearson(xs, ys):
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    sx = math.sqrt(sum((x - mx) ** 2 for x in xs))
    sy = math.sqrt(sum((y - my) ** 2 for y in ys))
    if sx == 0 or sy == 0:
        return None
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / (sx * sy)


prometheus = os.environ.get("PROMETHEUS_URL", "")
if not prometheus:
    ev.missing("kpi_error_correlation", "no metric history to correlate over (set PROMETHEUS_URL)")
    ev.missing("kpis_correlated", "no metric history to correlate over (set PROMETHEUS_URL)")
else:
    span = seconds(window)
    end = time.time()
    step = max(span / 200, 15)

    def series(promql):
        url = f"{prometheus.rstrip('/')}/api/v1/query_range?query={urllib.parse.quote(promql)}&start={end - span}&end={end}&step={step}"
        status, _, body = get(url)
        if status != 200:
            unreachable(f"prometheus answered {status or 'nothing'}: {body[:300]}")
        result = json.loads(body).get("data", {}).get("result", [])
        return {float(t): float(v) for t, v in result[0]["values"]} if result else {}

    kpi = series("rate(demo_signups_total[5m])")
    errors = series("demo_error_ratio")
    both = sorted(set(kpi) & set(errors))
    r = pearson([kpi[t] for t in both], [errors[t] for t in both]) if len(both) >= 10 else None
    if r is None:
        why = f"{len(both)} common sample(s) of signups and error ratio over {window}, or one of them constant: nothing to correlate"
        ev.missing("kpi_error_correlation", why)
        ev.missing("kpis_correlated", why)
    else:
        ev.measured("kpi_error_correlation", round(r, 3), f"Pearson r of the signup rate and the error ratio over {len(both)} samples in the last {window} (prometheus)")
        ev.measured("kpis_correlated", True, "the correlation was computed from both series")
ev.measured("journey_analytics", any(k.startswith("demo_funnel_") for k in m), f"demo_funnel_* series on {target}/metrics")
ev.measured("cost_tracking", "demo_infra_cost_per_hour" in m, f"demo_infra_cost_per_hour on {target}/metrics")
debt, debt_file = records(base, "tech-debt.json")
ev.measured("tech_debt_monitoring", debt is not None, f"{debt_file} {'exists' if debt is not None else 'does not exist'}")
ev.emit()
