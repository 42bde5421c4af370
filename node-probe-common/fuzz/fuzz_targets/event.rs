#![no_main]
//! Decoding a ring-buffer record the agent does not trust.
use libfuzzer_sys::fuzz_target;
use node_probe_common::PacketEvent;

fuzz_target!(|data: &[u8]| {
    if let Some(event) = PacketEvent::decode(data) {
        let _ = (event.header.kind(), event.header.direction(), event.prefix());
    }
});
