//! YAML text of rendered objects: one document per object, keys in a stable order.

use serde::Serialize;

/// `value` as one YAML document. Rendering our own `serde_json::Value`s cannot fail; an error
/// would be a bug in a renderer, reported rather than panicked on.
pub fn document<T: Serialize>(value: &T) -> Result<String, crate::FieldError> {
    serde_yaml::to_string(value).map_err(|e| crate::FieldError::new("render", e.to_string()))
}

/// Several objects as one multi-document stream.
pub fn documents<T: Serialize>(values: &[T]) -> Result<String, crate::FieldError> {
    let mut out = String::new();
    for value in values {
        out.push_str("---\n");
        out.push_str(&document(value)?);
    }
    Ok(out)
}
