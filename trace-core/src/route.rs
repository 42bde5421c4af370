//! Low-cardinality routes for span names: configured templates first, then a heuristic that
//! folds IDs, UUIDs, hex strings and numbers out of the path.

use core::fmt;
use std::borrow::Cow;

use crate::config::FieldError;
use crate::http::known_method;

/// Path segments kept by the heuristic; the rest become one `*`.
pub const MAX_SEGMENTS: usize = 8;
/// A segment longer than this is always folded.
const MAX_SEGMENT_LEN: usize = 40;

/// A route template such as `/users/{id}/orders/*`.
///
/// `{name}` matches one non-empty segment; a final `*` matches whatever remains.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct RouteTemplate {
    raw: String,
    segments: Vec<Segment>,
}

#[derive(Clone, PartialEq, Eq, Debug)]
enum Segment {
    Literal(String),
    Param,
    Rest,
}

/// A route template that cannot be used.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct RouteTemplateError {
    /// The template as configured.
    pub template: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

impl fmt::Display for RouteTemplateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "route template {:?}: {}", self.template, self.reason)
    }
}

impl std::error::Error for RouteTemplateError {}

impl RouteTemplate {
    /// Parses a template. It must start with `/`; `*` may only be the last segment.
    pub fn parse(raw: &str) -> Result<Self, RouteTemplateError> {
        let error = |reason| RouteTemplateError {
            template: raw.to_owned(),
            reason,
        };
        let path = raw
            .strip_prefix('/')
            .ok_or_else(|| error("must start with '/'"))?;
        let parts: Vec<&str> = path.split('/').collect();
        let mut segments = Vec::with_capacity(parts.len());
        for (i, part) in parts.iter().enumerate() {
            let segment = if *part == "*" {
                if i + 1 != parts.len() {
                    return Err(error("'*' must be the last segment"));
                }
                Segment::Rest
            } else if let Some(name) = part.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
                if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                {
                    return Err(error("parameter names are letters, digits and '_'"));
                }
                Segment::Param
            } else if part.contains(['{', '}', '*']) {
                return Err(error("'{', '}' and '*' only appear as whole segments"));
            } else {
                Segment::Literal((*part).to_owned())
            };
            segments.push(segment);
        }
        Ok(Self {
            raw: raw.to_owned(),
            segments,
        })
    }

    /// The template as configured.
    pub fn as_str(&self) -> &str {
        &self.raw
    }

    fn matches(&self, path: &str) -> bool {
        let mut parts = path.strip_prefix('/').unwrap_or(path).split('/');
        for segment in &self.segments {
            match segment {
                Segment::Rest => return true,
                Segment::Param => match parts.next() {
                    Some(part) if !part.is_empty() => {}
                    _ => return false,
                },
                Segment::Literal(literal) => {
                    if parts.next() != Some(literal.as_str()) {
                        return false;
                    }
                }
            }
        }
        parts.next().is_none()
    }
}

/// The route of one request.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Route<'a> {
    /// A configured template matched; it is also the `http.route` attribute.
    Template(&'a str),
    /// No template matched; the path with its variable parts folded. Used for the span name
    /// only, since it is a guess, not the application's route.
    Grouped(String),
}

impl<'a> Route<'a> {
    /// The route text.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Template(t) => t,
            Self::Grouped(g) => g,
        }
    }

    /// The template, when one matched: what `http.route` may hold.
    pub fn template(&self) -> Option<&'a str> {
        match self {
            Self::Template(t) => Some(*t),
            Self::Grouped(_) => None,
        }
    }
}

/// Groups request paths into routes.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct RouteGrouper {
    templates: Vec<RouteTemplate>,
}

impl RouteGrouper {
    /// A grouper that tries `templates` in order before the heuristic. A bad template is
    /// reported as the configuration field `routes[i]`.
    pub fn new<S: AsRef<str>>(templates: &[S]) -> Result<Self, FieldError> {
        let templates = templates
            .iter()
            .enumerate()
            .map(|(i, t)| {
                RouteTemplate::parse(t.as_ref())
                    .map_err(|e| FieldError::new(format!("routes[{i}]"), e.to_string()))
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { templates })
    }

    /// The route for `path` (a query string or fragment is ignored).
    pub fn route(&self, path: &str) -> Route<'_> {
        let path = path.split(['?', '#']).next().unwrap_or_default();
        match self.templates.iter().find(|t| t.matches(path)) {
            Some(template) => Route::Template(template.as_str()),
            None => Route::Grouped(group(path)),
        }
    }
}

