//! The built agent with `--no-kernel`: sidecar spans posted to its receiver over OTLP/HTTP and
//! gRPC reach a loopback collector (decoded with trace-core's decoder), an outage is buffered
//! and then delivered with the drops beyond the buffer counted, configuration errors name the
//! field, the filter artifact is served with its sha256, and SIGTERM flushes.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use prost::Message;
use sha2::{Digest, Sha256};
use trace_core::otlp::decode_request;
use trace_core::otlp::proto::collector::trace::v1::ExportTraceServiceRequest;
use trace_core::otlp::proto::common::v1::{AnyValue, KeyValue, any_value};
use trace_core::otlp::proto::resource::v1::Resource;
use trace_core::otlp::proto::trace::v1::{ResourceSpans, ScopeSpans, Span};

/// A loopback OTLP/HTTP collector that can be down (503) and keeps what it accepted.
#[derive(Clone, Default)]
struct Collector {
    down: Arc<AtomicBool>,
    accepted: Arc<Mutex<Vec<ExportTraceServiceRequest>>>,
    refused: Arc<Mutex<VecDeque<()>>>,
}

impl Collector {
    async fn start() -> (Self, String) {
        let collector = Self::default();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let serving = collector.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let collector = serving.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(
                        move |request: http::Request<hyper::body::Incoming>| {
                            let collector = collector.clone();
                            async move {
                                assert_eq!(request.uri().path(), "/v1/traces");
                                let body = request.into_body().collect().await.unwrap().to_bytes();
                                let status = if collector.down.load(Ordering::SeqCst) {
                                    collector.refused.lock().unwrap().push_back(());
                                    503
                                } else {
                                    collector
                                        .accepted
                                        .lock()
                                        .unwrap()
                                        .push(decode_request(&body).unwrap());
                                    200
                                };
                                Ok::<_, Infallible>(
                                    http::Response::builder()
                                        .status(status)
                                        .body(Full::new(bytes::Bytes::new()))
                                        .unwrap(),
                                )
                            }
                        },
                    );
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        (collector, url)
    }

    /// The names of every span accepted, with their resource's `service.name`.
    fn spans(&self) -> Vec<(String, String)> {
        let mut spans = Vec::new();
        for request in self.accepted.lock().unwrap().iter() {
            for rs in &request.resource_spans {
                let service = rs
                    .resource
                    .as_ref()
                    .and_then(|r| r.attributes.iter().find(|kv| kv.key == "service.name"))
                    .and_then(|kv| match kv.value.as_ref()?.value.as_ref()? {
                        any_value::Value::StringValue(s) => Some(s.clone()),
                        _ => None,
                    })
                    .unwrap_or_default();
                for ss in &rs.scope_spans {
                    for span in &ss.spans {
                        spans.push((service.clone(), span.name.clone()));
                    }
                }
            }
        }
        spans.sort();
        spans
    }
}

/// The agent, killed when dropped.
struct Agent {
    child: Child,
    http: String,
    grpc: String,
    admin: String,
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("node-probe-agent-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn binary() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_node-probe"));
    // The test's own environment must not steer the agent.
    for (name, _) in std::env::vars() {
        if name.starts_with("OTEL_") {
            command.env_remove(name);
        }
    }
    command
}

/// What most tests export with: small batches, sent quickly, retried long enough.
const EXPORT: &str = "flush_interval_ms = 50\nbatch_size = 5\nmax_retries = 10\n";

/// A configuration on loopback ports the system picks, exporting to `collector`.
fn config(collector: &str, export: &str, rest: &str) -> String {
    format!(
        "[receiver]\nhttp = \"127.0.0.1:0\"\ngrpc = \"127.0.0.1:0\"\n\n[admin]\naddress = \"127.0.0.1:0\"\n\n\
         [export]\nendpoint = \"{collector}\"\n{export}\n{rest}"
    )
}

