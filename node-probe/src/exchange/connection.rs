//! One TCP connection's requests and responses, paired in order.
//!
//! HTTP/1.1 answers requests in the order they came, so the open exchanges of a connection are
//! a queue: a response start belongs to the first request still waiting for one, and only the
//! queue's front can be receiving its response. The end of a response is the time of its last
//! byte, read from the per-flow state every event carries: while the responder's half still
//! has this response's start, its `last_payload_ns` is how far the response has come.

use std::collections::VecDeque;

use node_probe_common::{
    Assembly, CONTINUATIONS, Direction, EventKind, FlowKey, FlowState, HalfFlow, HeadAssembler,
    PREFIX_LEN, PacketEvent, Push, TcpFlags, seq_after,
};
use trace_core::SpanId;
use trace_core::span::SpanKind;

use super::builder::Ctx;
use super::request::{RequestHead, ResponseHead};
use super::{Exchange, ExchangeCount, Outcome};

/// The longest request head held: the start's prefix and every continuation's.
pub const HEAD_MAX: usize = PREFIX_LEN * (1 + CONTINUATIONS as usize);

/// Which side opened the connection.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Orientation {
    /// The peer connected to the workload: the workload serves (SERVER spans).
    Inbound,
    /// The workload connected out: it is the client (CLIENT spans).
    Outbound,
}

impl Orientation {
    fn requester(self) -> Direction {
        match self {
            Self::Inbound => Direction::ToWorkload,
            Self::Outbound => Direction::FromWorkload,
        }
    }

    fn kind(self) -> SpanKind {
        match self {
            Self::Inbound => SpanKind::Server,
            Self::Outbound => SpanKind::Client,
        }
    }

    fn responder_half(self, flow: &FlowState) -> &HalfFlow {
        match self {
            Self::Inbound => &flow.from_workload,
            Self::Outbound => &flow.to_workload,
        }
    }

    /// The side that sent a SYN without ACK in `direction` is the client.
    fn of_syn(direction: Direction) -> Self {
        match direction {
            Direction::ToWorkload => Self::Inbound,
            Direction::FromWorkload => Self::Outbound,
        }
    }
}

/// A request's head: parsed, or still being reassembled.
enum Head {
    Parsed(RequestHead),
    /// `first` is what the start's own segment said, kept should the whole not parse.
    Assembling {
        first: RequestHead,
        bytes: Box<HeadAssembler<HEAD_MAX>>,
    },
}

impl Head {
    fn request(&self) -> &RequestHead {
        match self {
            Self::Parsed(head) | Self::Assembling { first: head, .. } => head,
        }
    }
}

/// A response on its way.
struct Receiving {
    status: u16,
    start_ns: u64,
    start_seq: u32,
    /// Bytes of the whole response, when its head says.
    length: Option<u64>,
    /// The time of its last byte seen so far.
    end_ns: u64,
    /// Whether an event after its start told how far it has come.
    followed: bool,
}

/// A request whose exchange is not finished.
struct Open {
    span_id: SpanId,
    start_ns: u64,
    head: Head,
    pipelined: bool,
    inflight_parent: Option<SpanId>,
    response: Option<Receiving>,
}

/// The state of one connection.
pub struct Connection {
    key: FlowKey,
    ifindex: u32,
    orientation: Option<Orientation>,
    open: VecDeque<Open>,
    last_request_seq: Option<u32>,
    last_response_seq: Option<u32>,
    last_event_ns: u64,
    upgraded: bool,
    fin_requester: bool,
    fin_responder: bool,
    reset: bool,
}

impl Connection {
    /// A connection first seen in an event at `ifindex`.
    pub fn new(key: FlowKey, ifindex: u32, now_ns: u64) -> Self {
        Self {
            key,
            ifindex,
            orientation: None,
            open: VecDeque::new(),
            last_request_seq: None,
            last_response_seq: None,
            last_event_ns: now_ns,
            upgraded: false,
            fin_requester: false,
            fin_responder: false,
            reset: false,
        }
    }

    /// Whether nothing more can happen on it: reset, or closed both ways with nothing open.
    pub fn is_finished(&self) -> bool {
        self.reset || (self.fin_requester && self.fin_responder && self.open.is_empty())
    }

    /// Whether no exchange is open.
    pub fn is_idle(&self) -> bool {
        self.open.is_empty()
    }

