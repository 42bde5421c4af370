//! The edge proxy: Pingora's `ProxyHttp` phases, with tracing at each one.
//!
//! - `request_filter`: read the caller's context, apply the trust policy, sample, start the
//!   SERVER span, settle `x-request-id`.
//! - `upstream_peer`: pick a healthy core location not tried yet, start a CLIENT span.
//! - `upstream_request_filter`: write the propagation headers for the attempt.
//! - `fail_to_connect` / `error_while_proxy`: end the attempt as failed; allow one retry on
//!   another location.
//! - `upstream_response_filter` / `response_filter`: record the status; tell the client its
//!   trace ID when configured.
//! - `logging`: end the spans, queue them, queue the access log line, count the request.
//!
//! Nothing here fails a request because of tracing: malformed headers become a new trace, and
//! a full export queue drops spans (counted).

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use async_trait::async_trait;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::*;
use pingora::protocols::l4::socket::SocketAddr as PingoraAddr;
use trace_core::propagation::INJECTED_HEADERS;

use crate::access_log::{AccessLog, AccessLogLine};
use crate::config::Settings;
use crate::export::SpanSink;
use crate::metrics::{TRACE_HEADERS_IGNORED, count_request};
use crate::request_trace::{RequestInfo, RequestTrace, now_nanos};
use crate::trust::TrustedNetworks;
use crate::upstreams::{Outcome, Upstreams};

const REQUEST_ID: &str = "x-request-id";
/// The same name for lookups, parsed once rather than per request.
static REQUEST_ID_NAME: http::HeaderName = http::HeaderName::from_static(REQUEST_ID);
/// A caller's request ID longer than this is replaced.
const MAX_REQUEST_ID: usize = 128;

static NEXT_WORKER: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// Keeps each worker thread's upstream connections to itself. Pingora's pool is shared by
    /// the threads, and handing a pooled connection to another thread wakes that thread up,
    /// which cost more than the request (eventfd writes, seen with strace).
    static WORKER: u64 = NEXT_WORKER.fetch_add(1, Ordering::Relaxed);
}

/// The proxy service.
pub struct EdgeProxy {
    upstreams: Arc<Upstreams>,
    /// `None` when tracing is off.
    sink: Option<SpanSink>,
    settings: Arc<Settings>,
    trusted: TrustedNetworks,
    /// `None` when the access log is off.
    access_log: Option<AccessLog>,
}

/// Per-request state.
pub struct Ctx {
    trace: Option<RequestTrace>,
    /// Locations tried, the last one current.
    tried: Vec<usize>,
    started: Instant,
    request_id: Option<String>,
}

impl EdgeProxy {
    /// A proxy over `upstreams`, queueing spans into `sink` (tracing off when `None`) and
    /// access log lines into `access_log` (off when `None`).
    pub fn new(
        upstreams: Arc<Upstreams>,
        sink: Option<SpanSink>,
        settings: Arc<Settings>,
        access_log: Option<AccessLog>,
    ) -> Self {
        let trusted = TrustedNetworks::new(settings.config.trust.client_networks.clone());
        Self {
            upstreams,
            sink,
            settings,
            trusted,
            access_log,
        }
    }

    fn submit(&self, ctx_trace_sampled: bool, span: trace_core::span::Span) {
        if let (true, Some(sink)) = (ctx_trace_sampled, &self.sink) {
            sink.submit(span);
        }
    }

    /// Ends the current attempt: counts its outcome and queues its CLIENT span.
    fn end_attempt(
        &self,
        ctx: &mut Ctx,
        outcome: Outcome,
        status: Option<u16>,
        error: Option<&str>,
    ) {
        if let Some(&current) = ctx.tried.last() {
            self.upstreams.location(current).count(outcome);
        }
        if let Some(trace) = &mut ctx.trace {
            let sampled = trace.sampled();
            if let Some(span) = trace.end_attempt(status, error) {
                self.submit(sampled, span);
            }
        }
    }
}

