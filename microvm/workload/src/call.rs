//! The workload's own outgoing HTTP/1.1 call, made on a fresh connection and closed after it.

use std::io::Write;
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

use crate::http::ResponseHead;
use crate::wire::{Wire, WireError};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const IO_TIMEOUT: Duration = Duration::from_secs(10);
const MAX_HEAD: usize = 64 * 1024;
const MAX_BODY: usize = 1024 * 1024;

/// What the callee answered.
#[derive(Debug, Clone)]
pub struct Answer {
    /// The callee's status code.
    pub status: u16,
    /// The callee's body, decoded from its framing.
    pub body: Vec<u8>,
    /// The workload's end of the connection, for joining by 4-tuple.
    pub local: SocketAddr,
    /// The callee's end of the connection.
    pub peer: SocketAddr,
}

/// Sends `GET target` to `authority` (`HOST:PORT`) with `headers` added, and reads the answer.
pub fn get(authority: &str, target: &str, headers: &[(String, String)]) -> Result<Answer, String> {
    if !target.starts_with('/') || target.bytes().any(|b| !b.is_ascii_graphic()) {
        return Err(format!("call path {target:?} is not an origin-form target"));
    }
    let bad_header = headers.iter().any(|(n, v)| {
        n.bytes().any(|b| !b.is_ascii_graphic() || b == b':')
            || v.bytes().any(|b| b.is_ascii_control())
    });
    if bad_header {
        return Err("a call header has a character HTTP does not allow".into());
    }
    let address = authority
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {authority:?}: {e}"))?
        .next()
        .ok_or_else(|| format!("{authority:?} resolves to nothing"))?;
    let stream = TcpStream::connect_timeout(&address, CONNECT_TIMEOUT)
        .map_err(|e| format!("connect to {address}: {e}"))?;
    let io = |e: std::io::Error| format!("call to {address}: {e}");
    stream.set_read_timeout(Some(IO_TIMEOUT)).map_err(io)?;
    stream.set_write_timeout(Some(IO_TIMEOUT)).map_err(io)?;
    let local = stream.local_addr().map_err(io)?;
    let mut request = format!(
        "GET {target} HTTP/1.1\r\nHost: {authority}\r\nUser-Agent: threadline-workload\r\nConnection: close\r\n"
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    (&stream).write_all(request.as_bytes()).map_err(io)?;
    let mut wire = Wire::new(&stream);
    let wire_error = |e: WireError| format!("answer from {address}: {e}");
    let head = ResponseHead::parse(&wire.read_head(MAX_HEAD).map_err(wire_error)?)
        .map_err(|e| format!("answer from {address}: {e}"))?;
    let framing = head
        .framing()
        .map_err(|e| format!("answer from {address}: {e}"))?;
    let body = wire.read_body(framing, MAX_BODY).map_err(wire_error)?;
    Ok(Answer {
        status: head.status,
        body,
        local,
        peer: address,
    })
}
