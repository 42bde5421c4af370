//! One HTTP request through the proxy: read the caller's context, start the span, rewrite the
//! propagated parent, and finish the span in `on_log` from Envoy's attributes.
//!
//! Nothing here can fail a request: a host call that fails leaves an attribute out, a
//! malformed header means a new trace, and a request that must not be touched keeps every
//! header byte.

use std::borrow::Cow;
use std::cell::RefCell;
use std::rc::Rc;

use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::Action;
use trace_core::http;
use trace_core::propagation::{INJECTED_HEADERS, extract, inject};
use trace_core::route::span_name;
use trace_core::semconv::{self, threadline};
use trace_core::span::{Span, SpanKind};
use trace_core::start::start_span;
use trace_core::{SpanContext, sigv4};

use crate::config::{Direction, Settings, WithoutContext};
use crate::hostcall::{self, Map};
use crate::metrics::Counter;
use crate::pairs::Pair;
use crate::properties::{self, ListenerDirection};
use crate::worker::Worker;

/// The span of one request, from its headers to its log.
pub struct RequestSpan {
    worker: Rc<RefCell<Worker>>,
    span: Option<Span>,
    black_box: bool,
}

impl RequestSpan {
    /// A request of the worker whose state is `worker`.
    pub fn new(worker: Rc<RefCell<Worker>>) -> Self {
        Self {
            worker,
            span: None,
            black_box: false,
        }
    }

    fn start(&mut self) {
        let headers = match hostcall::header_pairs(Map::RequestHeaders) {
            Ok(headers) => headers,
            Err(status) => {
                log::debug!(
                    "threadline: request headers unreadable (status {}), not traced",
                    status.0
                );
                return;
            }
        };
        let mut worker = self.worker.borrow_mut();
        let worker = &mut *worker;
        let settings = &worker.settings;
        let header = |name: &str| header(&headers, name);
        let path = text(header(":path"));
        let authority = text(header(":authority"));
        let query = path.split_once('?').map(|(_, q)| q.as_bytes());
        self.black_box = sigv4::is_signed(header("authorization"), query)
            || settings.no_touch.matches(&authority, &path);

        let incoming = extract(&headers[..]);
        if let Some(problem) = incoming.problem {
            log::debug!("threadline: ignored trace header: {problem}");
            worker.metrics.add(Counter::TraceHeadersIgnored, 1);
        }
        if incoming.parent.is_none() && settings.without_context == WithoutContext::Ignore {
            return;
        }
        let started = start_span(
            incoming.parent.as_ref(),
            incoming.sampled,
            &settings.sampler,
            &mut worker.ids,
        );
        if !self.black_box {
            let formats = settings.propagation.with_incoming(incoming.format);
            propagate(
                &headers,
                &started.context,
                started.parent_span_id,
                incoming.debug,
                formats,
            );
        }
        if !started.context.is_sampled() {
            return;
        }
        let kind = span_kind(settings.direction);
        let method = text(header(":method"));
        let route = settings.routes.route(&path);
        let mut span = Span {
            name: span_name(&method, &route),
            kind,
            parent_span_id: started.parent_span_id,
            parent_is_remote: started.parent_span_id.is_some(),
            context: started.context,
            start_unix_nano: start_time(),
            ..Span::default()
        };
        let scheme = header(":scheme").map(String::from_utf8_lossy);
        let user_agent = header("user-agent").map(String::from_utf8_lossy);
        http::Request {
            method: &method,
            target: &path,
            scheme: scheme.as_deref(),
            authority: Some(&*authority),
            user_agent: user_agent.as_deref(),
            route: route.template(),
        }
        .set_attributes(&mut span);
        filter_attributes(&mut span, settings, &headers);
        if self.black_box {
            span.set_attribute(threadline::PROPAGATION, "black_box");
        }
        if incoming.debug {
            span.set_attribute(threadline::DEBUG, true);
        }
        self.span = Some(span);
    }

