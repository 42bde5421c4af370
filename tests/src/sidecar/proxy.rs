//! The proxy: one thread with a current-thread tokio runtime, so that every socket it makes
//! is in the namespace that thread started in and the guest (which is not `Sync`) is driven
//! from one place. Connections, the tick timer and callouts are tasks on one `LocalSet`; a
//! guest callback never spans an `.await`.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime};

use proxy_wasm_host::abi::v0_2_1::ContextId;
use proxy_wasm_host::{HeaderMapExt, VecHeaderMap};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinSet;

use super::callout;
use super::filter::Filter;
use super::host::{Dispatcher, Exchange, Logs, Metrics, Pending, ReadOnlyBody};
use super::wire::{self, Body, Conn, Framing, Head, WireError};
use super::{Counters, Error, SidecarOptions};
use crate::envoy;

/// What every task of the proxy shares.
pub(super) struct Shared {
    pub(super) filter: RefCell<Filter>,
    pub(super) counters: Arc<Counters>,
    options: Settings,
    next_connection_id: std::cell::Cell<u64>,
}

impl Shared {
    /// How long connecting to a cluster may take.
    pub(super) fn connect_timeout(&self) -> Duration {
        self.options.connect_timeout
    }
}

/// The options the tasks read (the listener itself is gone into the accept loop).
struct Settings {
    upstream: SocketAddr,
    upstream_cluster: String,
    xds: envoy::Attributes,
    connect_timeout: Duration,
    request_timeout: Duration,
    idle_timeout: Duration,
    grace: Duration,
    drain_timeout: Duration,
}

/// The sidecar thread: starts the filter, reports it on `ready`, serves until `stopped`.
pub(super) fn run(
    options: SidecarOptions,
    (counters, metrics, logs): (Arc<Counters>, Arc<Metrics>, Arc<Logs>),
    ready: &std::sync::mpsc::Sender<Result<(), Error>>,
    stopped: oneshot::Receiver<()>,
) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            let _ = ready.send(Err(Error::Io(e)));
            return;
        }
    };
    let (outbox, callouts) = mpsc::unbounded_channel();
    let dispatcher = Arc::new(Dispatcher {
        clusters: options.clusters.clone(),
        outbox,
        counters: counters.clone(),
    });
    let filter = match Filter::start(&options, logs, metrics, dispatcher, counters.clone()) {
        Ok(filter) => filter,
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    let settings = Settings {
        upstream: options.upstream,
        upstream_cluster: options.upstream_cluster.clone(),
        xds: options.xds_attributes(),
        connect_timeout: options.connect_timeout,
        request_timeout: options.request_timeout,
        idle_timeout: options.idle_timeout,
        grace: options.grace,
        drain_timeout: options.drain_timeout,
    };
    let listener = options.listener;
    let local = tokio::task::LocalSet::new();
    local.block_on(&runtime, async move {
        let listener = match tokio::net::TcpListener::from_std(listener) {
            Ok(listener) => listener,
            Err(e) => {
                let _ = ready.send(Err(Error::Io(e)));
                return;
            }
        };
        let _ = ready.send(Ok(()));
        let shared = Rc::new(Shared {
            filter: RefCell::new(filter),
            counters,
            options: settings,
            next_connection_id: std::cell::Cell::new(1),
        });
        serve(shared, listener, callouts, stopped).await;
    });
}

