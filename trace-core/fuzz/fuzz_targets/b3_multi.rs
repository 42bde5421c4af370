#![no_main]
//! The `X-B3-*` headers, each taken from a NUL-separated part of the input.
use libfuzzer_sys::fuzz_target;
use trace_core::b3::{MultiHeaders, parse_multi};

fuzz_target!(|data: &[u8]| {
    let mut parts = data.split(|b| *b == 0).map(Some);
    let mut next = || parts.next().flatten();
    let headers = MultiHeaders {
        trace_id: next(),
        span_id: next(),
        parent_span_id: next(),
        sampled: next(),
        flags: next(),
    };
    let _ = parse_multi(&headers);
});
