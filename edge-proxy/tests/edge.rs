//! The edge proxy binary with real HTTP on loopback: clients, the proxy, upstreams and an
//! OTLP collector whose received bytes are decoded with the official definitions.

mod support;

use std::time::Duration;

use support::{
    CLIENT, Collector, Edge, SERVER, Upstream, attr, config, eventually, export_to, find,
    free_port, get, hex, locations, runtime, try_get_status,
};
use trace_core::otlp::proto::trace::v1::Span;
use trace_core::w3c::TraceParent;

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT: &str = "00f067aa0ba902b7";

fn traceparent(flags: &str) -> String {
    format!("00-{TRACE}-{PARENT}-{flags}")
}

#[test]
fn a_trusted_trace_continues_and_the_upstream_parent_is_the_client_span() {
    let rt = runtime();
    let (upstream, collector) = (Upstream::start(&rt), Collector::start(&rt));
    let (port, admin) = (free_port(), free_port());
    let sections = format!(
        "routes = [\"/users/{{id}}\"]\n[trust]\nclient_networks = [\"127.0.0.0/8\"]\n[edge]\nlocation = \"fra1-edge\"\nregion = \"eu\"\npop = \"fra1\"\n\
         [propagation]\ntrace_id_response_header = \"x-trace-id\"\n{}{}",
        export_to(&collector.endpoint(), 50),
        locations(&[("core-a", upstream.server.address)], "")
    );
    let edge = Edge::start(&config(port, admin, &sections));
    let (status, headers, _) = get(port, "/users/7?x=1", &[("traceparent", &traceparent("01"))]);
    assert_eq!(status, 200);

    let sent = TraceParent::parse(upstream.last_header("traceparent").unwrap().as_bytes()).unwrap();
    assert_eq!(sent.trace_id.to_string(), TRACE);
    assert!(upstream.last_header("x-request-id").is_some());
    let header = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    assert_eq!(header("x-trace-id").as_deref(), Some(TRACE));
    assert_eq!(header("x-request-id"), upstream.last_header("x-request-id"));

    let spans = collector.wait_for(2);
    let (server, client) = (find(&spans, SERVER), find(&spans, CLIENT));
    assert_eq!((server.len(), client.len()), (1, 1));
    let (server, client) = (server[0], client[0]);
    assert_eq!(hex(&server.trace_id), TRACE);
    assert_eq!(
        hex(&server.parent_span_id),
        PARENT,
        "continues the trusted caller"
    );
    assert_eq!(hex(&client.parent_span_id), hex(&server.span_id));
    assert_eq!(
        hex(&client.span_id),
        sent.parent_id.to_string(),
        "upstream's parent is the CLIENT span"
    );
    assert_eq!(server.name, "GET /users/{id}");
    assert_eq!(attr(server, "http.route").as_deref(), Some("/users/{id}"));
    assert_eq!(
        attr(server, "http.response.status_code").as_deref(),
        Some("200")
    );
    assert_eq!(
        attr(server, "threadline.location").as_deref(),
        Some("fra1-edge")
    );
    assert_eq!(attr(server, "threadline.pop").as_deref(), Some("fra1"));
    assert_eq!(
        attr(client, "threadline.location").as_deref(),
        Some("core-a")
    );
    assert_eq!(
        attr(client, "http.response.status_code").as_deref(),
        Some("200")
    );

    let log = edge.stdout();
    let line = log
        .lines()
        .find(|l| l.contains("\"trace_id\""))
        .expect("access log line");
    let json: serde_json::Value = serde_json::from_str(line).unwrap();
    assert_eq!(json["trace_id"], TRACE);
    assert_eq!(json["span_id"], hex(&server.span_id));
    assert_eq!(json["sampled"], true);
    assert_eq!(json["status"], 200);
}

