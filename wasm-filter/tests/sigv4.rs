//! A request really signed with AWS SigV4 passes the filter with every header unchanged, the
//! signature still verifies, and the span carries the upstream 4-tuple for node-probe.

mod support;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use proxy_wasm_host::HeaderMap;
use support::{Harness, Request};
use trace_core::otlp::decode_request;
use trace_core::otlp::proto::common::v1::any_value::Value;

const HOST: &str = "examplebucket.s3.eu-west-1.amazonaws.com";
const PATH: &str = "/photos/cat.jpg?versionId=7";
const CALLER_TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

fn signing_time() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_763_700_000)
}

/// Signs GET `PATH` with `headers`; returns the headers signing adds and the signature.
fn sign_request(headers: &[(String, String)]) -> (Vec<(String, String)>, String) {
    let identity: Identity = Credentials::new(
        "AKIDEXAMPLE",
        "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
        None,
        None,
        "threadline-test",
    )
    .into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region("eu-west-1")
        .name("s3")
        .time(signing_time())
        .settings(SigningSettings::default())
        .build()
        .expect("signing parameters")
        .into();
    let request = SignableRequest::new(
        "GET",
        format!("https://{HOST}{PATH}"),
        headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        SignableBody::UnsignedPayload,
    )
    .expect("signable request");
    let (instructions, signature) = sign(request, &params).expect("signed").into_parts();
    let added = instructions
        .headers()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    (added, signature)
}

/// What an S3 endpoint does: recompute the signature over the request as received.
fn verifies(received: &[(Vec<u8>, Vec<u8>)]) -> bool {
    let text = |b: &[u8]| String::from_utf8(b.to_vec()).expect("ASCII header");
    let added = ["authorization", "x-amz-date", "x-amz-content-sha256"];
    let signed_input: Vec<(String, String)> = received
        .iter()
        .filter(|(k, _)| !k.starts_with(b":") && !added.contains(&text(k).as_str()))
        .map(|(k, v)| (text(k), text(v)))
        .collect();
    let claimed = received
        .iter()
        .find(|(k, _)| k == b"authorization")
        .map(|(_, v)| text(v))
        .expect("authorization header");
    let (recomputed_headers, signature) = sign_request(&signed_input);
    let dates_match = recomputed_headers
        .iter()
        .filter(|(k, _)| k != "authorization")
        .all(|(k, v)| {
            received
                .iter()
                .any(|(rk, rv)| text(rk) == *k && text(rv) == *v)
        });
    claimed.ends_with(&format!("Signature={signature}")) && dates_match
}

fn signed_request() -> Request {
    let signed_input = vec![
        ("host".to_owned(), HOST.to_owned()),
        ("traceparent".to_owned(), CALLER_TRACEPARENT.to_owned()),
        ("x-custom".to_owned(), "keep me".to_owned()),
    ];
    let (added, _) = sign_request(&signed_input);
    let mut headers: Vec<(String, String)> = vec![
        (":method".into(), "GET".into()),
        (":path".into(), PATH.into()),
        (":authority".into(), HOST.into()),
        (":scheme".into(), "https".into()),
    ];
    headers.extend(signed_input);
    headers.extend(added);
    let borrowed: Vec<(&str, &[u8])> = headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_bytes()))
        .collect();
    Request::new(&borrowed).with_envoy_attributes()
}

#[test]
fn a_signed_request_passes_unchanged_and_still_verifies() {
    let request = signed_request();
    let before = request.pairs();
    assert!(
        verifies(&before),
        "the signed request verifies before the filter"
    );
    let authorization = request.header("authorization").unwrap();
    assert!(authorization.starts_with("AWS4-HMAC-SHA256 "));
    assert!(
        authorization.contains("traceparent"),
        "traceparent is one of the signed headers"
    );

    let mut harness = Harness::start("{}").expect("configured");
    let (_, upstream) = harness.request(request);
    assert_eq!(upstream.pairs(), before, "every header byte for byte");
    assert!(
        verifies(&upstream.pairs()),
        "the signature still verifies after the filter"
    );

    harness.tick_after_ms(1000);
    let callouts = harness.take_callouts();
    let request = decode_request(&callouts[0].body).unwrap();
    let span = &request.resource_spans[0].scope_spans[0].spans[0];
    let attr = |key: &str| trace_core::otlp::attribute(span, key).cloned();
    assert_eq!(
        attr("threadline.propagation"),
        Some(Value::StringValue("black_box".into()))
    );
    assert_eq!(
        attr("network.local.address"),
        Some(Value::StringValue("10.2.0.1".into()))
    );
    assert_eq!(attr("network.local.port"), Some(Value::IntValue(40112)));
    assert_eq!(
        attr("network.peer.address"),
        Some(Value::StringValue("10.2.0.5".into()))
    );
    assert_eq!(attr("network.peer.port"), Some(Value::IntValue(8080)));
    let parent: String = span
        .parent_span_id
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(
        parent, "00f067aa0ba902b7",
        "the span is still a child of the caller"
    );
}

#[test]
fn a_rewritten_traceparent_would_break_the_signature() {
    let mut tampered = signed_request();
    tampered
        .headers
        .set(
            b"traceparent",
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-1111111111111111-01",
        )
        .unwrap();
    assert!(
        !verifies(&tampered.pairs()),
        "the verification used above can fail"
    );
}

#[test]
fn a_presigned_url_passes_unchanged() {
    let path = "/key?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-SignedHeaders=host&X-Amz-Signature=abc";
    let request = Request::new(&[
        (":method", b"GET"),
        (":path", path.as_bytes()),
        (":authority", HOST.as_bytes()),
        ("traceparent", CALLER_TRACEPARENT.as_bytes()),
    ])
    .with_envoy_attributes();
    let before = request.pairs();
    let mut harness = Harness::start("{}").expect("configured");
    let (_, upstream) = harness.request(request);
    assert_eq!(upstream.pairs(), before);
}
