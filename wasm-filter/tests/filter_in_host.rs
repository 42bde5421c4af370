//! The published filter in a real proxy-wasm host: full request lifecycles, the headers the
//! upstream sees, the exported OTLP decoded with the official definitions, and the metrics.

mod support;

use proxy_wasm_host::abi::v0_2_1::types::Action;
use support::{COLLECTOR_CLUSTER, Callout, Harness, Request};
use trace_core::otlp::decode_request;
use trace_core::otlp::proto::common::v1::any_value;
use trace_core::otlp::proto::trace::v1::Span;
use trace_core::w3c::TraceParent;

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT: &str = "00f067aa0ba902b7";

fn traceparent(flags: &str) -> String {
    format!("00-{TRACE}-{PARENT}-{flags}")
}

const CONFIG: &str = r#"{
    "service_name": "payments-sidecar",
    "tags": {"datacenter": "eu-central", "location": "fra1", "node": "node-7", "workload": "vm-42"},
    "routes": ["/users/{id}"],
    "capture_headers": ["x-request-id"]
}"#;

/// Flushes, answers every export 200, and returns the exported spans.
fn export(harness: &mut Harness) -> Vec<Span> {
    harness.tick_after_ms(1000);
    let callouts = harness.take_callouts();
    let spans = callouts.iter().flat_map(spans_of).collect();
    for callout in &callouts {
        harness.respond(callout, Some(200));
    }
    spans
}

fn spans_of(callout: &Callout) -> Vec<Span> {
    let request = decode_request(&callout.body).expect("the body is OTLP protobuf");
    request
        .resource_spans
        .into_iter()
        .flat_map(|rs| rs.scope_spans)
        .flat_map(|ss| ss.spans)
        .collect()
}

fn attr<'a>(span: &'a Span, key: &str) -> Option<&'a any_value::Value> {
    trace_core::otlp::attribute(span, key)
}

fn string(value: &str) -> Option<any_value::Value> {
    Some(any_value::Value::StringValue(value.into()))
}

