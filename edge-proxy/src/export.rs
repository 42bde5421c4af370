//! Span export: a bounded queue the proxy never waits on, and a background service that sends
//! batches over OTLP/HTTP or OTLP/gRPC (or prints them when no collector is configured),
//! retries with backoff, counts what it drops, and flushes on shutdown.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use prometheus::IntCounter;
use tokio::sync::Notify;
use tokio::sync::mpsc::{self, error::TryRecvError, error::TrySendError};
use trace_core::otlp::{CONTENT_TYPE, TRACES_PATH, encode_request};
use trace_core::semconv;
use trace_core::span::{KeyValue, Resource, Scope, Span, SpanKind, StatusCode, Value};

use crate::config::{Export, Protocol};
use crate::metrics::{EXPORT_ERRORS, SPANS_DROPPED, SPANS_EXPORTED};

/// The proxy's handle on the queue.
///
/// Submitting never wakes the exporter for a single span: a cross-thread wake-up per span
/// costs more than building the span. The exporter is woken once a batch is ready, and
/// otherwise drains the queue on its flush interval.
#[derive(Clone)]
pub struct SpanSink {
    tx: mpsc::Sender<Span>,
    batch_ready: Arc<Notify>,
    batch_size: usize,
    dropped_queue_full: IntCounter,
    dropped_shutdown: IntCounter,
}

impl SpanSink {
    /// Queues a finished span; a full queue drops it and counts it.
    pub fn submit(&self, span: Span) {
        match self.tx.try_send(span) {
            Ok(()) => {
                let queued = self.tx.max_capacity() - self.tx.capacity();
                if queued >= self.batch_size {
                    self.batch_ready.notify_one();
                }
            }
            Err(TrySendError::Full(_)) => self.dropped_queue_full.inc(),
            Err(TrySendError::Closed(_)) => self.dropped_shutdown.inc(),
        }
    }
}

/// Where batches go.
enum Transport {
    Terminal,
    Http {
        client: reqwest::Client,
        url: String,
    },
    /// The channel is made inside the runtime that uses it (tonic spawns its worker there).
    Grpc {
        endpoint: Box<tonic::transport::Endpoint>,
        channel: Mutex<Option<tonic::transport::Channel>>,
    },
}

/// The part of the exporter that sends, shared with the final flush.
struct Sender {
    transport: Transport,
    settings: Export,
    resource: Resource,
}

/// The background export service.
pub struct Exporter {
    rx: Mutex<Option<mpsc::Receiver<Span>>>,
    batch_ready: Arc<Notify>,
    sender: Arc<Sender>,
}

/// A queue and its exporter.
pub fn channel(settings: &Export) -> Result<(SpanSink, Exporter), String> {
    let (tx, rx) = mpsc::channel(settings.queue_size);
    let timeout = Duration::from_millis(settings.timeout_ms);
    let transport = match (&settings.endpoint, settings.protocol) {
        (None, _) => Transport::Terminal,
        (Some(endpoint), Protocol::HttpProtobuf) => {
            let mut headers = http::HeaderMap::new();
            for (name, value) in &settings.headers {
                let name = http::HeaderName::from_bytes(name.as_bytes())
                    .map_err(|e| format!("export.headers: {name}: {e}"))?;
                let value = http::HeaderValue::from_str(value)
                    .map_err(|e| format!("export.headers: {name}: {e}"))?;
                headers.insert(name, value);
            }
            let client = reqwest::Client::builder()
                .timeout(timeout)
                .default_headers(headers)
                .build()
                .map_err(|e| format!("export: {e}"))?;
            let base = endpoint.trim_end_matches('/');
            let url = if base.ends_with(TRACES_PATH) {
                base.to_owned()
            } else {
                format!("{base}{TRACES_PATH}")
            };
            Transport::Http { client, url }
        }
        (Some(endpoint), Protocol::Grpc) => {
            let endpoint = tonic::transport::Endpoint::from_shared(endpoint.clone())
                .map_err(|e| format!("export.endpoint: {e}"))?
                .timeout(timeout)
                .connect_timeout(timeout);
            Transport::Grpc {
                endpoint: Box::new(endpoint),
                channel: Mutex::new(None),
            }
        }
    };
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
    let batch_ready = Arc::new(Notify::new());
    let exporter = Exporter {
        rx: Mutex::new(Some(rx)),
        batch_ready: batch_ready.clone(),
        sender: Arc::new(Sender {
            transport,
            settings: settings.clone(),
            resource: Resource { attributes },
        }),
    };
    let sink = SpanSink {
        tx,
        batch_ready,
        batch_size: settings.batch_size,
        dropped_queue_full: SPANS_DROPPED.with_label_values(&["queue_full"]),
        dropped_shutdown: SPANS_DROPPED.with_label_values(&["shutdown"]),
    };
    Ok((sink, exporter))
}

