//! One client connection: requests read in turn (pipelined ones kept in order), each answered
//! before the next is read, until the client closes, asks to close, or breaks the protocol.

use std::io::Write;
use std::net::{Shutdown, TcpStream};

use serde_json::json;

use crate::Config;
use crate::http::{Framing, HeadError, RequestHead};
use crate::routes::{self, Request, Response};
use crate::wire::{Wire, WireError};

/// Serves `stream` until it is done with; errors end the connection, never the process.
pub(crate) fn serve_connection(stream: TcpStream, config: &Config) {
    // Without timeouts an idle or stalled client would hold its thread forever.
    if stream.set_read_timeout(Some(config.idle_timeout)).is_err()
        || stream.set_write_timeout(Some(config.idle_timeout)).is_err()
    {
        return;
    }
    let peer = stream.peer_addr().ok();
    let local = stream.local_addr().ok();
    let mut wire = Wire::new(stream);
    loop {
        let (response, keep_alive, head_only) = match exchange(&mut wire, config) {
            Ok(Exchange { head, body }) => {
                let raw = wire.take_raw();
                let request = Request {
                    head: &head,
                    body: &body,
                    raw: &raw,
                    peer,
                    local,
                };
                let response = routes::respond(&request, config);
                (response, head.keep_alive(), head.method == "HEAD")
            }
            Err(WireError::Closed | WireError::Io(_)) => break,
            Err(error) => (refusal(&error), false, false),
        };
        if write_response(wire.stream(), &response, keep_alive, head_only).is_err() || !keep_alive {
            break;
        }
    }
    let _ = wire.stream().shutdown(Shutdown::Both);
}

struct Exchange {
    head: RequestHead,
    body: Vec<u8>,
}

/// Reads one request, answering `Expect: 100-continue` on the way.
fn exchange(wire: &mut Wire<TcpStream>, config: &Config) -> Result<Exchange, WireError> {
    let head = wire.read_head(config.max_header_bytes)?;
    let head = RequestHead::parse(&head).map_err(refused_head)?;
    let framing = head.framing().map_err(refused_head)?;
    let expects_body = framing != Framing::Length(0);
    let continue_expected = head
        .header("expect")
        .is_some_and(|v| v.eq_ignore_ascii_case(b"100-continue"));
    if expects_body && continue_expected && head.minor_version == 1 {
        if let Framing::Length(length) = framing
            && length > config.max_body_bytes as u64
        {
            return Err(WireError::BodyTooLarge);
        }
        wire.stream().write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
    }
    let body = wire.read_body(Some(framing), config.max_body_bytes)?;
    Ok(Exchange { head, body })
}

fn refused_head(error: HeadError) -> WireError {
    match error {
        HeadError::Malformed(what) => WireError::Malformed(what),
        HeadError::UnsupportedVersion => WireError::Malformed("unsupported HTTP version"),
    }
}

/// The answer to a request that could not be read.
fn refusal(error: &WireError) -> Response {
    let (status, reason) = match error {
        WireError::HeadTooLarge => (431, "request header block too large".to_owned()),
        WireError::BodyTooLarge => (413, "request body too large".to_owned()),
        WireError::Malformed(what) => (400, (*what).to_owned()),
        WireError::Closed | WireError::Io(_) => (400, "connection failed".to_owned()),
    };
    Response::json(status, &json!({ "error": reason }))
}

fn write_response(
    mut stream: &TcpStream,
    response: &Response,
    keep_alive: bool,
    head_only: bool,
) -> std::io::Result<()> {
    let mut out = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: {}\r\n\r\n",
        response.status,
        reason_phrase(response.status),
        response.content_type,
        response.body.len(),
        if keep_alive { "keep-alive" } else { "close" },
    )
    .into_bytes();
    if !head_only {
        out.extend_from_slice(&response.body);
    }
    stream.write_all(&out)?;
    stream.flush()
}