#[test]
fn untrusted_callers_get_a_new_root_with_a_link_and_cannot_force_sampling() {
    let rt = runtime();
    let (upstream, collector) = (Upstream::start(&rt), Collector::start(&rt));
    let (port, admin) = (free_port(), free_port());
    let sections = format!(
        "[trust]\nclient_networks = [\"10.0.0.0/8\"]\n[sampling]\nmode = \"always_off\"\n{}{}",
        export_to(&collector.endpoint(), 50),
        locations(&[("core-a", upstream.server.address)], "")
    );
    let _edge = Edge::start(&config(port, admin, &sections));
    assert_eq!(
        get(port, "/", &[("traceparent", &traceparent("01"))]).0,
        200
    );
    let sent = TraceParent::parse(upstream.last_header("traceparent").unwrap().as_bytes()).unwrap();
    assert_ne!(sent.trace_id.to_string(), TRACE, "a new root trace");
    assert!(
        !sent.flags.is_sampled(),
        "the untrusted sampled flag is ignored"
    );
    assert!(sent.flags.is_random());
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        collector.spans.lock().unwrap().is_empty(),
        "nothing sampled, nothing exported"
    );

    let (port, admin) = (free_port(), free_port());
    let sections = format!(
        "[trust]\nclient_networks = [\"10.0.0.0/8\"]\n[sampling]\nmode = \"always_on\"\n{}{}",
        export_to(&collector.endpoint(), 50),
        locations(&[("core-a", upstream.server.address)], "")
    );
    let _edge = Edge::start(&config(port, admin, &sections));
    assert_eq!(
        get(port, "/", &[("traceparent", &traceparent("00"))]).0,
        200
    );
    let spans = collector.wait_for(2);
    let server = find(&spans, SERVER)[0];
    assert_ne!(hex(&server.trace_id), TRACE);
    assert!(server.parent_span_id.is_empty(), "a root");
    assert_eq!(server.links.len(), 1);
    assert_eq!(
        hex(&server.links[0].trace_id),
        TRACE,
        "the caller's context is kept as a link"
    );
    assert_eq!(hex(&server.links[0].span_id), PARENT);
}

#[test]
fn b3_callers_get_b3_and_configured_formats_are_added() {
    let rt = runtime();
    let upstream = Upstream::start(&rt);
    let (port, admin) = (free_port(), free_port());
    let sections = format!(
        "[trust]\nclient_networks = [\"127.0.0.0/8\"]\n[propagation]\nb3_multi = true\n{}",
        locations(&[("core-a", upstream.server.address)], "")
    );
    let _edge = Edge::start(&config(port, admin, &sections));
    let b3 = format!("{TRACE}-{PARENT}-1");
    assert_eq!(get(port, "/", &[("b3", &b3)]).0, 200);
    let single = upstream.last_header("b3").unwrap();
    let fields: Vec<&str> = single.split('-').collect();
    assert_eq!((fields[0], fields[2]), (TRACE, "1"));
    assert_ne!(fields[1], PARENT, "B3's span is ours now");
    assert_eq!(upstream.last_header("x-b3-traceid").as_deref(), Some(TRACE));
    assert_eq!(
        upstream.last_header("x-b3-spanid").as_deref(),
        Some(fields[1])
    );
    let sent = TraceParent::parse(upstream.last_header("traceparent").unwrap().as_bytes()).unwrap();
    assert_eq!(sent.parent_id.to_string(), fields[1]);
}