    /// The kernel time of its latest event.
    pub fn last_event_ns(&self) -> u64 {
        self.last_event_ns
    }

    /// Whether its front exchange is receiving a response (the flow state can tell its end).
    pub fn is_receiving(&self) -> bool {
        self.open.front().is_some_and(|o| o.response.is_some())
    }

    /// Applies one event whose kind and direction were read.
    pub fn handle(
        &mut self,
        kind: EventKind,
        direction: Direction,
        event: &PacketEvent,
        ctx: &mut Ctx<'_>,
    ) {
        let header = &event.header;
        let now = header.ktime_ns;
        self.last_event_ns = now;
        self.ifindex = header.ifindex;
        let flags = header.tcp_flags();
        if flags.has(TcpFlags::SYN) {
            if !flags.has(TcpFlags::ACK) {
                // A new connection on this tuple: whatever the old one left open is over.
                self.close_all(Outcome::NoResponse, now, ctx);
                *self = Self::new(self.key, self.ifindex, now);
                self.orientation = Some(Orientation::of_syn(direction));
            } else if self.orientation.is_none() {
                // A SYN-ACK comes from the side that accepted.
                self.orientation = Some(match direction {
                    Direction::FromWorkload => Orientation::Inbound,
                    Direction::ToWorkload => Orientation::Outbound,
                });
            }
        }
        self.follow(&header.flow, ctx);
        let requester = self.orientation.map(Orientation::requester);
        if !(kind == EventKind::Continuation && Some(direction) == requester) {
            self.finish_heads(ctx);
        }
        match kind {
            EventKind::RequestStart => self.request_start(direction, event, ctx),
            EventKind::ResponseStart => self.response_start(direction, event, ctx),
            EventKind::Continuation if Some(direction) == requester => {
                self.continuation(event, ctx);
            }
            EventKind::Rst => self.rst(now, ctx),
            EventKind::Continuation | EventKind::Syn | EventKind::Fin => {}
        }
        if flags.has(TcpFlags::FIN) && kind != EventKind::Rst {
            self.fin(direction, now, ctx);
        }
    }

    /// Brings the receiving response up to date with a flow state, from an event or the
    /// kernel's map; finishes it when its length says it is complete.
    pub fn follow(&mut self, flow: &FlowState, ctx: &mut Ctx<'_>) {
        let Some(orientation) = self.orientation else {
            return;
        };
        let half = orientation.responder_half(flow);
        let Some(front) = self.open.front_mut() else {
            return;
        };
        let Some(response) = front.response.as_mut() else {
            return;
        };
        if half.seen != 1 || half.start_ns != response.start_ns {
            return;
        }
        response.end_ns = response.end_ns.max(half.last_payload_ns);
        response.followed = true;
        let seen = u64::from(half.next_seq.wrapping_sub(response.start_seq));
        if response.length.is_some_and(|length| seen >= length) {
            let end = response.end_ns;
            self.finish_front(Outcome::Complete, end, ctx);
        }
    }

    /// Finishes what has waited too long, as of kernel time `now`.
    pub fn expire(&mut self, now: u64, quiet_ns: u64, response_timeout_ns: u64, ctx: &mut Ctx<'_>) {
        let quiet = self
            .open
            .front()
            .and_then(|o| o.response.as_ref())
            .filter(|r| now.saturating_sub(r.end_ns) >= quiet_ns)
            .map(|r| r.end_ns);
        if let Some(end) = quiet {
            self.finish_front(Outcome::Complete, end, ctx);
        }
        while self.open.front().is_some_and(|o| {
            o.response.is_none() && now.saturating_sub(o.start_ns) >= response_timeout_ns
        }) {
            self.finish_front(Outcome::Timeout, now, ctx);
        }
    }

    /// Finishes every open exchange: the connection is being forgotten.
    pub fn close_all(&mut self, outcome: Outcome, now: u64, ctx: &mut Ctx<'_>) {
        while !self.open.is_empty() {
            let end = self
                .open
                .front()
                .and_then(|o| o.response.as_ref())
                .map_or(now, |r| r.end_ns);
            let outcome = if self.is_receiving() {
                Outcome::Complete
            } else {
                outcome
            };
            self.finish_front(outcome, end, ctx);
        }
    }

