//! The names and sizes the eBPF object and the agent must agree on.
//!
//! aya-ebpf takes a map's or program's name from the Rust item (`#[map] static EVENTS`,
//! `#[classifier] fn tap_ingress`), and its attribute accepts only a literal, so the eBPF crate
//! spells each name once as an identifier. The agent looks every name up through these constants;
//! its test that loads the built object and finds each of [`MAP_NAMES`], [`PROGRAM_NAMES`] and
//! [`TC_PASS`] is what catches a rename on one side only.

/// The ring buffer of [`PacketEvent`](crate::PacketEvent)s, kernel to agent.
pub const EVENTS: &str = "EVENTS";
/// The LRU hash of tracked connections: [`FlowKey`](crate::FlowKey) to
/// [`FlowState`](crate::FlowState).
pub const FLOWS: &str = "FLOWS";
/// The per-CPU array of `u64` counters, indexed by [`Counter`](crate::Counter).
pub const COUNTERS: &str = "COUNTERS";
/// Every map name, for the agent's check that the object defines each one.
pub const MAP_NAMES: [&str; 3] = [EVENTS, FLOWS, COUNTERS];

/// The TC program attached to tap ingress: what the workload transmits.
pub const TAP_INGRESS: &str = "tap_ingress";
/// The TC program attached to tap egress: what the workload receives.
pub const TAP_EGRESS: &str = "tap_egress";
/// The programs the agent loads and attaches.
pub const PROGRAM_NAMES: [&str; 2] = [TAP_INGRESS, TAP_EGRESS];
/// The empty TC program that only passes the packet: the cost benchmark's baseline, built
/// into the same object and never loaded by the agent.
pub const TC_PASS: &str = "tc_pass";

/// Bytes of payload copied into each event.
///
/// 192 holds a request line and the first headers a client writes: curl's `GET` with `Host`,
/// `User-Agent`, `Accept` and a `traceparent` is about 150 bytes, and a status line with
/// `Content-Length` well under 100. A `traceparent` further down (behind a proxy's
/// `x-forwarded-*` and `x-request-id`, or after a long request line) is missed, and the
/// agent counts the cut. Only a sidecar that propagated as a black box records the 4-tuple
/// the agent could join on instead, so such a span of an ordinary request loses its parent
/// (the end-to-end test found it: the edge writes `traceparent` after its other headers). The event stays at 336 bytes
/// (`size_of::<PacketEvent>()`), so the ring holds about 6,000 of them.
pub const PREFIX_LEN: usize = 192;

/// Size of the [`EVENTS`] ring in bytes (a power of two, as the kernel requires).
///
/// 2 MiB holds about 6,000 events (336 bytes plus the ring's 8-byte record header): 150 ms at
/// 20,000 requests/s with a request and a response event each, which covers the agent being
/// descheduled for a while on a busy 2-core host before an event is lost.
pub const EVENTS_BYTES: u32 = 1 << 21;

/// Bytes waiting in [`EVENTS`] from which a submit wakes the agent.
///
/// Below it events are submitted without a wake-up and the agent reads the ring every
/// [`EVENTS_POLL_MS`]: a wake-up measured about 8.6 µs per event on this project's machine kind,
/// 30-50 times the program's own work (BENCHMARKS.md). An eighth of the ring (about 780 events)
/// is far more than arrive between two polls at 20,000 requests/s (about 200), so the wake-up
/// is for bursts only, long before the ring is full.
pub const EVENTS_WAKEUP_BYTES: u64 = (EVENTS_BYTES as u64) / 8;

/// How often the agent reads [`EVENTS`] without a wake-up, in milliseconds: the most a span's
/// events wait in the ring while traffic is light.
pub const EVENTS_POLL_MS: u64 = 5;

/// Entries of the [`FLOWS`] LRU hash.
///
/// A core server's microVMs hold at most a few thousand connections each through their
/// sidecars' pools; 65,536 entries (about 10 MiB of kernel memory with the hash's own overhead)
/// keeps every live one. An evicted connection loses only its response-end timing until its
/// next message start re-creates the entry.
pub const FLOWS_ENTRIES: u32 = 65_536;

/// Continuation events emitted after a message start whose head the start's packet did not
/// finish (see [`FlowState::observe`](crate::FlowState::observe)). Three continuations of
/// [`PREFIX_LEN`] bytes bring a head split into small segments (a client that writes the
/// request line and each header separately) to 768 bytes.
pub const CONTINUATIONS: u8 = 3;
