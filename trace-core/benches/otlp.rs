//! OTLP encoding of a typical server span with 12 attributes: trace-core's direct encoder
//! beside building and encoding the opentelemetry-proto (prost) messages, in one run.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{
    AnyValue, InstrumentationScope, KeyValue as PbKeyValue, any_value,
};
use opentelemetry_proto::tonic::resource::v1::Resource as PbResource;
use opentelemetry_proto::tonic::trace::v1::{
    ResourceSpans, ScopeSpans, Span as PbSpan, Status as PbStatus,
};
use prost::Message;
use std::hint::black_box;
use trace_core::span::{KeyValue, Resource, Scope, Span, SpanKind, Value};
use trace_core::{IdGenerator, SpanContext, TraceFlags, semconv};

const BATCH: usize = 100;

fn typical_span(ids: &mut IdGenerator) -> Span {
    let mut span = Span {
        context: SpanContext {
            trace_id: ids.trace_id(),
            span_id: ids.span_id(),
            flags: TraceFlags::SAMPLED.with_random(true),
            trace_state: Default::default(),
        },
        parent_span_id: Some(ids.span_id()),
        parent_is_remote: true,
        name: "GET /api/v1/users/{id}".into(),
        kind: SpanKind::Server,
        start_unix_nano: 1_700_000_000_000_000_000,
        end_unix_nano: 1_700_000_000_004_000_000,
        ..Span::default()
    };
    let attributes: [(&'static str, Value); 12] = [
        (semconv::HTTP_REQUEST_METHOD, "GET".into()),
        (semconv::URL_PATH, "/api/v1/users/12345".to_string().into()),
        (semconv::URL_SCHEME, "https".into()),
        (semconv::HTTP_ROUTE, "/api/v1/users/{id}".into()),
        (semconv::HTTP_RESPONSE_STATUS_CODE, 200i64.into()),
        (semconv::SERVER_ADDRESS, "api.example.com".into()),
        (semconv::SERVER_PORT, 443i64.into()),
        (semconv::CLIENT_ADDRESS, "203.0.113.7".to_string().into()),
        (semconv::NETWORK_PROTOCOL_VERSION, "1.1".into()),
        (
            semconv::USER_AGENT_ORIGINAL,
            "curl/8.5.0".to_string().into(),
        ),
        (semconv::threadline::LOCATION, "fra1".into()),
        (semconv::threadline::DATACENTER, "eu-central".into()),
    ];
    for (key, value) in attributes {
        span.set_attribute(key, value);
    }
    span
}

fn to_proto_value(value: &Value) -> any_value::Value {
    match value {
        Value::Str(s) => any_value::Value::StringValue(s.to_string()),
        Value::Int(i) => any_value::Value::IntValue(*i),
        Value::Bool(b) => any_value::Value::BoolValue(*b),
        Value::Double(d) => any_value::Value::DoubleValue(*d),
    }
}

fn to_proto_attributes(attributes: &[KeyValue]) -> Vec<PbKeyValue> {
    attributes
        .iter()
        .map(|kv| PbKeyValue {
            key: kv.key.to_string(),
            value: Some(AnyValue {
                value: Some(to_proto_value(&kv.value)),
            }),
            ..Default::default()
        })
        .collect()
}

/// What using the prost types on the data path costs: build the messages, then encode.
fn prost_encode(resource: &Resource, spans: &[Span], buf: &mut Vec<u8>) {
    let request = ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(PbResource {
                attributes: to_proto_attributes(&resource.attributes),
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: "threadline".into(),
                    ..Default::default()
                }),
                spans: spans
                    .iter()
                    .map(|s| PbSpan {
                        trace_id: s.context.trace_id.as_bytes().to_vec(),
                        span_id: s.context.span_id.as_bytes().to_vec(),
                        parent_span_id: s
                            .parent_span_id
                            .map(|p| p.as_bytes().to_vec())
                            .unwrap_or_default(),
                        flags: u32::from(s.context.flags.to_wire()) | 0x300,
                        name: s.name.to_string(),
                        kind: 2,
                        start_time_unix_nano: s.start_unix_nano,
                        end_time_unix_nano: s.end_unix_nano,
                        attributes: to_proto_attributes(&s.attributes),
                        status: Some(PbStatus::default()),
                        ..Default::default()
                    })
                    .collect(),
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    };
    request.encode(buf).expect("buffer grows");
}

fn encoding(c: &mut Criterion) {
    let mut ids = IdGenerator::from_seed(5);
    let spans: Vec<Span> = (0..BATCH).map(|_| typical_span(&mut ids)).collect();
    let resource = Resource {
        attributes: vec![KeyValue::new(semconv::SERVICE_NAME, "edge-proxy")],
    };
    let scope = Scope::default();
    let mut buf = Vec::with_capacity(64 * 1024);
    let mut group = c.benchmark_group("otlp_encode_batch_of_100");
    group.throughput(Throughput::Elements(BATCH as u64));
    group.bench_function("trace_core", |b| {
        b.iter(|| {
            buf.clear();
            trace_core::otlp::encode_request(&resource, &scope, black_box(&spans), &mut buf);
        })
    });
    group.bench_function("opentelemetry_proto_prost", |b| {
        b.iter(|| {
            buf.clear();
            prost_encode(&resource, black_box(&spans), &mut buf);
        })
    });
    group.finish();
    let one = &spans[..1];
    let mut group = c.benchmark_group("otlp_encode_single_span");
    group.throughput(Throughput::Elements(1));
    group.bench_function("trace_core", |b| {
        b.iter(|| {
            buf.clear();
            trace_core::otlp::encode_request(&resource, &scope, black_box(one), &mut buf);
        })
    });
    group.finish();
}

criterion_group!(benches, encoding);
criterion_main!(benches);
