//! Parent resolution for black-box spans, in the order the design fixes:
//!
//! 1. the `traceparent` seen in the payload, unless a sidecar span on the same 4-tuple covers
//!    the exchange. Only a sidecar that propagated as a black box (a SigV4-signed request it
//!    must not touch) records its upstream 4-tuple, and such a sidecar left the header as it
//!    found it: the header names the sidecar's parent, and the sidecar span is the nearer
//!    parent. So a span with a header waits the join window for such a sidecar span too,
//!    and takes the header's parent when none comes (or at once, when the wait is full);
//! 2. otherwise the sidecar span whose upstream 4-tuple matches the connection and whose time
//!    window covers the exchange, received within the join window: a black-box span waits up
//!    to the window for it;
//! 3. otherwise, for a call the VM made, the VM's server span in flight at the time. That span
//!    ends after the call, so the call may wait, a bounded time more, for the server span's
//!    own resolution, which gives it its trace;
//! 4. otherwise none: the span starts a trace, sampled by the configured sampler.
//!
//! The span then takes its parent's trace ID, trace state and sampled flag. Each is recorded
//! in `threadline.parent_source`. Every structure is bounded; a sidecar span that matches a
//! black-box span already sent on is counted as a late join (and is relayed like any other).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use trace_core::sampling::Sampler;
use trace_core::semconv::threadline;
use trace_core::span::{Resource, Span, SpanKind};
use trace_core::{IdGenerator, SpanContext, SpanId, TraceFlags};

use super::counts::{JoinCount, ParentSource};
use super::index::Index;
use super::sidecar::{SidecarSpan, Tuple};
use crate::exchange::{BlackBoxSpan, SeenParent};
use crate::metrics::Counts;

/// The join's bounds and windows.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct JoinSettings {
    /// How long a black-box span waits for its sidecar span, and how long a sidecar span is
    /// kept for black-box spans to come, in nanoseconds.
    pub window_ns: u64,
    /// How far the two spans' clocks may disagree when one's window must cover the other's.
    pub slack_ns: u64,
    /// How long a call waits, after its window, for its in-flight server span's resolution.
    pub inflight_wait_ns: u64,
    /// Sidecar spans indexed at most.
    pub max_indexed: usize,
    /// Black-box spans waiting at most; also the bound of the other records.
    pub max_pending: usize,
}

impl Default for JoinSettings {
    fn default() -> Self {
        Self {
            window_ns: 5_000_000_000,
            slack_ns: 5_000_000,
            inflight_wait_ns: 30_000_000_000,
            max_indexed: 65_536,
            max_pending: 65_536,
        }
    }
}

/// A black-box span with its parent found, for the relay.
#[derive(Clone, Debug)]
pub struct Resolved {
    /// The span, its context final.
    pub span: Span,
    /// Its resource.
    pub resource: Arc<Resource>,
}

struct Waiting {
    span: BlackBoxSpan,
    tuple: Option<Tuple>,
    /// The parent the header named, taken when no sidecar span comes.
    header: Option<SpanContext>,
}

/// A bounded map whose entries expire in insertion order.
struct Expiring<K, V> {
    entries: HashMap<K, V>,
    order: VecDeque<(u64, K)>,
    capacity: usize,
}

impl<K: Copy + Eq + std::hash::Hash, V> Expiring<K, V> {
    fn new(capacity: usize) -> Self {
        Self {
            entries: HashMap::new(),
            order: VecDeque::new(),
            capacity,
        }
    }

    /// Inserts, returning the oldest entry if it had to go to make room.
    fn insert(&mut self, key: K, value: V, expires: u64) -> Option<V> {
        let mut evicted = None;
        while self.entries.len() >= self.capacity.max(1) {
            let Some((_, oldest)) = self.order.pop_front() else {
                break;
            };
            evicted = self.entries.remove(&oldest).or(evicted);
        }
        self.entries.insert(key, value);
        self.order.push_back((expires, key));
        evicted
    }

