//! One request, one complete trace, from the edge into a real microVM: the edge-proxy binary,
//! a sidecar running the built filter in a real proxy-wasm host, the workload in a QEMU guest
//! behind its tap device, node-probe on that tap, and a collector that decodes with the
//! official protobuf definitions. See `threadline_tests::stack`.
//!
//! Skipped (with a message) where root, QEMU or the guest image are missing, unless
//! `THREADLINE_REQUIRE_MICROVM=1`, which the test command sets.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use threadline_tests::collector::{Received, string};
use threadline_tests::stack::{CREDENTIAL, Exchange, Stack, StackOptions, WORKLOAD};
use threadline_tests::trace::{Trace, hex, kind, traces};
use threadline_tests::{netns::netns_exists, or_skip};
use trace_core::TraceId;
use trace_core::sampling::{SamplingConfig, SamplingMode};
use trace_core::semconv::threadline;

const WAIT: Duration = Duration::from_secs(30);

/// One stack at a time: each boots a guest under TCG, and two of them on this machine's two
/// cores starve each other (two stacks at once have also seen the edge's first health check
/// refused by the sidecar, not yet understood; see the session notes).
static ONE_STACK: std::sync::Mutex<()> = std::sync::Mutex::new(());
const STATUS_ERROR: i32 = 2;

fn get(stack: &Stack, target: &str) -> Exchange {
    let request = format!("GET {target} HTTP/1.1\r\nHost: orders.internal\r\n\r\n");
    stack.send(request.as_bytes()).expect("the edge answers")
}

/// The trace ID the workload saw in its `traceparent`.
fn trace_of(exchange: &Exchange) -> String {
    let traceparent = exchange.echo["traceparent"]
        .as_str()
        .unwrap_or_else(|| panic!("no traceparent reached the workload: {}", exchange.echo));
    traceparent[3..35].to_owned()
}

fn is_error(span: &Received) -> bool {
    span.1
        .status
        .as_ref()
        .is_some_and(|s| s.code == STATUS_ERROR)
}

fn service(span: &Received) -> String {
    string(&span.0, "service.name").unwrap_or_default()
}

/// The one child of `parent` of `kind`, failing with the trace when there is not exactly one.
fn child<'a>(trace: &'a Trace, parent: &Received, span_kind: i32, what: &str) -> &'a Received {
    let found: Vec<_> = trace
        .children(&parent.1)
        .into_iter()
        .filter(|(_, s)| s.kind == span_kind)
        .collect();
    match found[..] {
        [one] => one,
        _ => panic!(
            "expected one {what} under {}:\n{}",
            parent.1.name,
            trace.waterfall(40)
        ),
    }
}

/// The chain every request makes: edge SERVER, edge CLIENT, sidecar SERVER, the workload's
/// black-box SERVER; returned in that order.
fn chain(trace: &Trace) -> [&Received; 4] {
    let roots = trace.roots();
    let [root] = roots[..] else {
        panic!("not one root:\n{}", trace.waterfall(40))
    };
    assert!(
        trace.orphans().is_empty(),
        "a partial trace:\n{}",
        trace.waterfall(40)
    );
    assert_eq!(root.1.kind, kind::SERVER, "{}", trace.waterfall(40));
    assert_eq!(service(root), "edge-proxy");
    let edge_client = child(trace, root, kind::CLIENT, "edge CLIENT span");
    let sidecar = child(trace, edge_client, kind::SERVER, "sidecar span");
    let black_box = child(trace, sidecar, kind::SERVER, "black-box SERVER span");
    assert_eq!(service(black_box), WORKLOAD, "{}", trace.waterfall(40));
    [root, edge_client, sidecar, black_box]
}

fn tag(span: &Received, key: &str) -> Option<String> {
    Trace::tag(span, key)
}

