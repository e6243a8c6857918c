#!/usr/bin/env python3
"""A complete phasegate plugin agent: reads the request, reports progress,
answers with a result (or an error). Use it from a definition with

    agent = "plugin"
    params = { command = ["python3", "docs/examples/plugin.py"], name = "world" }
"""
import json
import sys
import time

request = json.loads(sys.stdin.readline())          # {"protocol": 1, "task", "attempt", "idempotency_key", "params", ...}
params = request["params"]

if "name" not in params:                             # bad input: permanent, do not retry
    print(json.dumps({"error": "parameter `name` is required", "retryable": False}))
    sys.exit(0)

for step in range(3):
    print(json.dumps({"heartbeat": {"step": step + 1, "of": 3}}), flush=True)
    time.sleep(float(params.get("pause", 0)))

print(json.dumps({"result": {"greeting": f"hello, {params['name']}", "attempt": request["attempt"],
                             "key": request["idempotency_key"]}}))