#[test]
fn a_failed_connect_is_retried_once_on_another_location_with_a_span_per_attempt() {
    let rt = runtime();
    let (upstream, collector) = (Upstream::start(&rt), Collector::start(&rt));
    let dying = Upstream::start(&rt);
    let (port, admin) = (free_port(), free_port());
    let sections = format!(
        "{}{}",
        export_to(&collector.endpoint(), 50),
        locations(
            &[
                ("dead", dying.server.address),
                ("live", upstream.server.address)
            ],
            "retries = 1\n[upstreams.health_check]\ninterval_ms = 60000"
        )
    );
    let edge = Edge::start(&config(port, admin, &sections));
    // It passed the first health check; the next is a minute away, so requests still try it.
    std::thread::sleep(Duration::from_millis(300));
    dying.server.stop();
    for _ in 0..4 {
        assert_eq!(get(port, "/", &[]).0, 200, "every request succeeds");
    }
    // Four SERVER spans, four successful CLIENT spans, and one per attempt on the dead location.
    let mut spans = Vec::new();
    eventually("every span arrived", || {
        spans = collector.spans.lock().unwrap().clone();
        let clients = find(&spans, CLIENT);
        let dead = clients
            .iter()
            .filter(|s| attr(s, "threadline.location").as_deref() == Some("dead"))
            .count();
        find(&spans, SERVER).len() == 4 && clients.len() == 4 + dead
    });
    let failed: Vec<&Span> = find(&spans, CLIENT)
        .into_iter()
        .filter(|s| attr(s, "threadline.location").as_deref() == Some("dead"))
        .collect();
    assert!(!failed.is_empty(), "round robin tried the dead location");
    for attempt in &failed {
        assert_eq!(attempt.status.as_ref().unwrap().code, 2);
        assert_eq!(
            attr(attempt, "error.type").as_deref(),
            Some("connect_error")
        );
        let retry = spans
            .iter()
            .find(|s| {
                s.kind == CLIENT
                    && s.parent_span_id == attempt.parent_span_id
                    && s.span_id != attempt.span_id
            })
            .expect("a second attempt under the same SERVER span");
        assert_eq!(attr(retry, "threadline.location").as_deref(), Some("live"));
        assert_eq!(
            attr(retry, "http.request.resend_count").as_deref(),
            Some("1")
        );
    }
    assert!(edge.metric("edge_upstream_attempts_total", "outcome=\"connect_error\"") >= 1.0);
}

#[test]
fn an_unhealthy_location_is_evicted_by_the_health_check() {
    let rt = runtime();
    let (a, b) = (Upstream::start(&rt), Upstream::start(&rt));
    let (port, admin) = (free_port(), free_port());
    let sections = locations(
        &[("a", a.server.address), ("b", b.server.address)],
        "retries = 0\n[upstreams.health_check]\nkind = \"http\"\npath = \"/healthz\"\ninterval_ms = 100",
    );
    let edge = Edge::start(&config(port, admin, &sections));
    a.server.stop();
    eventually("location a fails its health check", || {
        edge.metric("edge_upstream_healthy", "location=\"a\"") == 0.0
    });
    let before = b.count();
    for _ in 0..10 {
        assert_eq!(
            get(port, "/", &[]).0,
            200,
            "no request reaches the evicted location"
        );
    }
    assert_eq!(b.count() - before, 10);
    assert_eq!(edge.metric("edge_upstream_healthy", "location=\"a\""), 0.0);
    assert_eq!(edge.metric("edge_upstream_healthy", "location=\"b\""), 1.0);
}

#[test]
fn a_collector_that_is_down_or_hangs_fails_no_request_and_drops_are_counted_and_logged() {
    let rt = runtime();
    let upstream = Upstream::start(&rt);
    // Refused: nothing listens. Hanging: a listener that never accepts, so requests time out.
    let hanging = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    for (outage, endpoint) in [
        ("down", format!("http://127.0.0.1:{}", free_port())),
        (
            "hanging",
            format!("http://{}", hanging.local_addr().unwrap()),
        ),
    ] {
        let (port, admin) = (free_port(), free_port());
        let sections = format!(
            "[export]\nendpoint = \"{endpoint}\"\nflush_interval_ms = 20\nbatch_size = 8\nqueue_size = 16\nmax_retries = 0\ntimeout_ms = 200\n{}",
            locations(&[("core-a", upstream.server.address)], "")
        );
        let edge = Edge::start(&config(port, admin, &sections));
        let clients: Vec<_> = (0..4)
            .map(|_| {
                std::thread::spawn(move || {
                    (0..50).map(|_| get(port, "/", &[]).0).collect::<Vec<_>>()
                })
            })
            .collect();
        for client in clients {
            assert!(
                client.join().unwrap().iter().all(|s| *s == 200),
                "{outage}: no request fails"
            );
        }
        eventually(&format!("{outage}: export errors are counted"), || {
            edge.metric("edge_export_errors_total", "") >= 1.0
        });
        eventually(&format!("{outage}: dropped spans are counted"), || {
            edge.metric("edge_spans_dropped_total", "") >= 1.0
        });
        assert_eq!(edge.metric("edge_spans_exported_total", ""), 0.0);
        if outage == "hanging" {
            eventually("a hanging collector fills the queue", || {
                edge.metric("edge_spans_dropped_total", "queue_full") >= 1.0
            });
            eventually("queue-full drops are logged", || {
                edge.stderr().contains("export queue full")
            });
        }
    }
}

