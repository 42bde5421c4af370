//! The trace of one request through the edge: the SERVER span for the client's request, a
//! CLIENT span per upstream attempt, and the headers that carry the context on.

use std::cell::RefCell;
use std::net::{IpAddr, Ipv4Addr};
use std::time::{SystemTime, UNIX_EPOCH};

use trace_core::propagation::{self, Formats, HeaderSource, Incoming, extract, inject};
use trace_core::route::{Route, RouteGrouper, known_method, span_name};
use trace_core::semconv::{self, threadline};
use trace_core::span::{KeyValue, Link, Span, SpanKind};
use trace_core::start::start_span;
use trace_core::{IdGenerator, SpanContext, SpanId};

use crate::trust::TrustedNetworks;

thread_local! {
    /// One generator per worker thread, seeded from the OS.
    static IDS: RefCell<IdGenerator> = RefCell::new(IdGenerator::from_seed(fastrand::u64(..)));
}

/// Room for a SERVER span's attributes, so they are allocated once.
const SERVER_ATTRIBUTES: usize = 16;
/// Room for a CLIENT span's attributes.
const CLIENT_ATTRIBUTES: usize = 10;

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
        request_attributes(&mut server, request, tags);
        if let Route::Template(template) = route {
            server.set_attribute(semconv::HTTP_ROUTE, template.to_owned());
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
        span.set_attribute(semconv::SERVER_ADDRESS, host);
        span.set_attribute(semconv::SERVER_PORT, i64::from(port));
        span.set_attribute(semconv::NETWORK_PEER_ADDRESS, host);
        span.set_attribute(threadline::LOCATION, location);
        if self.attempts > 0 {
            span.set_attribute(semconv::HTTP_REQUEST_RESEND_COUNT, i64::from(self.attempts));
        }
        for kv in &self.server.attributes {
            if kv.key == semconv::HTTP_REQUEST_METHOD || kv.key == semconv::URL_PATH {
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
        if let Some(code) = status {
            span.set_attribute(semconv::HTTP_RESPONSE_STATUS_CODE, i64::from(code));
            if code >= 500 {
                span.set_attribute(semconv::ERROR_TYPE, code.to_string());
                span.set_error(format!("HTTP {code}"));
            }
        }
        if let Some(error) = error {
            span.set_attribute(semconv::ERROR_TYPE, error.to_owned());
            span.set_error(error.to_owned());
        }
        Some(span)
    }

    /// Ends the SERVER span with the status sent to the client.
    pub fn finish(mut self, status: u16, error: Option<&str>) -> (Span, Option<Span>) {
        let attempt = self.end_attempt(None, error.or(Some("request ended during the attempt")));
        let span = &mut self.server;
        span.end_unix_nano = now_nanos();
        if status > 0 {
            span.set_attribute(semconv::HTTP_RESPONSE_STATUS_CODE, i64::from(status));
        }
        if status >= 500 || status == 0 {
            let kind = error.map_or_else(|| status.to_string(), str::to_owned);
            span.set_attribute(semconv::ERROR_TYPE, kind.clone());
            span.set_error(kind);
        }
        (self.server, attempt)
    }
}

fn request_attributes(span: &mut Span, request: &RequestInfo<'_>, tags: &[KeyValue]) {
    match known_method(request.method) {
        Some(method) => span.set_attribute(semconv::HTTP_REQUEST_METHOD, method),
        None => {
            span.set_attribute(semconv::HTTP_REQUEST_METHOD, "_OTHER");
            span.set_attribute(
                semconv::HTTP_REQUEST_METHOD_ORIGINAL,
                request.method.to_owned(),
            );
        }
    }
    let path = request.path.split('?').next().unwrap_or_default();
    span.set_attribute(semconv::URL_PATH, path.to_owned());
    span.set_attribute(semconv::URL_SCHEME, request.scheme);
    span.set_attribute(semconv::NETWORK_PROTOCOL_VERSION, request.protocol);
    if let Some(host) = request.host {
        let name = host.rsplit_once(':').map_or(host, |(h, _)| h);
        span.set_attribute(semconv::SERVER_ADDRESS, name.to_owned());
    }
    if let Some((ip, port)) = request.client {
        span.set_attribute(semconv::CLIENT_ADDRESS, ip_text(ip));
        span.set_attribute(semconv::CLIENT_PORT, i64::from(port));
    }
    if let Some(agent) = request.user_agent {
        span.set_attribute(semconv::USER_AGENT_ORIGINAL, agent.to_owned());
    }
    for tag in tags {
        span.set_attribute(tag.key.clone(), tag.value.clone());
    }
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
