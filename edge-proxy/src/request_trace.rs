//! The trace of one request through the edge: the SERVER span for the client's request, a
//! CLIENT span per upstream attempt, and the headers that carry the context on.

use std::cell::RefCell;
use std::net::{IpAddr, Ipv4Addr};
use std::time::{SystemTime, UNIX_EPOCH};

// `http` here is the crate of header types; trace-core's HTTP span rules go by their names.
use trace_core::http::{
    NO_RESPONSE, Request as HttpRequest, Target, set_failure, set_protocol_version,
    set_response_status, set_upstream,
};
use trace_core::propagation::{self, Formats, HeaderSource, Incoming, extract, inject};
use trace_core::route::{RouteGrouper, span_name};
use trace_core::semconv::{self, threadline};
use trace_core::span::{KeyValue, Link, Span, SpanKind, Value};
use trace_core::start::start_span;
use trace_core::{IdGenerator, SpanContext, SpanId};

use crate::trust::TrustedNetworks;

thread_local! {
    /// One generator per worker thread, seeded from the OS.
    static IDS: RefCell<IdGenerator> = RefCell::new(IdGenerator::from_seed(fastrand::u64(..)));
}

/// Room for a SERVER span's attributes, so they are allocated once: the request's (up to 10),
/// the client's, three location tags, the status and the odd context problem.
const SERVER_ATTRIBUTES: usize = 20;
/// Room for a CLIENT span's attributes.
const CLIENT_ATTRIBUTES: usize = 12;

/// Unix nanoseconds now.
pub fn now_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// Request headers as trace-core reads them.
pub struct Headers<'a>(pub &'a http::HeaderMap);

impl HeaderSource for Headers<'_> {
    fn for_each_value<'a>(&'a self, name: &str, f: &mut dyn FnMut(&'a [u8])) {
        for value in self.0.get_all(name) {
            f(value.as_bytes());
        }
    }
}

/// What the edge knows about a request when it starts.
pub struct RequestInfo<'a> {
    /// Method.
    pub method: &'a str,
    /// Path and query.
    pub path: &'a str,
    /// Host header or authority.
    pub host: Option<&'a str>,
    /// URL scheme of the client connection.
    pub scheme: &'static str,
    /// `1.1` or `2`.
    pub protocol: &'static str,
    /// The client's address.
    pub client: Option<(IpAddr, u16)>,
    /// User-Agent.
    pub user_agent: Option<&'a str>,
}

/// The trace state of one request.
pub struct RequestTrace {
    /// The SERVER span, finished in `logging`.
    pub server: Span,
    /// The CLIENT span of the attempt in progress.
    pub attempt: Option<Span>,
    /// Attempts made so far.
    pub attempts: u32,
    /// Formats to write upstream.
    pub formats: Formats,
    /// The caller asked for B3 debug.
    pub debug: bool,
    /// The request came with propagation headers, which must not reach the upstream as they are.
    pub carries_context: bool,
}

impl RequestTrace {
    /// Starts the SERVER span: a trusted caller's context is continued, anyone else's valid
    /// context becomes a link and a new root trace starts, with its sampled flag ignored.
    pub fn start(
        headers: &http::HeaderMap,
        request: &RequestInfo<'_>,
        trusted: &TrustedNetworks,
        sampler: &trace_core::sampling::Sampler,
        formats: Formats,
        tags: &[KeyValue],
        routes: &RouteGrouper,
    ) -> (Self, Incoming) {
        // Most requests at the edge carry no context: one pass over the names is cheaper than
        // looking each propagation header up.
        let carries_context = propagation::carries_context(headers.keys().map(|n| n.as_str()));
        let incoming = if carries_context {
            extract(&Headers(headers))
        } else {
            Incoming::default()
        };
        let is_trusted = request.client.is_some_and(|(ip, _)| trusted.contains(ip));
        let (parent, parent_sampled) = if is_trusted {
            (incoming.parent.as_ref(), incoming.sampled)
        } else {
            (None, None)
        };
        let started =
            IDS.with(|ids| start_span(parent, parent_sampled, sampler, &mut ids.borrow_mut()));
        let route = routes.route(request.path);
        let mut server = Span {
            name: span_name(request.method, &route),
            kind: SpanKind::Server,
            parent_span_id: started.parent_span_id,
            parent_is_remote: started.parent_span_id.is_some(),
            context: started.context,
            start_unix_nano: now_nanos(),
            attributes: Vec::with_capacity(SERVER_ATTRIBUTES),
            ..Span::default()
        };
        if let (false, Some(untrusted)) = (is_trusted, &incoming.parent) {
            server.add_link(Link {
                context: untrusted.clone(),
                attributes: vec![KeyValue::new(threadline::UNTRUSTED_PARENT, true)],
            });
        }
        if let Some(problem) = incoming.problem {
            server.set_attribute(threadline::CONTEXT_PROBLEM, problem.to_string());
        }
        HttpRequest {
            method: request.method,
            target: request.path,
            scheme: Some(request.scheme),
            authority: request.host,
            user_agent: request.user_agent,
            route: route.template(),
        }
        .set_attributes(&mut server);
        set_protocol_version(&mut server, request.protocol);
        if let Some((ip, port)) = request.client {
            server.set_attribute(semconv::CLIENT_ADDRESS, ip_text(ip));
            server.set_attribute(semconv::CLIENT_PORT, i64::from(port));
        }
        for tag in tags {
            server.set_attribute(tag.key.clone(), tag.value.clone());
        }
        let trace = Self {
            server,
            attempt: None,
            attempts: 0,
            formats: formats.with_incoming(if is_trusted { incoming.format } else { None }),
            debug: is_trusted && incoming.debug,
            carries_context,
        };
        (trace, incoming)
    }

