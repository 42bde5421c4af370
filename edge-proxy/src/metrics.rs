//! Prometheus metrics, served on the admin port at `/metrics`.

use std::sync::OnceLock;

use once_cell::sync::Lazy;
use prometheus::{
    IntCounter, IntCounterVec, IntGaugeVec, register_int_counter, register_int_counter_vec,
    register_int_gauge_vec,
};

fn counter(name: &str, help: &str) -> IntCounter {
    register_int_counter!(name, help).unwrap_or_else(|e| panic!("metric {name}: {e}"))
}

fn counter_vec(name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    register_int_counter_vec!(name, help, labels).unwrap_or_else(|e| panic!("metric {name}: {e}"))
}

/// Requests answered, by status code.
static REQUESTS: Lazy<IntCounterVec> = Lazy::new(|| {
    counter_vec(
        "edge_requests_total",
        "Requests answered, by status code.",
        &["code"],
    )
});
/// One counter per status code, looked up once: labelling costs a hash and an allocation.
static REQUESTS_BY_STATUS: Lazy<Vec<OnceLock<IntCounter>>> =
    Lazy::new(|| (0..600).map(|_| OnceLock::new()).collect());

/// Counts a request answered with `status` (0 when none was sent).
pub fn count_request(status: u16) {
    match REQUESTS_BY_STATUS.get(usize::from(status)) {
        Some(counter) => counter
            .get_or_init(|| REQUESTS.with_label_values(&[&status.to_string()]))
            .inc(),
        None => REQUESTS.with_label_values(&[&status.to_string()]).inc(),
    }
}

/// Upstream attempts, by location and outcome.
pub static UPSTREAM_ATTEMPTS: Lazy<IntCounterVec> = Lazy::new(|| {
    counter_vec(
        "edge_upstream_attempts_total",
        "Upstream attempts, by core location and outcome (response, connect_error, error).",
        &["location", "outcome"],
    )
});
/// Health of each upstream: 1 healthy, 0 evicted.
pub static UPSTREAM_HEALTHY: Lazy<IntGaugeVec> = Lazy::new(|| {
    register_int_gauge_vec!(
        "edge_upstream_healthy",
        "1 when the core location passes its health check.",
        &["location"]
    )
    .unwrap_or_else(|e| panic!("metric edge_upstream_healthy: {e}"))
});
/// Spans the collector accepted.
pub static SPANS_EXPORTED: Lazy<IntCounter> =
    Lazy::new(|| counter("edge_spans_exported_total", "Spans the collector accepted."));
/// Spans lost, by reason.
pub static SPANS_DROPPED: Lazy<IntCounterVec> = Lazy::new(|| {
    counter_vec(
        "edge_spans_dropped_total",
        "Spans lost, by reason: queue_full, retry_backlog, rejected, retries_exhausted or shutdown.",
        &["reason"],
    )
});
/// Failed export requests.
pub static EXPORT_ERRORS: Lazy<IntCounter> =
    Lazy::new(|| counter("edge_export_errors_total", "Export requests that failed."));
/// Incoming trace headers that were malformed and ignored.
pub static TRACE_HEADERS_IGNORED: Lazy<IntCounter> = Lazy::new(|| {
    counter(
        "edge_trace_headers_ignored_total",
        "Malformed incoming trace headers that were ignored.",
    )
});

/// Access log lines lost because standard output did not keep up, or came after shutdown.
pub static ACCESS_LOG_DROPPED: Lazy<IntCounter> = Lazy::new(|| {
    counter(
        "edge_access_log_dropped_total",
        "Access log lines dropped because standard output did not keep up.",
    )
});

/// Registers every metric, so `/metrics` lists them from the start.
pub fn init() {
    Lazy::force(&REQUESTS);
    Lazy::force(&UPSTREAM_ATTEMPTS);
    Lazy::force(&UPSTREAM_HEALTHY);
    Lazy::force(&SPANS_EXPORTED);
    for reason in trace_core::export::DropReason::ALL {
        SPANS_DROPPED.with_label_values(&[reason.as_str()]);
    }
    Lazy::force(&EXPORT_ERRORS);
    Lazy::force(&TRACE_HEADERS_IGNORED);
    Lazy::force(&ACCESS_LOG_DROPPED);
}
