//! The root context: one per plugin configuration and worker. It reads the configuration once,
//! owns the worker's state, and sends batches on its tick. Requests never wait for an export.
//!
//! Envoy starts a new root for a changed configuration and ends the old one with `on_done`:
//! the old root then flushes everything it holds at once, answers `false` while spans are held
//! or exports are out, and calls `proxy_done` when empty, or when [`DRAIN_DEADLINE_MS`] has
//! passed, counting what is left as dropped. A configuration the filter refuses does not fail
//! the plugin's load (Envoy would reject the whole listener update): it is logged with its
//! field, counted, and every request passes through untouched and untraced.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::ContextType;
use trace_core::IdGenerator;
use trace_core::export::verdict::retry_after_ms;
use trace_core::export::{Delivery, DropReason, Settled};
use trace_core::otlp::{CONTENT_TYPE, encode_request_from_entries};
use trace_core::semconv;
use trace_core::span::{KeyValue, Resource, Scope};

use crate::config::{Settings, Tags};
use crate::export::ExportCallouts;
use crate::hostcall::{self, Map};
use crate::metrics::{Counter, Metrics};
use crate::properties;
use crate::request::RequestSpan;
use crate::worker::Worker;

/// How often the root looks at its queue; a full batch waits at most this long.
pub const TICK_MS: u32 = 100;

/// How long a root that Envoy is ending keeps flushing before it gives up on what is left.
pub const DRAIN_DEADLINE_MS: u64 = 10_000;

/// The root context.
pub struct Root {
    worker: Option<Rc<RefCell<Worker>>>,
    /// Defined once, on the first configuration, valid or not.
    metrics: Option<Metrics>,
    /// Set by `on_done`: when the drain gives up.
    draining_until_ms: Option<u64>,
}

impl Root {
    /// A root that serves nothing until configured.
    pub fn new() -> Self {
        Self {
            worker: None,
            metrics: None,
            draining_until_ms: None,
        }
    }

    fn configure(&mut self, bytes: &[u8]) -> bool {
        let metrics = *self.metrics.get_or_insert_with(Metrics::define);
        let mut settings = match Settings::from_json(bytes) {
            Ok(settings) => settings,
            Err(error) => {
                // Refusing would fail the plugin's load, and Envoy would reject the listener
                // update with it: traffic matters more than its traces.
                log::error!(
                    "threadline: invalid configuration, requests pass through untraced: {error}"
                );
                metrics.add(Counter::ConfigErrors, 1);
                return true;
            }
        };
        if settings.tags_from_node_metadata {
            fill_from_node_metadata(&mut settings.tags);
        }
        if let Err(status) = hostcall::set_tick_period(TICK_MS) {
            log::error!(
                "threadline: cannot set the tick period (status {}), requests pass through untraced",
                status.0
            );
            metrics.add(Counter::ConfigErrors, 1);
            return true;
        }
        let resource = Resource {
            attributes: vec![KeyValue::new(
                semconv::SERVICE_NAME,
                settings.service_name.clone(),
            )],
        };
        log::info!(
            "threadline: exporting to cluster {} every {} ms, tags {:?}",
            settings.collector.cluster,
            settings.batch.flush_interval_ms,
            settings.tags
        );
        match &self.worker {
            // A new configuration keeps the queue and the requests in flight.
            Some(worker) => {
                let mut worker = worker.borrow_mut();
                worker.settings = settings;
                worker.resource = resource;
            }
            None => {
                let exports = ExportCallouts::new(&settings.batch, now_ms());
                self.worker = Some(Rc::new(RefCell::new(Worker {
                    settings,
                    resource,
                    ids: IdGenerator::from_seed(seed()),
                    exports,
                    metrics,
                })));
            }
        }
        true
    }

    /// Sends every export request that is due, until none is or the host refuses one.
    fn flush(&self) {
        let Some(worker) = &self.worker else { return };
        let now_ms = now_ms();
        let mut body = Vec::new();
        loop {
            let mut guard = worker.borrow_mut();
            let worker = &mut *guard;
            let Some(dispatch) = worker.exports.next(now_ms) else {
                return;
            };
            body.clear();
            encode_request_from_entries(
                &worker.resource,
                &Scope::default(),
                &dispatch.batch.entries,
                &mut body,
            );
            let collector = &worker.settings.collector;
            // Through the SDK: its dispatcher maps the callout's token back to this root, and
            // a response to a token it did not record panics inside it.
            let sent = self.dispatch_http_call(
                &collector.cluster,
                vec![
                    (":method", "POST"),
                    (":path", &collector.path),
                    (":authority", &collector.authority),
                    ("content-type", CONTENT_TYPE),
                ],
                Some(&body),
                vec![],
                Duration::from_millis(collector.timeout_ms),
            );
            match sent {
                Ok(token) => worker.exports.sent(token, dispatch),
                Err(status) => {
                    log::warn!(
                        "threadline: export to {} refused: {status:?}",
                        collector.cluster
                    );
                    worker.metrics.add(Counter::ExportFailures, 1);
                    let random = worker.ids.random();
                    let settled = worker.exports.refused(dispatch, now_ms, random);
                    record(&worker.metrics, settled);
                    return;
                }
            }
        }
    }
}

