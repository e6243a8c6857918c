"""Helpers shared by the release-lifecycle check scripts.

Every script is a small, real check against the target named by the
workflow's `target_url` variable (the demo target by default). Replace any
of them with your own: a script prints one JSON object on stdout (the task's
output, which gate criteria read) and exits 0; it exits non-zero only when it
could not do its job (the target is unreachable, say), which phasegate
retries. Standard library only, so a fresh machine needs nothing installed.

No evidence, no pass: a value a script could not measure (no P1 incident in
the records, no cost metric, less history than the window the criterion
names) is `null`, which makes every criterion reading it inconclusive, so a
person decides. Each output also has `sources`: for every value, where it
came from (a measurement over which window, or a team record from which
file), or why there is none.
"""

import json
import os
import re
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from datetime import datetime

TIMEOUT = 5.0


def request(method, url, body=None, timeout=TIMEOUT):
    """(status, headers, text) of one HTTP request; status 0 if unreachable."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as response:
            return response.status, dict(response.headers), response.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers or {}), error.read().decode("utf-8", "replace")
    except (urllib.error.URLError, OSError) as error:
        return 0, {}, str(error)


def get(url, timeout=TIMEOUT):
    return request("GET", url, timeout=timeout)


def post(url, body=None, timeout=TIMEOUT):
    return request("POST", url, body, timeout=timeout)


def get_json(url):
    status, _, text = get(url)
    if status != 200:
        unreachable(f"GET {url} answered {status or 'nothing'}: {text[:200]}")
    return json.loads(text)


def metrics(target):
    """The target's Prometheus metrics as {name or name{labels}: value}."""
    status, _, text = get(target.rstrip("/") + "/metrics")
    if status != 200:
        unreachable(f"GET {target}/metrics answered {status or 'nothing'}: {text[:200]}")
    values = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name, _, value = line.rpartition(" ")
        try:
            values[name] = float(value)
        except ValueError:
            pass
    return values


def emit(output):
    """The task's output: one JSON object on stdout."""
    print(json.dumps(output, sort_keys=True))
    sys.exit(0)


def unreachable(message):
    """Could not check: a retryable failure."""
    print(message, file=sys.stderr)
    sys.exit(1)


VERDICT = 3


def verdict(message):
    """The check ran and the answer is no (a failed smoke test, a refused
    deploy): exit 3, which the workflow declares a permanent failure
    (`permanent_exit_codes = [3]`), so its loop-back acts at once."""
    print(message, file=sys.stderr)
    sys.exit(VERDICT)


def target_arg():
    if len(sys.argv) < 2:
        print(f"usage: {sys.argv[0]} TARGET_URL [...]", file=sys.stderr)
        sys.exit(2)
    return sys.argv[1].rstrip("/")


def timed(fn):
    """(result, milliseconds)."""
    started = time.monotonic()
    result = fn()
    return result, (time.monotonic() - started) * 1000.0


def load_data(path):
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


class Evidence:
    """A task's output in which every value says where it came from, and a
    value with nothing behind it is null with the reason."""

    def __init__(self):
        self.values = {}
        self.sources = {}

    def measured(self, name, value, source):
        self.values[name] = value
        self.sources[name] = source
        return value

    def missing(self, name, why):
        self.values[name] = None
        self.sources[name] = "no evidence: " + why
        return None

    def emit(self, **extra):
        emit({**self.values, **extra, "sources": self.sources})


DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)\s*$")
UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def seconds(text):
    """A duration such as 7d, 90s or 250ms, in seconds."""
    match = DURATION.match(text)
    if not match:
        print(f"{text!r} is not a duration such as 7d, 30m or 90s", file=sys.stderr)
        sys.exit(2)
    return float(match.group(1)) * UNIT_SECONDS[match.group(2)]


def records(base, name):
    """A team record under DIRECTORY/data/, and how reports name it."""
    path = os.path.join(base, "data", name)
    try:
        return load_data(path), f"data/{name}"
    except FileNotFoundError:
        return None, f"data/{name}"
    except ValueError as error:
        print(f"{path} is not valid JSON: {error}", file=sys.stderr)
        sys.exit(2)


def count(record, field, where):
    """A whole, non-negative count from a record; a missing or malformed one
    stops the check (a record that does not say is not a zero)."""
    value = record.get(field)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        print(f"{where}: `{field}` is {value!r}; give a count such as 0 or 14", file=sys.stderr)
        sys.exit(2)
    return value


def when(text, where):
    """An ISO 8601 time from a record; a malformed one stops the check."""
    try:
        return datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        print(f"{where}: {text!r} is not an ISO 8601 time such as 2026-11-02T09:12:00Z", file=sys.stderr)
        sys.exit(2)


def sli(target, window_text):
    """(availability, error_ratio, source) over the window: from Prometheus
    when PROMETHEUS_URL is set, else from the target's /sli. A value is
    None when less than the whole window was observed."""
    window = seconds(window_text)
    prometheus = os.environ.get("PROMETHEUS_URL", "")
    if prometheus:
        def query(promql):
            status, _, body = get(prometheus.rstrip("/") + "/api/v1/query?query=" + urllib.parse.quote(promql))
            if status != 200:
                unreachable(f"prometheus answered {status or 'nothing'}: {body[:300]}")
            result = json.loads(body).get("data", {}).get("result", [])
            return float(result[0]["value"][1]) if result else None
        span = f"{int(window)}s"
        availability = query(f"avg_over_time(demo_up[{span}])")
        errors = query(f"sum(increase(demo_http_errors_total[{span}])) / sum(increase(demo_http_requests_total[{span}]))")
        return availability, errors, f"prometheus over the last {window_text}"
    status, _, body = get(f"{target}/sli?window_seconds={window}")
    if status == 404:
        return None, None, f"{target} has no /sli: no availability history to measure {window_text} over"
    if status != 200:
        unreachable(f"GET {target}/sli answered {status or 'nothing'}: {body[:200]}")
    measured = json.loads(body)
    observed = measured.get("observed_seconds")
    if not isinstance(observed, (int, float)):
        return None, None, f"{target}/sli does not say how much of {window_text} it observed"
    if observed < window * 0.99:
        why = f"the target has {observed:.1f}s of history; the criterion asks for {window_text}"
        return None, None, why
    return measured.get("availability"), measured.get("error_ratio"), f"target /sli over the last {window_text}"
