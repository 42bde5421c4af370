//! The relay against a loopback collector that answers as a script says.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use otlp_export::{Exporter, Framing, Target};
use trace_core::export::{Backoff, BufferLimits, DropReason};
use trace_core::otlp::decode_request;
use trace_core::otlp::proto::collector::trace::v1::ExportTraceServiceRequest;
use trace_core::otlp::proto::common::v1::{AnyValue, KeyValue, any_value};
use trace_core::otlp::proto::resource::v1::Resource as ProtoResource;
use trace_core::otlp::proto::trace::v1::{ResourceSpans, ScopeSpans, Span as ProtoSpan};
use trace_core::span::{Resource, Span};
use trace_core::{SpanContext, TraceFlags, TraceId};

use super::*;
use crate::config::Export;
use crate::join::Resolved;

/// A collector on a loopback port: answers each request with the next scripted status (200
/// once the script is done) and keeps the bodies it accepted.
#[derive(Clone, Default)]
struct Collector {
    script: Arc<Mutex<VecDeque<u16>>>,
    accepted: Arc<Mutex<Vec<ExportTraceServiceRequest>>>,
}

impl Collector {
    async fn start(script: &[u16]) -> (Self, String) {
        let collector = Self::default();
        collector.script.lock().unwrap().extend(script);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/v1/traces", listener.local_addr().unwrap());
        let serving = collector.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let collector = serving.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |request: Request<Incoming>| {
                        let collector = collector.clone();
                        async move {
                            let body = request.into_body().collect().await.unwrap().to_bytes();
                            let status =
                                collector.script.lock().unwrap().pop_front().unwrap_or(200);
                            if status == 200 {
                                collector
                                    .accepted
                                    .lock()
                                    .unwrap()
                                    .push(decode_request(&body).unwrap());
                            }
                            Ok::<_, Infallible>(
                                Response::builder()
                                    .status(status)
                                    .body(Full::new(bytes::Bytes::new()))
                                    .unwrap(),
                            )
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        (collector, url)
    }

    fn spans(&self) -> Vec<(String, String)> {
        let accepted = self.accepted.lock().unwrap();
        accepted
            .iter()
            .flat_map(|r| &r.resource_spans)
            .flat_map(|rs| {
                let service = rs
                    .resource
                    .as_ref()
                    .and_then(|r| r.attributes.iter().find(|kv| kv.key == "service.name"))
                    .and_then(|kv| kv.value.as_ref())
                    .and_then(|v| match &v.value {
                        Some(any_value::Value::StringValue(s)) => Some(s.clone()),
                        _ => None,
                    })
                    .unwrap_or_default();
                rs.scope_spans.iter().flat_map(move |ss| {
                    ss.spans.iter().map({
                        let service = service.clone();
                        move |s| (service.clone(), s.name.clone())
                    })
                })
            })
            .collect()
    }
}

fn limits(capacity: usize) -> BufferLimits {
    BufferLimits {
        batch_spans: 2,
        capacity_spans: capacity,
        flush_interval_ms: 20,
        max_in_flight: 1,
        max_retries: 3,
        backoff: Backoff {
            initial_ms: 10,
            max_ms: 20,
        },
    }
}

fn relay(capacity: usize) -> Relay {
    Relay::new(limits(capacity), Counts::detached(), Counts::detached())
}

fn resolved(name: &'static str, sampled: bool) -> Resolved {
    Resolved {
        span: Span {
            name: name.into(),
            context: SpanContext {
                trace_id: TraceId::from_bytes([1; 16]),
                span_id: trace_core::SpanId::from_bytes([2; 8]),
                flags: TraceFlags::default().with_sampled(sampled),
                ..SpanContext::default()
            },
            ..Span::default()
        },
        resource: Arc::new(Resource {
            attributes: vec![trace_core::span::KeyValue::new("service.name", "orders")],
        }),
    }
}

fn received(service: &str, names: &[&str]) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(ProtoResource {
                attributes: vec![KeyValue {
                    key: "service.name".into(),
                    value: Some(AnyValue {
                        value: Some(any_value::Value::StringValue(service.into())),
                    }),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans: names
                    .iter()
                    .map(|n| ProtoSpan {
                        name: (*n).into(),
                        trace_id: vec![3; 16],
                        span_id: vec![4; 8],
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

async fn run(
    relay: &Relay,
    url: &str,
    flush_interval_ms: u64,
) -> (
    tokio::sync::watch::Sender<bool>,
    tokio::task::JoinHandle<()>,
) {
    let mut settings = Export::default();
    settings.traces_endpoint = Some(url.to_owned());
    settings.flush_interval_ms = flush_interval_ms;
    settings.shutdown_timeout_ms = 2000;
    let exporter = Arc::new(Exporter::new(
        "relay",
        relay.queue(),
        Target::new(&settings).unwrap(),
        Framing::Complete,
        &settings,
    ));
    let (stop, mut stopped) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(async move {
        exporter
            .serve(async move {
                let _ = stopped.changed().await;
            })
            .await;
    });
    (stop, task)
}

async fn wait_for(mut done: impl FnMut() -> bool) {
    for _ in 0..200 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out");
}

#[tokio::test]
async fn black_box_and_sidecar_spans_reach_the_collector_under_their_own_resources() {
    let (collector, url) = Collector::start(&[]).await;
    let relay = relay(100);
    let (stop, task) = run(&relay, &url, 20).await;
    relay.black_box(&resolved("GET /bb", true));
    relay.black_box(&resolved("GET /unsampled", false));
    assert_eq!(relay.forward(&received("sidecar", &["a", "b", "c"])), 3);
    wait_for(|| collector.spans().len() == 4).await;
    let mut spans = collector.spans();
    spans.sort();
    assert_eq!(
        spans,
        [
            ("orders".into(), "GET /bb".into()),
            ("sidecar".into(), "a".into()),
            ("sidecar".into(), "b".into()),
            ("sidecar".into(), "c".into()),
        ]
    );
    let counts = relay.counts();
    assert_eq!(counts.get(RelayCount::Unsampled), 1);
    assert_eq!(counts.get(RelayCount::Exported), 4);
    stop.send(true).unwrap();
    task.await.unwrap();
}

#[tokio::test]
async fn an_outage_is_retried_and_drops_beyond_the_buffer_are_counted() {
    let (collector, url) = Collector::start(&[503, 503]).await;
    let relay = relay(4);
    let (stop, task) = run(&relay, &url, 20).await;
    relay.forward(&received("sidecar", &["1", "2"]));
    wait_for(|| relay.counts().get(RelayCount::ExportErrors) >= 1).await;
    // The failing batch holds room: beyond the bound, spans are dropped as a retry backlog.
    relay.forward(&received("sidecar", &["3", "4", "5"]));
    assert_eq!(relay.queue().dropped(DropReason::RetryBacklog), 1);
    wait_for(|| collector.spans().len() == 4).await;
    assert_eq!(relay.counts().get(RelayCount::ExportErrors), 2);
    // A collector that refuses for good: dropped at once, as rejected.
    collector.script.lock().unwrap().push_back(400);
    relay.forward(&received("sidecar", &["6", "7"]));
    wait_for(|| relay.queue().dropped(DropReason::Rejected) == 2).await;
    stop.send(true).unwrap();
    task.await.unwrap();
}

#[tokio::test]
async fn shutdown_flushes_what_is_held() {
    let (collector, url) = Collector::start(&[]).await;
    let relay = Relay::new(
        BufferLimits {
            flush_interval_ms: 60_000,
            batch_spans: 100,
            ..limits(100)
        },
        Counts::detached(),
        Counts::detached(),
    );
    let (stop, task) = run(&relay, &url, 60_000).await;
    relay.forward(&received("sidecar", &["x"]));
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(collector.spans().is_empty(), "the flush interval is long");
    stop.send(true).unwrap();
    task.await.unwrap();
    assert_eq!(collector.spans().len(), 1);
    relay.forward(&received("sidecar", &["late"]));
    assert_eq!(relay.queue().dropped(DropReason::Shutdown), 1);
}
