//! The HTTP span rules against the stable OpenTelemetry HTTP semantic conventions
//! (docs/http/http-spans.md): status per span kind, `error.type`, `url.full` on CLIENT spans,
//! and `server.address`/`server.port` from IPv4, IPv6 and malformed authorities.

use trace_core::http::{self, Request, Target};
use trace_core::span::{Span, SpanKind, StatusCode, Value};

fn span(kind: SpanKind) -> Span {
    Span {
        kind,
        ..Span::default()
    }
}

fn attr<'a>(span: &'a Span, key: &str) -> Option<&'a Value> {
    let mut found = span.attributes.iter().filter(|kv| kv.key == key);
    let first = found.next().map(|kv| &kv.value);
    assert!(found.next().is_none(), "{key} written twice");
    first
}

fn text(value: &str) -> Option<Value> {
    Some(Value::from(value.to_owned()))
}

/// The status code, `error.type` and description after a response with `code`.
fn after_response(kind: SpanKind, code: u16) -> (StatusCode, Option<Value>, String) {
    let mut span = span(kind);
    http::set_response_status(&mut span, code);
    assert_eq!(
        attr(&span, "http.response.status_code"),
        Some(&Value::Int(i64::from(code)))
    );
    (
        span.status.code,
        attr(&span, "error.type").cloned(),
        span.status.message.into_owned(),
    )
}

#[test]
fn server_spans_leave_4xx_unset_and_fail_on_5xx() {
    for code in [200, 204, 301, 304, 400, 404, 429, 499] {
        assert_eq!(
            after_response(SpanKind::Server, code),
            (StatusCode::Unset, None, String::new()),
            "SERVER {code}"
        );
    }
    for code in [500, 502, 503, 599] {
        assert_eq!(
            after_response(SpanKind::Server, code),
            (StatusCode::Error, text(&code.to_string()), String::new()),
            "SERVER {code}"
        );
    }
}

#[test]
fn client_spans_fail_on_4xx_and_5xx() {
    for code in [200, 302, 399] {
        assert_eq!(
            after_response(SpanKind::Client, code),
            (StatusCode::Unset, None, String::new()),
            "CLIENT {code}"
        );
    }
    for code in [400, 401, 404, 429, 500, 503] {
        assert_eq!(
            after_response(SpanKind::Client, code),
            (StatusCode::Error, text(&code.to_string()), String::new()),
            "CLIENT {code}"
        );
    }
}

#[test]
fn codes_nobody_can_interpret_are_errors() {
    for kind in [SpanKind::Server, SpanKind::Client] {
        for code in [99, 600, 999] {
            assert_eq!(
                after_response(kind, code).1,
                text(&code.to_string()),
                "{kind:?} {code}"
            );
        }
    }
}

#[test]
fn a_failure_names_its_error_type_whatever_the_code() {
    let mut connect = span(SpanKind::Client);
    http::set_failure(&mut connect, None, "connect_error");
    assert_eq!(connect.status.code, StatusCode::Error);
    assert_eq!(connect.status.message, "connect_error");
    assert_eq!(attr(&connect, "error.type"), text("connect_error").as_ref());
    assert_eq!(attr(&connect, "http.response.status_code"), None);

    let mut cut_short = span(SpanKind::Server);
    http::set_failure(&mut cut_short, Some(200), "WriteError".to_owned());
    assert_eq!(cut_short.status.code, StatusCode::Error);
    assert_eq!(attr(&cut_short, "error.type"), text("WriteError").as_ref());
    assert_eq!(
        attr(&cut_short, "http.response.status_code"),
        Some(&Value::Int(200))
    );

    // A SERVER's 4xx stays unset even when something else failed.
    let mut refused = span(SpanKind::Server);
    http::set_failure(&mut refused, Some(400), "InvalidHTTPHeader");
    assert_eq!(refused.status.code, StatusCode::Unset);
    assert_eq!(attr(&refused, "error.type"), None);
    assert_eq!(
        attr(&refused, "http.response.status_code"),
        Some(&Value::Int(400))
    );
    let mut client = span(SpanKind::Client);
    http::set_failure(&mut client, Some(404), "ReadError");
    assert_eq!(client.status.code, StatusCode::Error);
    assert_eq!(attr(&client, "error.type"), text("ReadError").as_ref());

    let mut silent = span(SpanKind::Server);
    http::set_failure(&mut silent, None, http::NO_RESPONSE);
    assert_eq!(attr(&silent, "error.type"), text("no_response").as_ref());
}

fn request<'a>(authority: &'a str, target: &'a str) -> Request<'a> {
    Request {
        method: "GET",
        target,
        scheme: Some("https"),
        authority: Some(authority),
        ..Request::default()
    }
}

