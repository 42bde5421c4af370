//! Span export: a bounded queue the proxy never waits on, and a background service that sends
//! batches over OTLP/HTTP or OTLP/gRPC (or prints them when no collector is configured),
//! retries with backoff, counts what it drops, and flushes on shutdown.

mod grpc;
mod queue;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use trace_core::otlp::{CONTENT_TYPE, TRACES_PATH, encode_request_from_entries};
use trace_core::semconv;
use trace_core::span::{KeyValue, Resource, Scope, Span};

use self::queue::{Batch, Encoding, Queue};
use crate::config::{Export, Protocol};
use crate::metrics::{EXPORT_ERRORS, SPANS_DROPPED, SPANS_EXPORTED};

/// The proxy's handle on the queue.
///
/// Submitting never wakes the exporter for a single span: a cross-thread wake-up per span
/// costs more than building the span. The exporter is woken once a batch is ready, and
/// otherwise drains the queue on its flush interval.
#[derive(Clone)]
pub struct SpanSink {
    queue: Arc<Queue>,
}

impl SpanSink {
    /// Encodes and queues a finished span; a full queue drops it and counts it.
    pub fn submit(&self, span: Span) {
        self.queue.submit(span);
    }
}

/// Where batches go.
enum Transport {
    Terminal,
    /// The client is made inside the runtime that uses it (its connections' workers run there).
    Http {
        url: String,
        headers: http::HeaderMap,
        timeout: Duration,
        client: Mutex<Option<reqwest::Client>>,
    },
    /// The channel is made inside the runtime that uses it (tonic spawns its worker there).
    Grpc {
        endpoint: Box<tonic::transport::Endpoint>,
        channel: Mutex<Option<tonic::transport::Channel>>,
    },
}

impl Transport {
    /// Forgets the cached client or channel: its connections' workers lived in a runtime
    /// that is gone, and a request handed to them would never be sent.
    fn forget_connections(&self) {
        match self {
            Transport::Terminal => {}
            Transport::Http { client, .. } => {
                if let Ok(mut client) = client.lock() {
                    *client = None;
                }
            }
            Transport::Grpc { channel, .. } => {
                if let Ok(mut channel) = channel.lock() {
                    *channel = None;
                }
            }
        }
    }
}

fn http_client(headers: &http::HeaderMap, timeout: Duration) -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .timeout(timeout)
        .default_headers(headers.clone())
        .build()
        .map_err(|e| format!("export: {e}"))
}

/// The part of the exporter that sends, shared with the final flush.
struct Sender {
    transport: Transport,
    settings: Export,
    resource: Resource,
}

/// The background export service.
pub struct Exporter {
    queue: Arc<Queue>,
    sender: Arc<Sender>,
}

/// A queue and its exporter.
pub fn channel(settings: &Export) -> Result<(SpanSink, Exporter), String> {
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
            // Built once here so that a client that cannot be built is refused at start.
            let client = Mutex::new(Some(http_client(&headers, timeout)?));
            let base = endpoint.trim_end_matches('/');
            let url = if base.ends_with(TRACES_PATH) {
                base.to_owned()
            } else {
                format!("{base}{TRACES_PATH}")
            };
            Transport::Http {
                url,
                headers,
                timeout,
                client,
            }
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
    let encoding = match transport {
        Transport::Terminal => Encoding::Lines,
        _ => Encoding::Otlp,
    };
    let queue = Arc::new(Queue::new(
        encoding,
        settings.batch_size,
        settings.queue_size,
    ));
    let exporter = Exporter {
        queue: queue.clone(),
        sender: Arc::new(Sender {
            transport,
            settings: settings.clone(),
            resource: Resource { attributes },
        }),
    };
    Ok((SpanSink { queue }, exporter))
}

impl Sender {
    /// Sends one batch, retrying with backoff; counts the outcome.
    async fn export(&self, batch: &Batch) {
        let count = batch.spans as u64;
        if let Transport::Terminal = self.transport {
            // The terminal is best effort: a closed stdout must not stop the exporter.
            let _ = std::io::stdout().lock().write_all(&batch.bytes);
            return;
        }
        let mut body = Vec::with_capacity(batch.bytes.len() + 256);
        encode_request_from_entries(&self.resource, &Scope::default(), &batch.bytes, &mut body);
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
            Transport::Http {
                url,
                headers,
                timeout,
                client,
            } => {
                let client = {
                    let mut cached = client
                        .lock()
                        .map_err(|_| "http client lock poisoned".to_owned())?;
                    match &*cached {
                        Some(client) => client.clone(),
                        None => cached.insert(http_client(headers, *timeout)?).clone(),
                    }
                };
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

/// The exporter's hold on the queue and on the batch it is sending. Dropping it flushes both:
/// the exporter runs until Pingora drops its task while shutting its runtime down, so the
/// final flush cannot be an ordinary async step.
struct Pending {
    queue: Arc<Queue>,
    /// Sent again at shutdown if its export was cut short: at least once, not at most once.
    in_flight: Option<Batch>,
    sender: Arc<Sender>,
}

impl Pending {
    /// Exports `batch`, keeping it for the final flush until it is done.
    async fn export(&mut self, batch: Batch) {
        let spans = batch.spans;
        let batch = self.in_flight.insert(batch);
        self.sender.export(batch).await;
        self.in_flight = None;
        self.queue.release(spans);
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        // Spans that arrive after this are counted as dropped at shutdown.
        let mut batches = self.queue.close();
        batches.extend(self.in_flight.take());
        let count: usize = batches.iter().map(|batch| batch.spans).sum();
        if count == 0 {
            return;
        }
        let sender = self.sender.clone();
        let settings = &sender.settings;
        let budget =
            settings.timeout_ms * (u64::from(settings.max_retries) + 1) * batches.len() as u64;
        let (done, finished) = std::sync::mpsc::channel();
        // Its own thread and runtime: this may run inside the runtime being shut down.
        let flush = std::thread::Builder::new()
            .name("span-flush".into())
            .spawn(move || {
                sender.transport.forget_connections();
                if let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    runtime.block_on(async {
                        for batch in &batches {
                            sender.export(batch).await;
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
        let interval = Duration::from_millis(self.sender.settings.flush_interval_ms);
        let mut pending = Pending {
            queue: self.queue.clone(),
            in_flight: None,
            sender: self.sender.clone(),
        };
        let mut queue_full = DropReport::default();
        let mut deadline = tokio::time::Instant::now() + interval;
        loop {
            let on_time = tokio::select! {
                () = self.queue.batch_ready() => false,
                () = tokio::time::sleep_until(deadline) => true,
            };
            // Full batches, and on the interval whatever else is queued.
            while let Some(batch) = self.queue.take_full() {
                pending.export(batch).await;
            }
            if on_time {
                if let Some(batch) = self.queue.take_open() {
                    pending.export(batch).await;
                }
                deadline = tokio::time::Instant::now() + interval;
            }
            queue_full.report();
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
