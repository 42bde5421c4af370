//! What the workload answers to each request.
//!
//! - `GET /healthz`: `ok`.
//! - `/fail`: 500, with the echo.
//! - `/call?to=HOST:PORT&path=/x`: a GET of its own to `HOST:PORT`, reported in the echo's
//!   `call`; `sign=1` signs it with SigV4 (`region`, `service`, defaults `us-east-1` and
//!   `execute-api`), `propagate=1` forwards the received `traceparent` and `tracestate`. 200
//!   when the callee answered below 500, else 502.
//! - anything else: 200, with the echo.
//!
//! The echo is a JSON object with the method, target, path, the byte count and SHA-256 of the
//! exact bytes received (request line, headers and body as framed on the wire), the
//! `traceparent`, both ends of the connection, and the SigV4 verdict. A request whose SigV4
//! signature does not verify is answered 403, as AWS would, with the reason in the echo.

use std::net::SocketAddr;
use std::time::SystemTime;

use serde_json::{Value, json};

use crate::Config;
use crate::call;
use crate::http::{RequestHead, query_param};
use crate::sigv4::{self, Verdict};

/// One received request, as the routes see it.
pub struct Request<'a> {
    /// The parsed head.
    pub head: &'a RequestHead,
    /// The decoded body.
    pub body: &'a [u8],
    /// Every byte of the request as it was read from the socket.
    pub raw: &'a [u8],
    /// The client's end of the connection.
    pub peer: Option<SocketAddr>,
    /// The workload's end of the connection.
    pub local: Option<SocketAddr>,
}

/// A response to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// The Content-Type header's value.
    pub content_type: &'static str,
    /// The body.
    pub body: Vec<u8>,
}

impl Response {
    /// A JSON response.
    pub fn json(status: u16, value: &Value) -> Self {
        Self {
            status,
            content_type: "application/json",
            body: value.to_string().into_bytes(),
        }
    }
}

/// Answers `request`.
pub fn respond(request: &Request<'_>, config: &Config) -> Response {
    let head = request.head;
    if head.path() == "/healthz" && head.method == "GET" {
        return Response {
            status: 200,
            content_type: "text/plain",
            body: b"ok\n".to_vec(),
        };
    }
    let verdict = sigv4::verify(head, request.body, &config.credentials);
    let mut echo = echo(request, &verdict);
    let mut status = match head.path() {
        "/fail" => 500,
        _ => 200,
    };
    if let Verdict::Rejected(_) = verdict {
        status = 403;
    } else if head.path() == "/call" {
        let (call_status, report) = call(head, config);
        status = call_status;
        if let Some(object) = echo.as_object_mut() {
            object.insert("call".into(), report);
        }
    }
    Response::json(status, &echo)
}

fn echo(request: &Request<'_>, verdict: &Verdict) -> Value {
    let head = request.head;
    let header_text = |name| {
        head.header(name)
            .map(|v| String::from_utf8_lossy(v).into_owned())
    };
    let sigv4 = match verdict {
        Verdict::Unsigned => Value::Null,
        Verdict::Verified(scope) => json!({
            "verified": true,
            "access_key_id": scope.access_key_id,
            "region": scope.region,
            "service": scope.service,
            "signed_headers": scope.signed_headers,
        }),
        Verdict::Rejected(reason) => json!({ "verified": false, "error": reason }),
    };
    json!({
        "method": head.method,
        "target": head.target,
        "path": head.path(),
        "bytes": request.raw.len(),
        "sha256": sigv4::sha256_hex(request.raw),
        "body_bytes": request.body.len(),
        "traceparent": header_text("traceparent"),
        "peer": request.peer.map(|a| a.to_string()),
        "local": request.local.map(|a| a.to_string()),
        "sigv4": sigv4,
    })
}

/// Makes the `/call` request; returns the status to answer with and the report.
fn call(head: &RequestHead, config: &Config) -> (u16, Value) {
    let query = head.query();
    let Some(to) = query_param(query, "to") else {
        return (400, json!({ "error": "/call needs to=HOST:PORT" }));
    };
    let target = query_param(query, "path").unwrap_or_else(|| "/".into());
    let mut headers = Vec::new();
    if query_param(query, "propagate").as_deref() == Some("1") {
        for name in ["traceparent", "tracestate"] {
            if let Some(value) = head.header(name) {
                headers.push((name.to_owned(), String::from_utf8_lossy(value).into_owned()));
            }
        }
    }
    let signed = query_param(query, "sign").as_deref() == Some("1");
    if signed {
        let Some(credential) = config.credentials.first() else {
            return (
                500,
                json!({ "error": "sign=1 but the workload has no SigV4 credential" }),
            );
        };
        let region = query_param(query, "region").unwrap_or_else(|| "us-east-1".into());
        let service = query_param(query, "service").unwrap_or_else(|| "execute-api".into());
        match sigv4::sign_headers(
            "GET",
            &to,
            &target,
            credential,
            &region,
            &service,
            SystemTime::now(),
        ) {
            Ok(added) => headers.extend(added),
            Err(error) => return (500, json!({ "error": error })),
        }
    }
    match call::get(&to, &target, &headers) {
        Ok(answer) => {
            let body = String::from_utf8_lossy(&answer.body).into_owned();
            // An echo from another workload is shown as the object it is.
            let body = serde_json::from_str::<Value>(&body).unwrap_or(Value::String(body));
            let status = if answer.status >= 500 { 502 } else { 200 };
            let report = json!({
                "to": to,
                "path": target,
                "signed": signed,
                "status": answer.status,
                "local": answer.local.to_string(),
                "peer": answer.peer.to_string(),
                "body": body,
            });
            (status, report)
        }
        Err(error) => (
            502,
            json!({ "to": to, "path": target, "signed": signed, "error": error }),
        ),
    }
}
