#![no_main]
//! Frame parsing and everything the kernel runs after it on the same bytes: whatever parses
//! stays inside the frame, and the captured prefix is exactly the payload's first bytes.
use libfuzzer_sys::fuzz_target;
use node_probe_common::{
    Direction, FlowState, PREFIX_LEN, capture_prefix, packet_start, parse_frame,
};

fuzz_target!(|data: &[u8]| {
    let Ok(frame) = parse_frame(data) else { return };
    assert!(frame.payload_end() <= data.len());
    let mut out = [0; PREFIX_LEN];
    let captured = capture_prefix(data, &frame, &mut out);
    let len = usize::from(captured.len);
    assert_eq!(len, frame.payload_len.min(PREFIX_LEN));
    assert_eq!(
        out[usize::from(captured.start)..][..len],
        data[frame.payload_offset..][..len]
    );
    let start = packet_start(data, &frame);
    let mut state = FlowState::default();
    for direction in [Direction::ToWorkload, Direction::FromWorkload, Direction::ToWorkload] {
        let _ = state.observe(data, &frame, direction, start, 1);
    }
});
