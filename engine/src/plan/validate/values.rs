//! Durations (bounded, or a variable that is checked at start) and conditions.

use super::*;

impl<'d> Validator<'d> {
    pub(super) fn duration(&mut self, text: &str, path: &FieldPath, positive: bool) -> Option<Duration> {
        self.bounded_duration(text, path, if positive { Duration::from_millis(1) } else { Duration::ZERO })
    }

    /// A duration of at least `min` and at most [`super::MAX_DURATION`].
    pub(super) fn bounded_duration(&mut self, text: &str, path: &FieldPath, min: Duration) -> Option<Duration> {
        match parse_duration(text) {
            Ok(duration) => match super::check_duration(duration, min) {
                Ok(()) => Some(duration),
                Err(problem) => {
                    let hint = if duration > super::MAX_DURATION {
                        "give a duration of at most 100 years, such as 90d".to_owned()
                    } else if min > Duration::from_millis(1) {
                        format!("give at least {}", super::format_duration(min))
                    } else {
                        "give a positive duration such as `30s`".to_owned()
                    };
                    self.error(Kind::BadDuration, path, format!("duration `{text}`: {problem}"), hint);
                    None
                }
            },
            Err(problem) => {
                self.error(
                    Kind::BadDuration,
                    path,
                    format!("invalid duration `{text}`: {problem}"),
                    "write a number and a unit, such as 90s, 2m, 72h or 90d",
                );
                None
            }
        }
    }

    /// A duration written literally or as `{{ vars.NAME }}` naming a
    /// duration variable: its default, and the variable's name so each
    /// instance uses its own value. The variable remembers the bound so
    /// that values given at start obey it too.
    pub(super) fn duration_or_var(&mut self, text: &str, path: &FieldPath, min: Duration) -> Option<(Duration, Option<String>)> {
        let trimmed = text.trim();
        let single = trimmed.starts_with("{{") && trimmed.ends_with("}}");
        match crate::template::placeholders(trimmed).as_slice() {
            [crate::template::Placeholder::Var(name)] if single => {
                let Some(var) = self.checked_vars.get(name).cloned() else {
                    let hint = self.suggest(name, self.definition.vars.keys(), "variables");
                    self.error(Kind::UnknownReference, path, format!("unknown variable `{name}`"), hint);
                    return None;
                };
                let default = match (&var.ty, var.default.as_ref().and_then(Value::as_str)) {
                    (VarType::Duration, Some(default)) => default.to_owned(),
                    _ => {
                        self.error(
                            Kind::Type,
                            path,
                            format!("variable `{name}` is not a duration with a default"),
                            format!("declare it as {name} = {{ type = \"duration\", default = \"2m\" }}"),
                        );
                        return None;
                    }
                };
                if let Some(checked) = self.checked_vars.get_mut(name) {
                    if checked.min_duration.as_ref().is_none_or(|(current, _)| *current < min) {
                        checked.min_duration = Some((min, path.to_string()));
                    }
                }
                self.bounded_duration(&default, path, min).map(|d| (d, Some(name.clone())))
            }
            _ => self.bounded_duration(text, path, min).map(|d| (d, None)),
        }
    }

    pub(super) fn expr(&mut self, source: &str, path: &FieldPath, scope: Scope) -> Option<Expr> {
        match Expr::compile(source, &self.names, scope) {
            Ok(expr) => Some(expr),
            Err(error) => {
                let mut diagnostic = Diagnostic::new(Kind::BadExpression, path, format!("in `{source}`: {}", error.message));
                diagnostic.hint = error.hint;
                self.diagnostics.push(diagnostic);
                None
            }
        }
    }
}
