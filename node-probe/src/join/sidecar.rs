//! A sidecar's span, as far as the 4-tuple join needs it.
//!
//! The filter records, on the span of a request it passes untouched (`threadline.propagation =
//! black_box`), both ends of its upstream connection: `network.local.address`/`port` is the
//! sidecar's end, `network.peer.address`/`port` the upstream's, the workload behind the tap.
//! On the tap, that connection's key has the workload as its workload side and the sidecar as
//! its peer, so the two meet as a [`Tuple`].

use std::net::{IpAddr, SocketAddr};

use node_probe_common::FlowKey;
use trace_core::otlp::attribute;
use trace_core::otlp::proto::common::v1::any_value::Value as Any;
use trace_core::otlp::proto::trace::v1::Span as ProtoSpan;
use trace_core::semconv;
use trace_core::w3c::TraceState;
use trace_core::{SpanContext, SpanId, TraceFlags, TraceId};

/// A connection by its two ends: the side facing the workload's peer, and the workload's.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Tuple {
    /// The peer's end (for a sidecar's upstream connection, the sidecar's own).
    pub peer: SocketAddr,
    /// The workload's end.
    pub workload: SocketAddr,
}

impl Tuple {
    /// The tuple of a connection seen on a tap.
    pub fn of_flow(key: &FlowKey) -> Option<Self> {
        Some(Self {
            peer: canonical(key.peer()?),
            workload: canonical(key.workload()?),
        })
    }
}

/// IPv4-mapped IPv6 addresses as IPv4, so that a dual-stack socket's report meets the tap's.
fn canonical(addr: SocketAddr) -> SocketAddr {
    SocketAddr::new(addr.ip().to_canonical(), addr.port())
}

/// What the join keeps of a sidecar span.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct SidecarSpan {
    /// Its upstream connection.
    pub tuple: Tuple,
    /// Start, Unix nanoseconds.
    pub start_unix_nano: u64,
    /// End, Unix nanoseconds.
    pub end_unix_nano: u64,
    /// Its context: the parent of the black-box spans joined to it.
    pub context: SpanContext,
}

impl SidecarSpan {
    /// The join's view of a received span; `None` when it records no upstream 4-tuple or
    /// has no valid IDs.
    pub fn from_proto(span: &ProtoSpan) -> Option<Self> {
        let local = address(
            span,
            semconv::NETWORK_LOCAL_ADDRESS,
            semconv::NETWORK_LOCAL_PORT,
        )?;
        let peer = address(
            span,
            semconv::NETWORK_PEER_ADDRESS,
            semconv::NETWORK_PEER_PORT,
        )?;
        let trace_id = TraceId::from_bytes(span.trace_id.as_slice().try_into().ok()?);
        let span_id = SpanId::from_bytes(span.span_id.as_slice().try_into().ok()?);
        if !trace_id.is_valid() || !span_id.is_valid() {
            return None;
        }
        // Bits 0-7 of `flags` are the W3C trace flags. A producer that sets no flag at all
        // predates the field; it still exported the span, which only a sampled span is.
        let flags = TraceFlags::from_wire((span.flags & 0xff) as u8);
        let flags = if span.flags == 0 {
            flags.with_sampled(true)
        } else {
            flags
        };
        Some(Self {
            tuple: Tuple {
                peer: canonical(local),
                workload: canonical(peer),
            },
            start_unix_nano: span.start_time_unix_nano,
            end_unix_nano: span.end_time_unix_nano,
            context: SpanContext {
                trace_id,
                span_id,
                flags,
                trace_state: TraceState::parse(span.trace_state.as_bytes()).unwrap_or_default(),
            },
        })
    }

    /// Whether its time window covers `[start, end]`, give or take `slack_ns`.
    pub fn covers(&self, start: u64, end: u64, slack_ns: u64) -> bool {
        self.start_unix_nano.saturating_sub(slack_ns) <= start
            && end <= self.end_unix_nano.saturating_add(slack_ns)
    }
}

fn address(span: &ProtoSpan, address_key: &str, port_key: &str) -> Option<SocketAddr> {
    let Some(Any::StringValue(address)) = attribute(span, address_key) else {
        return None;
    };
    let Some(Any::IntValue(port)) = attribute(span, port_key) else {
        return None;
    };
    let ip: IpAddr = address
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .ok()?;
    Some(SocketAddr::new(ip, u16::try_from(*port).ok()?))
}
