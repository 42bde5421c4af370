#![no_main]
//! SigV4 detection from an Authorization value and a query, split at the first NUL.
use libfuzzer_sys::fuzz_target;
use trace_core::sigv4::{detect, is_signed};

fuzz_target!(|data: &[u8]| {
    let mut parts = data.splitn(2, |b| *b == 0);
    let (authorization, query) = (parts.next(), parts.next());
    assert_eq!(detect(authorization, query).is_some(), is_signed(authorization, query));
});
