//! `url.path`, `url.query` and `url.full`.
//!
//! A query's signing secrets are redacted wherever the query is recorded: the semantic
//! conventions name the keys whose values are replaced by `REDACTED`, keep the key, and match
//! it case-sensitively. `url.full` is built from its parts, so it never carries userinfo
//! (which it must not).

use std::borrow::Cow;

use super::Authority;

/// What a redacted query value becomes.
pub const REDACTED: &str = "REDACTED";

/// Query keys whose values are secrets, as the semantic conventions list them for `url.query`
/// and `url.full`.
pub const SENSITIVE_QUERY_KEYS: [&str; 7] = [
    "AWSAccessKeyId",
    "Signature",
    "sig",
    "X-Amz-Credential",
    "X-Amz-Security-Token",
    "X-Amz-Signature",
    "X-Goog-Signature",
];

/// A request target in origin form, split into its path and query.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct Target<'a> {
    /// `url.path`: everything before `?`.
    pub path: &'a str,
    /// `url.query`: what follows `?`, without it; `None` when there is none or it is empty.
    pub query: Option<&'a str>,
}

impl<'a> Target<'a> {
    /// Splits `target`, e.g. `/search?q=x`. A `#` ends the target: a fragment is not sent
    /// over HTTP, so one that arrives is not part of the path or the query.
    pub fn parse(target: &'a str) -> Self {
        let target = target.split_once('#').map_or(target, |(before, _)| before);
        match target.split_once('?') {
            Some((path, query)) => Self {
                path,
                query: Some(query).filter(|q| !q.is_empty()),
            },
            None => Self {
                path: target,
                query: None,
            },
        }
    }
}

/// `query` with the value of every sensitive key replaced by [`REDACTED`]; borrowed when
/// there is nothing to replace, which is nearly always.
pub fn redact_query(query: &str) -> Cow<'_, str> {
    if !query.split('&').any(|pair| needs_redaction(pair).is_some()) {
        return Cow::Borrowed(query);
    }
    let mut redacted = String::with_capacity(query.len());
    for (i, pair) in query.split('&').enumerate() {
        if i > 0 {
            redacted.push('&');
        }
        match needs_redaction(pair) {
            Some(key) => {
                redacted.push_str(key);
                redacted.push('=');
                redacted.push_str(REDACTED);
            }
            None => redacted.push_str(pair),
        }
    }
    Cow::Owned(redacted)
}

/// The key of `pair` when its value must be redacted. A value already redacted is left as
/// it is, so redacting twice costs nothing.
fn needs_redaction(pair: &str) -> Option<&str> {
    let (key, value) = pair.split_once('=')?;
    (value != REDACTED && SENSITIVE_QUERY_KEYS.contains(&key)).then_some(key)
}

/// `url.full`: `scheme://address[:port]path[?query]`, with an IPv6 address bracketed and the
/// query redacted. Without a scheme it is the scheme-relative `//address…`. A path that does
/// not start with `/` (the `*` of `OPTIONS *`) adds nothing.
pub fn url_full(scheme: Option<&str>, authority: Authority<'_>, target: Target<'_>) -> String {
    let ipv6 = authority.address.contains(':');
    let query = target.query.map(redact_query);
    let path = Some(target.path).filter(|p| p.starts_with('/'));
    let len = scheme.map_or(0, str::len)
        + "://[]:65535?".len()
        + authority.address.len()
        + path.map_or(0, str::len)
        + query.as_deref().map_or(0, str::len);
    let mut url = String::with_capacity(len);
    if let Some(scheme) = scheme {
        url.push_str(scheme);
        url.push(':');
    }
    url.push_str("//");
    if ipv6 {
        url.push('[');
    }
    url.push_str(authority.address);
    if ipv6 {
        url.push(']');
    }
    if let Some(port) = authority.port {
        url.push(':');
        push_decimal(&mut url, port);
    }
    if let Some(path) = path {
        url.push_str(path);
        if let Some(query) = &query {
            url.push('?');
            url.push_str(query);
        }
    }
    url
}

/// Writes `n` in decimal. `url_full` runs once per upstream attempt, and this keeps
/// `core::fmt`'s machinery off that path.
fn push_decimal(out: &mut String, n: u16) {
    let mut divisor = 10_000;
    let mut started = false;
    while divisor > 0 {
        let digit = n / divisor % 10;
        if digit > 0 || started || divisor == 1 {
            started = true;
            // `digit` is below 10, so the cast cannot truncate.
            out.push(char::from(b'0' + digit as u8));
        }
        divisor /= 10;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_split_at_the_first_question_mark() {
        let split = |t| {
            let t = Target::parse(t);
            (t.path, t.query)
        };
        assert_eq!(split("/a/b"), ("/a/b", None));
        assert_eq!(split("/a?x=1&y=2"), ("/a", Some("x=1&y=2")));
        assert_eq!(split("/a?x=?"), ("/a", Some("x=?")));
        assert_eq!(split("/a?"), ("/a", None));
        assert_eq!(split("/a#frag"), ("/a", None));
        assert_eq!(split("/a?q=1#frag"), ("/a", Some("q=1")));
        assert_eq!(split("?q"), ("", Some("q")));
        assert_eq!(split(""), ("", None));
    }

    #[test]
    fn sensitive_values_are_redacted_and_keys_kept() {
        assert!(matches!(redact_query("q=1&page=2"), Cow::Borrowed(_)));
        assert_eq!(
            redact_query("q=OpenTelemetry&sig=abc"),
            "q=OpenTelemetry&sig=REDACTED"
        );
        assert_eq!(
            redact_query("X-Amz-Signature=1&X-Amz-Credential=2&X-Amz-Security-Token=3&x=4"),
            "X-Amz-Signature=REDACTED&X-Amz-Credential=REDACTED&X-Amz-Security-Token=REDACTED&x=4"
        );
        assert_eq!(
            redact_query("AWSAccessKeyId=a&Signature=b&X-Goog-Signature=c"),
            "AWSAccessKeyId=REDACTED&Signature=REDACTED&X-Goog-Signature=REDACTED"
        );
        // Case-sensitive, as the conventions say; a key without a value has nothing to hide.
        assert!(matches!(redact_query("SIG=abc&sig"), Cow::Borrowed(_)));
        assert_eq!(redact_query("sig="), "sig=REDACTED");
        // Redacting again changes nothing and allocates nothing.
        assert!(matches!(redact_query("sig=REDACTED"), Cow::Borrowed(_)));
    }

    #[test]
    fn full_urls_bracket_ipv6_and_redact_the_query() {
        let full = |scheme, address, port, target| {
            url_full(scheme, Authority { address, port }, Target::parse(target))
        };
        assert_eq!(
            full(Some("http"), "10.0.0.1", Some(8080), "/a?b=1"),
            "http://10.0.0.1:8080/a?b=1"
        );
        assert_eq!(
            full(Some("https"), "::1", Some(8443), "/"),
            "https://[::1]:8443/"
        );
        assert_eq!(full(Some("http"), "::1", None, ""), "http://[::1]");
        assert_eq!(full(None, "localhost", None, ""), "//localhost");
        assert_eq!(full(Some("http"), "h", Some(0), "*"), "http://h:0");
        assert_eq!(
            full(Some("https"), "s3.example", None, "/o?X-Amz-Signature=s#f"),
            "https://s3.example/o?X-Amz-Signature=REDACTED"
        );
    }

    #[test]
    fn decimal_ports_match_display() {
        for port in 0..=u16::MAX {
            let mut text = String::new();
            push_decimal(&mut text, port);
            assert_eq!(text, port.to_string());
        }
    }
}
