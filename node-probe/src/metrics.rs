//! Prometheus metrics, served on the admin port at `/metrics`.
//!
//! Each part of the agent counts its events in a [`Counts`] of its own label enum (the exchange
//! builder's [`ExchangeCount`](crate::exchange::ExchangeCount), the join's, the relay's, the
//! receiver's), bound to one labelled counter family of the agent's [`Metrics`] registry. A part
//! made in a test binds to a family registered nowhere, and reads its counts back.
//!
//! The kernel-side counters live in the eBPF object's per-CPU array; the kernel layer plugs
//! them in through [`KernelCounters`], read at every scrape.

use std::marker::PhantomData;
use std::sync::Arc;

use node_probe_common::Counter;
use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{Encoder, IntCounter, IntCounterVec, IntGauge, Opts, Registry, TextEncoder};

/// A label enum: every value, and each one's label.
pub trait Label: Copy + 'static {
    /// Every value, in index order.
    const ALL: &'static [Self];
    /// The label value.
    fn label(self) -> &'static str;
    /// The value's position in [`Label::ALL`].
    fn index(self) -> usize;
}

/// One counter per value of `L`, prepared once: labelling per event costs a hash.
#[derive(Clone, Debug)]
pub struct Counts<L> {
    counters: Vec<IntCounter>,
    _label: PhantomData<L>,
}

impl<L: Label> Counts<L> {
    /// Counters of `family`, whose one label takes the values of `L`.
    pub fn bind(family: &IntCounterVec) -> Self {
        Self {
            counters: L::ALL
                .iter()
                .map(|l| family.with_label_values(&[l.label()]))
                .collect(),
            _label: PhantomData,
        }
    }

    /// Counters registered nowhere, for parts made on their own (tests, tools).
    pub fn detached() -> Self {
        // The name is fixed and valid, so this cannot fail; if it did, counts would read 0.
        match IntCounterVec::new(Opts::new("detached", "detached"), &["event"]) {
            Ok(family) => Self::bind(&family),
            Err(_) => Self {
                counters: Vec::new(),
                _label: PhantomData,
            },
        }
    }

    /// Adds one.
    pub fn inc(&self, label: L) {
        self.add(label, 1);
    }

    /// Adds `n`.
    pub fn add(&self, label: L, n: u64) {
        if let Some(counter) = self.counters.get(label.index()) {
            counter.inc_by(n);
        }
    }

    /// The count so far.
    pub fn get(&self, label: L) -> u64 {
        self.counters.get(label.index()).map_or(0, IntCounter::get)
    }
}

/// The kernel-side counters, summed over CPUs, read at each scrape. The kernel layer
/// implements it on its handle of the `COUNTERS` map.
pub trait KernelCounters: Send + Sync {
    /// Every counter's current total, in [`Counter::ALL`] order; `None` when the map cannot
    /// be read right now (the scrape then leaves the kernel counters out).
    fn read(&self) -> Option<[u64; Counter::COUNT as usize]>;

    /// The user-space side of the kernel layer (ring records read, undecodable records,
    /// events the channel dropped, interfaces attached and vanished, ...), by name.
    fn reader(&self) -> Vec<(&'static str, u64)> {
        Vec::new()
    }
}

/// The kernel counters as a Prometheus collector.
struct KernelCollector {
    source: Arc<dyn KernelCounters>,
    /// Only for the descriptions: each scrape builds its families afresh.
    kernel: IntCounterVec,
    reader: IntCounterVec,
}

impl Collector for KernelCollector {
    fn desc(&self) -> Vec<&Desc> {
        let mut descs = self.kernel.desc();
        descs.extend(self.reader.desc());
        descs
    }

    fn collect(&self) -> Vec<MetricFamily> {
        // Fresh families per scrape: these are the kernel layer's totals, set, not added.
        let mut families = Vec::new();
        if let Some(totals) = self.source.read()
            && let Ok(family) =
                IntCounterVec::new(Opts::new(KERNEL_EVENTS, KERNEL_EVENTS_HELP), &["counter"])
        {
            for (counter, total) in Counter::ALL.iter().zip(totals) {
                family.with_label_values(&[counter.name()]).inc_by(total);
            }
            families.extend(family.collect());
        }
        let reader = self.source.reader();
        if !reader.is_empty()
            && let Ok(family) =
                IntCounterVec::new(Opts::new(KERNEL_READER, KERNEL_READER_HELP), &["counter"])
        {
            for (name, total) in reader {
                family.with_label_values(&[name]).inc_by(total);
            }
            families.extend(family.collect());
        }
        families
    }
}

const KERNEL_EVENTS: &str = "node_probe_kernel_total";
const KERNEL_EVENTS_HELP: &str = "Kernel-side counters of the TC programs, summed over CPUs \
     (packets_seen, events_emitted, ringbuf_full = ring-buffer losses, parse_failures, ...).";

const KERNEL_READER: &str = "node_probe_kernel_reader_total";
const KERNEL_READER_HELP: &str = "The kernel layer's user-space counters (ring records read, \
     undecodable records, events dropped on a full channel, interfaces attached, detached and \
     vanished, attach failures).";

