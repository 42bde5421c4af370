//! The table of connections, its bounds, and the VMs' in-flight server exchanges.

use std::collections::HashMap;

use node_probe_common::{FlowKey, FlowState, PacketEvent};
use trace_core::{IdGenerator, SpanId};

use super::connection::Connection;
use super::{Exchange, ExchangeCount, Outcome};
use crate::metrics::Counts;

/// The bounds of the builder's memory and how long it waits.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Limits {
    /// Connections tracked at once; events of further new connections are counted and
    /// dropped.
    pub max_connections: usize,
    /// Requests open on one connection (pipelining); further ones are counted and dropped.
    pub max_open_per_connection: usize,
    /// Split request heads held at once (each up to 768 bytes).
    pub max_assemblies: usize,
    /// A response whose end no event has told for this long is taken as finished.
    pub quiet_ns: u64,
    /// A request without a response for this long is finished as failed.
    pub response_timeout_ns: u64,
    /// A connection with nothing open and no event for this long is forgotten.
    pub idle_ns: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_connections: 65_536,
            max_open_per_connection: 16,
            max_assemblies: 4096,
            quiet_ns: 2_000_000_000,
            response_timeout_ns: 120_000_000_000,
            idle_ns: 300_000_000_000,
        }
    }
}

/// The kernel's per-connection state, read when a connection has gone quiet so that the end of
/// its last response is known. The kernel layer implements it on its handle of the `FLOWS` map.
pub trait FlowLookup {
    /// The connection's state, if the map still holds it.
    fn lookup(&self, key: &FlowKey) -> Option<FlowState>;
}

/// No kernel map (tests, `--no-kernel`): a quiet response ends at the last event that told.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoLookup;

impl FlowLookup for NoLookup {
    fn lookup(&self, _key: &FlowKey) -> Option<FlowState> {
        None
    }
}

/// The server exchanges each VM (tap interface) is serving right now, so that a call the VM
/// makes meanwhile can name its parent.
#[derive(Default, Debug)]
pub struct Inflight {
    by_interface: HashMap<u32, Vec<(SpanId, u64)>>,
}

impl Inflight {
    /// A server exchange started.
    pub fn open(&mut self, ifindex: u32, span_id: SpanId, start_ns: u64) {
        self.by_interface
            .entry(ifindex)
            .or_default()
            .push((span_id, start_ns));
    }

    /// A server exchange finished.
    pub fn close(&mut self, ifindex: u32, span_id: SpanId) {
        if let Some(open) = self.by_interface.get_mut(&ifindex) {
            open.retain(|(id, _)| *id != span_id);
            if open.is_empty() {
                self.by_interface.remove(&ifindex);
            }
        }
    }

    /// The server exchange a call starting at `start_ns` was made for: the latest one that
    /// started before it (with several, a guess, counted).
    pub fn parent_for(
        &self,
        ifindex: u32,
        start_ns: u64,
        counts: &Counts<ExchangeCount>,
    ) -> Option<SpanId> {
        let open = self.by_interface.get(&ifindex)?;
        let mut candidates = open.iter().filter(|(_, start)| *start <= start_ns);
        let first = candidates.next()?;
        let mut latest = *first;
        let mut more = false;
        for candidate in candidates {
            more = true;
            if candidate.1 >= latest.1 {
                latest = *candidate;
            }
        }
        if more {
            counts.inc(ExchangeCount::InflightAmbiguous);
        }
        Some(latest.0)
    }
}

/// What a connection's handling borrows from the builder.
pub struct Ctx<'a> {
    /// The builder's counters.
    pub counts: &'a Counts<ExchangeCount>,
    /// Its bounds.
    pub limits: &'a Limits,
    /// Span IDs, given at a request's start so that calls made meanwhile can name it.
    pub ids: &'a mut IdGenerator,
    /// Split heads held now.
    pub assemblies: &'a mut usize,
    /// The VMs' in-flight server exchanges.
    pub inflight: &'a mut Inflight,
    /// Where finished exchanges go.
    pub out: &'a mut Vec<Exchange>,
}