fn int(value: i64) -> Option<any_value::Value> {
    Some(any_value::Value::IntValue(value))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn continues_the_trace_rewrites_the_parent_and_exports_a_server_span() {
    let mut harness = Harness::start(CONFIG).expect("configured");
    let incoming = Request::get(
        "/users/42?verbose=1",
        &[
            ("traceparent", &traceparent("01")),
            ("tracestate", "rojo=00f067aa0ba902b7"),
        ],
    );
    let before = incoming.pairs();
    let (action, upstream) = harness.request(incoming);
    assert_eq!(action, Action::Continue);

    let sent = TraceParent::parse(upstream.header("traceparent").unwrap().as_bytes()).unwrap();
    assert_eq!(sent.trace_id.to_string(), TRACE);
    assert_ne!(
        sent.parent_id.to_string(),
        PARENT,
        "the next hop's parent is our span"
    );
    assert!(sent.flags.is_sampled());
    assert_eq!(
        upstream.header("tracestate").as_deref(),
        Some("rojo=00f067aa0ba902b7")
    );
    let unchanged = |pairs: &[(Vec<u8>, Vec<u8>)]| -> Vec<(Vec<u8>, Vec<u8>)> {
        pairs
            .iter()
            .filter(|(k, _)| k != b"traceparent")
            .cloned()
            .collect()
    };
    assert_eq!(
        unchanged(&upstream.pairs()),
        unchanged(&before),
        "only traceparent changed"
    );

    let callouts = {
        harness.tick_after_ms(1000);
        harness.take_callouts()
    };
    assert_eq!(callouts.len(), 1);
    let callout = &callouts[0];
    assert_eq!(callout.upstream, COLLECTOR_CLUSTER);
    assert_eq!(callout.header(":method"), Some("POST"));
    assert_eq!(callout.header(":path"), Some("/v1/traces"));
    assert_eq!(callout.header(":authority"), Some("threadline-agent"));
    assert_eq!(
        callout.header("content-type"),
        Some("application/x-protobuf")
    );
    assert_eq!(callout.timeout_ms, 2000);

    let request = decode_request(&callout.body).unwrap();
    let resource = request.resource_spans[0].resource.as_ref().unwrap();
    assert_eq!(resource.attributes[0].key, "service.name");
    let spans = spans_of(callout);
    assert_eq!(spans.len(), 1);
    let span = &spans[0];
    assert_eq!(hex(&span.trace_id), TRACE);
    assert_eq!(hex(&span.parent_span_id), PARENT);
    assert_eq!(hex(&span.span_id), sent.parent_id.to_string());
    assert_eq!(span.kind, 2, "SERVER on an inbound listener");
    assert_eq!(span.name, "GET /users/{id}");
    assert_eq!(span.trace_state, "rojo=00f067aa0ba902b7");
    assert_eq!(span.start_time_unix_nano, 1_700_000_000_000_000_000);
    assert_eq!(span.end_time_unix_nano, 1_700_000_000_003_000_000);
    assert_eq!(attr(span, "http.request.method").cloned(), string("GET"));
    assert_eq!(attr(span, "url.path").cloned(), string("/users/42"));
    assert_eq!(attr(span, "http.route").cloned(), string("/users/{id}"));
    assert_eq!(attr(span, "url.scheme").cloned(), string("http"));
    assert_eq!(
        attr(span, "server.address").cloned(),
        string("api.internal")
    );
    assert_eq!(attr(span, "http.response.status_code").cloned(), int(200));
    assert_eq!(
        attr(span, "network.protocol.version").cloned(),
        string("1.1")
    );
    assert_eq!(attr(span, "client.address").cloned(), string("10.1.0.9"));
    assert_eq!(attr(span, "client.port").cloned(), int(51234));
    assert_eq!(
        attr(span, "user_agent.original").cloned(),
        string("curl/8.5.0")
    );
    assert_eq!(
        attr(span, "http.request.header.x-request-id").cloned(),
        string("4f2c")
    );
    assert_eq!(
        attr(span, "threadline.datacenter").cloned(),
        string("eu-central")
    );
    assert_eq!(attr(span, "threadline.location").cloned(), string("fra1"));
    assert_eq!(attr(span, "threadline.node").cloned(), string("node-7"));
    assert_eq!(attr(span, "threadline.workload").cloned(), string("vm-42"));
    assert!(span.status.is_none(), "200 leaves the status unset");

    assert_eq!(
        harness.metric("threadline_spans_exported"),
        0,
        "not before the collector answers"
    );
    harness.respond(callout, Some(200));
    assert_eq!(harness.metric("threadline_spans_exported"), 1);
    assert_eq!(harness.metric("threadline_spans_dropped"), 0);
    assert_eq!(harness.metric("threadline_export_failures"), 0);
}

#[test]
fn outbound_listeners_make_client_spans_with_the_upstream_peer() {
    let mut harness = Harness::start("{}").expect("configured");
    let request = Request::get("/pay", &[("traceparent", &traceparent("01"))])
        .property("xds.listener_direction", 2i64.to_le_bytes())
        .property("response.code", 404i64.to_le_bytes());
    harness.request(request);
    let spans = export(&mut harness);
    let span = &spans[0];
    assert_eq!(span.kind, 3, "CLIENT on an outbound listener");
    assert_eq!(
        attr(span, "network.peer.address").cloned(),
        string("10.2.0.5")
    );
    assert_eq!(attr(span, "network.peer.port").cloned(), int(8080));
    assert_eq!(attr(span, "client.address"), None);
    assert_eq!(
        span.status.as_ref().unwrap().code,
        2,
        "a client span fails on 4xx"
    );
    assert_eq!(attr(span, "error.type").cloned(), string("404"));
}

#[test]
fn server_spans_fail_on_5xx_and_on_no_response() {
    let mut harness = Harness::start("{}").expect("configured");
    harness.request(Request::get("/a", &[]).property("response.code", 503i64.to_le_bytes()));
    harness.request(Request::get("/b", &[]).property("response.code", 404i64.to_le_bytes()));
    let mut no_response = Request::get("/c", &[]);
    no_response.properties.remove("response.code");
    harness.request(no_response);
    let spans = export(&mut harness);
    let status = |name: &str| {
        let span = spans.iter().find(|s| s.name == name).unwrap();
        (
            span.status.as_ref().map_or(0, |s| s.code),
            attr(span, "error.type").cloned(),
        )
    };
    assert_eq!(status("GET /a"), (2, string("503")));
    assert_eq!(status("GET /b"), (0, None), "4xx is not a server error");
    assert_eq!(status("GET /c"), (2, string("no_response")));
}

#[test]
fn a_request_without_context_starts_a_random_sampled_root() {
    let mut harness = Harness::start("{}").expect("configured");
    let (_, upstream) = harness.request(Request::get("/", &[]));
    let sent = TraceParent::parse(upstream.header("traceparent").unwrap().as_bytes()).unwrap();
    assert!(sent.flags.is_random() && sent.flags.is_sampled());
    let spans = export(&mut harness);
    assert!(spans[0].parent_span_id.is_empty());
    assert_eq!(hex(&spans[0].trace_id), sent.trace_id.to_string());
}

#[test]
fn without_context_ignore_records_and_adds_nothing() {
    let mut harness = Harness::start(r#"{"without_context": "ignore"}"#).expect("configured");
    let request = Request::get("/", &[]);
    let before = request.pairs();
    let (_, upstream) = harness.request(request);
    assert_eq!(upstream.pairs(), before);
    assert!(export(&mut harness).is_empty());
}

#[test]
fn an_unsampled_trace_is_propagated_but_not_exported() {
    let mut harness = Harness::start("{}").expect("configured");
    let (_, upstream) = harness.request(Request::get("/", &[("traceparent", &traceparent("00"))]));
    let sent = TraceParent::parse(upstream.header("traceparent").unwrap().as_bytes()).unwrap();
    assert_eq!(sent.trace_id.to_string(), TRACE);
    assert!(!sent.flags.is_sampled());
    assert!(export(&mut harness).is_empty());
}

#[test]
fn a_b3_caller_gets_b3_back_with_our_span_as_parent() {
    let mut harness = Harness::start("{}").expect("configured");
    let b3 = format!("{TRACE}-{PARENT}-1");
    let (_, upstream) = harness.request(Request::get("/", &[("b3", &b3)]));
    let sent_b3 = upstream.header("b3").unwrap();
    let fields: Vec<&str> = sent_b3.split('-').collect();
    assert_eq!(fields[0], TRACE);
    assert_ne!(fields[1], PARENT);
    assert_eq!(fields[2], "1");
    assert_eq!(fields[3], PARENT, "B3's parent field is the caller's span");
    let sent = TraceParent::parse(upstream.header("traceparent").unwrap().as_bytes()).unwrap();
    assert_eq!(sent.parent_id.to_string(), fields[1]);
}

#[test]
fn configured_b3_multi_is_written_and_stale_b3_headers_are_removed() {
    let mut harness = Harness::start(r#"{"propagation": {"b3_multi": true}}"#).expect("configured");
    let (_, upstream) = harness.request(Request::get(
        "/",
        &[("traceparent", &traceparent("01")), ("x-b3-flags", "1")],
    ));
    assert_eq!(upstream.header("x-b3-traceid").as_deref(), Some(TRACE));
    assert_eq!(upstream.header("x-b3-sampled").as_deref(), Some("1"));
    assert_eq!(
        upstream.header("x-b3-flags"),
        None,
        "a caller's stale header does not survive"
    );
}

#[test]
fn malformed_and_oversized_headers_never_trap_and_are_counted() {
    let mut harness = Harness::start("{}").expect("configured");
    let huge = "x".repeat(64 * 1024);
    let valid = traceparent("01");
    let cases: Vec<Vec<(&str, &[u8])>> = vec![
        vec![("traceparent", b"00-zz-zz-zz")],
        vec![
            ("traceparent", huge.as_bytes()),
            ("tracestate", huge.as_bytes()),
        ],
        vec![
            ("traceparent", &[0xff, 0xfe, 0x00, 0x80]),
            ("b3", &[0xc3, 0x28]),
        ],
        vec![
            ("traceparent", valid.as_bytes()),
            ("traceparent", valid.as_bytes()),
        ],
        vec![("x-b3-traceid", TRACE.as_bytes())],
        vec![(":path", &[0xff, b'/', 0x00])],
    ];
    for extra in &cases {
        let mut headers: Vec<(&str, &[u8])> = vec![(":method", b"GET"), (":authority", b"a")];
        if !extra.iter().any(|(k, _)| *k == ":path") {
            headers.push((":path", b"/"));
        }
        headers.extend(extra.iter().copied());
        let (action, upstream) = harness.request(Request::new(&headers).with_envoy_attributes());
        assert_eq!(action, Action::Continue);
        let sent = TraceParent::parse(upstream.header("traceparent").unwrap().as_bytes());
        assert!(
            sent.is_ok(),
            "a valid new context replaces the malformed one"
        );
    }
    assert_eq!(harness.metric("threadline_trace_headers_ignored"), 5);
    assert_eq!(export(&mut harness).len(), cases.len());
}

#[test]
fn no_touch_rules_pass_the_request_unchanged_and_record_the_four_tuple() {
    let config = r#"{"no_touch": {"hosts": ["*.amazonaws.com"], "path_prefixes": ["/raw/"]}}"#;
    let mut harness = Harness::start(config).expect("configured");
    for (authority, path) in [
        ("s3.eu-west-1.amazonaws.com", "/bucket/key"),
        ("api", "/raw/x"),
    ] {
        let request = Request::new(&[
            (":method", b"PUT"),
            (":path", path.as_bytes()),
            (":authority", authority.as_bytes()),
            ("traceparent", traceparent("01").as_bytes()),
        ])
        .with_envoy_attributes();
        let before = request.pairs();
        let (_, upstream) = harness.request(request);
        assert_eq!(
            upstream.pairs(),
            before,
            "{authority}{path} must pass byte for byte"
        );
    }
    let spans = export(&mut harness);
    assert_eq!(spans.len(), 2);
    for span in &spans {
        assert_eq!(hex(&span.parent_span_id), PARENT);
        assert_eq!(
            attr(span, "threadline.propagation").cloned(),
            string("black_box")
        );
        assert_eq!(
            attr(span, "network.local.address").cloned(),
            string("10.2.0.1")
        );
        assert_eq!(attr(span, "network.local.port").cloned(), int(40112));
        assert_eq!(
            attr(span, "network.peer.address").cloned(),
            string("10.2.0.5")
        );
        assert_eq!(attr(span, "network.peer.port").cloned(), int(8080));
    }
}

#[test]
fn batches_flush_on_size_within_a_tick_and_on_the_interval() {
    let config = r#"{"batch": {"max_spans": 3, "flush_interval_ms": 5000}}"#;
    let mut harness = Harness::start(config).expect("configured");
    for _ in 0..2 {
        harness.request(Request::get("/", &[]));
    }
    harness.tick_after_ms(100);
    assert!(
        harness.take_callouts().is_empty(),
        "2 of 3 spans, interval not reached"
    );
    harness.request(Request::get("/", &[]));
    harness.tick_after_ms(100);
    let full = harness.take_callouts();
    assert_eq!(full.len(), 1);
    assert_eq!(spans_of(&full[0]).len(), 3);
    harness.request(Request::get("/", &[]));
    harness.tick_after_ms(5000);
    let partial = harness.take_callouts();
    assert_eq!(spans_of(&partial[0]).len(), 1);
}

#[test]
fn failed_exports_are_retried_then_dropped_and_counted() {
    let config = r#"{"batch": {"max_retries": 1}}"#;
    let mut harness = Harness::start(config).expect("configured");
    harness.request(Request::get("/", &[]));
    harness.request(Request::get("/", &[]));
    harness.tick_after_ms(1000);
    let first = harness.take_callouts();
    harness.respond(&first[0], Some(503));
    // The first retry waits 50-150 ms (100 ms backoff with jitter).
    harness.tick_after_ms(200);
    let retry = harness.take_callouts();
    assert_eq!(retry.len(), 1, "retried after its backoff");
    assert_eq!(retry[0].body, first[0].body, "the same spans");
    harness.respond(&retry[0], None);
    harness.tick_after_ms(10_000);
    assert!(harness.take_callouts().is_empty(), "no more retries");
    assert_eq!(harness.metric("threadline_export_failures"), 2);
    assert_eq!(harness.metric("threadline_spans_dropped"), 2);
    assert_eq!(
        harness.metric("threadline_spans_dropped_retries_exhausted"),
        2
    );
    assert_eq!(harness.metric("threadline_spans_exported"), 0);

    harness.request(Request::get("/", &[]));
    let spans = export(&mut harness);
    assert_eq!(spans.len(), 1, "export works again after failures");
    assert_eq!(harness.metric("threadline_spans_exported"), 1);
}

#[test]
fn a_permanent_rejection_is_dropped_at_once_and_a_throttling_hint_is_honoured() {
    let config = r#"{"batch": {"max_retries": 3}}"#;
    let mut harness = Harness::start(config).expect("configured");
    harness.request(Request::get("/", &[]));
    harness.tick_after_ms(1000);
    let rejected = harness.take_callouts();
    harness.respond(&rejected[0], Some(400));
    harness.tick_after_ms(10_000);
    assert!(harness.take_callouts().is_empty(), "a 400 is not retried");
    assert_eq!(harness.metric("threadline_spans_dropped_rejected"), 1);

    harness.request(Request::get("/", &[]));
    harness.tick_after_ms(1000);
    let throttled = harness.take_callouts();
    harness.respond_with(&throttled[0], Some(429), &[("retry-after", "3")]);
    harness.tick_after_ms(2_900);
    assert!(harness.take_callouts().is_empty(), "not before Retry-After");
    harness.tick_after_ms(200);
    let retry = harness.take_callouts();
    assert_eq!(retry.len(), 1, "retried once Retry-After has passed");
    harness.respond(&retry[0], Some(200));
    assert_eq!(harness.metric("threadline_spans_exported"), 1);
}

#[test]
fn an_unknown_collector_cluster_is_counted_and_never_fails_requests() {
    let config = r#"{"collector": {"cluster": "no_such_cluster"}, "batch": {"max_retries": 0}}"#;
    let mut harness = Harness::start(config).expect("configured");
    let (action, _) = harness.request(Request::get("/", &[]));
    assert_eq!(action, Action::Continue);
    harness.tick_after_ms(1000);
    assert_eq!(harness.metric("threadline_export_failures"), 1);
    assert_eq!(harness.metric("threadline_spans_dropped"), 1);
    assert!(
        harness
            .log_lines()
            .iter()
            .any(|l| l.contains("no_such_cluster"))
    );
}

#[test]
fn a_full_queue_drops_and_counts_without_blocking() {
    let config = r#"{"batch": {"max_spans": 2, "max_queued_spans": 2, "max_in_flight": 1}}"#;
    let mut harness = Harness::start(config).expect("configured");
    for _ in 0..5 {
        let (action, _) = harness.request(Request::get("/", &[]));
        assert_eq!(action, Action::Continue);
    }
    assert_eq!(harness.metric("threadline_spans_dropped"), 3);
    assert_eq!(export(&mut harness).len(), 2);
}

#[test]
fn tags_come_from_node_metadata_when_not_configured() {
    let root = Request::default()
        .property("xds.node.metadata.THREADLINE_LOCATION", "ams2")
        .property("xds.node.metadata.THREADLINE_WORKLOAD", "vm-9");
    let config = r#"{"tags": {"workload": "from-config"}}"#;
    let mut harness = Harness::start_file(support::FILTER, config, root).expect("configured");
    harness.request(Request::get("/", &[]));
    let spans = export(&mut harness);
    assert_eq!(
        attr(&spans[0], "threadline.location").cloned(),
        string("ams2")
    );
    assert_eq!(
        attr(&spans[0], "threadline.workload").cloned(),
        string("from-config")
    );
    assert_eq!(attr(&spans[0], "threadline.datacenter"), None);
}

#[test]
fn an_invalid_configuration_is_counted_and_named_and_requests_pass_untouched() {
    let cases = [
        (r#"{"batch": {"max_spans": 0}}"#, "batch.max_spans"),
        (r#"{"collector": {"cluster": ""}}"#, "collector.cluster"),
        (
            r#"{"sampling": {"percentage": 101}}"#,
            "sampling.percentage",
        ),
        (r#"{"direction": "sideways"}"#, "direction"),
        (r#"{"routes": ["no-slash"]}"#, "routes[0]"),
        (r#"{"unknown_field": 1}"#, "unknown field"),
        ("{not json", "configuration"),
    ];
    for (config, field) in cases {
        // Envoy would reject the whole listener update if the plugin refused to load.
        let mut harness = match Harness::start(config) {
            Ok(harness) => harness,
            Err(_) => panic!("{config}: the plugin's load failed"),
        };
        assert!(
            harness
                .log_lines()
                .iter()
                .any(|l| l.contains("invalid configuration") && l.contains(field)),
            "{config}: {:?}",
            harness.log_lines()
        );
        assert_eq!(harness.metric("threadline_config_errors"), 1, "{config}");
        let parent = traceparent("01");
        let incoming = Request::get("/users/7", &[("traceparent", &parent), ("b3", "1")]);
        let before = incoming.pairs();
        let (action, after) = harness.request(incoming);
        assert_eq!(action, Action::Continue);
        assert_eq!(after.pairs(), before, "{config}: headers untouched");
        harness.tick_after_ms(5_000);
        assert!(harness.take_callouts().is_empty(), "{config}: untraced");
    }
}

#[test]
fn a_root_that_envoy_ends_flushes_at_once_and_says_done_when_empty() {
    let mut harness = Harness::start("{}").expect("configured");
    for _ in 0..3 {
        harness.request(Request::get("/", &[]));
    }
    assert!(harness.take_callouts().is_empty(), "nothing due yet");
    assert!(!harness.end_root(), "spans are held: not done yet");
    let flushed = harness.take_callouts();
    assert_eq!(flushed.len(), 1, "the partial batch goes at once");
    assert_eq!(spans_of(&flushed[0]).len(), 3);
    assert!(!harness.root_is_done(), "the export is still out");
    harness.respond(&flushed[0], Some(200));
    assert!(harness.root_is_done(), "proxy_done once nothing is held");
    assert_eq!(harness.metric("threadline_spans_exported"), 3);
    assert_eq!(harness.metric("threadline_spans_dropped"), 0);
}

#[test]
fn an_ending_root_counts_what_its_deadline_leaves_as_dropped() {
    let mut harness = Harness::start(r#"{"batch": {"max_retries": 10}}"#).expect("configured");
    harness.request(Request::get("/", &[]));
    harness.request(Request::get("/", &[]));
    assert!(!harness.end_root());
    let mut sent = harness.take_callouts();
    // The collector keeps failing; the drain retries until its deadline, then gives up.
    for _ in 0..200 {
        for callout in sent.drain(..) {
            harness.respond(&callout, Some(503));
        }
        if harness.root_is_done() {
            break;
        }
        harness.tick_after_ms(100);
        sent = harness.take_callouts();
    }
    assert!(harness.root_is_done(), "done by the deadline");
    assert_eq!(harness.metric("threadline_spans_dropped_shutdown"), 2);
    assert_eq!(harness.metric("threadline_spans_exported"), 0);
}

#[test]
fn an_ending_root_without_spans_is_done_at_once() {
    let mut harness = Harness::start("{}").expect("configured");
    assert!(harness.end_root());
}

#[test]
fn the_artifact_is_at_most_250_kb() {
    let size = std::fs::metadata(support::FILTER)
        .expect("published artifact")
        .len();
    assert!(size <= 250 * 1024, "{size} bytes");
}

#[test]
fn a_request_makes_at_most_30_host_calls_including_its_share_of_export() {
    let mut harness = Harness::start("{}").expect("configured");
    let before = harness.host_calls.get();
    let requests = 64;
    for _ in 0..requests {
        harness.request(Request::get(
            "/users/42",
            &[("traceparent", &traceparent("01"))],
        ));
    }
    let per_request = (harness.host_calls.get() - before) / requests;
    export(&mut harness);
    let with_export = (harness.host_calls.get() - before) as f64 / requests as f64;
    assert!(per_request <= 30, "{per_request} host calls per request");
    assert!(
        with_export <= 30.0,
        "{with_export} host calls per request with export"
    );
    assert!(
        per_request >= 5,
        "the count sees the filter's calls ({per_request})"
    );
}
