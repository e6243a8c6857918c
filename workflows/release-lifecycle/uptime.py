"""Availability over a window, for criteria that name one (the seeds' 7-day
staging uptime, the 99.9 % system uptime): from Prometheus when
PROMETHEUS_URL is set, else from the target's /sli. Less history than the
window is no evidence: the value is null. Arguments: TARGET_URL WINDOW."""
import sys

from _lib import Evidence, sli, target_arg

target = target_arg()
window = sys.argv[2] if len(sys.argv) > 2 else "7d"
availability, _, note = sli(target, window)
ev = Evidence()
if availability is None:
    ev.missing("value", note)
else:
    ev.measured("value", round(availability, 6), note)
ev.emit(window=window)