/// Kernel events in, finished exchanges out.
pub struct ExchangeBuilder {
    connections: HashMap<FlowKey, Connection>,
    limits: Limits,
    counts: Counts<ExchangeCount>,
    ids: IdGenerator,
    assemblies: usize,
    inflight: Inflight,
}

impl ExchangeBuilder {
    /// An empty builder.
    pub fn new(limits: Limits, counts: Counts<ExchangeCount>, ids: IdGenerator) -> Self {
        Self {
            connections: HashMap::new(),
            limits,
            counts,
            ids,
            assemblies: 0,
            inflight: Inflight::default(),
        }
    }

    /// Applies one kernel event; exchanges it finishes are appended to `out`.
    pub fn handle(&mut self, event: &PacketEvent, out: &mut Vec<Exchange>) {
        let header = &event.header;
        let (Some(kind), Some(direction)) = (header.kind(), header.direction()) else {
            self.counts.inc(ExchangeCount::UnknownEvents);
            return;
        };
        let key = header.key;
        if !self.connections.contains_key(&key) {
            use node_probe_common::EventKind::*;
            match kind {
                Syn | RequestStart if self.connections.len() < self.limits.max_connections => {
                    self.connections
                        .insert(key, Connection::new(key, header.ifindex, header.ktime_ns));
                }
                Syn | RequestStart => {
                    self.counts.inc(ExchangeCount::ConnectionsRefused);
                    return;
                }
                ResponseStart => {
                    self.counts.inc(ExchangeCount::UnmatchedResponses);
                    return;
                }
                Fin | Rst | Continuation => return,
            }
        }
        let mut ctx = Ctx {
            counts: &self.counts,
            limits: &self.limits,
            ids: &mut self.ids,
            assemblies: &mut self.assemblies,
            inflight: &mut self.inflight,
            out,
        };
        if let Some(connection) = self.connections.get_mut(&key) {
            connection.handle(kind, direction, event, &mut ctx);
            if connection.is_finished() {
                self.connections.remove(&key);
            }
        }
    }

    /// Finishes what has waited long enough as of `now_ns` (kernel clock), reading the end of
    /// quiet responses through `lookup`, and forgets idle connections.
    pub fn tick(&mut self, now_ns: u64, lookup: &dyn FlowLookup, out: &mut Vec<Exchange>) {
        let mut ctx = Ctx {
            counts: &self.counts,
            limits: &self.limits,
            ids: &mut self.ids,
            assemblies: &mut self.assemblies,
            inflight: &mut self.inflight,
            out,
        };
        let limits = self.limits;
        self.connections.retain(|key, connection| {
            if connection.is_receiving()
                && let Some(flow) = lookup.lookup(key)
            {
                connection.follow(&flow, &mut ctx);
            }
            connection.expire(
                now_ns,
                limits.quiet_ns,
                limits.response_timeout_ns,
                &mut ctx,
            );
            !(connection.is_idle()
                && now_ns.saturating_sub(connection.last_event_ns()) >= limits.idle_ns)
        });
    }

    /// Finishes every open exchange (at shutdown), as of `now_ns`.
    pub fn close(&mut self, now_ns: u64, out: &mut Vec<Exchange>) {
        let mut ctx = Ctx {
            counts: &self.counts,
            limits: &self.limits,
            ids: &mut self.ids,
            assemblies: &mut self.assemblies,
            inflight: &mut self.inflight,
            out,
        };
        for (_, mut connection) in self.connections.drain() {
            connection.close_all(Outcome::NoResponse, now_ns, &mut ctx);
        }
    }

    /// Connections tracked now.
    pub fn connections(&self) -> usize {
        self.connections.len()
    }

    /// Split heads held now.
    pub fn assemblies(&self) -> usize {
        self.assemblies
    }

    /// The counters.
    pub fn counts(&self) -> &Counts<ExchangeCount> {
        &self.counts
    }
}