    /// The keys expired by `now`, removed with their values.
    fn expire(&mut self, now: u64) -> Vec<(K, V)> {
        let mut expired = Vec::new();
        while self.order.front().is_some_and(|(at, _)| *at <= now) {
            if let Some((_, key)) = self.order.pop_front()
                && let Some(value) = self.entries.remove(&key)
            {
                expired.push((key, value));
            }
        }
        expired
    }

    fn len(&self) -> usize {
        self.entries.len()
    }
}

/// Finds black-box spans' parents.
pub struct Joiner {
    settings: JoinSettings,
    sampler: Sampler,
    ids: IdGenerator,
    index: Index,
    next_id: u64,
    /// Black-box spans within their window.
    waiting: Expiring<u64, Waiting>,
    by_tuple: HashMap<Tuple, Vec<u64>>,
    /// Calls past their window, waiting for their server span's resolution.
    parked: Expiring<u64, BlackBoxSpan>,
    parked_by_server: HashMap<SpanId, Vec<u64>>,
    /// Server spans resolved lately, for the calls made while they were in flight.
    servers: Expiring<SpanId, SpanContext>,
    /// Black-box spans sent on without a sidecar parent, to count late joins.
    released: Expiring<u64, (Tuple, u64, u64)>,
    released_by_tuple: HashMap<Tuple, Vec<u64>>,
    counts: Counts<JoinCount>,
    sources: Counts<ParentSource>,
    /// Monotonic time of the latest call.
    now: u64,
}

impl Joiner {
    /// A joiner whose spans without a parent are sampled by `sampler`.
    pub fn new(
        settings: JoinSettings,
        sampler: Sampler,
        ids: IdGenerator,
        counts: Counts<JoinCount>,
        sources: Counts<ParentSource>,
    ) -> Self {
        Self {
            index: Index::new(settings.max_indexed),
            waiting: Expiring::new(settings.max_pending),
            parked: Expiring::new(settings.max_pending),
            servers: Expiring::new(settings.max_pending),
            released: Expiring::new(settings.max_pending),
            by_tuple: HashMap::new(),
            parked_by_server: HashMap::new(),
            released_by_tuple: HashMap::new(),
            next_id: 0,
            now: 0,
            settings,
            sampler,
            ids,
            counts,
            sources,
        }
    }

    /// Takes a black-box span at monotonic time `now`; spans whose parent is found (this one
    /// or others) are appended to `out`.
    pub fn add_black_box(&mut self, span: BlackBoxSpan, now: u64, out: &mut Vec<Resolved>) {
        self.now = now;
        let header = match &span.header {
            SeenParent::Valid(parent, state) => Some(SpanContext {
                trace_id: parent.trace_id,
                span_id: parent.parent_id,
                flags: parent.flags,
                trace_state: state.clone(),
            }),
            SeenParent::Invalid(_) => {
                self.counts.inc(JoinCount::HeaderInvalid);
                None
            }
            SeenParent::Cut => {
                self.counts.inc(JoinCount::HeaderCut);
                None
            }
            SeenParent::Absent => None,
        };
        let tuple = Tuple::of_flow(&span.key);
        let (start, end) = (span.span.start_unix_nano, span.span.end_unix_nano);
        if let Some(tuple) = tuple
            && let Some(sidecar) = self.index.find(&tuple, start, end, self.settings.slack_ns)
        {
            let (source, parent) = nearer_parent(header, sidecar.context.clone());
            return self.resolve(span, source, Some(parent), out);
        }
        if self.waiting.len() >= self.settings.max_pending {
            self.counts.inc(JoinCount::PendingFull);
            return self.after_window(span, tuple, header, now, out);
        }
        self.counts.inc(JoinCount::Waited);
        let id = self.id();
        if let Some(tuple) = tuple {
            self.by_tuple.entry(tuple).or_default().push(id);
        }
        self.waiting.insert(
            id,
            Waiting {
                span,
                tuple,
                header,
            },
            now.saturating_add(self.settings.window_ns),
        );
    }

