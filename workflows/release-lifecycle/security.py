"""Phase 2: security checks a scanner would start with: response headers,
version disclosure, reflected XSS and path traversal probes, and admin
surfaces reachable from outside loopback.
Replace with your SAST/DAST tools; keep the output's high/medium/low counts."""
from urllib.parse import quote, urlparse

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
# Probes that apply wherever the target listens (loopback included): a
# reflected script (XSS) and a path traversal out of the web root.
probe = "<script>phasegate-probe-7f3a</script>"
status, _, page = get(target + "/search?q=" + quote(probe))
if status == 200 and probe in page:
    findings.append({"severity": "high", "finding": "reflected XSS: /search returns its query unescaped"})
status, _, page = get(target + "/static/..%2f..%2f..%2fetc%2fpasswd")
if status == 200 and "root:" in page:
    findings.append({"severity": "high", "finding": "path traversal: /static reads files outside the web root"})
count = lambda s: sum(1 for f in findings if f["severity"] == s)  # noqa: E731
probes = "headers, version disclosure, reflected XSS and path traversal probes"
emit({
    "high": count("high"),
    "medium": count("medium"),
    "low": count("low"),
    "findings": findings,
    "sources": {"high": f"{probes} against {target}", "medium": f"{probes} against {target}"},
})
