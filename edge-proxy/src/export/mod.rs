//! Span export: the proxy's workers encode each finished span into a bounded queue they never
//! wait on, and a background service sends the batches over OTLP/HTTP or OTLP/gRPC (or prints
//! them when no collector is configured) and flushes on shutdown. The policy is trace-core's
//! (`trace_core::export`), the I/O otlp-export's; this module fits them into Pingora.

mod sink;

use std::sync::Arc;

use async_trait::async_trait;
use otlp_export::{Exporter, Framing, Queue, Target};
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use trace_core::semconv;
use trace_core::span::{KeyValue, Resource, Scope};

pub use self::sink::SpanSink;
use self::sink::{EdgeCounters, Encoding};
use crate::config::Export;

/// The background export service.
pub struct ExportService {
    exporter: Arc<Exporter>,
}

/// The span pipeline: the proxy's sink, and the service that drains it.
pub fn pipeline(settings: &Export) -> Result<(SpanSink, ExportService), String> {
    let target = Target::new(settings).map_err(|e| e.to_string())?;
    let mut attributes = vec![KeyValue::new(
        semconv::SERVICE_NAME,
        settings.service_name.clone(),
    )];
    attributes.extend(
        settings
            .resource_attributes
            .iter()
            .map(|(k, v)| KeyValue::new(k.clone(), v.clone())),
    );
    let (encoding, framing) = if target.is_stdout() {
        (Encoding::Lines, Framing::Complete)
    } else {
        let resource = Resource { attributes };
        (
            Encoding::Otlp,
            Framing::Spans {
                resource,
                scope: Scope::default(),
            },
        )
    };
    let queue = Arc::new(Queue::new(
        settings.buffer_limits(),
        Box::new(EdgeCounters::new()),
    ));
    let exporter = Exporter::new("edge", queue.clone(), target, framing, settings);
    Ok((
        SpanSink::new(queue, encoding),
        ExportService {
            exporter: Arc::new(exporter),
        },
    ))
}

/// Flushes what is held when the service's task is dropped.
struct FlushOnDrop(Arc<Exporter>);

impl Drop for FlushOnDrop {
    fn drop(&mut self) {
        self.0.flush_blocking();
    }
}

#[async_trait]
impl BackgroundService for ExportService {
    /// Runs until Pingora drops it. It ignores the shutdown signal on purpose: requests that
    /// finish during the grace period still queue spans, and the last of them are flushed
    /// when the task is dropped, on a thread of its own, because Pingora drops it while
    /// shutting its runtime down.
    async fn start(&self, _shutdown: ShutdownWatch) {
        let _flush = FlushOnDrop(self.exporter.clone());
        self.exporter.run(std::future::pending()).await;
    }
}
