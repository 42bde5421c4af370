//! The attributes of an HTTP request on its span, written once for every component.

use std::borrow::Cow;

use super::{Authority, Target, redact_query, set_method, url_full};
use crate::semconv;
use crate::span::{Span, SpanKind, Value};

/// What a proxy knows of an HTTP request when its span starts. Everything is borrowed; the
/// span gets its own copy of what it keeps.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct Request<'a> {
    /// The method as received, e.g. `GET`.
    pub method: &'a str,
    /// The request target in origin form: the path, and the query after `?`.
    pub target: &'a str,
    /// The URL scheme, `http` or `https`, when known.
    pub scheme: Option<&'a str>,
    /// The `Host` header or `:authority`.
    pub authority: Option<&'a str>,
    /// The `User-Agent` header.
    pub user_agent: Option<&'a str>,
    /// The configured route template that matched, if one did (never a guessed route).
    pub route: Option<&'a str>,
}

impl Request<'_> {
    /// Writes the request's attributes onto `span`: `http.request.method` (and its original),
    /// `url.path`, `url.query` (redacted), `url.scheme`, `http.route`, `server.address` and
    /// `server.port` from the authority, and `user_agent.original`. A CLIENT span also gets
    /// `url.full`, which the conventions require of it, when the authority names a host.
    pub fn set_attributes(&self, span: &mut Span) {
        set_method(span, self.method);
        let target = Target::parse(self.target);
        span.set_attribute(semconv::URL_PATH, target.path.to_owned());
        if let Some(query) = target.query {
            span.set_attribute(semconv::URL_QUERY, redact_query(query).into_owned());
        }
        if let Some(scheme) = self.scheme {
            span.set_attribute(semconv::URL_SCHEME, scheme_value(scheme));
        }
        if let Some(route) = self.route {
            span.set_attribute(semconv::HTTP_ROUTE, route.to_owned());
        }
        if let Some(authority) = self.authority.and_then(Authority::parse) {
            if span.kind == SpanKind::Client {
                span.set_attribute(semconv::URL_FULL, url_full(self.scheme, authority, target));
            }
            set_server(span, authority.address.to_owned(), authority.port);
        }
        if let Some(agent) = self.user_agent {
            span.set_attribute(semconv::USER_AGENT_ORIGINAL, agent.to_owned());
        }
    }
}

/// Writes a CLIENT span's destination when it is not the authority the request named, as
/// for a proxy's upstream: `server.address`, `server.port` and `url.full` for `target` sent
/// there. `address` is a host name or an IP address (IPv6 without brackets).
pub fn set_upstream(
    span: &mut Span,
    scheme: &str,
    address: impl Into<Cow<'static, str>>,
    port: u16,
    target: Target<'_>,
) {
    let address = address.into();
    let authority = Authority {
        address: &address,
        port: Some(port),
    };
    span.set_attribute(semconv::URL_FULL, url_full(Some(scheme), authority, target));
    set_server(span, address, Some(port));
}

fn set_server(span: &mut Span, address: impl Into<Cow<'static, str>>, port: Option<u16>) {
    span.set_attribute(semconv::SERVER_ADDRESS, Value::Str(address.into()));
    if let Some(port) = port {
        span.set_attribute(semconv::SERVER_PORT, i64::from(port));
    }
}

/// Writes `network.protocol.version` from `1.1`, `2`, or Envoy's `HTTP/1.1`: the version
/// alone, since the protocol's name is `http` anyway.
pub fn set_protocol_version(span: &mut Span, protocol: &str) {
    let version = protocol.strip_prefix("HTTP/").unwrap_or(protocol);
    let value = match version {
        "1.0" => Value::from("1.0"),
        "1.1" => Value::from("1.1"),
        "2" => Value::from("2"),
        "3" => Value::from("3"),
        other => Value::from(other.to_owned()),
    };
    span.set_attribute(semconv::NETWORK_PROTOCOL_VERSION, value);
}

/// The common schemes are borrowed, so that only an unusual one is copied.
fn scheme_value(scheme: &str) -> Value {
    match scheme {
        "http" => Value::from("http"),
        "https" => Value::from("https"),
        other => Value::from(other.to_owned()),
    }
}