#[test]
fn exports_are_retried_only_when_the_otlp_specification_says_so() {
    let rt = runtime();
    let upstream = Upstream::start(&rt);
    // A 400 is permanent: dropped at once and counted. A 503 with Retry-After: 1 is retried,
    // not before a second has passed; then the collector accepts.
    let (collector, arrivals) = Collector::scripted(&rt, vec![(400, None), (503, Some("1"))]);
    let (port, admin) = (free_port(), free_port());
    let sections = format!(
        "{}batch_size = 2
max_retries = 3
{}",
        export_to(&collector.endpoint(), 60_000),
        locations(&[("core-a", upstream.server.address)], "")
    );
    let edge = Edge::start(&config(port, admin, &sections));
    assert_eq!(
        get(port, "/", &[]).0,
        200,
        "a SERVER and a CLIENT span: one batch"
    );
    eventually("the rejected batch is counted", || {
        edge.metric("edge_spans_dropped_total", "reason=\"rejected\"") == 2.0
    });
    assert_eq!(get(port, "/", &[]).0, 200);
    let spans = collector.wait_for(2);
    assert_eq!(spans.len(), 2, "the second batch, after its retry");
    let times = arrivals.times();
    assert_eq!(
        times.len(),
        3,
        "400 not retried; 503 retried once: {times:?}"
    );
    let waited = times[2] - times[1];
    assert!(
        waited >= Duration::from_millis(950),
        "Retry-After: 1 honoured, retried after {waited:?}"
    );
    assert_eq!(edge.metric("edge_spans_exported_total", ""), 2.0);
    assert_eq!(edge.metric("edge_export_errors_total", ""), 2.0);
}

#[test]
fn sigterm_flushes_the_spans_still_queued() {
    let rt = runtime();
    let (upstream, collector) = (Upstream::start(&rt), Collector::start(&rt));
    let (port, admin) = (free_port(), free_port());
    // Batches of 4: the first is exported at once, over a connection the client then keeps;
    // the flush must not hand the last 2 spans to that connection, whose runtime is gone.
    let sections = format!(
        "{}batch_size = 4\n{}",
        export_to(&collector.endpoint(), 60_000),
        locations(&[("core-a", upstream.server.address)], "")
    );
    let mut edge = Edge::start(&config(port, admin, &sections));
    for _ in 0..3 {
        assert_eq!(get(port, "/", &[]).0, 200);
    }
    assert_eq!(collector.wait_for(4).len(), 4, "the full batch");
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(
        collector.spans.lock().unwrap().len(),
        4,
        "the flush interval has not passed"
    );
    let status = edge.terminate();
    assert!(status.success() || status.code().is_some(), "{status:?}");
    assert_eq!(
        collector.wait_for(6).len(),
        6,
        "3 SERVER and 3 CLIENT spans flushed on SIGTERM"
    );
}

#[test]
fn sigterm_sends_again_the_batch_whose_export_it_cut_short() {
    let rt = runtime();
    let upstream = Upstream::start(&rt);
    let (collector, hang) = Collector::hanging_first(&rt);
    let (port, admin) = (free_port(), free_port());
    // The export timeout outlasts the test, so the exporter itself never retries.
    let sections = format!(
        "{}timeout_ms = 60000\n{}",
        export_to(&collector.endpoint(), 50),
        locations(&[("core-a", upstream.server.address)], "")
    );
    let mut edge = Edge::start(&config(port, admin, &sections));
    assert_eq!(get(port, "/", &[]).0, 200);
    eventually("the export of the request's spans is under way", || {
        hang.started.load(std::sync::atomic::Ordering::SeqCst)
    });
    let status = edge.terminate();
    hang.released
        .store(true, std::sync::atomic::Ordering::SeqCst);
    assert!(status.success() || status.code().is_some(), "{status:?}");
    let spans = collector.wait_for(2);
    assert_eq!(
        (find(&spans, SERVER).len(), find(&spans, CLIENT).len()),
        (1, 1),
        "the batch in flight at shutdown was sent again: {}",
        edge.stderr()
    );
}

