//! Shows what a Threadline hop does with a request's trace headers: which context it reads and
//! why it ignores one, the sampling decision, the headers it sends on, the span name, whether
//! the request is SigV4-signed, and the span as OTLP bytes decoded by the official definitions.
//!
//! ```text
//! cargo run -p trace-core --example inspect                       # the built-in demo requests
//! cargo run -p trace-core --example inspect -- \
//!     -H 'traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01' --path /users/7
//! ```

use std::time::{SystemTime, UNIX_EPOCH};

use clap::{Parser, ValueEnum};
use trace_core::otlp::{decode_request, encode_request};
use trace_core::propagation::{Format, Formats, Incoming, extract, inject};
use trace_core::route::{RouteGrouper, span_name};
use trace_core::sampling::{SamplingConfig, SamplingMode};
use trace_core::span::{KeyValue, Resource, Scope, Span, SpanKind};
use trace_core::start::start_span;
use trace_core::{IdGenerator, http, semconv, sigv4};

/// Inspect how Threadline reads, samples and propagates a request's trace context.
#[derive(Parser, Debug)]
#[command(version, about, long_about = None)]
struct Args {
    /// An incoming header, `name: value`; repeat for more. Without any, built-in demo
    /// requests are shown.
    #[arg(short = 'H', long = "header", value_name = "NAME: VALUE")]
    headers: Vec<String>,
    /// Request method.
    #[arg(long, default_value = "GET")]
    method: String,
    /// Request path, with an optional query.
    #[arg(long, default_value = "/api/v1/users/12345")]
    path: String,
    /// Sampling mode for traces that start here.
    #[arg(long, value_enum, default_value_t = Mode::HashSeed)]
    mode: Mode,
    /// Percentage of new traces to keep.
    #[arg(long, default_value_t = 100.0)]
    percentage: f32,
    /// Seed of hash_seed mode.
    #[arg(long, default_value_t = 0)]
    seed: u32,
    /// B3 headers to send besides W3C.
    #[arg(long, value_enum, default_value_t = B3Out::None)]
    b3: B3Out,
    /// A route template such as `/users/{id}`; repeat for more.
    #[arg(long = "route")]
    routes: Vec<String>,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Mode {
    HashSeed,
    Proportional,
    AlwaysOn,
    AlwaysOff,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum B3Out {
    None,
    Single,
    Multi,
    Both,
}

struct Request {
    title: &'static str,
    method: String,
    path: String,
    headers: Vec<(String, String)>,
}

fn demo_requests() -> Vec<Request> {
    let request = |title, path: &str, headers: &[(&str, &str)]| Request {
        title,
        method: "GET".into(),
        path: path.into(),
        headers: headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    };
    let too_many: String = (1..=33)
        .map(|i| format!("k{i}=v"))
        .collect::<Vec<_>>()
        .join(",");
    let too_many: &'static str = Box::leak(too_many.into_boxed_str());
    vec![
        request(
            "no trace headers: a new root trace",
            "/api/v1/users/12345",
            &[],
        ),
        request(
            "W3C context with vendor state: the trace continues",
            "/api/v1/orders/550e8400-e29b-41d4-a716-446655440000",
            &[
                (
                    "traceparent",
                    "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                ),
                ("tracestate", "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"),
            ],
        ),
        request(
            "uppercase trace ID: invalid, a new trace starts",
            "/health",
            &[(
                "traceparent",
                "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            )],
        ),
        request(
            "B3 single header with debug",
            "/api/v1/users/12345/avatar.png",
            &[(
                "b3",
                "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-d-05e3ac9a4f6e3b90",
            )],
        ),
        request(
            "B3 multi headers with a 64-bit trace ID",
            "/api/v1/items/9f86d081884c7d65",
            &[
                ("X-B3-TraceId", "64fe8b2a57d3eff7"),
                ("X-B3-SpanId", "e457b5a2e4d86bd1"),
                ("X-B3-Sampled", "1"),
            ],
        ),
        request(
            "33 tracestate members: tracestate dropped, trace continues",
            "/",
            &[
                (
                    "traceparent",
                    "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00",
                ),
                ("tracestate", too_many),
            ],
        ),
        request(
            "AWS SigV4-signed request: passes untouched, black-box span",
            "/bucket/key?x-id=GetObject",
            &[(
                "authorization",
                "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/s3/aws4_request, \
                 SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature=abcdef",
            )],
        ),
    ]
}

fn parse_header(raw: &str) -> Result<(String, String), String> {
    let (name, value) = raw
        .split_once(':')
        .ok_or_else(|| format!("header {raw:?} is not `name: value`"))?;
    Ok((
        name.trim().to_ascii_lowercase(),
        value.trim_start().to_owned(),
    ))
}

fn main() {
    let args = Args::parse();
    if let Err(error) = run(&args) {
        eprintln!("inspect: {error}");
        std::process::exit(2);
    }
}

fn run(args: &Args) -> Result<(), String> {
    let sampling = SamplingConfig {
        mode: match args.mode {
            Mode::HashSeed => SamplingMode::HashSeed,
            Mode::Proportional => SamplingMode::Proportional,
            Mode::AlwaysOn => SamplingMode::AlwaysOn,
            Mode::AlwaysOff => SamplingMode::AlwaysOff,
        },
        percentage: args.percentage,
        hash_seed: args.seed,
        ..SamplingConfig::default()
    };
    let sampler = sampling.build().map_err(|e| e.to_string())?;
    let grouper = RouteGrouper::new(&args.routes).map_err(|e| e.to_string())?;
    let formats = match args.b3 {
        B3Out::None => Formats::default(),
        B3Out::Single => Formats {
            b3_single: true,
            b3_multi: false,
            ..Formats::default()
        },
        B3Out::Multi => Formats {
            b3_single: false,
            b3_multi: true,
            ..Formats::default()
        },
        B3Out::Both => Formats {
            b3_single: true,
            b3_multi: true,
            ..Formats::default()
        },
    };
    let requests = if args.headers.is_empty() {
        demo_requests()
    } else {
        vec![Request {
            title: "your request",
            method: args.method.clone(),
            path: args.path.clone(),
            headers: args
                .headers
                .iter()
                .map(|h| parse_header(h))
                .collect::<Result<_, _>>()?,
        }]
    };
    let seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64);
    let mut ids = IdGenerator::from_seed(seed);
    println!("sampling: {sampling:?}\n");
    for request in &requests {
        inspect(request, &sampler, &grouper, formats, &mut ids)?;
    }
    Ok(())
}

fn describe(incoming: &Incoming) -> String {
    let format = match incoming.format {
        Some(Format::TraceContext) => "w3c",
        Some(Format::B3Single) => "b3 single",
        Some(Format::B3Multi) => "b3 multi",
        None => "none",
    };
    let parent = incoming.parent.as_ref().map_or("none".to_owned(), |p| {
        format!("{}/{}", p.trace_id, p.span_id)
    });
    format!(
        "format={format} parent={parent} sampled={:?} debug={}",
        incoming.sampled, incoming.debug
    )
}

fn inspect(
    request: &Request,
    sampler: &trace_core::sampling::Sampler,
    grouper: &RouteGrouper,
    formats: Formats,
    ids: &mut IdGenerator,
) -> Result<(), String> {
    println!(
        "# {}\n  request:   {} {}",
        request.title, request.method, request.path
    );
    for (name, value) in &request.headers {
        let shown = if value.chars().count() > 90 {
            let head: String = value.chars().take(90).collect();
            format!("{head}… ({} bytes)", value.len())
        } else {
            value.clone()
        };
        println!("             {name}: {shown}");
    }
    let incoming = extract(&request.headers[..]);
    println!("  incoming:  {}", describe(&incoming));
    if let Some(problem) = incoming.problem {
        println!("  ignored:   {problem}");
    }
    let header = |name: &str| {
        request
            .headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_bytes())
    };
    let query = request.path.split_once('?').map(|(_, q)| q.as_bytes());
    let signed = sigv4::detect(header("authorization"), query);
    let started = start_span(incoming.parent.as_ref(), incoming.sampled, sampler, ids);
    let context = &started.context;
    println!(
        "  span:      trace={} span={} parent={} sampled={} random={}",
        context.trace_id,
        context.span_id,
        started
            .parent_span_id
            .map_or("none".into(), |p| p.to_string()),
        context.is_sampled(),
        context.flags.is_random()
    );
    let route = grouper.route(&request.path);
    let name = span_name(&request.method, &route);
    println!("  name:      {name}");
    match &signed {
        Some(signed) => println!(
            "  sigv4:     signed in the {:?}, covers [{}]: headers pass unchanged, span is black-box",
            signed.location,
            signed.signed_headers.join(", ")
        ),
        None => {
            print!("  outgoing:  ");
            let mut first = true;
            inject(
                context,
                started.parent_span_id,
                incoming.debug,
                formats.with_incoming(incoming.format),
                |n, v| {
                    if !first {
                        print!("             ");
                    }
                    first = false;
                    println!("{n}: {v}");
                },
            );
        }
    }

    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let mut span = Span {
        context: context.clone(),
        parent_span_id: started.parent_span_id,
        parent_is_remote: started.parent_span_id.is_some(),
        name,
        kind: SpanKind::Server,
        start_unix_nano: now,
        end_unix_nano: now + 1_000_000,
        ..Span::default()
    };
    http::Request {
        method: &request.method,
        target: &request.path,
        route: route.template(),
        ..http::Request::default()
    }
    .set_attributes(&mut span);
    if signed.is_some() {
        span.set_attribute(semconv::threadline::PROPAGATION, "black_box");
    }
    let resource = Resource {
        attributes: vec![KeyValue::new(semconv::SERVICE_NAME, "inspect")],
    };
    let mut body = Vec::new();
    encode_request(
        &resource,
        &Scope::default(),
        std::slice::from_ref(&span),
        &mut body,
    );
    let decoded =
        decode_request(&body).map_err(|e| format!("our own OTLP bytes did not decode: {e}"))?;
    let decoded_span = decoded
        .resource_spans
        .first()
        .and_then(|rs| rs.scope_spans.first())
        .and_then(|ss| ss.spans.first())
        .ok_or("our own OTLP bytes decoded to no span")?;
    println!(
        "  otlp:      {} bytes; decoded by opentelemetry-proto: span {:?} with {} attributes\n",
        body.len(),
        decoded_span.name,
        decoded_span.attributes.len()
    );
    Ok(())
}
