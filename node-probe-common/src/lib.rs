//! # node-probe-common
//!
//! What node-probe's TC programs (`node-probe-ebpf`, `bpfel-unknown-none`) and its agent
//! (`node-probe`) share: the names of the maps and programs, the `#[repr(C)]` types that cross
//! between kernel and user space, and the pure functions both run, so that the code the kernel
//! runs is the code the host tests.
//!
//! `no_std`, no allocation, no dependencies unless the `user` feature adds `aya` (for
//! `aya::Pod` on the map and event types). Every parser takes untrusted bytes and returns a
//! typed error or `None`, never panics: the crate denies indexing, `unwrap` and `panic` outside
//! tests.
//!
//! ## In the kernel
//!
//! Each program is a thin wrapper that calls a `try_` function and returns `TCX_NEXT` (-1,
//! `TC_ACT_UNSPEC` on the clsact fallback) whatever happens: the programs after ours still
//! run and the packet then passes, never altered or dropped. (`TCX_PASS` would pass it too,
//! but would skip those later programs.)
//! Implement [`Packet`] for `TcContext` (its doc shows how) and, per packet:
//!
//! 1. count [`Counter::PacketsSeen`]; [`parse_frame`]; on `Err(e)` count `e.counter()` and pass;
//! 2. `let direction` = [`Direction::FromWorkload`] in [`TAP_INGRESS`],
//!    [`Direction::ToWorkload`] in [`TAP_EGRESS`]; `let key = FlowKey::new(&frame, direction)`;
//!    `let start = packet_start(ctx, &frame)` (one [`START_LEN`]-byte load);
//! 3. look `key` up in [`FLOWS`] (`get_ptr_mut`). If absent and [`opens_flow`], insert
//!    `FlowState::default()` (count [`Counter::FlowInsertFailed`] if that fails, and go on with a
//!    zeroed local `FlowState`); if absent otherwise, count [`Counter::NonHttpPayloads`] when
//!    `frame.payload_len > 0`, and pass;
//! 4. `let seen = state.observe(ctx, &frame, direction, start, bpf_ktime_get_ns())`; count
//!    `Retransmits` / `NonHttpPayloads` from its flags;
//! 5. if `seen.event` is `Some(kind)`: reserve a [`PacketEvent`] in [`EVENTS`] (count
//!    [`Counter::RingbufFull`] on failure), [`capture_prefix`] into its `prefix`, write
//!    [`EventHeader::new`] into its `header`, submit, count [`Counter::EventsEmitted`].
//!
//! Everything here is `#[inline(always)]` where the kernel calls it, loads are of constant
//! size, there are no loops and no recursion. The BPF stack is 512 bytes: the prefix goes
//! straight from the packet into the reserved entry ([`Packet::load_into`]), so the largest
//! values on the stack are the 144-byte [`EventHeader`] and the [`FlowState`] inserted for a
//! new connection; a program built exactly as above used 312 bytes and passed the verifier.
//! The maps: [`EVENTS`] a ring buffer of
//! [`EVENTS_BYTES`], [`FLOWS`] an LRU hash of [`FLOWS_ENTRIES`] `FlowKey → FlowState`,
//! [`COUNTERS`] a per-CPU array of [`Counter::COUNT`] `u64` (no atomics on bpf).
//!
//! ## In the agent
//!
//! Read ring records with [`PacketEvent::decode`] (no `unsafe`), then [`EventHeader::kind`],
//! [`EventHeader::direction`] and [`PacketEvent::prefix`], each an `Option` because the
//! kernel's bytes are not trusted. A request start goes to [`parse_request_head`] (method,
//! target, version, the raw `traceparent` for `trace_core::w3c`); a response start to
//! [`parse_status_line`]; [`Fields`] reads any other header in either. When the start's head is
//! not complete, a [`HeadAssembler`] keyed by the connection takes the start and its
//! [`EventKind::Continuation`]s, dropping retransmits. The end of a response is the
//! `flow.from_workload.last_payload_ns` of the connection's next event, or of its [`FLOWS`]
//! entry (read with the `user` feature's `Pod`) once it is quiet. Kernel times are
//! `CLOCK_MONOTONIC`.

#![cfg_attr(not(test), no_std)]
#![deny(unsafe_code)]
#![cfg_attr(
    not(test),
    deny(
        clippy::indexing_slicing,
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic
    )
)]

mod assemble;
mod capture;
mod counter;
mod event;
mod flow;
mod frame;
mod head;
mod names;
mod packet;
#[cfg(feature = "user")]
mod pod;
mod seq;
mod start;

#[cfg(test)]
mod properties;
#[cfg(test)]
mod testing;

pub use assemble::{Assembly, HeadAssembler, Push};
pub use capture::{Captured, capture_prefix, ends_with_blank_line};
pub use counter::Counter;
pub use event::{Direction, EventHeader, EventKind, PacketEvent};
pub use flow::{FlowKey, FlowState, HalfFlow, Observation, opens_flow};
pub use frame::{Family, Frame, MIN_HEADERS, ParseError, TcpFlags, parse_frame};
pub use head::{
    Field, Fields, HeadError, RequestHead, StatusLine, TraceParentField, Version,
    parse_request_head, parse_status_line,
};
pub use names::{
    CONTINUATIONS, COUNTERS, EVENTS, EVENTS_BYTES, EVENTS_POLL_MS, EVENTS_WAKEUP_BYTES, FLOWS,
    FLOWS_ENTRIES, MAP_NAMES, PREFIX_LEN, PROGRAM_NAMES, TAP_EGRESS, TAP_INGRESS, TC_PASS,
};
pub use packet::Packet;
pub use seq::seq_after;
pub use start::{START_LEN, Start, packet_start, payload_start};
