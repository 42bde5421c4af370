//! traceparent extract and inject: trace-core beside opentelemetry_sdk's
//! `TraceContextPropagator`, over the same header carrier, in one run.

use criterion::{Criterion, criterion_group, criterion_main};
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::TraceContextExt;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use std::hint::black_box;
use trace_core::propagation::{Formats, extract, inject};
use trace_core::w3c::TraceParent;

const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

/// A request's headers, as a proxy holds them: a short list of name/value pairs.
struct Headers(Vec<(&'static str, &'static str)>);

impl Headers {
    fn typical() -> Self {
        Self(vec![
            ("host", "api.example.com"),
            ("user-agent", "curl/8.5.0"),
            ("accept", "*/*"),
            ("traceparent", TRACEPARENT),
        ])
    }
}

impl Extractor for Headers {
    fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| *v)
    }

    fn keys(&self) -> Vec<&str> {
        self.0.iter().map(|(k, _)| *k).collect()
    }
}

/// The outgoing header block a proxy serialises for the next hop, reused between requests.
/// Both implementations write into the same sink, so each pays only what its API costs.
#[derive(Default)]
struct HeaderBlock(Vec<u8>);

impl HeaderBlock {
    fn write(&mut self, name: &str, value: &str) {
        self.0.extend_from_slice(name.as_bytes());
        self.0.extend_from_slice(b": ");
        self.0.extend_from_slice(value.as_bytes());
        self.0.extend_from_slice(b"\r\n");
    }
}

impl Injector for HeaderBlock {
    fn set(&mut self, key: &str, value: String) {
        self.write(key, &value);
    }
}

fn extract_benches(c: &mut Criterion) {
    let headers = Headers::typical();
    let otel = TraceContextPropagator::new();
    let mut group = c.benchmark_group("traceparent_extract");
    group.bench_function("trace_core", |b| {
        b.iter(|| black_box(extract(black_box(&headers.0[..]))).parent)
    });
    group.bench_function("opentelemetry_sdk", |b| {
        b.iter(|| {
            let cx = otel.extract(black_box(&headers));
            black_box(cx.span().span_context().trace_id())
        })
    });
    group.bench_function("trace_core_parse_only", |b| {
        b.iter(|| TraceParent::parse(black_box(TRACEPARENT.as_bytes())))
    });
    group.finish();
}

fn inject_benches(c: &mut Criterion) {
    let headers = Headers::typical();
    let ours = extract(&headers.0[..]).parent.expect("valid");
    let otel = TraceContextPropagator::new();
    let otel_cx = otel.extract(&headers);
    let mut out = HeaderBlock(Vec::with_capacity(1024));
    let mut group = c.benchmark_group("traceparent_inject");
    group.bench_function("trace_core", |b| {
        b.iter(|| {
            out.0.clear();
            inject(
                black_box(&ours),
                None,
                false,
                Formats::default(),
                |name, value| out.write(name, value),
            );
        })
    });
    group.bench_function("opentelemetry_sdk", |b| {
        b.iter(|| {
            out.0.clear();
            otel.inject_context(black_box(&otel_cx), &mut out);
        })
    });
    let parsed = TraceParent::parse(TRACEPARENT.as_bytes()).expect("valid");
    group.bench_function("trace_core_format_only", |b| {
        b.iter(|| black_box(&parsed).to_bytes())
    });
    group.finish();
}

/// trace-core's lowercase-only SWAR decoder beside the `hex` crate (which also accepts
/// uppercase, so it could not be used for W3C as is), on a trace ID.
fn hex_decode(c: &mut Criterion) {
    let digits = b"4bf92f3577b34da6a3ce929d0e0e4736";
    let mut group = c.benchmark_group("hex_decode_trace_id");
    group.bench_function("trace_core", |b| {
        b.iter(|| trace_core::hex::decode::<16>(black_box(digits)))
    });
    group.bench_function("hex_crate", |b| {
        b.iter(|| {
            let mut out = [0u8; 16];
            hex::decode_to_slice(black_box(digits), &mut out).map(|()| out)
        })
    });
    group.finish();
}

criterion_group!(benches, extract_benches, inject_benches, hex_decode);
criterion_main!(benches);
