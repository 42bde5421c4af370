#![no_main]
//! The single `b3` header; a parsed context formats back to a header that parses identically.
use libfuzzer_sys::fuzz_target;
use trace_core::b3::{B3Header, parse_single};

fuzz_target!(|data: &[u8]| {
    if let Ok(B3Header::Context(context)) = parse_single(data) {
        let again = parse_single(context.single_header().as_bytes());
        assert_eq!(again, Ok(B3Header::Context(context)));
    }
});
