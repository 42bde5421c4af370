#![no_main]
//! Request line and header fields from a captured prefix that may end anywhere: every cut of
//! a parsed head parses to a head whose target is a prefix of the full one.
use libfuzzer_sys::fuzz_target;
use node_probe_common::parse_request_head;

fuzz_target!(|data: &[u8]| {
    let Ok(full) = parse_request_head(data) else { return };
    for cut in 0..data.len() {
        if let Ok(head) = parse_request_head(&data[..cut]) {
            assert_eq!(head.method, full.method);
            assert!(full.target.starts_with(head.target));
        }
    }
});