    fn request_start(&mut self, direction: Direction, event: &PacketEvent, ctx: &mut Ctx<'_>) {
        let header = &event.header;
        let orientation = *self.orientation.get_or_insert(match direction {
            Direction::ToWorkload => Orientation::Inbound,
            Direction::FromWorkload => Orientation::Outbound,
        });
        if direction != orientation.requester() {
            ctx.counts.inc(ExchangeCount::DirectionConflicts);
            return;
        }
        if self.upgraded {
            return;
        }
        let seq = header.payload_seq();
        if self
            .last_request_seq
            .is_some_and(|last| !seq_after(seq, last))
        {
            ctx.counts.inc(ExchangeCount::Retransmits);
            return;
        }
        self.last_request_seq = Some(seq);
        let Some(prefix) = event.prefix() else {
            ctx.counts.inc(ExchangeCount::UnknownEvents);
            return;
        };
        let first = match RequestHead::parse(prefix) {
            Ok(head) => head,
            Err(_) => {
                ctx.counts.inc(ExchangeCount::MalformedRequests);
                return;
            }
        };
        ctx.counts.inc(ExchangeCount::Requests);
        if self.open.len() >= ctx.limits.max_open_per_connection {
            ctx.counts.inc(ExchangeCount::PipelineOverflow);
            return;
        }
        let pipelined = self.open.iter().any(|o| o.response.is_none());
        if pipelined {
            ctx.counts.inc(ExchangeCount::Pipelined);
        }
        let head = if first.complete {
            Head::Parsed(first)
        } else if event.prefix_is_cut() {
            ctx.counts.inc(ExchangeCount::HeadsCut);
            Head::Parsed(first)
        } else if header.tcp_flags().has(TcpFlags::FIN) {
            Head::Parsed(first)
        } else if *ctx.assemblies >= ctx.limits.max_assemblies {
            ctx.counts.inc(ExchangeCount::AssembliesRefused);
            Head::Parsed(first)
        } else {
            ctx.counts.inc(ExchangeCount::HeadsSplit);
            *ctx.assemblies += 1;
            Head::Assembling {
                first,
                bytes: Box::new(HeadAssembler::new(seq, prefix, header.payload_len)),
            }
        };
        let span_id = ctx.ids.span_id();
        let kind = orientation.kind();
        let inflight_parent = match kind {
            SpanKind::Client => ctx
                .inflight
                .parent_for(self.ifindex, header.ktime_ns, ctx.counts),
            _ => {
                ctx.inflight.open(self.ifindex, span_id, header.ktime_ns);
                None
            }
        };
        self.open.push_back(Open {
            span_id,
            start_ns: header.ktime_ns,
            head,
            pipelined,
            inflight_parent,
            response: None,
        });
    }

    fn continuation(&mut self, event: &PacketEvent, ctx: &mut Ctx<'_>) {
        let header = &event.header;
        let Some(open) = self.open.back_mut() else {
            return;
        };
        let Head::Assembling { bytes, .. } = &mut open.head else {
            return;
        };
        let Some(prefix) = event.prefix() else {
            ctx.counts.inc(ExchangeCount::UnknownEvents);
            return;
        };
        match bytes.push(header.payload_seq(), prefix, header.payload_len) {
            Push::Retransmit => ctx.counts.inc(ExchangeCount::Retransmits),
            Push::Appended | Push::Gap | Push::Closed => {}
        }
        if bytes.state() != Assembly::Open {
            self.finish_heads(ctx);
        }
    }

