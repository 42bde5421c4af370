#![no_main]
//! The OpenTelemetry `ot` tracestate value and `th` thresholds.
use libfuzzer_sys::fuzz_target;
use trace_core::sampling::{OtelTraceState, Threshold};

fuzz_target!(|data: &str| {
    let ot = OtelTraceState::parse(data);
    if let Some(th) = ot.threshold {
        assert_eq!(Threshold::parse(&th.to_string()), Some(th));
    }
});
