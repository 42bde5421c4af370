#![no_main]
//! `traceparent` parsing; whatever parses must format and parse back to the same value.
use libfuzzer_sys::fuzz_target;
use trace_core::w3c::TraceParent;

fuzz_target!(|data: &[u8]| {
    if let Ok(parsed) = TraceParent::parse(data) {
        assert_eq!(TraceParent::parse(&parsed.to_bytes()), Ok(parsed));
    }
});
