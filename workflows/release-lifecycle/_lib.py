"""Helpers shared by the release-lifecycle check scripts.

Every script is a small, real check against the target named by the
workflow's `target_url` variable (the demo target by default). Replace any
of them with your own: a script prints one JSON object on stdout (the task's
output, which gate criteria read) and exits 0; it exits non-zero only when it
could not do its job (the target is unreachable, say), which phasegate
retries. Standard library only, so a fresh machine needs nothing installed.
"""

import json
import sys
import time
import urllib.error
import urllib.request

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
