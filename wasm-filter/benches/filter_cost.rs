//! The filter's added cost per request, beside an empty proxy-wasm filter, in the same real
//! host and the same run. Each filter serves the same request (a W3C caller, six headers,
//! Envoy's attributes) through every callback; every 256 requests the root ticks and the
//! collector answers, so export is part of the cost. Host calls per request are printed.
//! Two more cases show where the cost goes: an unsampled request (context read, IDs, one
//! header rewrite, no span) and a request without context that the filter ignores.

#[path = "../tests/support/mod.rs"]
mod support;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use support::{EMPTY_FILTER, FILTER, Harness, Request};

const FLUSH_EVERY: u64 = 256;

fn request() -> Request {
    Request::get(
        "/users/42",
        &[(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        )],
    )
}

/// Serves one request, and flushes after every `FLUSH_EVERY`.
fn serve(harness: &mut Harness, served: &mut u64, request: Request) {
    harness.request(request);
    *served += 1;
    if served.is_multiple_of(FLUSH_EVERY) {
        harness.tick_after_ms(1000);
        for callout in harness.take_callouts() {
            harness.respond(&callout, Some(200));
        }
    }
}

fn host_calls_per_request(path: &str) -> f64 {
    let mut harness = Harness::start_file(path, "{}", Request::default()).expect("started");
    let mut served = 0;
    let before = harness.host_calls.get();
    for _ in 0..FLUSH_EVERY {
        serve(&mut harness, &mut served, request());
    }
    (harness.host_calls.get() - before) as f64 / FLUSH_EVERY as f64
}

/// A benchmark case: its name, the filter file, the configuration and the request it serves.
type Variant = (&'static str, &'static str, &'static str, fn() -> Request);

fn filter_cost(c: &mut Criterion) {
    for (name, path) in [
        ("threadline_filter", FILTER),
        ("empty_filter", EMPTY_FILTER),
    ] {
        eprintln!(
            "host calls per request, {name}: {:.2}",
            host_calls_per_request(path)
        );
    }
    let mut group = c.benchmark_group("request_through_filter");
    let unsampled = || {
        Request::get(
            "/users/42",
            &[(
                "traceparent",
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00",
            )],
        )
    };
    let plain = || Request::get("/users/42", &[]);
    let variants: [Variant; 4] = [
        ("threadline_filter", FILTER, "{}", request),
        ("unsampled", FILTER, "{}", unsampled),
        (
            "ignore_no_context",
            FILTER,
            r#"{"without_context":"ignore"}"#,
            plain,
        ),
        ("empty_filter", EMPTY_FILTER, "{}", request),
    ];
    for (name, path, cfg, make) in variants {
        let mut harness = Harness::start_file(path, cfg, Request::default()).expect("started");
        let mut served = 0;
        group.bench_function(name, |b| {
            b.iter_batched(
                make,
                |r| serve(&mut harness, &mut served, r),
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

criterion_group!(benches, filter_cost);
criterion_main!(benches);