fn client_address(session: &Session) -> Option<(IpAddr, u16)> {
    match session.client_addr()? {
        PingoraAddr::Inet(addr) => Some((addr.ip(), addr.port())),
        PingoraAddr::Unix(_) => None,
    }
}

fn valid_request_id(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= MAX_REQUEST_ID
        && value.bytes().all(|b| b.is_ascii_graphic())
}

fn new_request_id() -> String {
    let bytes: [u8; 16] = fastrand::u128(..).to_le_bytes();
    let mut text = [0u8; uuid::fmt::Hyphenated::LENGTH];
    uuid::Builder::from_random_bytes(bytes)
        .into_uuid()
        .hyphenated()
        .encode_lower(&mut text)
        .to_owned()
}

#[async_trait]
impl ProxyHttp for EdgeProxy {
    type CTX = Ctx;

    fn new_ctx(&self) -> Self::CTX {
        Ctx {
            trace: None,
            tried: Vec::with_capacity(2),
            started: Instant::now(),
            request_id: None,
        }
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut Self::CTX) -> Result<bool> {
        let request_id = session
            .req_header()
            .headers
            .get(&REQUEST_ID_NAME)
            .and_then(|v| v.to_str().ok())
            .filter(|v| valid_request_id(v))
            .map_or_else(new_request_id, str::to_owned);
        ctx.request_id = Some(request_id);
        if self.sink.is_none() {
            return Ok(false);
        }
        let client = client_address(session);
        let header = session.req_header();
        let host = header.uri.authority().map(|a| a.as_str()).or_else(|| {
            header
                .headers
                .get(http::header::HOST)
                .and_then(|v| v.to_str().ok())
        });
        let info = RequestInfo {
            method: header.method.as_str(),
            path: header.uri.path_and_query().map_or("/", |p| p.as_str()),
            host,
            scheme: if session
                .digest()
                .and_then(|d| d.ssl_digest.as_ref())
                .is_some()
            {
                "https"
            } else {
                "http"
            },
            protocol: if session.is_http2() { "2" } else { "1.1" },
            client,
            user_agent: header
                .headers
                .get(http::header::USER_AGENT)
                .and_then(|v| v.to_str().ok()),
        };
        let settings = &self.settings;
        let (trace, incoming) = RequestTrace::start(
            &header.headers,
            &info,
            &self.trusted,
            &settings.sampler,
            settings.formats,
            &settings.edge_tags,
            &settings.routes,
        );
        if incoming.problem.is_some() {
            TRACE_HEADERS_IGNORED.inc();
        }
        ctx.trace = Some(trace);
        Ok(false)
    }

    async fn upstream_peer(
        &self,
        session: &mut Session,
        ctx: &mut Self::CTX,
    ) -> Result<Box<HttpPeer>> {
        let client = client_address(session).map(|(ip, _)| ip);
        let Some(choice) = self.upstreams.select(client, &ctx.tried) else {
            return Err(Error::explain(
                ErrorType::ConnectNoRoute,
                "no healthy core location left to try",
            )
            .into_up());
        };
        ctx.tried.push(choice);
        let location = self.upstreams.location(choice);
        if let Some(trace) = &mut ctx.trace {
            trace.start_attempt(location.name, location.host, location.address.port());
        }
        let mut peer = HttpPeer::new(location.address, false, String::new());
        peer.group_key = WORKER.with(|worker| *worker);
        peer.options.connection_timeout = Some(self.upstreams.connect_timeout);
        peer.options.read_timeout = Some(self.upstreams.read_timeout);
        Ok(Box::new(peer))
    }

    async fn upstream_request_filter(
        &self,
        _session: &mut Session,
        upstream_request: &mut RequestHeader,
        ctx: &mut Self::CTX,
    ) -> Result<()> {
        if let Some(request_id) = &ctx.request_id {
            upstream_request.insert_header(REQUEST_ID, request_id.as_str())?;
        }
        let Some(trace) = &ctx.trace else {
            return Ok(());
        };
        if trace.carries_context {
            for name in INJECTED_HEADERS {
                upstream_request.remove_header(name);
            }
        }
        let mut result = Ok(());
        trace.inject(|name, value| {
            if result.is_ok() {
                result = upstream_request.insert_header(name, value).map(|_| ());
            }
        });
        result
    }