fn reason_phrase(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        403 => "Forbidden",
        413 => "Content Too Large",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::{SocketAddr, TcpListener, TcpStream};
    use std::time::Duration;

    use serde_json::Value;

    use crate::http::ResponseHead;
    use crate::sigv4::{Credential, sha256_hex};
    use crate::wire::Wire;
    use crate::{Config, serve};

    fn start(config: Config) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        std::thread::spawn(move || serve(listener, config));
        address
    }

    fn credential() -> Credential {
        "AKIDTEST:secret-for-tests".parse().unwrap()
    }

    /// Reads one response off `wire`: its status and body.
    fn read_response(wire: &mut Wire<&TcpStream>) -> (u16, Vec<u8>) {
        let head = ResponseHead::parse(&wire.read_head(1 << 16).unwrap()).unwrap();
        let body = wire.read_body(head.framing().unwrap(), 1 << 20).unwrap();
        (head.status, body)
    }

    fn connect(address: SocketAddr) -> TcpStream {
        let stream = TcpStream::connect(address).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        stream
    }

    /// Sends `request` on a fresh connection and reads one response.
    fn exchange(address: SocketAddr, request: &[u8]) -> (u16, Vec<u8>) {
        let stream = connect(address);
        (&stream).write_all(request).unwrap();
        read_response(&mut Wire::new(&stream))
    }

    fn json(body: &[u8]) -> Value {
        serde_json::from_slice(body).unwrap()
    }

    #[test]
    fn the_echo_carries_the_checksum_of_the_exact_bytes_sent() {
        let address = start(Config::default());
        let request = b"POST /orders/7?x=1 HTTP/1.1\r\nHost: vm\r\n\
            traceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\r\n\
            Content-Length: 5\r\n\r\nhello";
        let (status, body) = exchange(address, request);
        assert_eq!(status, 200);
        let echo = json(&body);
        assert_eq!(echo["sha256"], sha256_hex(request));
        assert_eq!(echo["bytes"], request.len());
        assert_eq!(echo["method"], "POST");
        assert_eq!(echo["path"], "/orders/7");
        assert_eq!(echo["target"], "/orders/7?x=1");
        assert_eq!(echo["body_bytes"], 5);
        assert_eq!(
            echo["traceparent"],
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
        );
        assert_eq!(echo["local"], address.to_string());
        assert_eq!(echo["sigv4"], Value::Null);
    }

    #[test]
    fn keep_alive_and_pipelining_answer_each_request_with_its_own_bytes() {
        let address = start(Config::default());
        let first = b"GET /one HTTP/1.1\r\nHost: vm\r\n\r\n".to_vec();
        let second =
            b"POST /two HTTP/1.1\r\nHost: vm\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
                .to_vec();
        let stream = connect(address);
        let mut wire = Wire::new(&stream);
        (&stream).write_all(&first).unwrap();
        let (_, body) = read_response(&mut wire);
        assert_eq!(json(&body)["sha256"], sha256_hex(&first));
        // Both at once: the second must not be mixed into the first.
        (&stream)
            .write_all(&[first.clone(), second.clone()].concat())
            .unwrap();
        let (_, one) = read_response(&mut wire);
        let (_, two) = read_response(&mut wire);
        assert_eq!(json(&one)["sha256"], sha256_hex(&first));
        assert_eq!(json(&two)["sha256"], sha256_hex(&second));
        assert_eq!(json(&two)["body_bytes"], 3);
    }

    #[test]
    fn connection_close_is_honoured() {
        let address = start(Config::default());
        let stream = connect(address);
        (&stream)
            .write_all(b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut all = Vec::new();
        (&stream).read_to_end(&mut all).unwrap();
        assert!(all.starts_with(b"HTTP/1.1 200 OK\r\n"));
        assert!(String::from_utf8_lossy(&all).contains("Connection: close"));
    }

    #[test]
    fn bad_requests_get_400_431_413_and_close() {
        let address = start(Config {
            max_header_bytes: 256,
            max_body_bytes: 8,
            ..Config::default()
        });
        let long = format!("GET / HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(300));
        let cases: [(&[u8], u16); 5] = [
            (long.as_bytes(), 431),
            (b"GET / HTTP/1.1\r\nBad Header: x\r\n\r\n", 400),
            (b"NOT HTTP AT ALL\r\n\r\n", 400),
            (
                b"POST / HTTP/1.1\r\nContent-Length: 9\r\n\r\n123456789",
                413,
            ),
            (
                b"POST / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
                400,
            ),
        ];
        for (request, expected) in cases {
            let stream = connect(address);
            let _ = (&stream).write_all(request);
            let mut all = Vec::new();
            let _ = (&stream).read_to_end(&mut all);
            let text = String::from_utf8_lossy(&all);
            assert!(
                text.starts_with(&format!("HTTP/1.1 {expected} ")),
                "{expected}: {text}"
            );
            assert!(text.contains("Connection: close"), "{text}");
        }
        // The server survived all of it.
        assert_eq!(exchange(address, b"GET /healthz HTTP/1.1\r\n\r\n").0, 200);
    }

    #[test]
    fn expect_100_continue_is_answered_before_the_body() {
        let address = start(Config::default());
        let stream = connect(address);
        (&stream)
            .write_all(b"PUT /x HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n")
            .unwrap();
        let mut wire = Wire::new(&stream);
        let interim = ResponseHead::parse(&wire.read_head(1 << 16).unwrap()).unwrap();
        assert_eq!(interim.status, 100);
        (&stream).write_all(b"ok").unwrap();
        assert_eq!(read_response(&mut wire).0, 200);
    }

    #[test]
    fn routes_answer_as_documented() {
        let address = start(Config::default());
        let (status, body) = exchange(address, b"GET /healthz HTTP/1.1\r\n\r\n");
        assert_eq!((status, body.as_slice()), (200, &b"ok\n"[..]));
        let (status, body) = exchange(address, b"GET /fail HTTP/1.1\r\n\r\n");
        assert_eq!(status, 500);
        assert_eq!(json(&body)["path"], "/fail");
        let stream = connect(address);
        (&stream)
            .write_all(b"HEAD /x HTTP/1.1\r\n\r\nGET /y HTTP/1.1\r\n\r\n")
            .unwrap();
        let mut wire = Wire::new(&stream);
        let head = ResponseHead::parse(&wire.read_head(1 << 16).unwrap()).unwrap();
        assert_eq!(head.status, 200, "HEAD has headers and no body");
        assert_eq!(json(&read_response(&mut wire).1)["path"], "/y");
    }

    #[test]
    fn a_call_reaches_the_callee_and_reports_its_answer() {
        let callee = start(Config::default());
        let caller = start(Config::default());
        let request = format!(
            "GET /call?to={callee}&path=%2Finner%3Fq%3D1&propagate=1 HTTP/1.1\r\n\
             traceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\r\n\r\n"
        );
        let (status, body) = exchange(caller, request.as_bytes());
        assert_eq!(status, 200);
        let call = &json(&body)["call"];
        assert_eq!(call["status"], 200);
        assert_eq!(call["body"]["target"], "/inner?q=1");
        assert_eq!(
            call["body"]["traceparent"],
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
        );
        assert_eq!(
            call["body"]["peer"], call["local"],
            "both ends agree on the 4-tuple"
        );
        let (_, body) = exchange(
            caller,
            format!("GET /call?to={callee} HTTP/1.1\r\n\r\n").as_bytes(),
        );
        assert_eq!(
            json(&body)["call"]["body"]["traceparent"],
            Value::Null,
            "not propagated unless asked"
        );
    }

    #[test]
    fn a_failing_or_unreachable_callee_is_a_502() {
        let callee = start(Config::default());
        let caller = start(Config::default());
        let request = format!("GET /call?to={callee}&path=/fail HTTP/1.1\r\n\r\n");
        let (status, body) = exchange(caller, request.as_bytes());
        assert_eq!(
            (status, json(&body)["call"]["status"].as_u64()),
            (502, Some(500))
        );
        // A port nothing listens on: bind, note it, close.
        let closed = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let request = format!("GET /call?to={closed} HTTP/1.1\r\n\r\n");
        let (status, body) = exchange(caller, request.as_bytes());
        assert_eq!(status, 502);
        assert!(
            json(&body)["call"]["error"]
                .as_str()
                .unwrap()
                .contains("connect")
        );
        let (status, _) = exchange(
            caller,
            b"GET /call?to=127.0.0.1:1&path=/a%0d%0aX:%20y HTTP/1.1\r\n\r\n",
        );
        assert_eq!(
            status, 502,
            "a path that would split the request is refused"
        );
        assert_eq!(exchange(caller, b"GET /call HTTP/1.1\r\n\r\n").0, 400);
    }

    #[test]
    fn a_signed_call_verifies_at_a_callee_that_knows_the_key() {
        let with_key = || Config {
            credentials: vec![credential()],
            ..Config::default()
        };
        let callee = start(with_key());
        let caller = start(with_key());
        let request = format!(
            "GET /call?to={callee}&path=/s3/key&sign=1&service=s3&region=eu-west-1 HTTP/1.1\r\n\r\n"
        );
        let (status, body) = exchange(caller, request.as_bytes());
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        let sigv4 = &json(&body)["call"]["body"]["sigv4"];
        assert_eq!(sigv4["verified"], true, "{sigv4}");
        assert_eq!(sigv4["service"], "s3");
        assert_eq!(sigv4["region"], "eu-west-1");
        // A callee with another key refuses the same call.
        let stranger = start(Config {
            credentials: vec!["AKIDOTHER:x".parse().unwrap()],
            ..Config::default()
        });
        let request = format!("GET /call?to={stranger}&sign=1 HTTP/1.1\r\n\r\n");
        let (_, body) = exchange(caller, request.as_bytes());
        assert_eq!(json(&body)["call"]["status"], 403);
        // Without a key the caller cannot sign.
        let keyless = start(Config::default());
        let request = format!("GET /call?to={callee}&sign=1 HTTP/1.1\r\n\r\n");
        assert_eq!(exchange(keyless, request.as_bytes()).0, 500);
    }

    #[test]
    fn connections_beyond_the_limit_get_503() {
        let address = start(Config {
            max_connections: 1,
            ..Config::default()
        });
        let held = connect(address);
        (&held).write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
        read_response(&mut Wire::new(&held));
        let (status, _) = exchange(address, b"GET / HTTP/1.1\r\n\r\n");
        assert_eq!(status, 503);
        drop(held);
        // The slot frees when the held connection's thread ends.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while exchange(address, b"GET / HTTP/1.1\r\n\r\n").0 != 200 {
            assert!(std::time::Instant::now() < deadline, "the slot never freed");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}
