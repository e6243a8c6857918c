"""Phase 2: end-to-end scenarios over the critical user flows."""
import json

from _lib import get, emit, post, target_arg, unreachable

target = target_arg()
if get(target + "/healthz")[0] == 0:
    unreachable(f"{target} is unreachable")
scenarios = []


def scenario(name, ok):
    scenarios.append({"name": name, "passed": bool(ok)})


status, _, page = get(target + "/")
scenario("home page renders", status == 200 and "<title>" in page)
status, _, body = get(target + "/api/items")
scenario("list items", status == 200 and "items" in json.loads(body or "{}") if status == 200 else False)
status, _, body = post(target + "/api/items", {"name": "e2e item"})
created = json.loads(body) if status == 201 else {}
scenario("create item", status == 201 and created.get("name") == "e2e item")
status, _, body = get(target + "/api/items")
scenario("created item is listed", status == 200 and any(i.get("name") == "e2e item" for i in json.loads(body).get("items", [])))
scenario("health endpoint", get(target + "/healthz")[0] == 200)
failed = [s["name"] for s in scenarios if not s["passed"]]
where = f"{len(scenarios)} scenarios run against {target} now"
emit({
    "passed": len(scenarios) - len(failed),
    "failed": len(failed),
    "failures": failed,
    "scenarios": len(scenarios),
    "sources": {"passed": where, "failed": where, "scenarios": where},
})
