//! The evaluation budget: how much work a condition may do over the
//! evidence it is given.
//!
//! CEL has no unbounded loops, but its macros (`all`, `exists`, `map`,
//! `filter`) iterate over lists, and two nested macros over a 6,000-item task
//! output are 36 million steps: seconds in which the driver, which
//! evaluates conditions, serves nothing else. So before a condition runs
//! over its evidence, its cost is bounded from the sizes of the lists its
//! macros will walk: a range that names evidence is measured, any other
//! range counts as the widest list or map anywhere in the evidence. A
//! condition over the budget is not run; it becomes that criterion's error
//! verdict, with the estimate and the limit, and everything else goes on.
//! The bound depends only on the condition and the evidence, so the same
//! instance gets the same verdict however busy the machine is.

use cel::common::ast::{EntryExpr, Expr as Node};
use cel::IdedExpr;
use serde_json::{Map, Value};

/// Most evaluation steps (nodes visited, counting each macro iteration) a
/// condition may take over its evidence.
pub const MAX_EVALUATION_STEPS: u64 = 250_000;

/// Whether an expression contains a macro (only those can be expensive).
pub(super) fn has_comprehension(expr: &IdedExpr) -> bool {
    let mut found = false;
    visit(expr, &mut |node| found |= matches!(node.expr, Node::Comprehension(_)));
    found
}

/// An upper bound of the steps `expr` takes over `evidence`.
pub(super) fn estimate(expr: &IdedExpr, evidence: &Map<String, Value>) -> u64 {
    let widest = evidence.values().map(widest).max().unwrap_or(0);
    steps(expr, evidence, widest, &mut Vec::new())
}

fn steps(expr: &IdedExpr, evidence: &Map<String, Value>, widest: u64, bound: &mut Vec<String>) -> u64 {
    let children = |bound: &mut Vec<String>| -> u64 {
        let mut total = 0u64;
        for child in direct_children(expr) {
            total = total.saturating_add(steps(child, evidence, widest, bound));
        }
        total
    };
    match &expr.expr {
        Node::Comprehension(comprehension) => {
            let range = steps(&comprehension.iter_range, evidence, widest, bound);
            let items = range_size(&comprehension.iter_range, evidence, widest, bound);
            let init = steps(&comprehension.accu_init, evidence, widest, bound);
            let before = bound.len();
            bound.push(comprehension.iter_var.clone());
            bound.extend(comprehension.iter_var2.iter().cloned());
            bound.push(comprehension.accu_var.clone());
            let body = steps(&comprehension.loop_cond, evidence, widest, bound).saturating_add(steps(
                &comprehension.loop_step,
                evidence,
                widest,
                bound,
            ));
            let result = steps(&comprehension.result, evidence, widest, bound);
            bound.truncate(before);
            1u64.saturating_add(range).saturating_add(init).saturating_add(items.saturating_mul(body)).saturating_add(result)
        }
        _ => 1u64.saturating_add(children(bound)),
    }
}

/// How many items a macro's range has: measured when it names evidence,
/// the widest collection in the evidence otherwise.
fn range_size(range: &IdedExpr, evidence: &Map<String, Value>, widest: u64, bound: &[String]) -> u64 {
    let Some(segments) = super::qualified_name(range) else {
        return widest;
    };
    if bound.iter().any(|b| b == segments[0]) {
        return widest;
    }
    let mut current = evidence.get(segments[0]);
    for segment in &segments[1..] {
        current = current.and_then(|value| value.get(*segment));
    }
    match current {
        Some(Value::Array(items)) => items.len() as u64,
        Some(Value::Object(map)) => map.len() as u64,
        // Missing evidence makes the condition inconclusive before any loop runs.
        _ => 0,
    }
}

/// The length of the longest list or map in `value`, at any depth.
fn widest(value: &Value) -> u64 {
    match value {
        Value::Array(items) => items.iter().map(widest).max().unwrap_or(0).max(items.len() as u64),
        Value::Object(map) => map.values().map(widest).max().unwrap_or(0).max(map.len() as u64),
        _ => 0,
    }
}

fn direct_children(expr: &IdedExpr) -> Vec<&IdedExpr> {
    match &expr.expr {
        Node::Unspecified | Node::Literal(_) | Node::Ident(_) => Vec::new(),
        Node::Select(select) => vec![&select.operand],
        Node::Call(call) => call.target.iter().map(|t| &**t).chain(call.args.iter()).collect(),
        Node::Comprehension(c) => vec![&c.iter_range, &c.accu_init, &c.loop_cond, &c.loop_step, &c.result],
        Node::List(list) => list.elements.iter().collect(),
        Node::Map(map) => entries(&map.entries),
        Node::Struct(structure) => entries(&structure.entries),
    }
}

fn entries(entries: &[cel::common::ast::IdedEntryExpr]) -> Vec<&IdedExpr> {
    entries
        .iter()
        .flat_map(|entry| match &entry.expr {
            EntryExpr::MapEntry(entry) => vec![&entry.key, &entry.value],
            EntryExpr::StructField(field) => vec![&field.value],
        })
        .collect()
}

/// Calls `f` on every node of `expr`, parents first.
pub(super) fn visit(expr: &IdedExpr, f: &mut dyn FnMut(&IdedExpr)) {
    f(expr);
    for child in direct_children(expr) {
        visit(child, f);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(source: &str) -> IdedExpr {
        cel::parser::Parser::new().parse(source).expect("parses")
    }

    #[test]
    fn nested_macros_cost_the_product_of_their_ranges() {
        let items: Vec<Value> = (0..6000).map(Value::from).collect();
        let evidence: Map<String, Value> =
            serde_json::json!({"tasks": {"t": {"output": {"items": items}}}}).as_object().cloned().unwrap_or_default();
        let nested = parse("tasks.t.output.items.all(a, tasks.t.output.items.exists(b, a == b))");
        assert!(estimate(&nested, &evidence) > 36_000_000, "6,000 × 6,000 iterations");
        let single = parse("tasks.t.output.items.all(a, a >= 0)");
        let cost = estimate(&single, &evidence);
        assert!((6_000..MAX_EVALUATION_STEPS).contains(&cost), "{cost}");
        let plain = parse("tasks.t.output.n == 1");
        assert!(estimate(&plain, &evidence) < 20);
    }
}