fn server(authority: &str) -> (Option<Value>, Option<Value>) {
    let mut span = span(SpanKind::Server);
    request(authority, "/").set_attributes(&mut span);
    (
        attr(&span, "server.address").cloned(),
        attr(&span, "server.port").cloned(),
    )
}

#[test]
fn server_address_and_port_come_from_the_authority() {
    let port = |p: i64| Some(Value::Int(p));
    assert_eq!(server("example.com"), (text("example.com"), None));
    assert_eq!(
        server("example.com:8080"),
        (text("example.com"), port(8080))
    );
    assert_eq!(server("10.0.0.1:80"), (text("10.0.0.1"), port(80)));
    assert_eq!(server("host:notaport"), (text("host"), None));
    assert_eq!(server("[::1"), (None, None));
    assert_eq!(server(""), (None, None));
}

#[test]
fn ipv6_hosts_with_and_without_a_port() {
    assert_eq!(server("[::1]"), (text("::1"), None));
    assert_eq!(server("[::1]:8443"), (text("::1"), Some(Value::Int(8443))));
    assert_eq!(
        server("[2001:db8::7]:443"),
        (text("2001:db8::7"), Some(Value::Int(443)))
    );

    let mut client = span(SpanKind::Client);
    request("[::1]:8443", "/a?b=1").set_attributes(&mut client);
    assert_eq!(
        attr(&client, "url.full"),
        text("https://[::1]:8443/a?b=1").as_ref()
    );
    let mut client = span(SpanKind::Client);
    request("[::1]", "/").set_attributes(&mut client);
    assert_eq!(attr(&client, "url.full"), text("https://[::1]/").as_ref());
}

#[test]
fn client_spans_get_url_full_and_server_spans_the_parts() {
    let mut client = span(SpanKind::Client);
    request("api.internal:8080", "/pay?id=7&sig=secret").set_attributes(&mut client);
    assert_eq!(
        attr(&client, "url.full"),
        text("https://api.internal:8080/pay?id=7&sig=REDACTED").as_ref()
    );

    let mut server = span(SpanKind::Server);
    request("api.internal:8080", "/pay?id=7&sig=secret").set_attributes(&mut server);
    assert_eq!(
        attr(&server, "url.full"),
        None,
        "url.full is for CLIENT spans"
    );
    assert_eq!(attr(&server, "url.path"), text("/pay").as_ref());
    assert_eq!(
        attr(&server, "url.query"),
        text("id=7&sig=REDACTED").as_ref()
    );
    assert_eq!(attr(&server, "url.scheme"), text("https").as_ref());

    // A proxy's upstream is the CLIENT span's server, not the authority the caller named.
    let mut upstream = span(SpanKind::Client);
    http::set_upstream(&mut upstream, "http", "::1", 9000, Target::parse("/a?x=1"));
    assert_eq!(
        attr(&upstream, "url.full"),
        text("http://[::1]:9000/a?x=1").as_ref()
    );
    assert_eq!(attr(&upstream, "server.address"), text("::1").as_ref());
    assert_eq!(attr(&upstream, "server.port"), Some(&Value::Int(9000)));
}

#[test]
fn methods_outside_the_known_set_are_other_with_the_original() {
    let attributes = |method| {
        let mut span = span(SpanKind::Server);
        Request {
            method,
            target: "/",
            ..Request::default()
        }
        .set_attributes(&mut span);
        (
            attr(&span, "http.request.method").cloned(),
            attr(&span, "http.request.method_original").cloned(),
        )
    };
    assert_eq!(attributes("PATCH"), (text("PATCH"), None));
    assert_eq!(attributes("QUERY"), (text("QUERY"), None));
    assert_eq!(attributes("get"), (text("_OTHER"), text("get")));
    assert_eq!(attributes("PURGE"), (text("_OTHER"), text("PURGE")));
}

#[test]
fn user_agent_route_and_protocol_version() {
    let mut span = span(SpanKind::Server);
    Request {
        method: "GET",
        target: "/users/7",
        user_agent: Some("curl/8.5.0"),
        route: Some("/users/{id}"),
        ..Request::default()
    }
    .set_attributes(&mut span);
    http::set_protocol_version(&mut span, "HTTP/1.1");
    assert_eq!(
        attr(&span, "user_agent.original"),
        text("curl/8.5.0").as_ref()
    );
    assert_eq!(attr(&span, "http.route"), text("/users/{id}").as_ref());
    assert_eq!(
        attr(&span, "network.protocol.version"),
        text("1.1").as_ref()
    );
    assert_eq!(attr(&span, "url.query"), None, "no query, no url.query");
    assert_eq!(
        attr(&span, "server.address"),
        None,
        "no authority, no server"
    );
}
