"""Phase 2: accessibility review of the home page (a subset of WCAG that a
parser can check: document language, title, image alternatives, form labels)."""
from html.parser import HTMLParser

from _lib import emit, get, target_arg, unreachable

target = target_arg()
status, _, page = get(target + "/")
if status != 200:
    unreachable(f"GET {target}/ answered {status or 'nothing'}")


class Audit(HTMLParser):
    def __init__(self):
        super().__init__()
        self.violations = []
        self.title = False
        self.in_title = False
        self.labels = set()
        self.inputs = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "html" and not attrs.get("lang"):
            self.violations.append("WCAG 3.1.1: <html> has no lang")
        if tag == "img" and not attrs.get("alt"):
            self.violations.append(f"WCAG 1.1.1: image {attrs.get('src', '?')} has no alt text")
        if tag == "title":
            self.in_title = True
        if tag == "label" and attrs.get("for"):
            self.labels.add(attrs["for"])
        if tag == "input" and attrs.get("type", "text") not in ("hidden", "submit"):
            self.inputs.append(attrs.get("id"))

    def handle_data(self, data):
        if self.in_title and data.strip():
            self.title = True

    def handle_endtag(self, tag):
        if tag == "title":
            self.in_title = False


audit = Audit()
audit.feed(page)
if not audit.title:
    audit.violations.append("WCAG 2.4.2: the page has no title")
for input_id in audit.inputs:
    if input_id not in audit.labels:
        audit.violations.append(f"WCAG 1.3.1: input {input_id or '(no id)'} has no label")
emit({"violations": len(audit.violations), "findings": audit.violations, "sources": {"violations": f"WCAG checks of {target}/ (title, input labels), now"}})