    fn finish(&mut self) {
        let Some(mut span) = self.span.take() else {
            return;
        };
        span.end_unix_nano = properties::integer(properties::REQUEST_DURATION)
            .and_then(|d| u64::try_from(d).ok())
            .map_or_else(now, |d| span.start_unix_nano.saturating_add(d));
        if let Some(protocol) = properties::string(properties::REQUEST_PROTOCOL) {
            http::set_protocol_version(&mut span, &protocol);
        }
        let peer = match span.kind {
            SpanKind::Server if !self.black_box => properties::SOURCE_ADDRESS,
            _ => properties::UPSTREAM_ADDRESS,
        };
        if let Some((address, port)) = properties::address(peer) {
            if peer == properties::SOURCE_ADDRESS {
                span.set_attribute(semconv::CLIENT_ADDRESS, address.clone());
                span.set_attribute(semconv::CLIENT_PORT, i64::from(port));
            }
            span.set_attribute(semconv::NETWORK_PEER_ADDRESS, address);
            span.set_attribute(semconv::NETWORK_PEER_PORT, i64::from(port));
        }
        if self.black_box {
            // Our end of the upstream connection completes the 4-tuple that node-probe joins on.
            if let Some((address, port)) = properties::address(properties::UPSTREAM_LOCAL_ADDRESS) {
                span.set_attribute(semconv::NETWORK_LOCAL_ADDRESS, address);
                span.set_attribute(semconv::NETWORK_LOCAL_PORT, i64::from(port));
            }
        }
        let code = properties::integer(properties::RESPONSE_CODE)
            .and_then(|code| u16::try_from(code).ok())
            .filter(|code| *code > 0);
        match code {
            Some(code) => http::set_response_status(&mut span, code),
            None => http::set_failure(&mut span, None, http::NO_RESPONSE),
        }
        let mut worker = self.worker.borrow_mut();
        if let Some(reason) = worker.exports.push(&span) {
            worker.metrics.dropped(reason, 1);
            log::debug!("threadline: span dropped: {}", reason.as_str());
        }
    }
}

fn header<'a>(headers: &'a [Pair], name: &str) -> Option<&'a [u8]> {
    headers
        .iter()
        .find(|(key, _)| key.eq_ignore_ascii_case(name))
        .map(|(_, value)| value.as_slice())
}

fn text(value: Option<&[u8]>) -> Cow<'_, str> {
    value.map_or(Cow::Borrowed(""), String::from_utf8_lossy)
}

fn now() -> u64 {
    hostcall::now_nanos().unwrap_or(0)
}

fn start_time() -> u64 {
    properties::integer(properties::REQUEST_TIME)
        .and_then(|t| u64::try_from(t).ok())
        .unwrap_or_else(now)
}

fn span_kind(direction: Direction) -> SpanKind {
    let outbound = match direction {
        Direction::Inbound => false,
        Direction::Outbound => true,
        Direction::Auto => properties::listener_direction() == Some(ListenerDirection::Outbound),
    };
    if outbound {
        SpanKind::Client
    } else {
        SpanKind::Server
    }
}

/// Writes our context into the request, and removes any propagation header of the caller's
/// that we did not rewrite, so no stale parent reaches the next hop.
fn propagate(
    headers: &[Pair],
    context: &SpanContext,
    parent: Option<trace_core::SpanId>,
    debug: bool,
    formats: trace_core::propagation::Formats,
) {
    let mut written: Vec<&'static str> = Vec::with_capacity(4);
    inject(context, parent, debug, formats, |name, value| {
        written.push(name);
        if let Err(status) = hostcall::replace_header(Map::RequestHeaders, name, value) {
            log::debug!("threadline: cannot set {name}: status {}", status.0);
        }
    });
    for name in INJECTED_HEADERS {
        if !written.contains(&name)
            && header(headers, name).is_some()
            && let Err(status) = hostcall::remove_header(Map::RequestHeaders, name)
        {
            log::debug!("threadline: cannot remove {name}: status {}", status.0);
        }
    }
}

/// The filter's own attributes: the headers the mesh asked to capture, and where it runs.
fn filter_attributes(span: &mut Span, settings: &Settings, headers: &[Pair]) {
    for name in &settings.capture_headers {
        if let Some(value) = header(headers, name) {
            let key = format!("http.request.header.{name}");
            span.set_attribute(key, String::from_utf8_lossy(value).into_owned());
        }
    }
    let tags = &settings.tags;
    for (key, value) in [
        (threadline::DATACENTER, &tags.datacenter),
        (threadline::LOCATION, &tags.location),
        (threadline::NODE, &tags.node),
        (threadline::WORKLOAD, &tags.workload),
    ] {
        if let Some(value) = value {
            span.set_attribute(key, value.clone());
        }
    }
}

impl Context for RequestSpan {}

impl HttpContext for RequestSpan {
    fn on_http_request_headers(&mut self, _: usize, _: bool) -> Action {
        self.start();
        Action::Continue
    }

    fn on_log(&mut self) {
        self.finish();
    }
}