impl Sender {
    /// Sends one batch, retrying with backoff; counts the outcome.
    async fn export(&self, spans: Vec<Span>) {
        if let Transport::Terminal = self.transport {
            for span in &spans {
                println!("{}", readable(span));
            }
            return;
        }
        let count = spans.len() as u64;
        let mut body = Vec::with_capacity(256 * spans.len());
        encode_request(&self.resource, &Scope::default(), &spans, &mut body);
        drop(spans);
        // Shared, so a retry does not copy the batch.
        let body = bytes::Bytes::from(body);
        let mut backoff = Duration::from_millis(100);
        for attempt in 0..=self.settings.max_retries {
            match self.send(body.clone()).await {
                Ok(()) => {
                    SPANS_EXPORTED.inc_by(count);
                    return;
                }
                Err(error) => {
                    EXPORT_ERRORS.inc();
                    tracing::warn!(attempt, %error, spans = count, "span export failed");
                }
            }
            if attempt < self.settings.max_retries {
                tokio::time::sleep(backoff).await;
                backoff *= 2;
            }
        }
        SPANS_DROPPED
            .with_label_values(&["export_failed"])
            .inc_by(count);
    }

    async fn send(&self, body: bytes::Bytes) -> Result<(), String> {
        match &self.transport {
            Transport::Terminal => Ok(()),
            Transport::Http { client, url } => {
                let response = client
                    .post(url)
                    .header(http::header::CONTENT_TYPE, CONTENT_TYPE)
                    .body(body)
                    .send()
                    .await
                    .map_err(|e| format!("{url}: {e}"))?;
                match response.status() {
                    status if status.is_success() => Ok(()),
                    status => Err(format!("{url}: HTTP {status}")),
                }
            }
            Transport::Grpc { endpoint, channel } => {
                let channel = channel
                    .lock()
                    .map_err(|_| "grpc channel lock poisoned".to_owned())?
                    .get_or_insert_with(|| endpoint.connect_lazy())
                    .clone();
                grpc::export(channel, body, &self.settings).await
            }
        }
    }
}

/// The exporter's queue end and its unsent batch. Dropping it flushes: the exporter runs until
/// Pingora drops its task while shutting its runtime down, so the final flush cannot be an
/// ordinary async step.
struct Pending {
    rx: mpsc::Receiver<Span>,
    batch: Vec<Span>,
    sender: Arc<Sender>,
}

impl Drop for Pending {
    fn drop(&mut self) {
        // Spans that arrive after this are counted as dropped at shutdown.
        self.rx.close();
        while let Ok(span) = self.rx.try_recv() {
            self.batch.push(span);
        }
        let spans = std::mem::take(&mut self.batch);
        if spans.is_empty() {
            return;
        }
        let count = spans.len();
        let sender = self.sender.clone();
        let settings = &sender.settings;
        let budget = settings.timeout_ms
            * (u64::from(settings.max_retries) + 1)
            * count.div_ceil(settings.batch_size) as u64;
        let (done, finished) = std::sync::mpsc::channel();
        // Its own thread and runtime: this may run inside the runtime being shut down.
        let flush = std::thread::Builder::new()
            .name("span-flush".into())
            .spawn(move || {
                if let Transport::Grpc { channel, .. } = &sender.transport
                    && let Ok(mut channel) = channel.lock()
                {
                    // A cached channel's worker lived in the runtime that is gone.
                    *channel = None;
                }
                if let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    runtime.block_on(async {
                        for batch in spans.chunks(sender.settings.batch_size) {
                            sender.export(batch.to_vec()).await;
                        }
                    });
                    let _ = done.send(());
                }
            });
        let flushed = flush.is_ok()
            && finished
                .recv_timeout(Duration::from_millis(budget + 500))
                .is_ok();
        if flushed {
            tracing::info!(spans = count, "span exporter flushed on shutdown");
        } else {
            SPANS_DROPPED
                .with_label_values(&["shutdown"])
                .inc_by(count as u64);
            tracing::warn!(spans = count, "span exporter could not flush on shutdown");
        }
    }
}

#[async_trait]
impl BackgroundService for Exporter {
    /// Runs until Pingora drops it. It ignores the shutdown signal on purpose: requests that
    /// finish during the grace period still queue spans, and the last of them are flushed when
    /// the task is dropped (see [`Pending`]).
    async fn start(&self, _shutdown: ShutdownWatch) {
        let Some(rx) = self.rx.lock().ok().and_then(|mut rx| rx.take()) else {
            return;
        };
        let sender = self.sender.clone();
        let interval = Duration::from_millis(sender.settings.flush_interval_ms);
        let mut pending = Pending {
            rx,
            batch: Vec::with_capacity(sender.settings.batch_size),
            sender: sender.clone(),
        };
        let mut queue_full = DropReport::default();
        let mut deadline = tokio::time::Instant::now() + interval;
        loop {
            let on_time = tokio::select! {
                () = self.batch_ready.notified() => false,
                () = tokio::time::sleep_until(deadline) => true,
            };
            // A batch, or on the interval whatever is queued, one batch at a time.
            loop {
                let open = pending.fill();
                let full = pending.batch.len() >= sender.settings.batch_size;
                if full || (on_time && !pending.batch.is_empty()) {
                    sender.export(std::mem::take(&mut pending.batch)).await;
                }
                if !open {
                    return;
                }
                if !full {
                    break;
                }
            }
            queue_full.report();
            if on_time {
                deadline = tokio::time::Instant::now() + interval;
            }
        }
    }
}

