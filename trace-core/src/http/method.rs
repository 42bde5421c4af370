//! `http.request.method`: a known method as it is, anything else as `_OTHER` with the original.

use crate::semconv;
use crate::span::Span;

/// `http.request.method` for a method outside the known set.
pub const OTHER: &str = "_OTHER";

/// The methods the semantic conventions know by default: RFC 9110's, PATCH (RFC 5789) and
/// QUERY (the httpbis safe-method-with-body draft).
const KNOWN: [&str; 10] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH", "QUERY",
];

/// The method as the semantic conventions spell it, or `None` for one outside the known set.
///
/// Methods are case-sensitive in HTTP, so `get` is not `GET`.
pub fn known_method(method: &str) -> Option<&'static str> {
    KNOWN.into_iter().find(|known| *known == method)
}

/// Writes `http.request.method`, plus `http.request.method_original` when the method is not
/// known (only then does the original differ from the attribute).
pub fn set_method(span: &mut Span, method: &str) {
    match known_method(method) {
        Some(known) => span.set_attribute(semconv::HTTP_REQUEST_METHOD, known),
        None => {
            span.set_attribute(semconv::HTTP_REQUEST_METHOD, OTHER);
            span.set_attribute(semconv::HTTP_REQUEST_METHOD_ORIGINAL, method.to_owned());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::span::Value;

    fn method_attributes(method: &str) -> Vec<(String, Value)> {
        let mut span = Span::default();
        set_method(&mut span, method);
        span.attributes
            .into_iter()
            .map(|kv| (kv.key.into_owned(), kv.value))
            .collect()
    }

    #[test]
    fn known_methods_are_kept_and_borrowed() {
        for method in KNOWN {
            assert_eq!(known_method(method), Some(method));
            assert_eq!(
                method_attributes(method),
                [("http.request.method".to_owned(), Value::from(method))]
            );
        }
        assert_eq!(known_method("QUERY"), Some("QUERY"));
    }

    #[test]
    fn other_methods_keep_the_original() {
        for method in ["get", "PROPFIND", "", "GET "] {
            assert_eq!(known_method(method), None, "{method:?}");
            assert_eq!(
                method_attributes(method),
                [
                    ("http.request.method".to_owned(), Value::from(OTHER)),
                    (
                        "http.request.method_original".to_owned(),
                        Value::from(method.to_owned())
                    ),
                ]
            );
        }
    }
}