    fn response_start(&mut self, direction: Direction, event: &PacketEvent, ctx: &mut Ctx<'_>) {
        let header = &event.header;
        let Some(orientation) = self.orientation else {
            ctx.counts.inc(ExchangeCount::UnmatchedResponses);
            return;
        };
        if direction == orientation.requester() {
            ctx.counts.inc(ExchangeCount::DirectionConflicts);
            return;
        }
        if self.upgraded {
            return;
        }
        let seq = header.payload_seq();
        if self
            .last_response_seq
            .is_some_and(|last| !seq_after(seq, last))
        {
            ctx.counts.inc(ExchangeCount::Retransmits);
            return;
        }
        self.last_response_seq = Some(seq);
        let now = header.ktime_ns;
        // The response being received, if any, ended before this one began. When no event
        // came between the two (pipelining), this start is the best bound on its end.
        if let Some(receiving) = self.open.front().and_then(|o| o.response.as_ref()) {
            let end = if receiving.followed {
                receiving.end_ns
            } else {
                now
            };
            self.finish_front(Outcome::Complete, end, ctx);
        }
        let Some(waiting) = self.open.front_mut() else {
            ctx.counts.inc(ExchangeCount::UnmatchedResponses);
            return;
        };
        let Some(head) = event
            .prefix()
            .and_then(|p| ResponseHead::parse(p, waiting.head.request().is_head))
        else {
            ctx.counts.inc(ExchangeCount::MalformedResponses);
            return;
        };
        ctx.counts.inc(ExchangeCount::Responses);
        if (100..=199).contains(&head.status) && head.status != 101 {
            ctx.counts.inc(ExchangeCount::InterimResponses);
            return;
        }
        waiting.response = Some(Receiving {
            status: head.status,
            start_ns: now,
            start_seq: seq,
            length: head.length,
            end_ns: now,
            followed: false,
        });
        if head.status == 101 {
            ctx.counts.inc(ExchangeCount::Upgrades);
            self.upgraded = true;
            self.finish_front(Outcome::Complete, now, ctx);
            return;
        }
        // A response whole in its first segment ends here.
        self.follow(&header.flow, ctx);
        if let Some(response) = self.open.front_mut().and_then(|o| o.response.as_mut()) {
            response.followed = false;
        }
    }

    fn fin(&mut self, direction: Direction, now: u64, ctx: &mut Ctx<'_>) {
        let Some(orientation) = self.orientation else {
            return;
        };
        if direction == orientation.requester() {
            // The client may half-close and still read its response.
            self.fin_requester = true;
            return;
        }
        self.fin_responder = true;
        if let Some(response) = self.open.front().and_then(|o| o.response.as_ref()) {
            let end = response.end_ns.max(now);
            let outcome = match response.length {
                Some(_) => Outcome::Incomplete,
                None => Outcome::Complete,
            };
            self.finish_front(outcome, end, ctx);
        }
        self.close_all(Outcome::NoResponse, now, ctx);
    }

    fn rst(&mut self, now: u64, ctx: &mut Ctx<'_>) {
        self.reset = true;
        while !self.open.is_empty() {
            self.finish_front(Outcome::Reset, now, ctx);
        }
    }

    /// Parses every head still being assembled: no more of it will come.
    fn finish_heads(&mut self, ctx: &mut Ctx<'_>) {
        for open in &mut self.open {
            finish_head(open, ctx);
        }
    }

    fn finish_front(&mut self, outcome: Outcome, end_ns: u64, ctx: &mut Ctx<'_>) {
        let Some(mut open) = self.open.pop_front() else {
            return;
        };
        finish_head(&mut open, ctx);
        let Some(orientation) = self.orientation else {
            return;
        };
        let kind = orientation.kind();
        if kind == SpanKind::Server {
            ctx.inflight.close(self.ifindex, open.span_id);
        }
        let status = open.response.as_ref().map(|r| r.status);
        let count = match outcome {
            Outcome::Complete => None,
            Outcome::Reset => Some(ExchangeCount::Resets),
            Outcome::NoResponse | Outcome::Timeout => Some(ExchangeCount::NoResponse),
            Outcome::Incomplete => Some(ExchangeCount::Incomplete),
        };
        if let Some(count) = count {
            ctx.counts.inc(count);
        }
        let Head::Parsed(request) = open.head else {
            return;
        };
        ctx.counts.inc(ExchangeCount::Exchanges);
        ctx.out.push(Exchange {
            kind,
            span_id: open.span_id,
            key: self.key,
            ifindex: self.ifindex,
            request,
            start_ns: open.start_ns,
            end_ns: end_ns.max(open.start_ns),
            status,
            outcome,
            inflight_parent: open.inflight_parent,
            pipelined: open.pipelined,
        });
    }
}

fn finish_head(open: &mut Open, ctx: &mut Ctx<'_>) {
    let Head::Assembling { first, bytes } = &open.head else {
        return;
    };
    *ctx.assemblies = ctx.assemblies.saturating_sub(1);
    let complete = bytes.state() == Assembly::Complete;
    let parsed = match RequestHead::parse(bytes.bytes()) {
        Ok(head) => {
            if complete {
                ctx.counts.inc(ExchangeCount::HeadsReassembled);
            }
            head
        }
        Err(_) => first.clone(),
    };
    open.head = Head::Parsed(parsed);
}
