//! Our OTLP bytes, decoded with the official protobuf definitions (opentelemetry-proto).

use trace_core::otlp::proto::common::v1::any_value;
use trace_core::otlp::{decode_request, encode_request};
use trace_core::span::{
    Event, KeyValue, Link, Resource, Scope, Span, SpanKind, Status, StatusCode,
};
use trace_core::{SpanContext, SpanId, TraceFlags, TraceId, semconv};

fn sample_span() -> Span {
    let mut span = Span {
        context: SpanContext {
            trace_id: TraceId::from_hex(b"4bf92f3577b34da6a3ce929d0e0e4736").unwrap(),
            span_id: SpanId::from_hex(b"00f067aa0ba902b7").unwrap(),
            flags: TraceFlags::SAMPLED.with_random(true),
            trace_state: trace_core::w3c::TraceState::parse(b"ot=th:8,rojo=1").unwrap(),
        },
        parent_span_id: Some(SpanId::from_hex(b"05e3ac9a4f6e3b90").unwrap()),
        parent_is_remote: true,
        name: "GET /users/{id}".into(),
        kind: SpanKind::Server,
        start_unix_nano: 1_700_000_000_000_000_000,
        end_unix_nano: 1_700_000_000_250_000_000,
        ..Span::default()
    };
    span.set_attribute(semconv::HTTP_REQUEST_METHOD, "GET");
    span.set_attribute(semconv::HTTP_RESPONSE_STATUS_CODE, 503i64);
    span.set_attribute(semconv::threadline::DEBUG, false);
    span.set_attribute("threadline.ratio", 0.25);
    span.set_attribute("empty", "");
    span.set_attribute("negative", -7i64);
    span.set_attribute("long", "x".repeat(500));
    span.add_event(Event {
        time_unix_nano: 1_700_000_000_100_000_000,
        name: "retry".into(),
        attributes: vec![KeyValue::new("attempt", 2i64)],
    });
    span.add_link(Link {
        context: SpanContext {
            trace_id: TraceId::from_bytes([7; 16]),
            span_id: SpanId::from_bytes([8; 8]),
            flags: TraceFlags::SAMPLED,
            trace_state: Default::default(),
        },
        attributes: vec![KeyValue::new(semconv::threadline::UNTRUSTED_PARENT, true)],
    });
    span.status = Status {
        code: StatusCode::Error,
        message: "upstream failed".into(),
    };
    span
}

#[test]
fn every_field_survives_the_official_decoder() {
    let resource = Resource {
        attributes: vec![KeyValue::new(semconv::SERVICE_NAME, "edge-proxy")],
    };
    let mut buf = Vec::new();
    let root = Span {
        parent_span_id: None,
        parent_is_remote: false,
        kind: SpanKind::Client,
        status: Status::default(),
        ..sample_span()
    };
    encode_request(
        &resource,
        &Scope::default(),
        &[sample_span(), root],
        &mut buf,
    );

    let request = decode_request(&buf).expect("decodes with opentelemetry-proto");
    assert_eq!(request.resource_spans.len(), 1);
    let rs = &request.resource_spans[0];
    let resource_attrs = &rs.resource.as_ref().unwrap().attributes;
    assert_eq!(resource_attrs[0].key, "service.name");
    assert_eq!(
        resource_attrs[0].value.as_ref().unwrap().value,
        Some(any_value::Value::StringValue("edge-proxy".into()))
    );
    let scope = &rs.scope_spans[0];
    assert_eq!(scope.scope.as_ref().unwrap().name, "threadline");
    assert_eq!(scope.spans.len(), 2);

    let s = &scope.spans[0];
    assert_eq!(hex(&s.trace_id), "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(hex(&s.span_id), "00f067aa0ba902b7");
    assert_eq!(hex(&s.parent_span_id), "05e3ac9a4f6e3b90");
    assert_eq!(s.trace_state, "ot=th:8,rojo=1");
    assert_eq!(s.name, "GET /users/{id}");
    assert_eq!(s.kind, 2);
    assert_eq!(s.start_time_unix_nano, 1_700_000_000_000_000_000);
    assert_eq!(s.end_time_unix_nano, 1_700_000_000_250_000_000);
    assert_eq!(s.flags, 0x03 | 0x100 | 0x200);
    let values: Vec<(&str, any_value::Value)> = s
        .attributes
        .iter()
        .map(|kv| (kv.key.as_str(), kv.value.clone().unwrap().value.unwrap()))
        .collect();
    assert_eq!(
        values,
        [
            (
                "http.request.method",
                any_value::Value::StringValue("GET".into())
            ),
            ("http.response.status_code", any_value::Value::IntValue(503)),
            ("threadline.debug", any_value::Value::BoolValue(false)),
            ("threadline.ratio", any_value::Value::DoubleValue(0.25)),
            ("empty", any_value::Value::StringValue(String::new())),
            ("negative", any_value::Value::IntValue(-7)),
            ("long", any_value::Value::StringValue("x".repeat(500))),
        ]
    );
    assert_eq!(s.events.len(), 1);
    assert_eq!(s.events[0].name, "retry");
    assert_eq!(s.events[0].time_unix_nano, 1_700_000_000_100_000_000);
    assert_eq!(s.links.len(), 1);
    assert_eq!(hex(&s.links[0].trace_id), "07".repeat(16));
    assert_eq!(s.links[0].flags, 0x01 | 0x100 | 0x200);
    let status = s.status.as_ref().unwrap();
    assert_eq!(status.code, 2);
    assert_eq!(status.message, "upstream failed");

    let root = &scope.spans[1];
    assert!(root.parent_span_id.is_empty());
    assert_eq!(root.kind, 3);
    assert_eq!(root.flags, 0x03 | 0x100);
    assert!(root.status.is_none());
}

#[test]
fn a_large_batch_round_trips() {
    let spans: Vec<Span> = (0..500u64)
        .map(|i| Span {
            start_unix_nano: i,
            end_unix_nano: i + 1,
            ..sample_span()
        })
        .collect();
    let mut buf = Vec::new();
    encode_request(&Resource::default(), &Scope::default(), &spans, &mut buf);
    let request = decode_request(&buf).unwrap();
    let decoded = &request.resource_spans[0].scope_spans[0].spans;
    assert_eq!(decoded.len(), 500);
    assert!(
        decoded
            .iter()
            .enumerate()
            .all(|(i, s)| s.start_time_unix_nano == i as u64)
    );
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
