//! The filter's counters, through the proxy-wasm metrics API. Envoy shows each as
//! `wasmcustom.<name>`.
//!
//! A counter the host refuses to define is logged once and then skipped: metrics are never a
//! reason to fail a request or the plugin.

use trace_core::export::DropReason;

use crate::hostcall::{self, MetricType};

/// A counter of the filter.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Counter {
    /// Spans the collector accepted.
    SpansExported,
    /// Spans lost, whatever the reason.
    SpansDropped,
    /// Spans lost for one reason (`threadline_spans_dropped_<reason>`).
    SpansDroppedBecause(DropReason),
    /// Export requests that failed (refused, timed out, reset or not 2xx).
    ExportFailures,
    /// Incoming trace headers that were malformed and ignored.
    TraceHeadersIgnored,
    /// Plugin configurations refused; the plugin then passes requests through untraced.
    ConfigErrors,
}

/// How many counters there are.
const COUNTERS: usize = 5 + DropReason::ALL.len();

impl Counter {
    const ALL: [Counter; COUNTERS] = [
        Counter::SpansExported,
        Counter::SpansDropped,
        Counter::ExportFailures,
        Counter::TraceHeadersIgnored,
        Counter::ConfigErrors,
        Counter::SpansDroppedBecause(DropReason::ALL[0]),
        Counter::SpansDroppedBecause(DropReason::ALL[1]),
        Counter::SpansDroppedBecause(DropReason::ALL[2]),
        Counter::SpansDroppedBecause(DropReason::ALL[3]),
        Counter::SpansDroppedBecause(DropReason::ALL[4]),
    ];

    /// The metric name.
    pub const fn name(self) -> &'static str {
        match self {
            Counter::SpansExported => "threadline_spans_exported",
            Counter::SpansDropped => "threadline_spans_dropped",
            Counter::SpansDroppedBecause(reason) => match reason {
                DropReason::QueueFull => "threadline_spans_dropped_queue_full",
                DropReason::RetryBacklog => "threadline_spans_dropped_retry_backlog",
                DropReason::Rejected => "threadline_spans_dropped_rejected",
                DropReason::RetriesExhausted => "threadline_spans_dropped_retries_exhausted",
                DropReason::Shutdown => "threadline_spans_dropped_shutdown",
            },
            Counter::ExportFailures => "threadline_export_failures",
            Counter::TraceHeadersIgnored => "threadline_trace_headers_ignored",
            Counter::ConfigErrors => "threadline_config_errors",
        }
    }
}

/// The defined counters of this plugin.
#[derive(Debug, Default, Clone, Copy)]
pub struct Metrics {
    ids: [Option<u32>; COUNTERS],
}

impl Metrics {
    /// Defines every counter.
    pub fn define() -> Self {
        let mut ids = [None; COUNTERS];
        for (slot, counter) in ids.iter_mut().zip(Counter::ALL) {
            match hostcall::define_metric(MetricType::Counter, counter.name()) {
                Ok(id) => *slot = Some(id),
                Err(status) => {
                    log::warn!("metric {} not defined: status {}", counter.name(), status.0)
                }
            }
        }
        Self { ids }
    }

    /// Counts `n` spans dropped for `reason`, in the total and in the reason's own counter.
    pub fn dropped(&self, reason: DropReason, n: usize) {
        self.add(Counter::SpansDropped, n);
        self.add(Counter::SpansDroppedBecause(reason), n);
    }

    /// Adds `n` to `counter`; nothing for 0, which the API refuses.
    pub fn add(&self, counter: Counter, n: usize) {
        let id = Counter::ALL
            .iter()
            .position(|c| *c == counter)
            .and_then(|i| self.ids.get(i).copied().flatten());
        if let (Some(id), Ok(n @ 1..)) = (id, i64::try_from(n))
            && let Err(status) = hostcall::increment_metric(id, n)
        {
            log::debug!(
                "metric {} not incremented: status {}",
                counter.name(),
                status.0
            );
        }
    }
}
