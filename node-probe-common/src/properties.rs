//! Property tests: no parser panics on arbitrary bytes, and crafted frames parse back to what
//! was built.

use proptest::collection::vec;
use proptest::prelude::*;
use std::vec::Vec;

use crate::testing::{FrameBuilder, Ip};
use crate::*;

fn any_ip() -> impl Strategy<Value = Ip> {
    prop_oneof![
        (any::<[u8; 4]>(), any::<[u8; 4]>()).prop_map(|(src, dst)| Ip::V4 { src, dst }),
        (any::<[u8; 16]>(), any::<[u8; 16]>()).prop_map(|(src, dst)| Ip::V6 { src, dst }),
    ]
}

prop_compose! {
    fn any_frame()(
        ip in any_ip(),
        vlans in vec(prop_oneof![Just(0x8100u16), Just(0x88a8)], 0..=2),
        ip_words in 0usize..=10,
        tcp_words in 0usize..=10,
        ports in any::<(u16, u16)>(),
        seq_ack in any::<(u32, u32)>(),
        flags in any::<u8>(),
        payload in vec(any::<u8>(), 0..400),
        padding in 0usize..64,
    ) -> FrameBuilder {
        let mut builder = FrameBuilder::new(ip)
            .vlans(&vlans)
            .tcp_options(&vec![1; tcp_words * 4])
            .ports(ports.0, ports.1)
            .seq_ack(seq_ack.0, seq_ack.1)
            .flags(flags)
            .payload(&payload)
            .padding(padding);
        if let Ip::V4 { .. } = ip {
            builder = builder.ip_options(&vec![1; ip_words * 4]);
        }
        builder
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    #[test]
    fn parse_frame_never_panics(bytes in vec(any::<u8>(), 0..200)) {
        if let Ok(frame) = parse_frame(&bytes[..]) {
            prop_assert!(frame.payload_end() <= bytes.len());
            prop_assert!(frame.payload_offset >= MIN_HEADERS);
            let mut out = [0; PREFIX_LEN];
            let captured = capture_prefix(&bytes[..], &frame, &mut out);
            let len = usize::from(captured.len);
            prop_assert_eq!(len, frame.payload_len.min(PREFIX_LEN));
            let got = &out[usize::from(captured.start)..][..len];
            prop_assert_eq!(got, &bytes[frame.payload_offset..][..len]);
            let _ = packet_start(&bytes[..], &frame);
            let _ = ends_with_blank_line(&bytes[..], &frame);
        }
    }

    #[test]
    fn crafted_frames_round_trip(builder in any_frame()) {
        let built = builder.build();
        let frame = parse_frame(&built.bytes[..]);
        prop_assert_eq!(frame, Ok(built.expected));
        let mut out = [0; PREFIX_LEN];
        let captured = capture_prefix(&built.bytes[..], &built.expected, &mut out);
        let payload = &built.bytes[built.expected.payload_offset..built.expected.payload_end()];
        let len = payload.len().min(PREFIX_LEN);
        prop_assert_eq!(&out[usize::from(captured.start)..][..usize::from(captured.len)], &payload[..len]);
    }

    #[test]
    fn cut_crafted_frames_are_errors_or_the_same_frame(builder in any_frame(), cut in any::<prop::sample::Index>()) {
        let built = builder.build();
        let cut = cut.index(built.bytes.len() + 1);
        match parse_frame(&built.bytes[..cut]) {
            Ok(frame) => prop_assert_eq!(frame, built.expected),
            Err(e) => prop_assert_eq!(e, ParseError::Truncated),
        }
    }

    #[test]
    fn payload_start_never_panics(head in any::<[u8; START_LEN]>()) {
        let _ = payload_start(&head);
    }

    #[test]
    fn a_request_start_is_a_request_head(
        method in prop::sample::select(&["GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH", "QUERY"][..]),
        target in "[!-~]{1,40}",
        rest in vec(any::<u8>(), 0..40),
    ) {
        let mut bytes = format!("{method} {target}").into_bytes();
        bytes.extend_from_slice(&rest);
        let mut head = [0; START_LEN];
        let n = bytes.len().min(START_LEN);
        head[..n].copy_from_slice(&bytes[..n]);
        prop_assert_eq!(payload_start(&head), Some(Start::Request));
        // What the kernel recognises, user space parses at least as far as the method.
        let parsed = parse_request_head(&bytes);
        prop_assert!(parsed.is_ok_and(|h| h.method == method.as_bytes()) || parsed.is_err_and(|e| e != HeadError::Method));
    }

    #[test]
    fn head_parsers_never_panic(bytes in vec(any::<u8>(), 0..300)) {
        if let Ok(head) = parse_request_head(&bytes) {
            prop_assert!(head.complete_line || head.fields.is_empty());
        }
        let _ = parse_status_line(&bytes);
        let mut fields = Fields::new(&bytes);
        for field in fields.by_ref() {
            prop_assert!(!field.name.is_empty());
        }
        let _ = fields.rest();
    }

    #[test]
    fn head_parsers_on_head_like_bytes(
        start in prop::sample::select(&["GET / HTTP/1.1\r\n", "HTTP/1.1 200 OK\r\n", "POST /x HTTP/1.0\n"][..]),
        lines in vec("[a-zA-Z:\t \r\n-]{0,20}", 0..8),
    ) {
        let bytes = format!("{start}{}", lines.concat()).into_bytes();
        for cut in 0..=bytes.len() {
            let _ = parse_request_head(&bytes[..cut]);
            let _ = parse_status_line(&bytes[..cut]);
        }
    }

    #[test]
    fn assembler_never_panics_and_stays_bounded(
        first in (any::<u32>(), vec(any::<u8>(), 0..64), 0u32..100),
        pushes in vec((any::<u32>(), vec(any::<u8>(), 0..64), 0u32..100), 0..10),
    ) {
        let mut asm = HeadAssembler::<128>::new(first.0, &first.1, first.2);
        for (seq, bytes, len) in pushes {
            let _ = asm.push(seq, &bytes, len);
            prop_assert!(asm.bytes().len() <= 128);
        }
    }

    #[test]
    fn assembler_rebuilds_any_split(
        head in vec(any::<u8>(), 1..300),
        cuts in vec(any::<prop::sample::Index>(), 0..6),
        seq in any::<u32>(),
    ) {
        let mut points: Vec<usize> = cuts.iter().map(|c| c.index(head.len())).collect();
        points.sort_unstable();
        points.dedup();
        let mut segments = Vec::new();
        let mut last = 0;
        for &p in points.iter().chain([head.len()].iter()) {
            if p > last {
                segments.push((last, &head[last..p]));
                last = p;
            }
        }
        let (_, first) = segments[0];
        let mut asm = HeadAssembler::<512>::new(seq, first, first.len() as u32);
        for &(offset, segment) in &segments[1..] {
            if asm.state() != Assembly::Open {
                break;
            }
            // Each segment twice: the second is a retransmit.
            let at = seq.wrapping_add(offset as u32);
            prop_assert_eq!(asm.push(at, segment, segment.len() as u32), Push::Appended);
            let again = asm.push(at, segment, segment.len() as u32);
            let want = if asm.state() == Assembly::Open { Push::Retransmit } else { Push::Closed };
            prop_assert_eq!(again, want);
        }
        prop_assert!(head.starts_with(asm.bytes()));
        if asm.state() == Assembly::Open {
            prop_assert_eq!(asm.bytes(), &head[..]);
        }
    }

    #[test]
    fn observe_never_panics(
        packets in vec((any::<bool>(), any::<u32>(), any::<u8>(), vec(any::<u8>(), 0..250)), 0..20),
    ) {
        let mut state = FlowState::default();
        let mut now = 0;
        for (to_workload, seq, flags, payload) in packets {
            let bytes = FrameBuilder::ipv4().seq_ack(seq, 0).flags(flags).payload(&payload).build().bytes;
            let frame = parse_frame(&bytes[..]).unwrap();
            let direction = if to_workload { Direction::ToWorkload } else { Direction::FromWorkload };
            now += 1;
            let start = packet_start(&bytes[..], &frame);
            let seen = state.observe(&bytes[..], &frame, direction, start, now);
            prop_assert!(state.from_workload.continuations <= CONTINUATIONS);
            prop_assert!(state.to_workload.continuations <= CONTINUATIONS);
            prop_assert!(!(seen.retransmit && seen.event.is_some()));
            if start.is_some() && !seen.retransmit && !frame.flags.has(TcpFlags::RST) {
                prop_assert_eq!(seen.event, start.map(EventKind::from));
            }
        }
    }

    #[test]
    fn decode_never_panics(bytes in vec(any::<u8>(), 0..400)) {
        if let Some(event) = PacketEvent::decode(&bytes) {
            let _ = (event.header.kind(), event.header.direction(), event.prefix());
        }
    }
}