/// Folds the variable parts of `path`.
fn group(path: &str) -> String {
    let mut out = String::with_capacity(path.len().min(128));
    let mut parts = path.strip_prefix('/').unwrap_or(path).split('/');
    for part in parts.by_ref().take(MAX_SEGMENTS) {
        out.push('/');
        out.push_str(fold(part));
    }
    if parts.next().is_some() {
        out.push_str("/*");
    }
    out
}

fn fold(segment: &str) -> &str {
    let bytes = segment.as_bytes();
    if bytes.is_empty() {
        return "";
    }
    if bytes.iter().all(u8::is_ascii_digit) {
        return "{id}";
    }
    if is_uuid(bytes) {
        return "{uuid}";
    }
    let has_digit = bytes.iter().any(u8::is_ascii_digit);
    if bytes.len() >= 8 && has_digit && bytes.iter().all(u8::is_ascii_hexdigit) {
        return "{hex}";
    }
    let plain = bytes
        .iter()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~'));
    if !plain || bytes.len() > MAX_SEGMENT_LEN || longest_digit_run(bytes) >= 4 {
        return "{id}";
    }
    segment
}

fn is_uuid(bytes: &[u8]) -> bool {
    bytes.len() == 36
        && bytes.iter().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => *b == b'-',
            _ => b.is_ascii_hexdigit(),
        })
}

fn longest_digit_run(bytes: &[u8]) -> usize {
    bytes
        .split(|b| !b.is_ascii_digit())
        .map(<[u8]>::len)
        .max()
        .unwrap_or(0)
}

/// The span name `{method} {route}`; `HTTP {route}` for a method outside the known set.
pub fn span_name(method: &str, route: &Route<'_>) -> Cow<'static, str> {
    let method = known_method(method).unwrap_or("HTTP");
    let route = route.as_str();
    let mut name = String::with_capacity(method.len() + 1 + route.len());
    name.push_str(method);
    name.push(' ');
    name.push_str(route);
    Cow::Owned(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grouped(path: &str) -> String {
        RouteGrouper::default().route(path).as_str().to_owned()
    }

    #[test]
    fn templates_match_in_order() {
        let grouper =
            RouteGrouper::new(&["/users/{id}", "/users/{id}/orders/*", "/static/*"]).unwrap();
        assert_eq!(grouper.route("/users/42"), Route::Template("/users/{id}"));
        assert_eq!(
            grouper.route("/users/42/orders/7/items"),
            Route::Template("/users/{id}/orders/*")
        );
        assert_eq!(grouper.route("/static/"), Route::Template("/static/*"));
        assert_eq!(
            grouper.route("/users/42?x=1"),
            Route::Template("/users/{id}")
        );
        assert_eq!(grouper.route("/users/"), Route::Grouped("/users/".into()));
    }

    #[test]
    fn bad_templates_are_refused() {
        for bad in ["users", "/a/*/b", "/a/{}", "/a/{b-c}", "/a/x{y}"] {
            assert!(RouteTemplate::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn heuristic_folds_variable_segments() {
        assert_eq!(grouped("/users/12345/profile"), "/users/{id}/profile");
        assert_eq!(
            grouped("/o/550e8400-e29b-41d4-a716-446655440000"),
            "/o/{uuid}"
        );
        assert_eq!(grouped("/blob/9f86d081884c7d65"), "/blob/{hex}");
        assert_eq!(grouped("/u/user_20240101"), "/u/{id}");
        assert_eq!(grouped("/v1/api/health"), "/v1/api/health");
        assert_eq!(grouped("/a%20b"), "/{id}");
        assert_eq!(
            grouped("/1/2/3/4/5/6/7/8/9/10"),
            "/{id}/{id}/{id}/{id}/{id}/{id}/{id}/{id}/*"
        );
        assert_eq!(grouped("/"), "/");
    }

    #[test]
    fn span_names_use_known_methods_only() {
        let route = Route::Template("/users/{id}");
        assert_eq!(span_name("GET", &route), "GET /users/{id}");
        assert_eq!(span_name("FOO", &route), "HTTP /users/{id}");
        assert_eq!(span_name("get", &route), "HTTP /users/{id}");
        assert_eq!(Route::Template("/a").template(), Some("/a"));
        assert_eq!(Route::Grouped("/a".into()).template(), None);
    }
}
