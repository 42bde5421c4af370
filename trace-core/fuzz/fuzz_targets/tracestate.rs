#![no_main]
//! `tracestate` parsing; a parsed list re-parses to itself and never exceeds 32 members.
use libfuzzer_sys::fuzz_target;
use trace_core::w3c::{MAX_MEMBERS, TraceState};

fuzz_target!(|data: &[u8]| {
    if let Ok(state) = TraceState::parse(data) {
        assert!(state.len() <= MAX_MEMBERS);
        assert_eq!(TraceState::parse(state.as_str().as_bytes()), Ok(state));
    }
});