#[test]
fn an_upstream_that_is_down_gives_502_and_an_error_span() {
    let rt = runtime();
    let collector = Collector::start(&rt);
    let dead = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let (port, admin) = (free_port(), free_port());
    let sections = format!(
        "{}{}",
        export_to(&collector.endpoint(), 50),
        locations(
            &[("dead", dead)],
            "retries = 1\n[upstreams.health_check]\ninterval_ms = 60000"
        )
    );
    let _edge = Edge::start(&config(port, admin, &sections));
    assert_eq!(get(port, "/", &[]).0, 502);
    let spans = collector.wait_for(2);
    let server = find(&spans, SERVER)[0];
    assert_eq!(server.status.as_ref().unwrap().code, 2);
    assert_eq!(
        attr(server, "http.response.status_code").as_deref(),
        Some("502")
    );
    assert!(
        find(&spans, CLIENT)
            .iter()
            .all(|c| c.status.as_ref().unwrap().code == 2)
    );
}

#[test]
fn malformed_duplicated_and_oversized_trace_headers_never_cause_a_5xx() {
    let rt = runtime();
    let upstream = Upstream::start(&rt);
    let (port, admin) = (free_port(), free_port());
    let sections = format!(
        "[trust]\nclient_networks = [\"127.0.0.0/8\"]\n{}",
        locations(&[("core-a", upstream.server.address)], "")
    );
    let edge = Edge::start(&config(port, admin, &sections));
    let huge = "a".repeat(16 * 1024);
    let cases: Vec<Vec<(&str, String)>> = vec![
        vec![("traceparent", "00-zz-zz-zz".into())],
        vec![
            ("traceparent", traceparent("01")),
            ("traceparent", traceparent("01")),
        ],
        vec![
            ("traceparent", traceparent("01")),
            ("tracestate", huge.clone()),
        ],
        vec![("b3", "nonsense".into()), ("x-b3-traceid", TRACE.into())],
        vec![("traceparent", huge)],
    ];
    for case in &cases {
        let headers: Vec<(&str, &str)> = case.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let (status, _, _) = get(port, "/", &headers);
        assert!(status < 500, "{case:?} got {status}");
        if status == 200 {
            let sent = TraceParent::parse(upstream.last_header("traceparent").unwrap().as_bytes());
            assert!(sent.is_ok());
        }
    }
    assert!(edge.metric("edge_trace_headers_ignored_total", "") >= 3.0);
}

#[test]
fn the_embedded_default_serves_the_demo_upstream_and_prints_spans() {
    let edge = Edge::start_with(None, &[]);
    let (status, _, body) = get(edge.port, "/hello", &[]);
    assert_eq!(status, 200);
    assert!(body.contains("hello from the demo core location"), "{body}");
    let sent = body
        .lines()
        .find_map(|l| l.strip_prefix("traceparent: "))
        .unwrap();
    let sent = TraceParent::parse(sent.as_bytes()).unwrap();
    // Printed on the flush interval.
    eventually("the SERVER span is printed", || {
        edge.stdout().contains("span SERVER \"GET /hello\"")
    });
    let out = edge.stdout();
    assert!(out.contains(&format!("trace={}", sent.trace_id)), "{out}");
    assert!(out.contains("\"trace_id\""), "access log line");
    assert!(edge.metrics().contains("edge_requests_total"));
}

