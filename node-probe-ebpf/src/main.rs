//! # node-probe-ebpf
//!
//! The two TC programs node-probe attaches to the host side of each microVM tap device:
//! [`tap_ingress`] sees what the workload sends, [`tap_egress`] what it receives. Per packet
//! they parse the frame, update the connection's entry in `FLOWS`, and for an HTTP/1 message
//! start, a SYN, a FIN, an RST or a head's continuation write one `PacketEvent` to the `EVENTS`
//! ring; `COUNTERS` counts what they saw, emitted and lost.
//!
//! Every decision is node-probe-common's (parsing, [`FlowState::observe`], the prefix
//! capture), tested on the host; this crate only binds it to the kernel: the maps, the
//! constant-size packet loads, the clock and the ring. Map and program names are the items'
//! identifiers (aya's attributes take no constant), so they are spelled once here, and the
//! agent's test that finds each of `node_probe_common::{MAP_NAMES, PROGRAM_NAMES, TC_PASS}` in
//! the built object catches a rename on one side only. [`tc_pass`], the empty program, is the
//! cost benchmark's baseline; the agent never loads it.
//!
//! Each program returns `TCX_NEXT` whatever happens: the packet is never altered or dropped,
//! and the programs attached after ours still run.
//!
//! Built for any other target (the workspace's host `cargo clippy` and `cargo test`), the same
//! code compiles and is linted, under an empty `main`: only the bpf object is ever loaded.
#![cfg_attr(target_arch = "bpf", no_std, no_main)]
#![deny(clippy::undocumented_unsafe_blocks)]
#![allow(
    clippy::needless_borrows_for_generic_args,
    reason = "map keys and values go by reference, so no copy of them lands on the 512-byte stack"
)]

use core::ptr;

use aya_ebpf::bindings::tcx_action_base::TCX_NEXT;
use aya_ebpf::bindings::{BPF_RB_AVAIL_DATA, BPF_RB_FORCE_WAKEUP, BPF_RB_NO_WAKEUP};
use aya_ebpf::helpers::{bpf_ktime_get_ns, bpf_skb_load_bytes};
use aya_ebpf::macros::{classifier, map};
use aya_ebpf::maps::{LruHashMap, PerCpuArray, RingBuf};
use aya_ebpf::programs::TcContext;
use node_probe_common::{
    Counter, Direction, EVENTS_BYTES, EVENTS_WAKEUP_BYTES, EventHeader, FLOWS_ENTRIES, FlowKey,
    FlowState, Packet, PacketEvent, capture_prefix, opens_flow, packet_start, parse_frame,
};

/// Events for the agent: message starts, continuations and connection life.
#[map]
static EVENTS: RingBuf = RingBuf::with_byte_size(EVENTS_BYTES, 0);

/// Per-connection state, shared by both programs (each writes only its direction's half).
#[map]
static FLOWS: LruHashMap<FlowKey, FlowState> = LruHashMap::with_max_entries(FLOWS_ENTRIES, 0);

/// One `u64` per [`Counter`], per CPU: there are no atomic adds on bpf.
#[map]
static COUNTERS: PerCpuArray<u64> = PerCpuArray::with_max_entries(Counter::COUNT, 0);

/// `BPF_NOEXIST`: when both programs open the same connection at once, the second insert
/// fails and finds the first one's entry instead of resetting it.
const BPF_NOEXIST: u64 = 1;

/// Tap ingress: what the workload transmits.
#[classifier]
fn tap_ingress(ctx: TcContext) -> i32 {
    observe(&ctx, Direction::FromWorkload)
}

/// Tap egress: what the workload receives.
#[classifier]
fn tap_egress(ctx: TcContext) -> i32 {
    observe(&ctx, Direction::ToWorkload)
}

/// The benchmark's baseline, never attached by the agent: an empty TC program that only
/// passes the packet, measured beside [`tap_ingress`] in the same run so that what the kernel's
/// own accounting costs (`BPF_PROG_TEST_RUN`'s timer, `bpf_stats_enabled`'s clock reads) can be
/// subtracted from the figures (node-probe/bench/tc_cost.sh).
#[classifier]
fn tc_pass(_ctx: TcContext) -> i32 {
    TCX_NEXT
}

/// Runs [`try_observe`] and passes the packet whatever it returned, counting why it stopped.
#[inline(always)]
fn observe(ctx: &TcContext, direction: Direction) -> i32 {
    count(Counter::PacketsSeen);
    if let Err(reason) = try_observe(ctx, direction) {
        count(reason);
    }
    TCX_NEXT
}