/// Starts the agent on `text` and waits for its "started" log line, which names its ports.
fn start(name: &str, text: &str) -> Agent {
    let file = temp_dir(name).join("node-probe.toml");
    std::fs::write(&file, text).unwrap();
    let mut child = binary()
        .arg("--no-kernel")
        .arg("--config")
        .arg(&file)
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (found, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut found = Some(found);
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains("node-probe started")
                && let Some(found) = found.take()
            {
                let _ = found.send(line);
            }
        }
    });
    let line = lines
        .recv_timeout(Duration::from_secs(30))
        .expect("the agent did not start");
    let log: serde_json::Value = serde_json::from_str(&line).unwrap();
    let field = |name: &str| {
        format!(
            "http://{}",
            log["fields"][name].as_str().unwrap_or_default()
        )
    };
    Agent {
        http: field("http"),
        grpc: field("grpc"),
        admin: field("admin"),
        child,
    }
}

fn sidecar_request(service: &str, names: &[&str]) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
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
                    .map(|name| Span {
                        trace_id: vec![1; 16],
                        span_id: vec![2; 8],
                        name: (*name).into(),
                        flags: 0x101,
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

async fn post(agent: &Agent, request: &ExportTraceServiceRequest) -> u16 {
    reqwest::Client::new()
        .post(format!("{}/v1/traces", agent.http))
        .header("content-type", "application/x-protobuf")
        .body(request.encode_to_vec())
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn metric(agent: &Agent, line_start: &str) -> u64 {
    let text = reqwest::get(format!("{}/metrics", agent.admin))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(line_start)?.trim().parse().ok())
        .unwrap_or(0)
}

fn owned(spans: &[(&str, &str)]) -> Vec<(String, String)> {
    spans
        .iter()
        .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
        .collect()
}

#[tokio::test]
async fn sidecar_spans_over_http_and_grpc_reach_the_collector() {
    let (collector, url) = Collector::start().await;
    let agent = start("relay", &config(&url, EXPORT, ""));
    assert_eq!(
        post(
            &agent,
            &sidecar_request("orders-sidecar", &["GET /a", "GET /b"])
        )
        .await,
        200
    );
    let mut client = TraceServiceClient::connect(agent.grpc.clone())
        .await
        .unwrap();
    client
        .export(sidecar_request("gateway", &["POST /c"]))
        .await
        .unwrap();
    wait_for("three spans", || collector.spans().len() == 3).await;
    assert_eq!(
        collector.spans(),
        owned(&[
            ("gateway", "POST /c"),
            ("orders-sidecar", "GET /a"),
            ("orders-sidecar", "GET /b")
        ])
    );
    // A malformed body is refused and counted, and never reaches the collector.
    let status = reqwest::Client::new()
        .post(format!("{}/v1/traces", agent.http))
        .header("content-type", "application/x-protobuf")
        .body(vec![0xff, 0xff, 0xff])
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 400);
    assert_eq!(
        metric(
            &agent,
            "node_probe_receiver_events_total{event=\"malformed\"}"
        )
        .await,
        1
    );
    assert_eq!(
        metric(&agent, "node_probe_relay_events_total{event=\"exported\"}").await,
        3
    );
}

#[tokio::test]
async fn an_outage_is_buffered_then_delivered_and_drops_beyond_the_buffer_are_counted() {
    let (collector, url) = Collector::start().await;
    collector.down.store(true, Ordering::SeqCst);
    let agent = start(
        "outage",
        &config(&url, &format!("{EXPORT}queue_size = 8\n"), ""),
    );
    let names: Vec<String> = (0..5).map(|i| format!("span {i}")).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    assert_eq!(post(&agent, &sidecar_request("s", &names)).await, 200);
    wait_for("a refused export", || {
        !collector.refused.lock().unwrap().is_empty()
    })
    .await;
    // 5 held for a retry; 8 more offered, room for 3: 5 dropped as a retry backlog.
    let more: Vec<String> = (5..13).map(|i| format!("span {i}")).collect();
    let more: Vec<&str> = more.iter().map(String::as_str).collect();
    assert_eq!(post(&agent, &sidecar_request("s", &more)).await, 200);
    assert!(collector.spans().is_empty());
    collector.down.store(false, Ordering::SeqCst);
    wait_for("the buffered spans", || collector.spans().len() == 8).await;
    assert_eq!(
        metric(
            &agent,
            "node_probe_spans_dropped_total{reason=\"retry_backlog\"}"
        )
        .await,
        5
    );
    assert!(
        metric(
            &agent,
            "node_probe_relay_events_total{event=\"export_errors\"}"
        )
        .await
            >= 1
    );
}

#[tokio::test]
async fn the_artifact_is_served_with_its_sha256() {
    let (_collector, url) = Collector::start().await;
    let dir = temp_dir("artifact");
    let wasm = dir.join("filter.wasm");
    let bytes: Vec<u8> = b"\0asm\x01\0\0\0"
        .iter()
        .copied()
        .chain((0..5000).map(|i| i as u8))
        .collect();
    std::fs::write(&wasm, &bytes).unwrap();
    let artifact = format!(
        "[artifact]\nfile = \"{}\"\npath = \"/threadline/filter.wasm\"\n",
        wasm.display()
    );
    let agent = start("artifact", &config(&url, EXPORT, &artifact));
    let want: String = Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let response = reqwest::get(format!("{}/threadline/filter.wasm", agent.http))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["etag"].to_str().unwrap(),
        format!("\"{want}\"")
    );
    assert!(
        response.headers()["content-digest"]
            .to_str()
            .unwrap()
            .starts_with("sha-256=:")
    );
    assert_eq!(&response.bytes().await.unwrap()[..], &bytes[..]);
    let digest = reqwest::get(format!("{}/threadline/filter.wasm.sha256", agent.http))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(digest.trim(), want);
}

