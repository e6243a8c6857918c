//! Checks at validation that a condition can type-check at all: a
//! condition whose value can never be true or false (`1 + 1`, a list, a
//! string), or a part written only with literals that always fails
//! (`'a'.matches('(')`, `1 / 0`), is refused when the definition is
//! validated, not discovered as an error verdict during a release.

use cel::common::ast::{operators, Expr as Node, LiteralValue};
use cel::IdedExpr;

use super::CompileError;

/// Refuses `expr` if it can never give a boolean, or if a literal-only part
/// of it fails whatever the evidence.
pub(super) fn check(expr: &IdedExpr) -> Result<(), CompileError> {
    if let Some(kind) = never_boolean(expr) {
        return Err(CompileError::new(
            format!("the condition gives {kind}, never true or false"),
            "write a comparison, such as `tasks.t.output.count > 1`",
        ));
    }
    literal_parts(expr)
}

/// What `expr` gives if its outermost form can never be a boolean.
fn never_boolean(expr: &IdedExpr) -> Option<&'static str> {
    match &expr.expr {
        Node::Literal(LiteralValue::Boolean(_)) => None,
        Node::Literal(LiteralValue::String(_)) => Some("a string"),
        Node::Literal(LiteralValue::Bytes(_)) => Some("bytes"),
        Node::Literal(LiteralValue::Null) => Some("null"),
        Node::Literal(_) => Some("a number"),
        Node::List(_) => Some("a list"),
        Node::Map(_) => Some("a map"),
        Node::Call(call)
            if [operators::ADD, operators::SUBSTRACT, operators::MULTIPLY, operators::DIVIDE, operators::MODULO, operators::NEGATE]
                .contains(&call.func_name.as_str()) =>
        {
            Some("the result of arithmetic")
        }
        _ => None,
    }
}

/// Evaluates each largest part written only with literals; one that fails
/// fails every time.
fn literal_parts(expr: &IdedExpr) -> Result<(), CompileError> {
    if is_literal_only(expr) {
        if matches!(expr.expr, Node::Literal(_)) {
            return Ok(());
        }
        return match cel::Value::resolve(expr, &super::context()) {
            Ok(_) => Ok(()),
            Err(error) => Err(CompileError::new(
                format!("a part of the condition written only with literals always fails: {error}"),
                "fix that part (a regular expression that does not compile, a division by zero, a wrong type)",
            )),
        };
    }
    let mut failure = None;
    for child in direct(expr) {
        if failure.is_none() {
            failure = literal_parts(child).err();
        }
    }
    failure.map_or(Ok(()), Err)
}

fn direct(expr: &IdedExpr) -> Vec<&IdedExpr> {
    match &expr.expr {
        Node::Select(select) => vec![&select.operand],
        Node::Call(call) => call.target.iter().map(|t| &**t).chain(call.args.iter()).collect(),
        Node::List(list) => list.elements.iter().collect(),
        _ => Vec::new(),
    }
}

/// True if no name is read anywhere in `expr` (macros bind names, so they are never literal-only).
fn is_literal_only(expr: &IdedExpr) -> bool {
    let mut literal = true;
    super::cost::visit(expr, &mut |node| {
        literal &= !matches!(node.expr, Node::Ident(_) | Node::Comprehension(_) | Node::Struct(_) | Node::Unspecified);
    });
    literal
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verdict(source: &str) -> Result<(), CompileError> {
        check(&cel::parser::Parser::new().parse(source).expect("parses"))
    }

    #[test]
    fn conditions_that_can_never_be_true_or_false_are_refused() {
        assert!(verdict("1 + 1").unwrap_err().message.contains("never true or false"));
        assert!(verdict("'a'").is_err());
        assert!(verdict("[1]").is_err());
        assert!(verdict("x.count * 2").is_err());
        let failing = verdict("x.ok && 'a'.matches('(')").unwrap_err();
        assert!(failing.message.contains("always fails"), "{}", failing.message);
        assert!(verdict("x > 1 / 0").is_err());
        for fine in ["true", "x.count > 1", "'release-1'.startsWith('release')", "x.s.matches('^a+$')", "[1, 2].all(i, i > 0)"] {
            verdict(fine).unwrap_or_else(|e| panic!("{fine}: {e}"));
        }
    }
}
