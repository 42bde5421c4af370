#![no_main]
//! Head reassembly from arbitrary segments (sequence number, captured bytes, payload length):
//! it never holds more than its capacity.
use libfuzzer_sys::fuzz_target;
use node_probe_common::HeadAssembler;

fuzz_target!(|segments: Vec<(u32, Vec<u8>, u16)>| {
    let Some(((seq, bytes, len), rest)) = segments.split_first() else { return };
    let mut asm = HeadAssembler::<256>::new(*seq, bytes, u32::from(*len));
    for (seq, bytes, len) in rest {
        let _ = asm.push(*seq, bytes, u32::from(*len));
        assert!(asm.bytes().len() <= 256);
    }
});