#[tokio::test]
async fn sigterm_flushes_what_is_held() {
    let (collector, url) = Collector::start().await;
    // A long flush interval and a batch that is not full: only the shutdown sends it.
    let mut agent = start(
        "sigterm",
        &config(&url, "flush_interval_ms = 60000\nbatch_size = 100\n", ""),
    );
    assert_eq!(post(&agent, &sidecar_request("s", &["held"])).await, 200);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(collector.spans().is_empty(), "not sent before shutdown");
    let status = Command::new("kill")
        .args(["-TERM", &agent.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    let exit = loop {
        if let Some(exit) = agent.child.try_wait().unwrap() {
            break exit;
        }
        assert!(Instant::now() < deadline, "no exit after SIGTERM");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(exit.success(), "{exit:?}");
    assert_eq!(collector.spans(), owned(&[("s", "held")]));
}

#[test]
fn configuration_errors_name_the_field_and_exit_2() {
    let dir = temp_dir("config");
    for (text, field) in [
        ("[join]\nwindow_ms = \"soon\"\n", "join.window_ms"),
        ("[receiver]\nhttp = \"localhost\"\n", "receiver.http"),
        (
            "[export]\nendpoint = \"http://c:4318\"\nbatch_size = 0\n",
            "export.batch_size",
        ),
        (
            "[export]\nendpoint = \"http://c:4318\"\n[artifact]\nfile = \"/nonexistent\"\n",
            "artifact.file",
        ),
        ("", "export.endpoint"),
    ] {
        let file = dir.join("bad.toml");
        std::fs::write(&file, text).unwrap();
        let output = binary()
            .args(["--check-config", "--config"])
            .arg(&file)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{text}: {stderr}");
        assert!(stderr.contains(field), "{text}: {stderr}");
    }
    let output = binary()
        .args(["--check-config"])
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318")
        .env("OTEL_EXPORTER_OTLP_PROTOCOL", "udp")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("OTEL_EXPORTER_OTLP_PROTOCOL"));
    let output = binary()
        .args(["--check-config"])
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318")
        .output()
        .unwrap();
    assert!(output.status.success());
    assert!(String::from_utf8_lossy(&output.stdout).contains("http://collector:4318/v1/traces"));
}