async fn serve(
    shared: Rc<Shared>,
    listener: tokio::net::TcpListener,
    mut callouts: mpsc::UnboundedReceiver<Pending>,
    mut stopped: oneshot::Receiver<()>,
) {
    let mut background = JoinSet::new();
    background.spawn_local(tick(shared.clone()));
    let sending = shared.clone();
    background.spawn_local(async move {
        let mut calls = JoinSet::new();
        loop {
            tokio::select! {
                pending = callouts.recv() => match pending {
                    Some(pending) => {
                        calls.spawn_local(callout::send(sending.clone(), pending));
                    }
                    None => break,
                },
                Some(_) = calls.join_next(), if !calls.is_empty() => {}
            }
        }
    });

    let (closing, closed) = watch::channel(false);
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = &mut stopped => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    connections.spawn_local(connection(shared.clone(), stream, peer, closed.clone()));
                }
                Err(e) => {
                    // Out of descriptors: back off rather than spin.
                    eprintln!("sidecar: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    drop(listener);

    // Like Envoy's drain: idle connections close, requests in flight get a grace period.
    let _ = closing.send(true);
    let grace = shared.options.grace;
    let _ = tokio::time::timeout(grace, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    connections.shutdown().await;

    // The root ends as Envoy ends one: on_done, then callouts and ticks go on until the filter
    // says proxy_done (it has flushed its queue) or the deadline passes.
    let done = shared.filter.borrow_mut().end_root();
    if !done {
        let deadline = Instant::now() + shared.options.drain_timeout;
        while !shared.filter.borrow().root_is_done() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    shared.filter.borrow_mut().delete_root();
    background.shutdown().await;
}

/// Calls the root's `on_tick` at the period it set, re-armed after each tick as Envoy's timer
/// is (so the period drifts by the tick's own time).
async fn tick(shared: Rc<Shared>) {
    loop {
        let period = shared.filter.borrow().tick_period();
        match period {
            Some(period) => {
                tokio::time::sleep(period).await;
                shared.filter.borrow_mut().tick();
            }
            // No timer yet (or cleared): look again shortly.
            None => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}

/// Ends a stream whose task is cancelled mid-request, as Envoy ends a reset stream.
struct StreamGuard {
    shared: Rc<Shared>,
    stream: Option<ContextId>,
}

impl StreamGuard {
    fn finish(&mut self, exchange: Exchange) {
        if let Some(stream) = self.stream.take() {
            self.shared.filter.borrow_mut().end_stream(stream, exchange);
        }
    }
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        if let Some(stream) = self.stream.take()
            && let Ok(mut filter) = self.shared.filter.try_borrow_mut()
        {
            filter.abandon_stream(stream);
        }
    }
}

/// The upstream connection of one downstream connection.
struct Upstream {
    conn: Conn,
    local: SocketAddr,
    peer: SocketAddr,
    /// Whether a request has gone over it (a reused one may have been closed by the workload).
    used: bool,
}

/// Serves one downstream connection until it closes, asks to close, or the sidecar stops.
async fn connection(
    shared: Rc<Shared>,
    stream: TcpStream,
    peer: SocketAddr,
    mut closing: watch::Receiver<bool>,
) {
    let local = stream.local_addr().unwrap_or(peer);
    let id = shared.next_connection_id.get();
    shared.next_connection_id.set(id.wrapping_add(1));
    let mut down = Conn::new(stream, shared.options.idle_timeout);
    let mut upstream: Option<Upstream> = None;
    loop {
        tokio::select! {
            waited = down.wait_for_message() => if waited.is_err() { break },
            _ = closing.wait_for(|closing| *closing) => break,
        }
        let keep = exchange(&shared, &mut down, &mut upstream, peer, local, id).await;
        if !keep {
            break;
        }
    }
}

/// One request and its response; whether the downstream connection stays open.
async fn exchange(
    shared: &Rc<Shared>,
    down: &mut Conn,
    upstream: &mut Option<Upstream>,
    peer: SocketAddr,
    local: SocketAddr,
    connection_id: u64,
) -> bool {
    let started = SystemTime::now();
    let clock = Instant::now();
    let head = match down.read_request_head().await {
        Ok(head) => head,
        Err(WireError::Closed | WireError::Timeout | WireError::Io(_)) => return false,
        Err(error) => {
            // Envoy's codec answers these itself, before any filter runs.
            let status = if matches!(error, WireError::HeadTooLarge) {
                431
            } else {
                400
            };
            local_reply_bytes(shared, down, status, &error.to_string()).await;
            return false;
        }
    };
    let framing = match head.framing(false) {
        Ok(framing) => framing,
        Err(error) => {
            local_reply_bytes(shared, down, 400, &error.to_string()).await;
            return false;
        }
    };
    let mut keep_alive = head.keep_alive();
    let mut exchange = Exchange {
        request_headers: request_map(&head),
        attributes: shared.options.xds.clone(),
        ..Exchange::default()
    };
    request_attributes(&mut exchange, &head, peer, local, connection_id, started);

    let stream = shared.filter.borrow_mut().new_stream();
    let mut guard = StreamGuard {
        shared: shared.clone(),
        stream,
    };
    let no_body = framing == Framing::Length(0);
    if let Some(stream) = stream {
        let (action, after) = shared
            .filter
            .borrow_mut()
            .request_headers(stream, exchange, no_body);
        exchange = after;
        if action == Some(proxy_wasm_host::abi::v0_2_1::types::Action::Pause) {
            eprintln!("sidecar: the filter paused a request; this host goes on (not served)");
        }
    }

    let expects_continue = head
        .header("expect")
        .is_some_and(|v| v.eq_ignore_ascii_case(b"100-continue"));
    if !no_body && expects_continue && head.minor_version == 1 {
        // As Envoy does by default: it answers 100-continue itself.
        if down.write(b"HTTP/1.1 100 Continue\r\n\r\n").await.is_err() {
            return false;
        }
    }
    let body = match down.read_body(framing).await {
        Ok(body) => body,
        Err(error) => {
            let status = if matches!(error, WireError::BodyTooLarge) {
                413
            } else {
                400
            };
            let close = true;
            let details = error.to_string();
            let reply = LocalReply {
                status,
                details: &details,
                close,
                clock,
            };
            respond_locally(shared, down, &mut guard, exchange, reply).await;
            return false;
        }
    };
    if !body.decoded.is_empty() {
        exchange
            .attributes
            .set("request.size", envoy::int(len_i64(body.decoded.len())));
        exchange.request_body = ReadOnlyBody(body.decoded.clone());
        if let Some(stream) = guard.stream {
            exchange = shared.filter.borrow_mut().request_body(stream, exchange);
        }
    }

    let request = upstream_request(&exchange.request_headers, &body);
    let answer = forward(shared, upstream, &request, &mut exchange).await;
    let response_head = match answer {
        Ok(answer) => answer,
        Err(failure) => {
            let (status, details) = failure.local_reply();
            let reply = LocalReply {
                status,
                details,
                close: !keep_alive,
                clock,
            };
            respond_locally(shared, down, &mut guard, exchange, reply).await;
            return keep_alive;
        }
    };

    let bodiless = wire::bodiless(&head.method, response_head.status);
    let response_framing = if bodiless {
        Framing::Length(0)
    } else {
        match response_head.framing(true) {
            Ok(framing) => framing,
            Err(_) => Framing::UntilClose,
        }
    };
    exchange.response_headers = response_map(&response_head);
    set_response_attributes(&mut exchange, response_head.status);
    if let Some(stream) = guard.stream {
        let end = response_framing == Framing::Length(0);
        exchange = shared
            .filter
            .borrow_mut()
            .response_headers(stream, exchange, end);
    }
    let response_body = match upstream.as_mut() {
        Some(up) => up.conn.read_body(response_framing).await,
        None => Err(WireError::Closed),
    };
    let response_body = match response_body {
        Ok(body) => body,
        Err(error) => {
            // The head has been seen: Envoy resets the downstream stream here.
            eprintln!("sidecar: the workload's response broke off: {error}");
            *upstream = None;
            finish(&mut guard, exchange, clock);
            return false;
        }
    };
    if !response_head.keep_alive() || response_framing == Framing::UntilClose {
        *upstream = None;
    }
    if response_framing == Framing::UntilClose {
        // The client learns the end of this body from the end of the connection too.
        keep_alive = false;
    }
    if !response_body.decoded.is_empty() {
        exchange.attributes.set(
            "response.size",
            envoy::int(len_i64(response_body.decoded.len())),
        );
        exchange.response_body = ReadOnlyBody(response_body.decoded.clone());
        if let Some(stream) = guard.stream {
            exchange = shared.filter.borrow_mut().response_body(stream, exchange);
        }
    }
    let mut out = status_line(&exchange.response_headers, &response_head);
    wire::write_headers(
        &mut out,
        regular(&exchange.response_headers).iter().map(pair),
    );
    out.extend_from_slice(&response_body.raw);
    let written = down.write(&out).await.is_ok();
    shared
        .counters
        .requests_proxied
        .fetch_add(1, Ordering::Relaxed);
    finish(&mut guard, exchange, clock);
    written && keep_alive && response_head.keep_alive()
}

fn finish(guard: &mut StreamGuard, mut exchange: Exchange, clock: Instant) {
    exchange
        .attributes
        .set("request.duration", envoy::duration(clock.elapsed()));
    guard.finish(exchange);
}

fn len_i64(len: usize) -> i64 {
    i64::try_from(len).unwrap_or(i64::MAX)
}

fn pair(p: &(Vec<u8>, Vec<u8>)) -> (&[u8], &[u8]) {
    (p.0.as_slice(), p.1.as_slice())
}

/// The request headers as Envoy's HTTP/1 codec gives them to filters: pseudo-headers first
/// (`host` becomes `:authority`), then the others as they came, names lowercased.
fn request_map(head: &Head) -> VecHeaderMap {
    let mut pairs: Vec<(Vec<u8>, Vec<u8>)> = Vec::with_capacity(head.headers.len() + 4);
    if let Some(host) = head.header("host") {
        pairs.push((b":authority".to_vec(), host.to_vec()));
    }
    pairs.push((b":path".to_vec(), head.target.clone().into_bytes()));
    pairs.push((b":method".to_vec(), head.method.clone().into_bytes()));
    pairs.push((b":scheme".to_vec(), b"http".to_vec()));
    pairs.extend(head.headers.iter().filter(|(k, _)| k != b"host").cloned());
    pairs.into_iter().collect()
}

fn response_map(head: &Head) -> VecHeaderMap {
    let mut pairs = vec![(b":status".to_vec(), head.status.to_string().into_bytes())];
    pairs.extend(head.headers.iter().cloned());
    pairs.into_iter().collect()
}

/// The headers that go on the wire: every non-pseudo header, with `:authority` written as
/// `host` where it stands (first, as Envoy's HTTP/1 encoder writes it).
fn regular(map: &VecHeaderMap) -> Vec<(Vec<u8>, Vec<u8>)> {
    map.pairs()
        .into_iter()
        .filter_map(|(k, v)| {
            if k == b":authority" {
                Some((b"host".to_vec(), v))
            } else if k.first() == Some(&b':') {
                None
            } else {
                Some((k, v))
            }
        })
        .collect()
}

/// The bytes of the request to the workload: the request line from `:method` and `:path`,
/// the header map as the filter left it, and the body as it was framed.
fn upstream_request(map: &VecHeaderMap, body: &Body) -> Vec<u8> {
    let get = |name: &[u8]| map.get_all(name).into_iter().next().unwrap_or_default();
    let mut out = Vec::with_capacity(1024 + body.raw.len());
    out.extend_from_slice(&get(b":method"));
    out.push(b' ');
    out.extend_from_slice(&get(b":path"));
    out.extend_from_slice(b" HTTP/1.1\r\n");
    wire::write_headers(&mut out, regular(map).iter().map(pair));
    out.extend_from_slice(&body.raw);
    out
}

fn status_line(map: &VecHeaderMap, upstream: &Head) -> Vec<u8> {
    let status = map
        .get_all(b":status")
        .into_iter()
        .next()
        .and_then(|s| String::from_utf8(s).ok())
        .and_then(|s| s.parse::<u16>().ok())
        .unwrap_or(upstream.status);
    // The workload's reason phrase, unless the filter changed the status.
    let reason = if status == upstream.status {
        upstream.reason.as_str()
    } else {
        ""
    };
    format!("HTTP/1.1 {status} {reason}\r\n").into_bytes()
}

fn request_attributes(
    exchange: &mut Exchange,
    head: &Head,
    peer: SocketAddr,
    local: SocketAddr,
    connection_id: u64,
    started: SystemTime,
) {
    let attributes = &mut exchange.attributes;
    let path = head.target.split('?').next().unwrap_or_default();
    attributes.set("request.time", envoy::timestamp(started));
    let protocol = if head.minor_version == 0 {
        "HTTP/1.0"
    } else {
        "HTTP/1.1"
    };
    attributes.set("request.protocol", protocol);
    attributes.set("request.method", head.method.as_str());
    attributes.set("request.path", head.target.as_str());
    attributes.set("request.url_path", path);
    attributes.set("request.scheme", "http");
    for (attribute, name) in [
        ("request.host", "host"),
        ("request.id", "x-request-id"),
        ("request.useragent", "user-agent"),
        ("request.referer", "referer"),
    ] {
        if let Some(value) = head.header(name) {
            attributes.set(attribute, value);
        }
    }
    attributes.set("source.address", envoy::address(peer));
    attributes.set("source.port", envoy::int(i64::from(peer.port())));
    attributes.set("destination.address", envoy::address(local));
    attributes.set("destination.port", envoy::int(i64::from(local.port())));
    let id = i64::try_from(connection_id).unwrap_or(i64::MAX);
    attributes.set("connection.id", envoy::int(id));
    attributes.set("connection_id", envoy::int(id));
    attributes.set("connection.mtls", vec![0u8]);
}

fn set_response_attributes(exchange: &mut Exchange, status: u16) {
    exchange
        .attributes
        .set("response.code", envoy::int(i64::from(status)));
}

/// Why the workload gave no response head.
enum UpstreamFailure {
    Connect,
    Timeout,
    Reset,
}

impl UpstreamFailure {
    /// Envoy's local reply for it.
    fn local_reply(&self) -> (u16, &'static str) {
        match self {
            Self::Connect => (
                503,
                "upstream connect error or disconnect/reset before headers. reset reason: connection failure",
            ),
            Self::Timeout => (504, "upstream request timeout"),
            Self::Reset => (
                503,
                "upstream connect error or disconnect/reset before headers. reset reason: connection termination",
            ),
        }
    }
}

/// Sends the request over this connection's upstream (opening it, or replacing a reused one
/// the workload closed), and reads the response head. Sets the `upstream.*` attributes to
/// the connection's real ends.
async fn forward(
    shared: &Rc<Shared>,
    upstream: &mut Option<Upstream>,
    request: &[u8],
    exchange: &mut Exchange,
) -> Result<Head, UpstreamFailure> {
    let options = &shared.options;
    exchange
        .attributes
        .set("xds.cluster_name", options.upstream_cluster.as_str());
    exchange
        .attributes
        .set("upstream.address", envoy::address(options.upstream));
    exchange.attributes.set(
        "upstream.port",
        envoy::int(i64::from(options.upstream.port())),
    );
    for attempt in 0..2 {
        if upstream.is_none() {
            *upstream = Some(connect(shared).await?);
        }
        let Some(up) = upstream.as_mut() else {
            return Err(UpstreamFailure::Connect);
        };
        exchange
            .attributes
            .set("upstream.address", envoy::address(up.peer));
        exchange
            .attributes
            .set("upstream.local_address", envoy::address(up.local));
        let reused = up.used;
        up.used = true;
        let sent = up.conn.write(request).await;
        let head = match sent {
            Ok(()) => {
                match tokio::time::timeout(options.request_timeout, up.conn.read_response_head())
                    .await
                {
                    Ok(head) => head,
                    Err(_) => {
                        *upstream = None;
                        return Err(UpstreamFailure::Timeout);
                    }
                }
            }
            Err(error) => Err(error),
        };
        match head {
            Ok(head) => return Ok(head),
            // A kept-alive connection the workload had closed: Envoy's pool would not have
            // picked it; try once on a new one.
            Err(WireError::Closed | WireError::Io(_)) if reused && attempt == 0 => {
                *upstream = None;
            }
            Err(WireError::Timeout) => {
                *upstream = None;
                return Err(UpstreamFailure::Timeout);
            }
            Err(_) => {
                *upstream = None;
                return Err(UpstreamFailure::Reset);
            }
        }
    }
    Err(UpstreamFailure::Reset)
}

async fn connect(shared: &Rc<Shared>) -> Result<Upstream, UpstreamFailure> {
    let options = &shared.options;
    let stream = tokio::time::timeout(
        options.connect_timeout,
        TcpStream::connect(options.upstream),
    )
    .await
    .map_err(|_| UpstreamFailure::Connect)?
    .map_err(|_| UpstreamFailure::Connect)?;
    let _ = stream.set_nodelay(true);
    let local = stream.local_addr().map_err(|_| UpstreamFailure::Connect)?;
    let peer = stream.peer_addr().map_err(|_| UpstreamFailure::Connect)?;
    shared
        .counters
        .upstream_connections
        .fetch_add(1, Ordering::Relaxed);
    Ok(Upstream {
        conn: Conn::new(stream, options.request_timeout),
        local,
        peer,
        used: false,
    })
}

/// A response the sidecar makes itself.
struct LocalReply<'a> {
    status: u16,
    details: &'a str,
    /// Whether the connection closes after it.
    close: bool,
    /// When the request began.
    clock: Instant,
}

/// A local reply that runs through the filter's response callbacks, as Envoy's do.
async fn respond_locally(
    shared: &Rc<Shared>,
    down: &mut Conn,
    guard: &mut StreamGuard,
    mut exchange: Exchange,
    reply: LocalReply<'_>,
) {
    let LocalReply {
        status,
        details,
        close,
        clock,
    } = reply;
    let body = details.as_bytes();
    let mut headers = vec![
        (b":status".to_vec(), status.to_string().into_bytes()),
        (
            b"content-length".to_vec(),
            body.len().to_string().into_bytes(),
        ),
        (b"content-type".to_vec(), b"text/plain".to_vec()),
    ];
    if close {
        headers.push((b"connection".to_vec(), b"close".to_vec()));
    }
    exchange.response_headers = headers.into_iter().collect();
    set_response_attributes(&mut exchange, status);
    exchange
        .attributes
        .set("response.size", envoy::int(len_i64(body.len())));
    if let Some(stream) = guard.stream {
        exchange = shared
            .filter
            .borrow_mut()
            .response_headers(stream, exchange, false);
        exchange.response_body = ReadOnlyBody(body.to_vec());
        exchange = shared.filter.borrow_mut().response_body(stream, exchange);
    }
    let mut out = format!("HTTP/1.1 {status} {}\r\n", reason(status)).into_bytes();
    wire::write_headers(
        &mut out,
        regular(&exchange.response_headers).iter().map(pair),
    );
    out.extend_from_slice(body);
    let _ = down.write(&out).await;
    shared
        .counters
        .local_replies
        .fetch_add(1, Ordering::Relaxed);
    finish(guard, exchange, clock);
}

/// A local reply for a request that never became a stream (the codec refused it).
async fn local_reply_bytes(shared: &Rc<Shared>, down: &mut Conn, status: u16, details: &str) {
    let out = format!(
        "HTTP/1.1 {status} {}\r\ncontent-length: {}\r\ncontent-type: text/plain\r\nconnection: close\r\n\r\n{details}",
        reason(status),
        details.len()
    );
    let _ = down.write(out.as_bytes()).await;
    shared
        .counters
        .local_replies
        .fetch_add(1, Ordering::Relaxed);
}

fn reason(status: u16) -> &'static str {
    match status {
        400 => "Bad Request",
        413 => "Payload Too Large",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "",
    }
}
