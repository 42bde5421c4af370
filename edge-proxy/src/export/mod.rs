//! Span export: a bounded queue the proxy never waits on, and a background service that sends
//! batches over OTLP/HTTP or OTLP/gRPC (or prints them when no collector is configured) and
//! flushes on shutdown. What is held, when a batch is due, what is retried after how long and
//! what is dropped is trace-core's export policy (`trace_core::export`); this module is its I/O.

mod grpc;
mod queue;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use trace_core::export::verdict::retry_after_ms;
use trace_core::export::{Backoff, BufferLimits, Delivery, Dispatch, DropReason, Settled, Verdict};
use trace_core::otlp::{CONTENT_TYPE, encode_request_from_entries};
use trace_core::semconv;
use trace_core::span::{KeyValue, Resource, Scope, Span};

use self::queue::{Encoding, Queue};
use crate::config::{Export, Protocol};
use crate::metrics::{EXPORT_ERRORS, SPANS_DROPPED};

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

/// The span pipeline: the proxy's sink, and the exporter service that drains it.
pub fn pipeline(settings: &Export) -> Result<(SpanSink, Exporter), String> {
    let timeout = Duration::from_millis(settings.timeout_ms);
    let transport = match (settings.traces_url(), settings.protocol) {
        (None, _) => Transport::Terminal,
        (Some(url), Protocol::HttpProtobuf) => {
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
            Transport::Http {
                url,
                headers,
                timeout,
                client,
            }
        }
        (Some(target), Protocol::Grpc) => {
            let endpoint = tonic::transport::Endpoint::from_shared(target)
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
        BufferLimits {
            batch_spans: settings.batch_size,
            capacity_spans: settings.queue_size,
            flush_interval_ms: settings.flush_interval_ms,
            // One request at a time: the exporter is one task, and a slow collector is better
            // met by backing off than by more connections.
            max_in_flight: 1,
            max_retries: settings.max_retries,
            backoff: Backoff::default(),
        },
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
    /// One attempt at sending `dispatch`; failures are counted and logged here, and what they
    /// mean is the export policy's verdict.
    async fn attempt(&self, dispatch: &Dispatch) -> Verdict {
        let batch = &dispatch.batch;
        if let Transport::Terminal = self.transport {
            // The terminal is best effort: a closed stdout must not stop the exporter.
            let _ = std::io::stdout().lock().write_all(&batch.entries);
            return Verdict::Accepted;
        }
        let mut body = Vec::with_capacity(batch.entries.len() + 256);
        encode_request_from_entries(&self.resource, &Scope::default(), &batch.entries, &mut body);
        let (delivery, error) = self.send(bytes::Bytes::from(body)).await;
        let verdict = delivery.verdict();
        if verdict != Verdict::Accepted {
            EXPORT_ERRORS.inc();
            tracing::warn!(
                attempt = dispatch.failures + 1,
                error = %error.unwrap_or_default(),
                ?verdict,
                spans = batch.spans,
                "span export failed"
            );
        }
        verdict
    }

    /// Sends one request: how it ended, and a readable error when it failed.
    async fn send(&self, body: bytes::Bytes) -> (Delivery, Option<String>) {
        match &self.transport {
            Transport::Terminal => (
                Delivery::Http {
                    status: 200,
                    retry_after_ms: None,
                },
                None,
            ),
            Transport::Http {
                url,
                headers,
                timeout,
                client,
            } => {
                let client = {
                    let Ok(mut cached) = client.lock() else {
                        return (
                            Delivery::NoResponse,
                            Some("http client lock poisoned".into()),
                        );
                    };
                    match &*cached {
                        Some(client) => client.clone(),
                        None => match http_client(headers, *timeout) {
                            Ok(built) => cached.insert(built).clone(),
                            Err(e) => return (Delivery::NoResponse, Some(e)),
                        },
                    }
                };
                let sent = client
                    .post(url)
                    .header(http::header::CONTENT_TYPE, CONTENT_TYPE)
                    .body(body)
                    .send()
                    .await;
                match sent {
                    Err(e) => (Delivery::NoResponse, Some(format!("{url}: {e}"))),
                    Ok(response) => {
                        let status = response.status();
                        let retry_after_ms = response
                            .headers()
                            .get(http::header::RETRY_AFTER)
                            .and_then(|v| retry_after_ms(v.as_bytes()));
                        let delivery = Delivery::Http {
                            status: status.as_u16(),
                            retry_after_ms,
                        };
                        let error = (!status.is_success()).then(|| format!("{url}: HTTP {status}"));
                        (delivery, error)
                    }
                }
            }
            Transport::Grpc { endpoint, channel } => {
                let channel = match channel.lock() {
                    Ok(mut channel) => channel
                        .get_or_insert_with(|| endpoint.connect_lazy())
                        .clone(),
                    Err(_) => {
                        return (
                            Delivery::NoResponse,
                            Some("grpc channel lock poisoned".into()),
                        );
                    }
                };
                grpc::export(channel, body, &self.settings).await
            }
        }
    }
}

/// Sends every batch that is due until none is. The batch being sent stays in `in_flight`, so
/// that a caller whose future is dropped mid-send still has it.
async fn send_due(queue: &Queue, sender: &Sender, in_flight: &mut Option<Dispatch>) {
    while let Some(dispatch) = queue.next_dispatch() {
        let dispatch = in_flight.insert(dispatch);
        let verdict = sender.attempt(dispatch).await;
        if let Some(dispatch) = in_flight.take()
            && let Settled::Dropped(spans, reason) = queue.settle(dispatch, verdict)
        {
            tracing::warn!(
                spans,
                reason = reason.as_str(),
                "spans dropped: export gave up"
            );
        }
    }
}

/// The exporter's hold on the queue and on the batch it is sending. Dropping it flushes both:
/// the exporter runs until Pingora drops its task while shutting its runtime down, so the
/// final flush cannot be an ordinary async step.
struct Pending {
    queue: Arc<Queue>,
    /// Sent again at shutdown if its export was cut short: at least once, not at most once.
    in_flight: Option<Dispatch>,
    sender: Arc<Sender>,
}

impl Drop for Pending {
    fn drop(&mut self) {
        // Spans that arrive after this are counted as dropped at shutdown.
        self.queue.close();
        if let Some(cut_short) = self.in_flight.take() {
            self.queue.requeue(cut_short);
        }
        let count = self.queue.held();
        if count == 0 {
            return;
        }
        let (queue, sender) = (self.queue.clone(), self.sender.clone());
        let settings = &sender.settings;
        let batches = count.div_ceil(settings.batch_size.max(1)) as u64;
        // Every attempt of every batch may time out, with a backoff of at most a second between.
        let budget = Duration::from_millis(
            (settings.timeout_ms + 1000) * (u64::from(settings.max_retries) + 1) * batches,
        );
        let (done, finished) = std::sync::mpsc::channel();
        // Its own thread and runtime: this may run inside the runtime being shut down.
        let flush = std::thread::Builder::new()
            .name("span-flush".into())
            .spawn(move || {
                sender.transport.forget_connections();
                let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                else {
                    return;
                };
                let mut in_flight = None;
                // The timer is made inside the runtime: it needs the runtime's clock.
                let flushed = runtime.block_on(async {
                    tokio::time::timeout(budget, async {
                        loop {
                            send_due(&queue, &sender, &mut in_flight).await;
                            match queue.next_due_ms() {
                                Some(due) => tokio::time::sleep_until(queue.instant(due)).await,
                                None => break,
                            }
                        }
                    })
                    .await
                });
                if let Some(cut_short) = in_flight.take() {
                    queue.requeue(cut_short);
                }
                let _ = done.send((flushed.is_ok(), queue.discard()));
            });
        let finished = flush.ok().and_then(|_| {
            finished
                .recv_timeout(budget + Duration::from_millis(500))
                .ok()
        });
        match finished {
            Some((true, _)) => tracing::info!(spans = count, "span exporter flushed on shutdown"),
            Some((false, lost)) => tracing::warn!(
                spans = lost,
                "span exporter could not flush everything on shutdown: spans dropped"
            ),
            None => {
                let lost = self.queue.discard();
                tracing::warn!(spans = lost, "span exporter could not flush on shutdown");
            }
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
        let mut drops = DropReport::default();
        loop {
            send_due(&pending.queue, &pending.sender, &mut pending.in_flight).await;
            drops.report();
            // A partial batch does not wake the exporter, so it looks again at least once per
            // flush interval.
            let latest = tokio::time::Instant::now() + interval;
            let wake = self
                .queue
                .next_due_ms()
                .map_or(latest, |due| self.queue.instant(due).min(latest));
            tokio::select! {
                () = self.queue.batch_ready() => {}
                () = tokio::time::sleep_until(wake) => {}
            }
        }
    }
}

/// Logs spans refused by a full queue, at most once per batch or flush interval rather than
/// once per span.
#[derive(Default)]
struct DropReport {
    queue_full: u64,
    retry_backlog: u64,
}

impl DropReport {
    fn report(&mut self) {
        let full = SPANS_DROPPED
            .with_label_values(&[DropReason::QueueFull.as_str()])
            .get();
        if full > self.queue_full {
            tracing::warn!(
                spans = full - self.queue_full,
                "export queue full: spans dropped since the last report (export.queue_size, or a slow collector)"
            );
            self.queue_full = full;
        }
        let backlog = SPANS_DROPPED
            .with_label_values(&[DropReason::RetryBacklog.as_str()])
            .get();
        if backlog > self.retry_backlog {
            tracing::warn!(
                spans = backlog - self.retry_backlog,
                "export queue full of batches waiting to be retried: spans dropped since the last report (the collector is failing)"
            );
            self.retry_backlog = backlog;
        }
    }
}