impl Root {
    /// While Envoy ends this root: sends what is due, and says `proxy_done` once nothing is
    /// held or the deadline has passed (what is left is then counted as dropped).
    fn continue_drain(&self) {
        let Some(until) = self.draining_until_ms else {
            return;
        };
        self.flush();
        let Some(worker) = &self.worker else {
            let _ = hostcall::done();
            return;
        };
        let mut worker = worker.borrow_mut();
        let worker = &mut *worker;
        let empty = worker.exports.is_empty();
        if !empty && now_ms() < until {
            return;
        }
        if !empty {
            let lost = worker.exports.abandon_all();
            log::warn!(
                "threadline: {lost} spans dropped: the configuration ended before they were exported"
            );
            worker.metrics.dropped(DropReason::Shutdown, lost);
        }
        if let Err(status) = hostcall::done() {
            log::warn!("threadline: proxy_done failed: status {}", status.0);
        }
    }
}

fn now_ms() -> u64 {
    hostcall::now_nanos().unwrap_or(0) / 1_000_000
}

/// A request of a root without a configuration: nothing is read or changed.
struct Untraced;

impl Context for Untraced {}
impl HttpContext for Untraced {}

impl Default for Root {
    fn default() -> Self {
        Self::new()
    }
}

fn record(metrics: &Metrics, settled: Settled) {
    match settled {
        Settled::Exported(n) => metrics.add(Counter::SpansExported, n),
        Settled::Dropped(n, reason) => {
            log::warn!("threadline: dropped {n} spans: {}", reason.as_str());
            metrics.dropped(reason, n);
        }
        Settled::Retrying { .. } => {}
    }
}

/// A seed from the host's randomness. `random_get` is a hard import, so a host without it
/// never instantiates the module; a call that fails anyway seeds IDs from the clock.
fn seed() -> u64 {
    hostcall::random_u64().unwrap_or_else(|status| {
        log::warn!(
            "threadline: random_get failed (status {}), seeding IDs from the clock",
            status.0
        );
        hostcall::now_nanos().unwrap_or(0x9e37_79b9_7f4a_7c15)
    })
}

fn fill_from_node_metadata(tags: &mut Tags) {
    for (tag, key) in [
        (&mut tags.datacenter, "THREADLINE_DATACENTER"),
        (&mut tags.location, "THREADLINE_LOCATION"),
        (&mut tags.node, "THREADLINE_NODE"),
        (&mut tags.workload, "THREADLINE_WORKLOAD"),
    ] {
        if tag.is_none() {
            *tag = properties::node_metadata(key);
        }
    }
}

impl Context for Root {
    fn on_http_call_response(&mut self, token: u32, _: usize, _: usize, _: usize) {
        let Some(worker) = &self.worker else { return };
        // A failed callout (reset, timeout) has no response headers at all.
        let header = |name| {
            hostcall::header_value(Map::CallResponseHeaders, name)
                .ok()
                .flatten()
        };
        let status =
            header(":status").and_then(|v| core::str::from_utf8(&v).ok()?.parse::<u16>().ok());
        let delivery = match status {
            Some(status) => Delivery::Http {
                status,
                retry_after_ms: header("retry-after").and_then(|v| retry_after_ms(&v)),
            },
            None => Delivery::NoResponse,
        };
        let mut guard = worker.borrow_mut();
        let worker = &mut *guard;
        let random = worker.ids.random();
        let Some(settled) = worker.exports.completed(token, delivery, now_ms(), random) else {
            return;
        };
        if !matches!(settled, Settled::Exported(_)) {
            log::warn!("threadline: export failed with status {status:?}");
            worker.metrics.add(Counter::ExportFailures, 1);
        }
        record(&worker.metrics, settled);
        drop(guard);
        self.continue_drain();
    }

    fn on_done(&mut self) -> bool {
        let Some(worker) = &self.worker else {
            return true;
        };
        worker.borrow_mut().exports.close();
        self.draining_until_ms = Some(now_ms().saturating_add(DRAIN_DEADLINE_MS));
        self.flush();
        worker.borrow().exports.is_empty()
    }
}

impl RootContext for Root {
    fn on_configure(&mut self, _: usize) -> bool {
        let bytes = match hostcall::plugin_configuration() {
            Ok(bytes) => bytes,
            Err(status) => {
                log::error!(
                    "threadline: plugin configuration unreadable (status {}), requests pass through untraced",
                    status.0
                );
                self.metrics
                    .get_or_insert_with(Metrics::define)
                    .add(Counter::ConfigErrors, 1);
                return true;
            }
        };
        self.configure(&bytes)
    }

    fn on_tick(&mut self) {
        if self.draining_until_ms.is_some() {
            self.continue_drain();
        } else {
            self.flush();
        }
    }

    fn create_http_context(&self, _: u32) -> Option<Box<dyn HttpContext>> {
        // The SDK panics on `None`, so an unconfigured root passes requests through untraced.
        Some(match self.worker.clone() {
            Some(worker) => Box::new(RequestSpan::new(worker)),
            None => Box::new(Untraced),
        })
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}
