//! Configuration errors that name the field, shared by every component's `validate()`, and
//! the order in which every binary builds its configuration ([`load`]).

use core::fmt;

use crate::otel_env::Applied;

/// A configuration value that cannot work.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct FieldError {
    /// The field as a dotted path (`batch.max_spans`, `routes[1]`), or an environment variable.
    pub field: String,
    /// What is wrong with it.
    pub reason: String,
}

impl FieldError {
    /// An error about `field`.
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// The same error, for a field nested under `parent`.
    pub fn within(self, parent: &str) -> Self {
        Self {
            field: format!("{parent}.{}", self.field),
            reason: self.reason,
        }
    }

    /// An error from a deserializer path (`.` for the document itself).
    pub fn at_path(path: String, reason: impl Into<String>) -> Self {
        let field = if path == "." {
            "configuration".to_owned()
        } else {
            path
        };
        Self::new(field, reason)
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.reason)
    }
}

impl std::error::Error for FieldError {}

/// Checks that each `(field, value, min, max)` lies within its bounds.
pub fn check_ranges(ranges: &[(&str, u64, u64, u64)]) -> Result<(), FieldError> {
    for &(field, value, min, max) in ranges {
        if !(min..=max).contains(&value) {
            return Err(FieldError::new(
                field,
                format!("must be between {min} and {max}, got {value}"),
            ));
        }
    }
    Ok(())
}

/// A binary's configuration, built the way every Threadline binary builds it: the file (its
/// name and text; `None` for the defaults) parsed by `parse`, then the `OTEL_*` variables
/// read through `var` applied over it by `apply_env`, then the checks of `check`, once. An
/// error names the file and the field, or the variable that set the field; the warnings of
/// ignored variables are returned for the binary to log.
pub fn load<C: Default, Checked>(
    file: Option<(&str, &str)>,
    var: &dyn Fn(&str) -> Option<String>,
    parse: impl FnOnce(&str) -> Result<C, FieldError>,
    apply_env: impl FnOnce(&mut C, &dyn Fn(&str) -> Option<String>) -> Result<Applied, FieldError>,
    check: impl FnOnce(C) -> Result<Checked, FieldError>,
) -> Result<(Checked, Vec<FieldError>), String> {
    let mut config = match file {
        Some((name, text)) => parse(text).map_err(|e| format!("{name}: {e}"))?,
        None => C::default(),
    };
    let applied = apply_env(&mut config, var).map_err(|e| e.to_string())?;
    let checked = check(config).map_err(|e| applied.explain(e).to_string())?;
    Ok((checked, applied.warnings))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_nested_fields_and_ranges() {
        let e = FieldError::new("percentage", "too big").within("sampling");
        assert_eq!(e.to_string(), "sampling.percentage: too big");
        assert_eq!(
            FieldError::at_path(".".into(), "bad").field,
            "configuration"
        );
        assert!(check_ranges(&[("a", 5, 1, 10)]).is_ok());
        let e = check_ranges(&[("a", 5, 1, 10), ("b", 0, 1, 10)]).unwrap_err();
        assert_eq!(e.field, "b");
        assert_eq!(e.reason, "must be between 1 and 10, got 0");
    }
}