    /// Takes a sidecar span that records its upstream 4-tuple ([`SidecarSpan::from_proto`]),
    /// at monotonic time `now`: black-box spans waiting for it are resolved into `out`, and it
    /// is indexed for those still to come.
    pub fn add_sidecar(&mut self, sidecar: SidecarSpan, now: u64, out: &mut Vec<Resolved>) {
        self.now = now;
        self.counts.inc(JoinCount::Indexed);
        let slack = self.settings.slack_ns;
        if let Some(ids) = self.by_tuple.get_mut(&sidecar.tuple) {
            let waiting = &self.waiting.entries;
            let (covered, rest): (Vec<u64>, Vec<u64>) = ids.iter().partition(|id| {
                waiting.get(id).is_some_and(|w| {
                    sidecar.covers(
                        w.span.span.start_unix_nano,
                        w.span.span.end_unix_nano,
                        slack,
                    )
                })
            });
            *ids = rest;
            if ids.is_empty() {
                self.by_tuple.remove(&sidecar.tuple);
            }
            for id in covered {
                if let Some(waiting) = self.waiting.entries.remove(&id) {
                    let (source, parent) = nearer_parent(waiting.header, sidecar.context.clone());
                    self.resolve(waiting.span, source, Some(parent), out);
                }
            }
        }
        if let Some(ids) = self.released_by_tuple.get_mut(&sidecar.tuple) {
            let released = &self.released.entries;
            let late = ids.iter().position(|id| {
                released
                    .get(id)
                    .is_some_and(|(_, start, end)| sidecar.covers(*start, *end, slack))
            });
            if let Some(at) = late {
                let id = ids.swap_remove(at);
                self.released.entries.remove(&id);
                self.counts.inc(JoinCount::LateJoins);
            }
        }
        if self
            .index
            .insert(sidecar, now.saturating_add(self.settings.window_ns))
        {
            self.counts.inc(JoinCount::IndexFull);
        }
    }

    /// Sends on, as of monotonic time `now`, what has waited long enough.
    pub fn tick(&mut self, now: u64, out: &mut Vec<Resolved>) {
        self.now = now;
        self.index.expire(now);
        for (id, waiting) in self.waiting.expire(now) {
            if let Some(tuple) = waiting.tuple {
                remove_id(&mut self.by_tuple, &tuple, |i| i == id);
            }
            self.after_window(waiting.span, waiting.tuple, waiting.header, now, out);
        }
        for (id, span) in self.parked.expire(now) {
            if let Some(server) = span.inflight_parent {
                remove_id(&mut self.parked_by_server, &server, |i| i == id);
            }
            self.counts.inc(JoinCount::InflightExpired);
            self.resolve(span, ParentSource::None, None, out);
        }
        self.servers.expire(now);
        for (id, (tuple, _, _)) in self.released.expire(now) {
            remove_id(&mut self.released_by_tuple, &tuple, |i| i == id);
        }
    }

    /// Sends on everything waiting (at shutdown), with the parents found so far.
    pub fn flush(&mut self, out: &mut Vec<Resolved>) {
        self.tick(u64::MAX, out);
    }

    /// Black-box spans waiting now.
    pub fn pending(&self) -> usize {
        self.waiting.len() + self.parked.len()
    }

    /// Sidecar spans indexed now.
    pub fn indexed(&self) -> usize {
        self.index.len()
    }

    /// The counters.
    pub fn counts(&self) -> &Counts<JoinCount> {
        &self.counts
    }

    /// Spans by parent source.
    pub fn sources(&self) -> &Counts<ParentSource> {
        &self.sources
    }

    fn id(&mut self) -> u64 {
        self.next_id = self.next_id.wrapping_add(1);
        self.next_id
    }

