#![no_main]
//! Whole-request extraction: `name:value` header lines separated by newlines.
use libfuzzer_sys::fuzz_target;
use trace_core::propagation::extract;

fuzz_target!(|data: &[u8]| {
    let headers: Vec<(String, &[u8])> = data
        .split(|b| *b == b'\n')
        .filter_map(|line| {
            let colon = line.iter().position(|b| *b == b':')?;
            let (name, value) = line.split_at(colon);
            Some((String::from_utf8_lossy(name).into_owned(), value.get(1..)?))
        })
        .collect();
    let incoming = extract(&headers[..]);
    if let Some(parent) = incoming.parent {
        assert!(parent.is_valid());
    }
});