/// Logs spans dropped on a full queue, at most once per batch or flush interval rather than
/// once per span.
#[derive(Default)]
struct DropReport {
    reported: u64,
}

impl DropReport {
    fn report(&mut self) {
        let dropped = SPANS_DROPPED.with_label_values(&["queue_full"]).get();
        if dropped > self.reported {
            tracing::warn!(
                spans = dropped - self.reported,
                "export queue full: spans dropped since the last report (export.queue_size, or a slow collector)"
            );
            self.reported = dropped;
        }
    }
}

impl Pending {
    /// Moves queued spans into the batch until it is full; false once the queue is closed.
    fn fill(&mut self) -> bool {
        while self.batch.len() < self.sender.settings.batch_size {
            match self.rx.try_recv() {
                Ok(span) => self.batch.push(span),
                Err(TryRecvError::Empty) => return true,
                Err(TryRecvError::Disconnected) => return false,
            }
        }
        true
    }
}

/// One line per span for the terminal.
fn readable(span: &Span) -> String {
    let kind = match span.kind {
        SpanKind::Server => "SERVER",
        SpanKind::Client => "CLIENT",
        _ => "INTERNAL",
    };
    let status = match span.status.code {
        StatusCode::Error => format!(" ERROR({})", span.status.message),
        _ => String::new(),
    };
    let parent = span
        .parent_span_id
        .map_or("-".to_owned(), |p| p.to_string());
    let attributes: Vec<String> = span
        .attributes
        .iter()
        .map(|kv| {
            let value = match &kv.value {
                Value::Str(s) => s.to_string(),
                Value::Int(i) => i.to_string(),
                Value::Bool(b) => b.to_string(),
                Value::Double(d) => d.to_string(),
            };
            format!("{}={value}", kv.key)
        })
        .collect();
    format!(
        "span {kind} {:?} trace={} span={} parent={parent} {:.3}ms{status} {}",
        span.name,
        span.trace_id(),
        span.span_id(),
        span.duration_nanos() as f64 / 1e6,
        attributes.join(" ")
    )
}

/// OTLP/gRPC with tonic, sending the bytes trace-core already encoded.
mod grpc {
    use bytes::Buf;
    use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};

    use crate::config::Export;

    const EXPORT_PATH: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

    /// Passes an encoded `ExportTraceServiceRequest` through and discards the response body.
    struct RawCodec;

    struct RawEncoder;

    struct DiscardDecoder;

    impl Codec for RawCodec {
        type Encode = bytes::Bytes;
        type Decode = ();
        type Encoder = RawEncoder;
        type Decoder = DiscardDecoder;

        fn encoder(&mut self) -> Self::Encoder {
            RawEncoder
        }

        fn decoder(&mut self) -> Self::Decoder {
            DiscardDecoder
        }
    }

    impl Encoder for RawEncoder {
        type Item = bytes::Bytes;
        type Error = tonic::Status;

        fn encode(
            &mut self,
            item: bytes::Bytes,
            dst: &mut EncodeBuf<'_>,
        ) -> Result<(), Self::Error> {
            bytes::BufMut::put_slice(dst, &item);
            Ok(())
        }
    }

    impl Decoder for DiscardDecoder {
        type Item = ();
        type Error = tonic::Status;

        fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<()>, Self::Error> {
            src.advance(src.remaining());
            Ok(Some(()))
        }
    }

    /// One unary `Export` call.
    pub async fn export(
        channel: tonic::transport::Channel,
        body: bytes::Bytes,
        settings: &Export,
    ) -> Result<(), String> {
        let mut client = tonic::client::Grpc::new(channel);
        client.ready().await.map_err(|e| format!("grpc: {e}"))?;
        let mut request = tonic::Request::new(body);
        for (name, value) in &settings.headers {
            let key =
                tonic::metadata::MetadataKey::from_bytes(name.to_ascii_lowercase().as_bytes())
                    .map_err(|e| format!("export.headers: {name}: {e}"))?;
            let value = value
                .parse()
                .map_err(|_| format!("export.headers: {name}: invalid value"))?;
            request.metadata_mut().insert(key, value);
        }
        let path = http::uri::PathAndQuery::from_static(EXPORT_PATH);
        client
            .unary(request, path, RawCodec)
            .await
            .map(|_| ())
            .map_err(|status| format!("grpc: {status}"))
    }
}
