#![no_main]
//! HTTP/1 start recognition on the kernel's fixed window.
use libfuzzer_sys::fuzz_target;
use node_probe_common::{START_LEN, payload_start};

fuzz_target!(|head: [u8; START_LEN]| {
    let _ = payload_start(&head);
});