    /// Whether this request's spans are recorded.
    pub fn sampled(&self) -> bool {
        self.server.context.is_sampled()
    }

    /// Starts the CLIENT span of a new attempt to `location` at `host`:`port`.
    pub fn start_attempt(&mut self, location: &'static str, host: &'static str, port: u16) {
        let span_id = IDS.with(|ids| ids.borrow_mut().span_id());
        let mut span = Span {
            name: self.server.name.clone(),
            kind: SpanKind::Client,
            parent_span_id: Some(self.server.context.span_id),
            context: SpanContext {
                span_id,
                ..self.server.context.clone()
            },
            start_unix_nano: now_nanos(),
            attributes: Vec::with_capacity(CLIENT_ATTRIBUTES),
            ..Span::default()
        };
        // The request goes upstream as it came, over plain HTTP (the peer is made without TLS).
        let target = Target {
            path: server_text(&self.server, semconv::URL_PATH).unwrap_or("/"),
            query: server_text(&self.server, semconv::URL_QUERY),
        };
        set_upstream(&mut span, "http", host, port, target);
        span.set_attribute(semconv::NETWORK_PEER_ADDRESS, host);
        span.set_attribute(threadline::LOCATION, location);
        if self.attempts > 0 {
            span.set_attribute(semconv::HTTP_REQUEST_RESEND_COUNT, i64::from(self.attempts));
        }
        for kv in &self.server.attributes {
            if kv.key == semconv::HTTP_REQUEST_METHOD
                || kv.key == semconv::HTTP_REQUEST_METHOD_ORIGINAL
                || kv.key == semconv::URL_PATH
            {
                span.attributes.push(kv.clone());
            }
        }
        self.attempts += 1;
        self.attempt = Some(span);
    }

    /// The context to send upstream: the current attempt's span is the next hop's parent.
    pub fn upstream_context(&self) -> (&SpanContext, Option<SpanId>) {
        match &self.attempt {
            Some(attempt) => (&attempt.context, attempt.parent_span_id),
            None => (&self.server.context, self.server.parent_span_id),
        }
    }

    /// Writes the propagation headers through `set`.
    pub fn inject(&self, set: impl FnMut(&'static str, &str)) {
        let (context, parent) = self.upstream_context();
        inject(context, parent, self.debug, self.formats, set);
    }

    /// Ends the current attempt with a response status or a failure.
    pub fn end_attempt(&mut self, status: Option<u16>, error: Option<&str>) -> Option<Span> {
        let mut span = self.attempt.take()?;
        span.end_unix_nano = now_nanos();
        end(&mut span, status, error);
        Some(span)
    }

    /// Ends the SERVER span with the status sent to the client (0 when none was).
    pub fn finish(mut self, status: u16, error: Option<&str>) -> (Span, Option<Span>) {
        let attempt = self.end_attempt(None, error.or(Some("request ended during the attempt")));
        self.server.end_unix_nano = now_nanos();
        end(&mut self.server, Some(status).filter(|s| *s > 0), error);
        (self.server, attempt)
    }
}

/// The status of a span that ends with `status`, `error` (Pingora's name for a failure), both
/// or neither (no response and no reason known).
fn end(span: &mut Span, status: Option<u16>, error: Option<&str>) {
    match (status, error) {
        (_, Some(error)) => set_failure(span, status, error.to_owned()),
        (Some(code), None) => set_response_status(span, code),
        (None, None) => set_failure(span, None, NO_RESPONSE),
    }
}

/// A string attribute of `span`.
fn server_text<'a>(span: &'a Span, key: &str) -> Option<&'a str> {
    span.attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| match &kv.value {
            Value::Str(text) => Some(text.as_ref()),
            _ => None,
        })
}

