//! Both receivers on loopback ports, with a relay that nobody drains.

use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use prost::Message;
use tokio::sync::mpsc;
use trace_core::export::{Backoff, BufferLimits};
use trace_core::otlp::proto::collector::trace::v1::ExportTraceServiceRequest;
use trace_core::otlp::proto::common::v1::{AnyValue, KeyValue, any_value};
use trace_core::otlp::proto::trace::v1::{ResourceSpans, ScopeSpans, Span};
use trace_core::semconv;

use super::*;
use crate::artifact::Artifact;
use crate::join::SidecarSpan;
use crate::metrics::Counts;
use crate::relay::Relay;

struct Running {
    relay: Relay,
    joins: mpsc::Receiver<Vec<SidecarSpan>>,
    intake: Intake,
    http: String,
    grpc: String,
    _stop: tokio::sync::watch::Sender<bool>,
}

async fn start(max_body_bytes: usize) -> Running {
    let relay = Relay::new(
        BufferLimits {
            batch_spans: 1000,
            capacity_spans: 1000,
            flush_interval_ms: 60_000,
            max_in_flight: 1,
            max_retries: 0,
            backoff: Backoff::default(),
        },
        Counts::detached(),
        Counts::detached(),
    );
    let (to_join, joins) = mpsc::channel(16);
    let intake = Intake::new(relay.clone(), to_join, Counts::detached());
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let http_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let grpc_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let http = format!("http://{}", http_listener.local_addr().unwrap());
    let grpc = format!("http://{}", grpc_listener.local_addr().unwrap());
    let receiver = HttpReceiver {
        intake: intake.clone(),
        max_body_bytes,
        artifact: Some(Artifact::new(b"\0asm\x01\0\0\0".to_vec(), "/filter.wasm")),
    };
    tokio::spawn(receiver.serve(http_listener, stopped.clone()));
    tokio::spawn(GrpcReceiver::new(intake.clone()).serve(grpc_listener, max_body_bytes, stopped));
    Running {
        relay,
        joins,
        intake,
        http,
        grpc,
        _stop: stop,
    }
}

fn string(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.into())),
        }),
        ..Default::default()
    }
}

fn int(key: &str, value: i64) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::IntValue(value)),
        }),
        ..Default::default()
    }
}

/// Two spans: one records an upstream 4-tuple, one does not.
fn request() -> ExportTraceServiceRequest {
    let span = |attributes| Span {
        trace_id: vec![1; 16],
        span_id: vec![2; 8],
        name: "GET /".into(),
        attributes,
        ..Default::default()
    };
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans: vec![
                    span(vec![
                        string(semconv::NETWORK_LOCAL_ADDRESS, "10.0.0.1"),
                        int(semconv::NETWORK_LOCAL_PORT, 40_000),
                        string(semconv::NETWORK_PEER_ADDRESS, "10.0.0.2"),
                        int(semconv::NETWORK_PEER_PORT, 8080),
                    ]),
                    span(vec![]),
                ],
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

async fn post(url: &str, content_type: &str, body: Vec<u8>) -> u16 {
    reqwest::Client::new()
        .post(format!("{url}/v1/traces"))
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn otlp_http_is_forwarded_and_joinable_spans_reach_the_join() {
    let mut r = start(1 << 20).await;
    let body = request().encode_to_vec();
    assert_eq!(post(&r.http, "application/x-protobuf", body).await, 200);
    assert_eq!(r.relay.held(), 2);
    let joinable = joined(&mut r.joins).await;
    assert_eq!(joinable.len(), 1);
    assert_eq!(joinable[0].tuple.workload, "10.0.0.2:8080".parse().unwrap());
    assert_eq!(r.intake.counts.get(ReceiverCount::Spans), 2);
}

#[tokio::test]
async fn bad_bodies_are_refused_and_counted() {
    let r = start(64).await;
    assert_eq!(
        post(&r.http, "application/x-protobuf", vec![0xff; 10]).await,
        400
    );
    assert_eq!(r.intake.counts.get(ReceiverCount::Malformed), 1);
    assert_eq!(
        post(&r.http, "application/x-protobuf", vec![0; 65]).await,
        413
    );
    // Without a Content-Length, the body is cut off as it grows past the bound.
    let stream = futures_stream(vec![vec![0u8; 40], vec![0u8; 40]]);
    let status = reqwest::Client::new()
        .post(format!("{}/v1/traces", r.http))
        .header("content-type", "application/x-protobuf")
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 413);
    assert_eq!(r.intake.counts.get(ReceiverCount::TooLarge), 2);
    assert_eq!(post(&r.http, "application/json", b"{}".to_vec()).await, 415);
    assert_eq!(r.relay.held(), 0);
    let status = reqwest::get(format!("{}/nope", r.http))
        .await
        .unwrap()
        .status();
    assert_eq!(status, 404);
}

/// What reached the join, failing rather than hanging when nothing does.
async fn joined(joins: &mut mpsc::Receiver<Vec<SidecarSpan>>) -> Vec<SidecarSpan> {
    tokio::time::timeout(Duration::from_secs(5), joins.recv())
        .await
        .expect("nothing reached the join")
        .unwrap()
}

fn futures_stream(
    chunks: Vec<Vec<u8>>,
) -> impl futures_core::Stream<Item = Result<Vec<u8>, std::io::Error>> {
    tokio_stream::iter(chunks.into_iter().map(Ok))
}

#[tokio::test]
async fn otlp_grpc_is_forwarded_and_oversized_messages_are_refused() {
    let mut r = start(1 << 10).await;
    let mut client = TraceServiceClient::connect(r.grpc.clone()).await.unwrap();
    client.export(request()).await.unwrap();
    assert_eq!(r.relay.held(), 2);
    assert_eq!(joined(&mut r.joins).await.len(), 1);
    let mut big = request();
    big.resource_spans[0].scope_spans[0].spans[1].name = "x".repeat(2000);
    let refused = client.export(big).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::OutOfRange);
    assert_eq!(r.relay.held(), 2);
}

#[tokio::test]
async fn the_artifact_is_served_with_its_digest() {
    let r = start(1 << 10).await;
    let response = reqwest::get(format!("{}/filter.wasm", r.http))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let etag = response.headers()["etag"].to_str().unwrap().to_owned();
    let body = response.bytes().await.unwrap();
    assert_eq!(&body[..], b"\0asm\x01\0\0\0");
    let hex = reqwest::get(format!("{}/filter.wasm.sha256", r.http))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(etag, format!("\"{}\"", hex.trim()));
    tokio::time::sleep(Duration::from_millis(1)).await;
}
