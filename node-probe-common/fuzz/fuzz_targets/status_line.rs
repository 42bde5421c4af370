#![no_main]
//! Status line, then every header field after it.
use libfuzzer_sys::fuzz_target;
use node_probe_common::{Fields, parse_status_line};

fuzz_target!(|data: &[u8]| {
    if let Some(line) = parse_status_line(data) {
        assert!((0..1000).contains(&line.code));
        for field in Fields::new(line.fields) {
            assert!(!field.name.is_empty());
        }
    }
    let _ = Fields::new(data).count();
});