/// An address as text. IPv4, nearly every client, is written digit by digit: `Display` goes
/// through the formatting machinery and cost a third of starting the SERVER span.
fn ip_text(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => ipv4_text(v4),
        IpAddr::V6(v6) => v6.to_string(),
    }
}

fn ipv4_text(ip: Ipv4Addr) -> String {
    let mut text = String::with_capacity(15);
    for (i, octet) in ip.octets().into_iter().enumerate() {
        if i > 0 {
            text.push('.');
        }
        if octet >= 100 {
            text.push(char::from(b'0' + octet / 100));
        }
        if octet >= 10 {
            text.push(char::from(b'0' + octet / 10 % 10));
        }
        text.push(char::from(b'0' + octet % 10));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use trace_core::sampling::SamplingConfig;
    use trace_core::span::StatusCode;

    fn started(host: &str) -> RequestTrace {
        let request = RequestInfo {
            method: "GET",
            path: "/users/7?x=1",
            host: Some(host),
            scheme: "http",
            protocol: "1.1",
            client: Some((Ipv4Addr::LOCALHOST.into(), 40000)),
            user_agent: None,
        };
        let sampler = SamplingConfig::default().build().unwrap();
        let (trace, _) = RequestTrace::start(
            &http::HeaderMap::new(),
            &request,
            &TrustedNetworks::new(Vec::new()),
            &sampler,
            Formats::default(),
            &[],
            &RouteGrouper::default(),
        );
        trace
    }

    fn text<'a>(span: &'a Span, key: &str) -> Option<&'a str> {
        span.attributes
            .iter()
            .find(|kv| kv.key == key)
            .and_then(|kv| match &kv.value {
                Value::Str(text) => Some(text.as_ref()),
                _ => None,
            })
    }

    #[test]
    fn an_ipv6_host_is_the_server_address() {
        let server = started("[::1]:8443").server;
        assert_eq!(text(&server, "server.address"), Some("::1"));
        let server = started("[::1]").server;
        assert_eq!(text(&server, "server.address"), Some("::1"));
    }

    #[test]
    fn an_attempt_that_gets_a_4xx_is_an_error_and_names_its_url() {
        let mut trace = started("edge.example");
        trace.start_attempt("core-a", "10.0.0.5", 8080);
        let attempt = trace.end_attempt(Some(404), None).unwrap();
        assert_eq!(attempt.status.code, StatusCode::Error);
        assert_eq!(text(&attempt, "error.type"), Some("404"));
        assert_eq!(
            text(&attempt, "url.full"),
            Some("http://10.0.0.5:8080/users/7?x=1")
        );
        let (server, _) = trace.finish(404, None);
        assert_eq!(server.status.code, StatusCode::Unset, "a SERVER's 4xx");
        assert_eq!(text(&server, "error.type"), None);
    }

    #[test]
    fn ipv4_text_matches_display() {
        // Every octet value in every position, plus a spread of whole addresses.
        for octet in 0..=255u8 {
            for ip in [
                Ipv4Addr::new(octet, 0, 0, 0),
                Ipv4Addr::new(1, octet, 10, 100),
                Ipv4Addr::new(255, 9, octet, 99),
                Ipv4Addr::new(0, 200, 20, octet),
            ] {
                assert_eq!(ipv4_text(ip), ip.to_string());
            }
        }
        let mut x = 0x9e37_79b9_u32;
        for _ in 0..100_000 {
            x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            let ip = Ipv4Addr::from(x);
            assert_eq!(ipv4_text(ip), ip.to_string());
        }
    }

    #[test]
    fn ipv6_keeps_its_standard_text() {
        let ip: IpAddr = "2001:db8::1".parse().unwrap();
        assert_eq!(ip_text(ip), "2001:db8::1");
    }
}
