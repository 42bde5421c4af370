//! The root context: one per plugin and worker. It reads the configuration once, owns the
//! worker's ID generator and exporter, and sends batches on its tick. Requests never wait
//! for an export.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::ContextType;
use trace_core::IdGenerator;
use trace_core::otlp::{CONTENT_TYPE, encode_request};
use trace_core::semconv;
use trace_core::span::{KeyValue, Resource, Scope};

use crate::config::{Settings, Tags};
use crate::exporter::{Exporter, Outcome};
use crate::hostcall::{self, Map};
use crate::metrics::{Counter, Metrics};
use crate::properties;
use crate::request::RequestSpan;

/// How often the root looks at its queue; a full batch waits at most this long.
pub const TICK_MS: u32 = 100;

/// What the root shares with the requests of its worker.
pub struct Shared {
    /// The checked configuration.
    pub settings: Settings,
    /// Span and trace IDs.
    pub ids: IdGenerator,
    /// Finished spans and export requests.
    pub exporter: Exporter,
    /// Counters.
    pub metrics: Metrics,
    resource: Resource,
}

/// The root context.
pub struct Root {
    shared: Option<Rc<RefCell<Shared>>>,
}

impl Root {
    /// A root that serves nothing until configured.
    pub fn new() -> Self {
        Self { shared: None }
    }

    fn configure(&mut self, bytes: &[u8]) -> bool {
        let mut settings = match Settings::from_json(bytes) {
            Ok(settings) => settings,
            Err(error) => {
                log::error!("threadline: invalid configuration: {error}");
                return false;
            }
        };
        if settings.tags_from_node_metadata {
            fill_from_node_metadata(&mut settings.tags);
        }
        if let Err(status) = hostcall::set_tick_period(TICK_MS) {
            log::error!(
                "threadline: cannot set the tick period: status {}",
                status.0
            );
            return false;
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
        match &self.shared {
            // A new configuration keeps the queue and the requests in flight.
            Some(shared) => {
                let mut shared = shared.borrow_mut();
                shared.settings = settings;
                shared.resource = resource;
            }
            None => {
                let now_ms = hostcall::now_nanos().unwrap_or(0) / 1_000_000;
                let exporter = Exporter::new(settings.batch.clone(), now_ms);
                self.shared = Some(Rc::new(RefCell::new(Shared {
                    settings,
                    ids: IdGenerator::from_seed(seed()),
                    exporter,
                    metrics: Metrics::define(),
                    resource,
                })));
            }
        }
        true
    }

    /// Sends every export request that is due, until none is or the host refuses one.
    fn flush(&self) {
        let Some(shared) = &self.shared else { return };
        let now_ms = hostcall::now_nanos().unwrap_or(0) / 1_000_000;
        loop {
            let mut guard = shared.borrow_mut();
            let state = &mut *guard;
            let resource = &state.resource;
            let Some(export) = state.exporter.next(now_ms, |spans| {
                let mut body = Vec::with_capacity(256 * spans.len());
                encode_request(resource, &Scope::default(), spans, &mut body);
                body
            }) else {
                return;
            };
            let collector = &state.settings.collector;
            let sent = self.dispatch_http_call(
                &collector.cluster,
                vec![
                    (":method", "POST"),
                    (":path", &collector.path),
                    (":authority", &collector.authority),
                    ("content-type", CONTENT_TYPE),
                ],
                Some(&export.body),
                vec![],
                Duration::from_millis(collector.timeout_ms),
            );
            match sent {
                Ok(token) => state.exporter.sent(token, export),
                Err(status) => {
                    log::warn!(
                        "threadline: export to {} refused: {status:?}",
                        collector.cluster
                    );
                    state.metrics.add(Counter::ExportFailures, 1);
                    let outcome = state.exporter.failed(export);
                    record(&state.metrics, &outcome);
                    return;
                }
            }
        }
    }
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

fn record(metrics: &Metrics, outcome: &Outcome) {
    match outcome {
        Outcome::Exported(n) => metrics.add(Counter::SpansExported, *n),
        Outcome::Dropped(n) => {
            log::warn!("threadline: dropped {n} spans after repeated export failures");
            metrics.add(Counter::SpansDropped, *n);
        }
        Outcome::Retrying => {}
    }
}

/// A seed from the host's randomness, or from the clock if it has none.
fn seed() -> u64 {
    hostcall::random_u64().unwrap_or_else(|status| {
        log::warn!(
            "threadline: no random_get (status {}), seeding IDs from the clock",
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
        let Some(shared) = &self.shared else { return };
        let status = hostcall::header_value(Map::CallResponseHeaders, ":status")
            .ok()
            .flatten()
            .and_then(|v| core::str::from_utf8(&v).ok()?.parse::<u16>().ok());
        let mut shared = shared.borrow_mut();
        let Some(outcome) = shared.exporter.completed(token, status) else {
            return;
        };
        if !matches!(outcome, Outcome::Exported(_)) {
            log::warn!("threadline: export failed with status {status:?}");
            shared.metrics.add(Counter::ExportFailures, 1);
        }
        record(&shared.metrics, &outcome);
    }
}

impl RootContext for Root {
    fn on_configure(&mut self, _: usize) -> bool {
        let bytes = self.get_plugin_configuration().unwrap_or_default();
        self.configure(&bytes)
    }

    fn on_tick(&mut self) {
        self.flush();
    }

    fn create_http_context(&self, _: u32) -> Option<Box<dyn HttpContext>> {
        // The SDK panics on `None`, so an unconfigured root passes requests through untraced.
        Some(match self.shared.clone() {
            Some(shared) => Box::new(RequestSpan::new(shared)),
            None => Box::new(Untraced),
        })
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}