/// The agent's registry and counter families.
pub struct Metrics {
    registry: Registry,
    /// Exchange builder events, by `event`.
    pub exchange: IntCounterVec,
    /// Parent resolution events, by `event`.
    pub join: IntCounterVec,
    /// Black-box spans by the parent source they got (`source`).
    pub parent_source: IntCounterVec,
    /// Relay outcomes, by `event`.
    pub relay: IntCounterVec,
    /// Spans dropped before reaching the collector, by `reason`.
    pub dropped: IntCounterVec,
    /// Receiver requests, by `event`.
    pub receiver: IntCounterVec,
    /// Connections tracked now.
    pub connections: IntGauge,
    /// Black-box spans waiting for their parent now.
    pub pending: IntGauge,
    /// Sidecar spans in the join index now.
    pub indexed: IntGauge,
    /// Spans held by the relay now (in flight included).
    pub relay_held: IntGauge,
    /// Steps of the wall clock seen by the kernel clock conversion.
    pub clock_steps: IntGauge,
}

impl Metrics {
    /// A registry with every family registered.
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let vec =
            |name: &str, help: &str, label: &str| -> Result<IntCounterVec, prometheus::Error> {
                let family = IntCounterVec::new(Opts::new(name, help), &[label])?;
                registry.register(Box::new(family.clone()))?;
                Ok(family)
            };
        let gauge = |name: &str, help: &str| -> Result<IntGauge, prometheus::Error> {
            let gauge = IntGauge::new(name, help)?;
            registry.register(Box::new(gauge.clone()))?;
            Ok(gauge)
        };
        let metrics = Self {
            exchange: vec(
                "node_probe_exchange_events_total",
                "What the exchange builder did with the kernel's events (requests, responses, pipelined, retransmits, heads reassembled, malformed, resets, drops at the bounds).",
                "event",
            )?,
            join: vec(
                "node_probe_join_events_total",
                "Parent resolution events (sidecar spans indexed, joins, late joins, drops at the bounds).",
                "event",
            )?,
            parent_source: vec(
                "node_probe_parent_source_total",
                "Black-box spans by where their parent came from: header, four_tuple, vm_inflight or none.",
                "source",
            )?,
            relay: vec(
                "node_probe_relay_events_total",
                "Relay events (spans accepted by the collector, unsampled black-box spans, export errors).",
                "event",
            )?,
            dropped: vec(
                "node_probe_spans_dropped_total",
                "Spans lost before the collector had them, by reason: queue_full, retry_backlog, rejected, retries_exhausted or shutdown.",
                "reason",
            )?,
            receiver: vec(
                "node_probe_receiver_events_total",
                "OTLP receiver requests and spans (accepted, malformed bodies, bodies too large).",
                "event",
            )?,
            connections: gauge("node_probe_connections", "Connections tracked now.")?,
            pending: gauge(
                "node_probe_join_pending",
                "Black-box spans waiting for their parent now.",
            )?,
            indexed: gauge(
                "node_probe_join_indexed",
                "Sidecar spans held in the 4-tuple index now.",
            )?,
            relay_held: gauge(
                "node_probe_relay_held",
                "Spans held by the relay now, in flight included.",
            )?,
            clock_steps: gauge(
                "node_probe_clock_steps",
                "Steps of the wall clock seen while converting kernel times.",
            )?,
            registry,
        };
        Ok(metrics)
    }

    /// Reads the kernel-side counters from `source` at every scrape.
    pub fn add_kernel_counters(
        &self,
        source: Arc<dyn KernelCounters>,
    ) -> Result<(), prometheus::Error> {
        let kernel =
            IntCounterVec::new(Opts::new(KERNEL_EVENTS, KERNEL_EVENTS_HELP), &["counter"])?;
        let reader =
            IntCounterVec::new(Opts::new(KERNEL_READER, KERNEL_READER_HELP), &["counter"])?;
        self.registry.register(Box::new(KernelCollector {
            source,
            kernel,
            reader,
        }))
    }

    /// The text exposition of every metric.
    pub fn render(&self) -> Result<(String, Vec<u8>), prometheus::Error> {
        let encoder = TextEncoder::new();
        let mut body = Vec::new();
        encoder.encode(&self.registry.gather(), &mut body)?;
        Ok((encoder.format_type().to_owned(), body))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixed;

    impl KernelCounters for Fixed {
        fn read(&self) -> Option<[u64; Counter::COUNT as usize]> {
            let mut totals = [0; Counter::COUNT as usize];
            for (i, t) in totals.iter_mut().enumerate() {
                *t = i as u64 * 10;
            }
            Some(totals)
        }

        fn reader(&self) -> Vec<(&'static str, u64)> {
            vec![("channel_dropped", 3)]
        }
    }

    #[test]
    fn kernel_counters_are_read_at_each_scrape() {
        let metrics = Metrics::new().unwrap();
        metrics.add_kernel_counters(Arc::new(Fixed)).unwrap();
        let (_, body) = metrics.render().unwrap();
        let text = String::from_utf8(body).unwrap();
        assert!(
            text.contains("node_probe_kernel_total{counter=\"ringbuf_full\"} 80"),
            "{text}"
        );
        assert!(text.contains("node_probe_kernel_total{counter=\"packets_seen\"} 0"));
        assert!(text.contains("node_probe_kernel_reader_total{counter=\"channel_dropped\"} 3"));
    }
}
