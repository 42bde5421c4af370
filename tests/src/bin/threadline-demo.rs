//! The demo: the whole path on an embedded default (the edge, a sidecar running the built
//! filter, the workload in a real microVM, node-probe on its tap, a collector), a mix of
//! requests (a signed one and a failing one among them), and each trace printed as a
//! waterfall. `scripts/run.sh` runs it after setting everything up.

use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime};

use threadline_tests::stack::{CREDENTIAL, Stack, StackOptions};
use threadline_tests::trace::traces;

/// Columns of the waterfall's bars.
const BARS: usize = 40;

fn main() -> ExitCode {
    let started = Instant::now();
    println!(
        "threadline demo: booting the microVM and starting the edge, the sidecar and node-probe ..."
    );
    let stack = match Stack::start(StackOptions::default()) {
        Ok(stack) => stack,
        Err(error) => {
            eprintln!("threadline demo: cannot run the whole path here: {error}");
            return ExitCode::FAILURE;
        }
    };
    println!(
        "  up in {:.1} s (guest booted in {:.1} s); edge on {} inside namespace {}",
        started.elapsed().as_secs_f64(),
        stack.vm().boot_time().as_secs_f64(),
        stack.edge_addr(),
        stack.vm().netns().name()
    );
    let host = "orders.internal";
    let mut requests: Vec<(&str, Vec<u8>)> = vec![
        (
            "a plain request",
            format!("GET /orders/42 HTTP/1.1\r\nHost: {host}\r\n\r\n").into_bytes(),
        ),
        (
            "a request whose workload calls another service",
            format!(
                "GET /call?to={} HTTP/1.1\r\nHost: {host}\r\n\r\n",
                stack.callee()
            )
            .into_bytes(),
        ),
        (
            "a failing request",
            format!("GET /fail HTTP/1.1\r\nHost: {host}\r\n\r\n").into_bytes(),
        ),
    ];
    match workload::sigv4::sign_headers(
        "GET",
        host,
        "/orders/7",
        &CREDENTIAL.parse().expect("the demo credential parses"),
        "eu-west-1",
        "execute-api",
        SystemTime::now(),
    ) {
        Ok(signed) => {
            let mut request = format!("GET /orders/7 HTTP/1.1\r\nHost: {host}\r\n");
            for (name, value) in signed {
                request.push_str(&format!("{name}: {value}\r\n"));
            }
            request.push_str("\r\n");
            requests.insert(1, ("a SigV4-signed request", request.into_bytes()));
        }
        Err(error) => eprintln!("threadline demo: cannot sign the demo request: {error}"),
    }
    let mut wanted = Vec::new();
    for (what, request) in &requests {
        match stack.send(request) {
            Ok(exchange) => {
                let trace = exchange.echo["traceparent"]
                    .as_str()
                    .and_then(|t| t.get(3..35))
                    .map(str::to_owned);
                let verified = match exchange.echo["sigv4"]["verified"].as_bool() {
                    Some(true) => ", signature verified inside the VM",
                    Some(false) => ", signature REJECTED inside the VM",
                    None => "",
                };
                println!("  {what}: HTTP {}{verified}", exchange.status);
                wanted.extend(trace);
            }
            Err(error) => println!("  {what}: failed: {error}"),
        }
    }
    let spans = stack
        .collector()
        .wait_until(Duration::from_secs(20), |spans| {
            let by_trace = traces(spans);
            wanted
                .iter()
                .all(|id| by_trace.get(id).is_some_and(|t| t.spans.len() >= 4))
        });
    println!();
    for (id, trace) in traces(&spans) {
        if wanted.contains(&id) {
            println!("{}", trace.waterfall(BARS));
        }
    }
    println!(
        "The same traces go to a real backend (Tempo, Jaeger, the OpenTelemetry Collector, \
         Grafana Alloy) when each part exports there: set OTEL_EXPORTER_OTLP_ENDPOINT \
         (e.g. http://127.0.0.1:4318) for edge-proxy and node-probe; the sidecars export to \
         node-probe, which relays."
    );
    println!("demo finished in {:.1} s", started.elapsed().as_secs_f64());
    drop(stack);
    ExitCode::SUCCESS
}
