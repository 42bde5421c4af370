//! What the `OTEL_*` variables changed in a binary's configuration, so that an error found
//! later in a field a variable set names that variable: the variable is what the operator
//! must fix.

use crate::config::FieldError;

use super::FromVar;

/// What the environment changed.
#[derive(Debug, Default)]
pub struct Applied {
    /// Values that were ignored, each naming its variable, to be logged.
    pub warnings: Vec<FieldError>,
    /// Fields whose value now comes from a variable: `(field, variable)`.
    origins: Vec<(&'static str, &'static str)>,
}

impl Applied {
    /// Starts with the warnings [`read`](super::read) gave.
    pub fn new(warnings: Vec<FieldError>) -> Self {
        Self {
            warnings,
            origins: Vec::new(),
        }
    }

    /// Records that `field` (a dotted path) now holds the value of `from`'s variable.
    pub fn set<T>(&mut self, field: &'static str, from: &FromVar<T>) {
        self.origins.push((field, from.variable));
    }

    /// Records that `variable` was set and ignored, and why.
    pub fn ignore(&mut self, variable: &'static str, why: &str) {
        self.warnings
            .push(FieldError::new(variable, format!("ignored: {why}")));
    }

    /// `error` from a binary's validation, naming the variable when one set its field (or a
    /// field that contains it).
    pub fn explain(&self, error: FieldError) -> FieldError {
        let from = self.origins.iter().rev().find(|(field, _)| {
            error.field.strip_prefix(field).is_some_and(|rest| {
                rest.is_empty() || rest.starts_with('.') || rest.starts_with('[')
            })
        });
        match from {
            Some((_, variable)) => {
                FieldError::new(*variable, format!("{} (as {})", error.reason, error.field))
            }
            None => error,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_in_a_field_a_variable_set_names_the_variable() {
        let mut applied = Applied::default();
        let from = FromVar {
            variable: "OTEL_EXPORTER_OTLP_HEADERS",
            value: (),
        };
        applied.set("export.headers", &from);
        let named = applied.explain(FieldError::new("export.headers.x y", "bad"));
        assert_eq!(named.field, "OTEL_EXPORTER_OTLP_HEADERS");
        assert_eq!(named.reason, "bad (as export.headers.x y)");
        let other = applied.explain(FieldError::new("export.headers_extra", "bad"));
        assert_eq!(
            other.field, "export.headers_extra",
            "a prefix is not a parent"
        );
    }
}