/// The packet's work; `Err` names the counter of the reason it ended early.
#[inline(always)]
fn try_observe(ctx: &TcContext, direction: Direction) -> Result<(), Counter> {
    let packet = Skb(ctx);
    let frame = parse_frame(&packet).map_err(|e| e.counter())?;
    let key = FlowKey::new(&frame, direction);
    let start = packet_start(&packet, &frame);

    // Initialised only for a new connection: zeroing it for every packet would cost a
    // memset on the hot path.
    let mut fresh: FlowState;
    let state: &mut FlowState = match FLOWS.get_ptr_mut(&key) {
        // SAFETY: the pointer is to this entry's value in the map, valid for this program run;
        // only this direction's program writes the half `observe` changes.
        Some(entry) => unsafe { &mut *entry },
        None if opens_flow(&frame, start) => {
            fresh = FlowState::default();
            // Ignored: failing because the other program inserted first is fine, and any
            // other failure shows as the lookup below finding nothing.
            let _ = FLOWS.insert(&key, &fresh, BPF_NOEXIST);
            match FLOWS.get_ptr_mut(&key) {
                // SAFETY: as above.
                Some(entry) => unsafe { &mut *entry },
                None => {
                    // The event is still worth emitting; only later packets lose the state.
                    count(Counter::FlowInsertFailed);
                    &mut fresh
                }
            }
        }
        None if frame.payload_len > 0 => return Err(Counter::NonHttpPayloads),
        None => return Ok(()),
    };

    // SAFETY: a helper without arguments that only reads the clock.
    let now_ns = unsafe { bpf_ktime_get_ns() };
    let seen = state.observe(&packet, &frame, direction, start, now_ns);
    if seen.retransmit {
        count(Counter::Retransmits);
    }
    if seen.non_http {
        count(Counter::NonHttpPayloads);
    }
    let Some(kind) = seen.event else {
        return Ok(());
    };

    let mut entry = EVENTS
        .reserve::<PacketEvent>(0)
        .ok_or(Counter::RingbufFull)?;
    let event = entry.as_mut_ptr();
    // SAFETY: `event` points at a reserved ring-buffer record of size_of::<PacketEvent>()
    // bytes, 8-aligned, ours until submitted. Its bytes are mapped memory the agent reads as
    // plain bytes (every bit pattern of a [u8; N] is valid), so a reference to the prefix
    // array is sound before it is written.
    let prefix = unsafe { &mut *ptr::addr_of_mut!((*event).prefix) };
    // The prefix goes straight from the packet into the record: on the stack it would not fit.
    let captured = capture_prefix(&packet, &frame, prefix);
    // SAFETY: `ctx.skb.skb` is the program's context pointer, valid for the whole run.
    let ifindex = unsafe { (*ctx.skb.skb).ifindex };
    let header = EventHeader::new(&frame, direction, kind, state, ifindex, now_ns, captured);
    // SAFETY: as for the prefix; the header field is written whole, in place.
    unsafe { ptr::addr_of_mut!((*event).header).write(header) };
    // A wake-up costs the kernel far more than this program (node-probe-common's
    // EVENTS_WAKEUP_BYTES): the agent polls, and is woken only when the ring is filling.
    let flags = if EVENTS.query(u64::from(BPF_RB_AVAIL_DATA)) >= EVENTS_WAKEUP_BYTES {
        BPF_RB_FORCE_WAKEUP
    } else {
        BPF_RB_NO_WAKEUP
    };
    entry.submit(u64::from(flags));
    count(Counter::EventsEmitted);
    Ok(())
}

/// Adds one to `counter` on this CPU.
#[inline(always)]
fn count(counter: Counter) {
    if let Some(value) = COUNTERS.get_ptr_mut(counter.index()) {
        // SAFETY: the per-CPU slot is this CPU's alone while the program runs (programs are
        // not preempted on their CPU), and the pointer is valid for the run.
        unsafe { *value = (*value).wrapping_add(1) };
    }
}

/// The frame behind a `TcContext`, read in constant-size pieces with `bpf_skb_load_bytes`,
/// which also reads the non-linear part of an skb (virtio segments are), so no
/// `bpf_skb_pull_data`.
struct Skb<'a>(&'a TcContext);

impl Packet for Skb<'_> {
    #[inline(always)]
    fn len(&self) -> usize {
        self.0.len() as usize
    }

    #[inline(always)]
    fn load<const N: usize>(&self, offset: usize) -> Option<[u8; N]> {
        self.0.load::<[u8; N]>(offset).ok()
    }

    #[inline(always)]
    fn load_into<const N: usize>(&self, offset: usize, out: &mut [u8; N]) -> bool {
        let Ok(offset) = u32::try_from(offset) else {
            return false;
        };
        // Not TcContext::load_bytes: it clamps the length at run time, which the verifier
        // refuses; N is a constant here.
        // SAFETY: `out` is N writable bytes; the helper checks the offset and length against
        // the skb and writes nothing it cannot read.
        unsafe {
            bpf_skb_load_bytes(
                self.0.skb.skb.cast_const().cast(),
                offset,
                out.as_mut_ptr().cast(),
                N as u32,
            ) == 0
        }
    }
}

/// The object's license as the kernel reads it. The programs call no GPL-only helper, so the
/// crate's own license is declared rather than the "GPL" aya assumes for an object without one.
#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 11] = *b"Apache-2.0\0";

/// No code path of the programs panics; a panic the compiler could not prove unreachable
/// would call this, and its endless loop makes the verifier refuse the program at load time
/// rather than let it run.
#[cfg(target_arch = "bpf")]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo<'_>) -> ! {
    loop {}
}

/// The host build's entry point: there is nothing to run outside the kernel.
#[cfg(not(target_arch = "bpf"))]
fn main() {}
