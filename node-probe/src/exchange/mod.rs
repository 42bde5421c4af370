//! Kernel events to exchanges, and exchanges to black-box spans.
//!
//! - [`builder`]: the connection table, its bounds, and the VMs' in-flight server exchanges;
//! - [`connection`]: one connection's requests paired with its responses, in order;
//! - [`request`]: what a captured request or response head says;
//! - [`interfaces`]: an interface's name and the workload behind it;
//! - [`span`]: an exchange as a span;
//! - [`counts`]: what is counted.
//!
//! Direction: tap ingress is what the guest sends, tap egress what it receives. A connection
//! whose SYN the guest received is inbound (the workload serves: SERVER spans); one whose SYN
//! it sent is outbound (the workload's own call: CLIENT spans). A connection picked up without
//! its SYN is oriented by its first request.

pub mod builder;
pub mod connection;
pub mod counts;
pub mod interfaces;
pub mod request;
pub mod span;

#[cfg(test)]
mod tests;

pub use builder::{ExchangeBuilder, FlowLookup, Limits, NoLookup};
pub use counts::ExchangeCount;
pub use interfaces::{Interfaces, SysfsNames, WorkloadMap};
pub use request::{RequestHead, ResponseHead, SeenParent};
pub use span::{BlackBoxSpan, SpanMaker};

use node_probe_common::FlowKey;
use trace_core::SpanId;
use trace_core::span::SpanKind;

/// How an exchange ended.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Outcome {
    /// The response was received.
    Complete,
    /// A TCP reset cut it.
    Reset,
    /// The connection closed before a response.
    NoResponse,
    /// No response came before the timeout.
    Timeout,
    /// The connection closed before the response's `Content-Length` had arrived.
    Incomplete,
}

/// One finished request and response, in kernel time.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Exchange {
    /// SERVER for an inbound connection, CLIENT for one the workload opened.
    pub kind: SpanKind,
    /// The span ID it was given when the request started.
    pub span_id: SpanId,
    /// The connection.
    pub key: FlowKey,
    /// The interface it crossed.
    pub ifindex: u32,
    /// The request's head.
    pub request: RequestHead,
    /// `CLOCK_MONOTONIC` of the request's first packet.
    pub start_ns: u64,
    /// `CLOCK_MONOTONIC` of the response's last byte seen (or of the failure).
    pub end_ns: u64,
    /// The final response's status code, when one came.
    pub status: Option<u16>,
    /// How it ended.
    pub outcome: Outcome,
    /// For a CLIENT exchange: the VM's server exchange in flight when it started.
    pub inflight_parent: Option<SpanId>,
    /// Sent before the previous request's response had started.
    pub pipelined: bool,
}