fn assert_location_tags(spans: &[&Received; 4]) {
    let [edge_server, edge_client, sidecar, black_box] = spans;
    assert_eq!(
        tag(edge_server, threadline::LOCATION).as_deref(),
        Some("fra1-edge")
    );
    assert_eq!(tag(edge_server, threadline::POP).as_deref(), Some("fra1"));
    assert_eq!(
        tag(edge_server, threadline::REGION).as_deref(),
        Some("eu-central")
    );
    // The edge's CLIENT span names the core location it picked.
    assert_eq!(
        tag(edge_client, threadline::LOCATION).as_deref(),
        Some("fra1-core")
    );
    for core in [sidecar, black_box] {
        assert_eq!(tag(core, threadline::DATACENTER).as_deref(), Some("fra"));
        assert_eq!(
            tag(core, threadline::LOCATION).as_deref(),
            Some("fra1-core")
        );
        assert_eq!(tag(core, threadline::NODE).as_deref(), Some("core-17"));
        assert_eq!(tag(core, threadline::WORKLOAD).as_deref(), Some(WORKLOAD));
    }
    assert_eq!(
        tag(black_box, "network.interface.name").as_deref(),
        Some("tap0"),
        "the VM's tap"
    );
}

#[test]
fn each_request_is_one_complete_trace_from_the_edge_into_the_microvm() {
    let _one = ONE_STACK
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let Some(mut stack) = or_skip(Stack::start(StackOptions::default())) else {
        return;
    };
    let namespace = stack.vm().netns().name().to_owned();

    // Unsigned: the sidecar rewrites the header, the probe reads it.
    let plain = get(&stack, "/orders/42");
    assert_eq!(plain.status, 200, "{}", plain.echo);
    // The workload calls a second service through the tap. The target is kept short: the
    // probe reads a `traceparent` only within the first 192 bytes of a request
    // (`node_probe_common::names::PREFIX_LEN`), and the edge writes it after the others.
    let call = get(&stack, &format!("/call?to={}", stack.callee()));
    assert_eq!(call.status, 200, "{}", call.echo);
    assert_eq!(call.echo["call"]["status"], 200, "{}", call.echo);
    // Signed with SigV4 by the client: no part may touch it.
    let guest_host = "orders.internal";
    let signed_headers = workload::sigv4::sign_headers(
        "GET",
        guest_host,
        "/orders/7",
        &CREDENTIAL.parse().unwrap(),
        "eu-west-1",
        "execute-api",
        SystemTime::now(),
    )
    .unwrap();
    let mut request = format!("GET /orders/7 HTTP/1.1\r\nHost: {guest_host}\r\n");
    for (name, value) in &signed_headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    let signed = stack.send(request.as_bytes()).unwrap();
    assert_eq!(signed.status, 200, "{}", signed.echo);
    assert_eq!(
        signed.echo["sigv4"]["verified"], true,
        "the signature verifies inside the VM: {}",
        signed.echo
    );
    // A failing request.
    let failing = get(&stack, "/fail");
    assert_eq!(failing.status, 500, "{}", failing.echo);

    let wanted: Vec<String> = [&plain, &call, &signed, &failing]
        .iter()
        .map(|e| trace_of(e))
        .collect();
    let complete = |spans: &[Received]| {
        let by_trace = traces(spans);
        wanted
            .iter()
            .zip([4, 5, 4, 4])
            .all(|(id, count)| by_trace.get(id).is_some_and(|t| t.spans.len() >= count))
    };
    let spans = stack.collector().wait_until(WAIT, complete);
    stack.stop_parts();
    // Nothing more arrives after the flush: what is there is all there is.
    let spans = stack
        .collector()
        .wait_until(Duration::from_millis(500), |s| s.len() > spans.len());
    let by_trace = traces(&spans);
    for trace in by_trace.values() {
        eprintln!("{}", trace.waterfall(40));
    }
    let trace = |exchange: &Exchange| by_trace[&trace_of(exchange)].clone();

    // Unsigned: stitched by header; exactly the four spans.
    let plain_trace = trace(&plain);
    let spans4 = chain(&plain_trace);
    assert_eq!(plain_trace.spans.len(), 4, "{}", plain_trace.waterfall(40));
    assert_eq!(
        tag(spans4[3], threadline::PARENT_SOURCE).as_deref(),
        Some("header")
    );
    assert_eq!(
        plain.echo["traceparent"]
            .as_str()
            .map(|t| t[36..52].to_owned()),
        Some(hex(&spans4[2].1.span_id)),
        "the workload's parent is the sidecar span"
    );
    assert_location_tags(&spans4);

    // The workload's own call: a CLIENT span under its black-box SERVER span.
    let call_trace = trace(&call);
    let spans4 = chain(&call_trace);
    let outgoing = child(&call_trace, spans4[3], kind::CLIENT, "the workload's call");
    assert_eq!(
        tag(outgoing, threadline::PARENT_SOURCE).as_deref(),
        Some("vm_inflight")
    );
    assert_eq!(call_trace.spans.len(), 5, "{}", call_trace.waterfall(40));

    // Signed: the sidecar left the header as the edge wrote it, and the probe joined by
    // 4-tuple.
    let signed_trace = trace(&signed);
    let spans4 = chain(&signed_trace);
    assert_eq!(
        signed_trace.spans.len(),
        4,
        "{}",
        signed_trace.waterfall(40)
    );
    assert_eq!(
        tag(spans4[2], threadline::PROPAGATION).as_deref(),
        Some("black_box")
    );
    assert_eq!(
        tag(spans4[3], threadline::PARENT_SOURCE).as_deref(),
        Some("four_tuple")
    );
    assert_eq!(
        signed.echo["traceparent"]
            .as_str()
            .map(|t| t[36..52].to_owned()),
        Some(hex(&spans4[1].1.span_id)),
        "the header reached the VM as the edge wrote it: the sidecar did not touch the request"
    );

    // Failing: error status on every span that saw it.
    let failing_trace = trace(&failing);
    for span in chain(&failing_trace) {
        assert!(
            is_error(span),
            "{} is not an error:\n{}",
            span.1.name,
            failing_trace.waterfall(40)
        );
    }
    // And no error on the successful ones.
    assert!(chain(&plain_trace).iter().all(|s| !is_error(s)));
    assert_eq!(stack.collector().undecodable(), 0);

    drop(stack);
    assert!(
        !netns_exists(&namespace).unwrap(),
        "{namespace} is gone afterwards"
    );
}