    fn fail_to_connect(
        &self,
        _session: &mut Session,
        _peer: &HttpPeer,
        ctx: &mut Self::CTX,
        mut e: Box<Error>,
    ) -> Box<Error> {
        let outcome = Outcome::ConnectError;
        self.end_attempt(ctx, outcome, None, Some(outcome.as_str()));
        if ctx.tried.len() <= self.upstreams.retries {
            e.set_retry(true);
        }
        e
    }

    fn error_while_proxy(
        &self,
        peer: &HttpPeer,
        session: &mut Session,
        e: Box<Error>,
        ctx: &mut Self::CTX,
        _client_reused: bool,
    ) -> Box<Error> {
        let mut e = e.more_context(format!("peer: {peer}"));
        self.end_attempt(ctx, Outcome::Error, None, Some(e.etype().as_str()));
        // Only the upstream's failure is retried elsewhere: a client that went away is not.
        let upstream_failed = e.esource() == &ErrorSource::Upstream;
        let safe = session.req_header().method.is_idempotent()
            && !session.as_ref().retry_buffer_truncated();
        e.set_retry(upstream_failed && safe && ctx.tried.len() <= self.upstreams.retries);
        e
    }

    async fn upstream_response_filter(
        &self,
        _session: &mut Session,
        upstream_response: &mut ResponseHeader,
        ctx: &mut Self::CTX,
    ) -> Result<()> {
        self.end_attempt(
            ctx,
            Outcome::Response,
            Some(upstream_response.status.as_u16()),
            None,
        );
        Ok(())
    }

    async fn response_filter(
        &self,
        _session: &mut Session,
        response: &mut ResponseHeader,
        ctx: &mut Self::CTX,
    ) -> Result<()> {
        if let Some(request_id) = &ctx.request_id {
            response.insert_header(REQUEST_ID, request_id.as_str())?;
        }
        if let (Some(name), Some(trace)) = (
            &self.settings.config.propagation.trace_id_response_header,
            &ctx.trace,
        ) {
            response.insert_header(name.clone(), trace.server.trace_id().to_string())?;
        }
        Ok(())
    }

    async fn logging(&self, session: &mut Session, error: Option<&Error>, ctx: &mut Self::CTX) {
        let status = session.response_written().map_or(0, |r| r.status.as_u16());
        count_request(status);
        let error_kind = error.map(|e| e.etype().as_str());
        let ids = ctx.trace.take().map(|trace| {
            let sampled = trace.sampled();
            let (server, attempt) = trace.finish(status, error_kind);
            let ids = (server.trace_id(), server.span_id(), sampled);
            if let Some(attempt) = attempt {
                self.submit(sampled, attempt);
            }
            self.submit(sampled, server);
            ids
        });
        let Some(access_log) = &self.access_log else {
            return;
        };
        let (trace_id, span_id, sampled) = ids.map_or_else(
            || (String::new(), String::new(), false),
            |(trace_id, span_id, sampled)| (trace_id.to_string(), span_id.to_string(), sampled),
        );
        let header = session.req_header();
        access_log.write(&AccessLogLine {
            timestamp_ms: now_nanos() / 1_000_000,
            client: client_address(session).map(|(ip, _)| ip.to_string()),
            method: header.method.as_str(),
            path: header.uri.path_and_query().map_or("/", |p| p.as_str()),
            status,
            duration_us: u64::try_from(ctx.started.elapsed().as_micros()).unwrap_or(u64::MAX),
            upstream: ctx.tried.last().map(|&i| self.upstreams.location(i).name),
            attempts: u32::try_from(ctx.tried.len()).unwrap_or(u32::MAX),
            request_id: ctx.request_id.as_deref(),
            trace_id,
            span_id,
            sampled,
        });
    }
}
