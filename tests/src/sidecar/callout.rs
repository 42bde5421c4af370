//! `dispatch_http_call` on the wire: a real HTTP/1.1 request to the cluster's address, and its
//! outcome given back to the filter as Envoy gives it. A connect failure or a timeout before
//! the response head is an ordinary response made by Envoy's router (503 or 504, with
//! headers); a response that breaks off after its head is a reset, which reaches the filter
//! with no header map at all.

use std::borrow::Cow;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use proxy_wasm_host::abi::v0_2_1::HttpCallResponse;
use tokio::net::TcpStream;

use super::host::Pending;
use super::proxy::Shared;
use super::wire::{self, Conn, WireError};

/// One connection per callout: Envoy pools them, which no test can observe from the outside
/// but the collector's peer port.
pub(super) async fn send(shared: Rc<Shared>, pending: Pending) {
    shared
        .counters
        .callouts_sent
        .fetch_add(1, Ordering::Relaxed);
    let exchange = exchange(&pending, shared.connect_timeout());
    // A timeout of 0 means none, as in Envoy.
    let outcome = if pending.call.timeout.is_zero() {
        exchange.await
    } else {
        tokio::time::timeout(pending.call.timeout, exchange)
            .await
            .unwrap_or(Err(Failure::Timeout))
    };
    let counter = match outcome {
        Ok(_) => &shared.counters.callouts_answered,
        Err(_) => &shared.counters.callouts_failed,
    };
    counter.fetch_add(1, Ordering::Relaxed);
    let response = match outcome {
        Ok(response) => response,
        Err(Failure::Connect) => router_reply(
            503,
            "upstream connect error or disconnect/reset before headers. reset reason: connection failure",
        ),
        Err(Failure::BeforeHead) => router_reply(
            503,
            "upstream connect error or disconnect/reset before headers. reset reason: connection termination",
        ),
        Err(Failure::Timeout) => router_reply(504, "upstream request timeout"),
        Err(Failure::AfterHead) => HttpCallResponse::failed(),
    };
    shared
        .filter
        .borrow_mut()
        .callout_response(pending.context, pending.id, response);
}

enum Failure {
    Connect,
    BeforeHead,
    AfterHead,
    Timeout,
}

/// The response Envoy's router makes when the cluster gave none.
fn router_reply(status: u16, details: &str) -> HttpCallResponse<'static> {
    let headers = vec![
        owned(b":status", status.to_string().as_bytes()),
        owned(b"content-length", details.len().to_string().as_bytes()),
        owned(b"content-type", b"text/plain"),
    ];
    HttpCallResponse::received(headers).with_body(Cow::Owned(details.as_bytes().to_vec()))
}

type Pair = (Cow<'static, [u8]>, Cow<'static, [u8]>);

fn owned(name: &[u8], value: &[u8]) -> Pair {
    (Cow::Owned(name.to_vec()), Cow::Owned(value.to_vec()))
}

async fn exchange(
    pending: &Pending,
    connect_timeout: Duration,
) -> Result<HttpCallResponse<'static>, Failure> {
    let call = &pending.call;
    let stream = tokio::time::timeout(connect_timeout, TcpStream::connect(pending.addr))
        .await
        .map_err(|_| Failure::Connect)?
        .map_err(|_| Failure::Connect)?;
    let _ = stream.set_nodelay(true);
    let mut conn = Conn::new(stream, Duration::from_secs(30));
    let get = |name: &[u8]| {
        call.headers
            .iter()
            .find(|(k, _)| k.as_ref() == name)
            .map(|(_, v)| v.as_ref())
            .unwrap_or_default()
    };
    let mut request = Vec::with_capacity(512 + call.body.len());
    request.extend_from_slice(get(b":method"));
    request.push(b' ');
    request.extend_from_slice(get(b":path"));
    request.extend_from_slice(b" HTTP/1.1\r\n");
    let mut headers: Vec<(&[u8], &[u8])> = vec![(b"host", get(b":authority"))];
    headers.extend(
        call.headers
            .iter()
            .filter(|(k, _)| k.first() != Some(&b':'))
            .map(|(k, v)| (k.as_ref(), v.as_ref())),
    );
    let length = call.body.len().to_string();
    let has_length = headers
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case(b"content-length"));
    if !has_length {
        headers.push((b"content-length", length.as_bytes()));
    }
    wire::write_headers(&mut request, headers);
    request.extend_from_slice(&call.body);
    conn.write(&request)
        .await
        .map_err(|_| Failure::BeforeHead)?;
    let head = conn.read_response_head().await.map_err(|e| match e {
        WireError::Timeout => Failure::Timeout,
        _ => Failure::BeforeHead,
    })?;
    let framing = if wire::bodiless("POST", head.status) {
        wire::Framing::Length(0)
    } else {
        head.framing(true).map_err(|_| Failure::AfterHead)?
    };
    let body = conn.read_body(framing).await.map_err(|e| match e {
        WireError::Timeout => Failure::Timeout,
        _ => Failure::AfterHead,
    })?;
    let mut pairs = vec![owned(b":status", head.status.to_string().as_bytes())];
    pairs.extend(head.headers.iter().map(|(k, v)| owned(k, v)));
    Ok(HttpCallResponse::received(pairs).with_body(Cow::Owned(body.decoded)))
}