    /// A span whose window passed without its sidecar span.
    fn after_window(
        &mut self,
        span: BlackBoxSpan,
        tuple: Option<Tuple>,
        header: Option<SpanContext>,
        now: u64,
        out: &mut Vec<Resolved>,
    ) {
        if let Some(tuple) = tuple {
            let id = self.id();
            let record = (tuple, span.span.start_unix_nano, span.span.end_unix_nano);
            let expires = now.saturating_add(self.settings.window_ns);
            if let Some((evicted, _, _)) = self.released.insert(id, record, expires) {
                // Its late join, should it come, goes uncounted.
                remove_id(&mut self.released_by_tuple, &evicted, |i| {
                    !self.released.entries.contains_key(&i)
                });
            }
            self.released_by_tuple.entry(tuple).or_default().push(id);
        }
        if let Some(parent) = header {
            return self.resolve(span, ParentSource::Header, Some(parent), out);
        }
        let Some(server) = span.inflight_parent else {
            return self.resolve(span, ParentSource::None, None, out);
        };
        if let Some(parent) = self.servers.entries.get(&server) {
            let parent = parent.clone();
            return self.resolve(span, ParentSource::VmInflight, Some(parent), out);
        }
        let id = self.id();
        self.parked_by_server.entry(server).or_default().push(id);
        let expires = now.saturating_add(self.settings.inflight_wait_ns);
        if let Some(evicted) = self.parked.insert(id, span, expires) {
            self.counts.inc(JoinCount::PendingFull);
            self.resolve(evicted, ParentSource::None, None, out);
        }
    }

    fn resolve(
        &mut self,
        black_box: BlackBoxSpan,
        source: ParentSource,
        parent: Option<SpanContext>,
        out: &mut Vec<Resolved>,
    ) {
        let BlackBoxSpan {
            mut span, resource, ..
        } = black_box;
        let span_id = span.context.span_id;
        match parent {
            Some(parent) => {
                span.context = SpanContext {
                    trace_id: parent.trace_id,
                    span_id,
                    flags: parent.flags,
                    trace_state: parent.trace_state,
                };
                span.parent_span_id = Some(parent.span_id);
                // The VM's server span is this agent's own.
                span.parent_is_remote = source != ParentSource::VmInflight;
            }
            None => {
                let trace_id = self.ids.trace_id();
                let mut context = SpanContext {
                    trace_id,
                    span_id,
                    flags: TraceFlags::RANDOM,
                    ..SpanContext::default()
                };
                self.sampler
                    .decide(&trace_id, None, None)
                    .apply(&mut context);
                span.context = context;
                span.parent_span_id = None;
                span.parent_is_remote = false;
            }
        }
        span.set_attribute(threadline::PARENT_SOURCE, source_value(source));
        self.sources.inc(source);
        let server = (span.kind == SpanKind::Server).then(|| span.context.clone());
        out.push(Resolved { span, resource });
        let Some(server) = server else {
            return;
        };
        let expires = self
            .now
            .saturating_add(self.settings.window_ns)
            .saturating_add(self.settings.inflight_wait_ns);
        self.servers.insert(span_id, server.clone(), expires);
        for id in self.parked_by_server.remove(&span_id).unwrap_or_default() {
            if let Some(call) = self.parked.entries.remove(&id) {
                self.resolve(call, ParentSource::VmInflight, Some(server.clone()), out);
            }
        }
    }
}

/// Between the header's parent and a sidecar span on the same 4-tuple: the sidecar span, the
/// nearer parent, when it is of the header's trace (it continued the header and left it as
/// it was); the header otherwise, since a sidecar that started a trace of its own did not
/// carry this one.
fn nearer_parent(header: Option<SpanContext>, sidecar: SpanContext) -> (ParentSource, SpanContext) {
    match header {
        Some(header) if header.trace_id != sidecar.trace_id => (ParentSource::Header, header),
        _ => (ParentSource::FourTuple, sidecar),
    }
}

fn source_value(source: ParentSource) -> &'static str {
    use crate::metrics::Label;
    source.label()
}

/// Removes the ids that `matches` from `map[key]`, and the key once its list is empty.
fn remove_id<K: Eq + std::hash::Hash>(
    map: &mut HashMap<K, Vec<u64>>,
    key: &K,
    matches: impl Fn(u64) -> bool,
) {
    if let Some(ids) = map.get_mut(key) {
        ids.retain(|id| !matches(*id));
        if ids.is_empty() {
            map.remove(key);
        }
    }
}