#[test]
fn configuration_errors_name_the_field_and_check_config_validates() {
    let run = |args: &[&str], env: &[(&str, &str)]| {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_edge-proxy"));
        command.args(args);
        for (k, v) in env {
            command.env(k, v);
        }
        command.output().unwrap()
    };
    let dir = std::env::temp_dir().join(format!("edge-config-{}", free_port()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.toml");
    std::fs::write(&bad, "[export]\nbatch_size = 0\n").unwrap();
    let output = run(&["--config", bad.to_str().unwrap(), "--check-config"], &[]);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("export.batch_size"));

    let output = run(
        &["--check-config"],
        &[("OTEL_EXPORTER_OTLP_PROTOCOL", "carrier-pigeon")],
    );
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("OTEL_EXPORTER_OTLP_PROTOCOL"));
    // The per-signal variable is the one read, so it is the one named.
    let output = run(
        &["--check-config"],
        &[
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
            ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "carrier-pigeon"),
        ],
    );
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"));

    let output = run(&["--check-config"], &[]);
    assert!(output.status.success());
    assert!(String::from_utf8_lossy(&output.stdout).contains("configuration ok"));
    let help = run(&["--help"], &[]);
    assert!(String::from_utf8_lossy(&help.stdout).contains("--check-config"));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_graceful_upgrade_hands_over_the_listener_without_a_failed_request_or_a_lost_span() {
    let rt = runtime();
    let (upstream, collector) = (Upstream::start(&rt), Collector::start(&rt));
    let (port, admin) = (free_port(), free_port());
    let sections = format!(
        "{}{}",
        export_to(&collector.endpoint(), 60_000),
        locations(&[("core-a", upstream.server.address)], "")
    );
    // A request still in flight when the grace period ends is cut: Pingora then drops its
    // runtimes' tasks. The other tests end at once; this one needs the old process to finish
    // the request it was serving when it stopped accepting. Two workers, as deployed.
    let text = config(port, admin, &sections)
        .replace("grace_period_seconds = 0", "grace_period_seconds = 1")
        .replace("threads = 1", "threads = 2");
    let socket = format!("/tmp/edge-test-{port}.sock");
    let _ = std::fs::remove_file(&socket);
    let mut old = Edge::start(&text);
    for _ in 0..3 {
        assert_eq!(get(port, "/before", &[]).0, 200);
    }

    // A client keeps sending through the whole hand-over (bounded: 2,000 requests, 30 s).
    // When shutdown begins, Pingora closes connections whose request it has not read yet; the
    // client retries such a connection once, as HTTP clients do for an idempotent request
    // that got no response. Any response other than 200 fails the test.
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let client = {
        let done = done.clone();
        std::thread::spawn(move || {
            let deadline = std::time::Instant::now() + Duration::from_secs(30);
            let (mut statuses, mut retried) = (Vec::new(), 0);
            while !done.load(std::sync::atomic::Ordering::Relaxed)
                && statuses.len() < 2_000
                && std::time::Instant::now() < deadline
            {
                let status = try_get_status(port, "/during").or_else(|| {
                    retried += 1;
                    try_get_status(port, "/during")
                });
                statuses.push(status.unwrap_or(0));
                std::thread::sleep(Duration::from_millis(10));
            }
            (statuses, retried)
        })
    };
    let mut new = Edge::start_upgrade(&text);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !std::path::Path::new(&socket).exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "the new process did not open the upgrade socket: {}",
            new.stderr()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    old.signal("QUIT");
    old.wait_exit();
    assert!(
        collector.wait_for(6).len() >= 6,
        "the old process flushed its queued spans on the way out"
    );
    for _ in 0..3 {
        assert_eq!(get(port, "/after", &[]).0, 200, "{}", new.stderr());
    }
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let (statuses, retried) = client.join().unwrap();
    assert!(!statuses.is_empty());
    assert!(
        retried <= 1,
        "at most the connection caught at the moment of shutdown needed a retry: {retried}"
    );
    assert!(
        statuses.iter().all(|&s| s == 200),
        "every request during the upgrade succeeded: {statuses:?}"
    );

    new.terminate();
    let requests = 3 + statuses.len() + 3;
    assert_eq!(upstream.count(), requests);
    let spans = collector.wait_for(2 * requests);
    assert_eq!(
        spans.len(),
        2 * requests,
        "a SERVER and a CLIENT span for every request, from both processes"
    );
}