#[test]
fn at_ten_percent_the_parts_agree_and_an_outage_loses_nothing() {
    let _one = ONE_STACK
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let options = StackOptions {
        percentage: 10.0,
        ..StackOptions::default()
    };
    let Some(mut stack) = or_skip(Stack::start(options)) else {
        return;
    };
    const REQUESTS: usize = 2000;
    let mut failed = Vec::new();
    for i in 0..REQUESTS {
        if i == REQUESTS / 3 {
            stack.collector().set_down(true);
        }
        if i == 2 * REQUESTS / 3 {
            stack.collector().set_down(false);
        }
        let exchange = get(&stack, &format!("/orders/{i}"));
        if exchange.status != 200 {
            failed.push((i, exchange.status));
        }
    }
    assert!(failed.is_empty(), "requests failed: {failed:?}");
    assert!(
        stack.collector().refused() > 0,
        "the outage refused exports"
    );
    stack.stop_parts();
    let spans = stack.collector().spans();
    let by_trace: BTreeMap<String, Trace> = traces(&spans);
    let sampler = SamplingConfig {
        mode: SamplingMode::HashSeed,
        percentage: 10.0,
        hash_seed: 22,
        ..SamplingConfig::default()
    }
    .build()
    .unwrap();
    for (id, trace) in &by_trace {
        let trace_id = TraceId::from_hex(id.as_bytes()).unwrap();
        assert!(
            sampler.decide(&trace_id, None, None).sampled,
            "trace {id} kept against the hash_seed decision"
        );
        chain(trace);
        assert_eq!(trace.spans.len(), 4, "{}", trace.waterfall(40));
    }
    // A binomial count: within four standard deviations of 10 %.
    let kept = by_trace.len() as f64;
    let (expected, sd) = (REQUESTS as f64 * 0.1, (REQUESTS as f64 * 0.1 * 0.9).sqrt());
    assert!(
        (kept - expected).abs() <= 4.0 * sd,
        "{kept} traces kept of {REQUESTS}, expected {expected} ± {:.0}",
        4.0 * sd
    );
    eprintln!(
        "{kept} of {REQUESTS} traces kept, all complete; {} exports refused during the outage",
        stack.collector().refused()
    );
}
