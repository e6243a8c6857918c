"""Phase 2: security checks a scanner would start with: response headers,
version disclosure, and admin surfaces reachable from outside loopback.
Replace with your SAST/DAST tools; keep the output's high/medium/low counts."""
from urllib.parse import urlparse

from _lib import emit, get, target_arg, unreachable

target = target_arg()
status, headers, _ = get(target + "/")
if status == 0:
    unreachable(f"{target} is unreachable")
headers = {k.lower(): v for k, v in headers.items()}
findings = []
for header, severity in [("content-security-policy", "medium"), ("x-content-type-options", "medium"), ("referrer-policy", "low")]:
    if header not in headers:
        findings.append({"severity": severity, "finding": f"missing {header} header"})
if "x-frame-options" not in headers and "frame-ancestors" not in headers.get("content-security-policy", ""):
    findings.append({"severity": "medium", "finding": "clickjacking: no frame protection"})
server = headers.get("server", "")
if any(ch.isdigit() for ch in server):
    findings.append({"severity": "low", "finding": f"server version disclosed: {server}"})
host = urlparse(target).hostname or ""
if get(target + "/admin/state")[0] == 200 and host not in ("127.0.0.1", "localhost", "::1"):
    findings.append({"severity": "high", "finding": "unauthenticated admin endpoint reachable"})
count = lambda s: sum(1 for f in findings if f["severity"] == s)  # noqa: E731
emit({"high": count("high"), "medium": count("medium"), "low": count("low"), "findings": findings})
