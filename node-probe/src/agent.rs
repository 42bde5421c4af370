//! The running agent: the kernel's events through the exchange builder and the join to the
//! relay, and the receiver's requests to the join and the relay.
//!
//! One task owns the builder and the join, so neither needs a lock: it takes kernel events,
//! the receiver's joinable sidecar spans and a tick. The relay's exporter, the receivers and
//! the admin port are tasks of their own.
//!
//! Shutdown runs in the order that loses nothing it can keep: the receivers stop taking
//! requests; the kernel layer detaches and hands on what is left in the ring; the builder
//! finishes every open exchange and the join sends on every waiting span with the parent it
//! has; then the relay flushes, within `export.shutdown_timeout_ms`.

use std::net::SocketAddr;
use std::sync::{Arc, Weak};
use std::time::Duration;

use node_probe_common::{Counter, PacketEvent};
use otlp_export::{Exporter, Framing};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use trace_core::IdGenerator;
use trace_core::export::DropReason;

use crate::clock::{ClockSource, KernelClock, SystemClocks};
use crate::config::Settings;
use crate::exchange::{ExchangeBuilder, FlowLookup, Interfaces, NoLookup, SpanMaker, SysfsNames};
use crate::join::{Joiner, SidecarSpan};
use crate::kernel::Probe;
use crate::metrics::{Counts, KernelCounters, Metrics};
use crate::receiver::{GrpcReceiver, HttpReceiver, Intake};
use crate::relay::Relay;

/// How often the builder and the join look at what has waited long enough.
const TICK: Duration = Duration::from_millis(100);
/// Kernel events queued between the ring reader and the agent's task.
const EVENT_QUEUE: usize = 16_384;
/// Receiver requests' joinable spans queued for the agent's task.
const JOIN_QUEUE: usize = 1024;

/// The addresses the agent listens on, once bound.
#[derive(Clone, Copy, Debug)]
pub struct Bound {
    /// OTLP/HTTP and the artifact.
    pub http: SocketAddr,
    /// OTLP/gRPC.
    pub grpc: Option<SocketAddr>,
    /// The admin port.
    pub admin: Option<SocketAddr>,
}

/// Starts the kernel layer: its programs on the configured interfaces, its events into
/// `events`. The one call into `crate::kernel`.
fn start_kernel(patterns: &[String], events: mpsc::Sender<PacketEvent>) -> Result<Probe, String> {
    Probe::start(patterns, events).map_err(|e| e.to_string())
}

/// The kernel layer's counters, for the metrics; weak, so that shutdown can take the probe.
struct ProbeCounters(Weak<Probe>);

impl KernelCounters for ProbeCounters {
    fn read(&self) -> Option<[u64; Counter::COUNT as usize]> {
        Some(self.0.upgrade()?.kernel_counters())
    }

    fn reader(&self) -> Vec<(&'static str, u64)> {
        let Some(probe) = self.0.upgrade() else {
            return Vec::new();
        };
        let c = probe.user_counters();
        vec![
            ("ring_records", c.ring_records),
            ("undecodable", c.undecodable),
            ("channel_dropped", c.channel_dropped),
            ("attached", c.attached),
            ("detached", c.detached),
            ("interfaces_vanished", c.interfaces_vanished),
            ("attach_failures", c.attach_failures),
            ("link_resyncs", c.link_resyncs),
            ("counter_read_failures", c.counter_read_failures),
        ]
    }
}

/// The kernel map, read for quiet connections.
struct ProbeFlows(Arc<Probe>);

impl FlowLookup for ProbeFlows {
    fn lookup(&self, key: &node_probe_common::FlowKey) -> Option<node_probe_common::FlowState> {
        self.0.flow(key)
    }
}

/// Binds every listener, so that a port in use is an error at start. `bound` is told the
/// addresses (port 0 picks one).
async fn bind(
    settings: &Settings,
) -> Result<(TcpListener, Option<TcpListener>, Option<TcpListener>), String> {
    let listen = |addr: SocketAddr, what: &'static str| async move {
        TcpListener::bind(addr)
            .await
            .map_err(|e| format!("{what} {addr}: {e}"))
    };
    let config = &settings.config;
    let http = listen(config.receiver.http, "receiver.http").await?;
    let grpc = match config.receiver.grpc {
        Some(addr) => Some(listen(addr, "receiver.grpc").await?),
        None => None,
    };
    let admin = match config.admin.address {
        Some(addr) => Some(listen(addr, "admin.address").await?),
        None => None,
    };
    Ok((http, grpc, admin))
}

/// Runs the agent until `shutdown` says so, then shuts down in order. With `kernel` false
/// the agent is the receiver and the relay only. `bound` is sent the listening addresses.
pub async fn run(
    settings: Settings,
    kernel: bool,
    mut shutdown: watch::Receiver<bool>,
    bound: Option<tokio::sync::oneshot::Sender<Bound>>,
) -> Result<(), String> {
    let metrics = Arc::new(Metrics::new().map_err(|e| format!("metrics: {e}"))?);
    let (http_listener, grpc_listener, admin_listener) = bind(&settings).await?;
    let addresses = Bound {
        http: http_listener.local_addr().map_err(|e| e.to_string())?,
        grpc: grpc_listener.as_ref().and_then(|l| l.local_addr().ok()),
        admin: admin_listener.as_ref().and_then(|l| l.local_addr().ok()),
    };
    let config = &settings.config;

    let relay = Relay::new(
        settings.buffer,
        Counts::bind(&metrics.relay),
        Counts::<DropReason>::bind(&metrics.dropped),
    );
    let exporter = Arc::new(Exporter::new(
        "relay",
        relay.queue(),
        settings.target.clone(),
        Framing::Complete,
        &config.export,
    ));
    let (stop_exporter, mut exporter_stopped) = watch::channel(false);
    let exporter = tokio::spawn(async move {
        exporter
            .serve(async move {
                let _ = exporter_stopped.changed().await;
            })
            .await;
    });

    let (to_join, mut joinable) = mpsc::channel::<Vec<SidecarSpan>>(JOIN_QUEUE);
    let intake = Intake::new(relay.clone(), to_join, Counts::bind(&metrics.receiver));
    let (stop_receivers, receivers_stopped) = watch::channel(false);
    let mut servers = Vec::new();
    servers.push(tokio::spawn(
        HttpReceiver {
            intake: intake.clone(),
            max_body_bytes: config.receiver.max_body_bytes,
            artifact: settings.artifact.clone(),
        }
        .serve(http_listener, receivers_stopped.clone()),
    ));
    if let Some(listener) = grpc_listener {
        let grpc = GrpcReceiver::new(intake.clone());
        let max = config.receiver.max_body_bytes;
        let stopped = receivers_stopped.clone();
        servers.push(tokio::spawn(async move {
            if let Err(e) = grpc.serve(listener, max, stopped).await {
                tracing::error!(error = %e, "OTLP/gRPC receiver stopped");
            }
        }));
    }
    drop(intake);
    if let Some(listener) = admin_listener {
        tokio::spawn(crate::admin::serve(
            listener,
            metrics.clone(),
            receivers_stopped.clone(),
        ));
    }

    let (events_tx, mut events) = mpsc::channel::<PacketEvent>(EVENT_QUEUE);
    let probe = if kernel {
        let probe = Arc::new(start_kernel(&config.kernel.interfaces, events_tx)?);
        metrics
            .add_kernel_counters(Arc::new(ProbeCounters(Arc::downgrade(&probe))))
            .map_err(|e| format!("metrics: {e}"))?;
        Some(probe)
    } else {
        drop(events_tx);
        None
    };
    let listening = |addr: Option<SocketAddr>| addr.map(|a| a.to_string()).unwrap_or_default();
    tracing::info!(
        http = %addresses.http,
        grpc = %listening(addresses.grpc),
        admin = %listening(addresses.admin),
        kernel,
        collector = %settings.target.describe(),
        "node-probe started"
    );
    if let Some(bound) = bound {
        let _ = bound.send(addresses);
    }

    let mut clock = KernelClock::new(SystemClocks);
    let mut builder = ExchangeBuilder::new(
        settings.limits,
        Counts::bind(&metrics.exchange),
        IdGenerator::from_seed(fastrand::u64(..)),
    );
    let mut maker = SpanMaker::new(
        settings.routes.clone(),
        settings.tags.clone(),
        Interfaces::new(
            Box::new(SysfsNames),
            settings.workloads.clone(),
            config.export.service_name.clone(),
            config
                .export
                .resource_attributes
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        ),
    );
    let mut joiner = Joiner::new(
        settings.join,
        settings.sampler,
        IdGenerator::from_seed(fastrand::u64(..)),
        Counts::bind(&metrics.join),
        Counts::bind(&metrics.parent_source),
    );
    let lookup: Box<dyn FlowLookup + Send> = match &probe {
        Some(probe) => Box::new(ProbeFlows(probe.clone())),
        None => Box::new(NoLookup),
    };
    let mut exchanges = Vec::new();
    let mut resolved = Vec::new();
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut events_open = kernel;
    loop {
        tokio::select! {
            event = events.recv(), if events_open => match event {
                Some(event) => builder.handle(&event, &mut exchanges),
                None => events_open = false,
            },
            Some(spans) = joinable.recv() => {
                let now = clock.now_monotonic_ns();
                for span in spans {
                    joiner.add_sidecar(span, now, &mut resolved);
                }
            }
            _ = tick.tick() => {
                let now = clock.now_monotonic_ns();
                builder.tick(now, lookup.as_ref(), &mut exchanges);
                joiner.tick(now, &mut resolved);
                metrics.connections.set(builder.connections() as i64);
                metrics.pending.set(joiner.pending() as i64);
                metrics.indexed.set(joiner.indexed() as i64);
                metrics.relay_held.set(relay.held() as i64);
                metrics.clock_steps.set(clock.steps() as i64);
            }
            _ = shutdown.changed() => break,
        }
        hand_on(
            &mut exchanges,
            &mut resolved,
            &mut maker,
            &mut joiner,
            &clock,
            &relay,
        );
    }

    tracing::info!("node-probe shutting down");
    let _ = stop_receivers.send(true);
    for server in servers {
        let _ = server.await;
    }
    drop(lookup);
    if let Some(probe) = probe {
        match Arc::try_unwrap(probe) {
            Ok(probe) => probe.shutdown().await,
            // Dropping the last handle detaches the programs too.
            Err(probe) => drop(probe),
        }
    }
    while let Ok(event) = events.try_recv() {
        builder.handle(&event, &mut exchanges);
    }
    while let Ok(spans) = joinable.try_recv() {
        let now = clock.now_monotonic_ns();
        for span in spans {
            joiner.add_sidecar(span, now, &mut resolved);
        }
    }
    builder.close(clock.now_monotonic_ns(), &mut exchanges);
    hand_on(
        &mut exchanges,
        &mut resolved,
        &mut maker,
        &mut joiner,
        &clock,
        &relay,
    );
    joiner.flush(&mut resolved);
    hand_on(
        &mut exchanges,
        &mut resolved,
        &mut maker,
        &mut joiner,
        &clock,
        &relay,
    );
    let _ = stop_exporter.send(true);
    let _ = exporter.await;
    tracing::info!("node-probe stopped");
    Ok(())
}

/// Finished exchanges to the join as spans, resolved spans to the relay.
fn hand_on(
    exchanges: &mut Vec<crate::exchange::Exchange>,
    resolved: &mut Vec<crate::join::Resolved>,
    maker: &mut SpanMaker,
    joiner: &mut Joiner,
    clock: &KernelClock<SystemClocks>,
    relay: &Relay,
) {
    if !exchanges.is_empty() {
        let now = ClockSource::monotonic_ns(clock.source());
        for exchange in exchanges.drain(..) {
            let span = maker.make(exchange, clock);
            joiner.add_black_box(span, now, resolved);
        }
    }
    for span in resolved.drain(..) {
        relay.black_box(&span);
    }
}

#[cfg(test)]
mod tests {
    use node_probe_common::Direction;
    use trace_core::otlp::decode_request;
    use trace_core::otlp::proto::common::v1::any_value::Value as Any;
    use trace_core::otlp::proto::common::v1::{AnyValue, KeyValue};
    use trace_core::otlp::proto::trace::v1::Span as ProtoSpan;
    use trace_core::route::RouteGrouper;
    use trace_core::sampling::SamplingConfig;
    use trace_core::semconv::{self, threadline};

    use super::*;
    use crate::exchange::interfaces::InterfaceNames;
    use crate::exchange::{Limits, WorkloadMap};
    use crate::join::JoinSettings;
    use crate::testing::{Kernel, PSH, Tcp};

    struct Tap;

    impl InterfaceNames for Tap {
        fn name(&self, _ifindex: u32) -> Option<String> {
            Some("tap-orders".into())
        }
    }

    fn kv(key: &str, value: Any) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: Some(AnyValue { value: Some(value) }),
            ..Default::default()
        }
    }

    /// The pieces as `run` wires them: a kernel exchange becomes a black-box span, joined to
    /// the sidecar span of its 4-tuple, and reaches the relay under its workload's resource.
    #[test]
    fn an_exchange_reaches_the_relay_joined_to_its_sidecar_span() {
        let clock = KernelClock::new(SystemClocks);
        let mut kernel = Kernel {
            now: SystemClocks.monotonic_ns(),
            ..Kernel::default()
        };
        let mut tcp = Tcp::new(8080, 40_000);
        let mut builder = ExchangeBuilder::new(
            Limits::default(),
            Counts::detached(),
            IdGenerator::from_seed(1),
        );
        let mut maker = SpanMaker::new(
            RouteGrouper::default(),
            Vec::new(),
            Interfaces::new(
                Box::new(Tap),
                WorkloadMap::new([("tap-*".to_owned(), "orders".to_owned())]),
                "microvm".into(),
                Vec::new(),
            ),
        );
        let mut joiner = Joiner::new(
            JoinSettings::default(),
            SamplingConfig::default().build().unwrap(),
            IdGenerator::from_seed(2),
            Counts::detached(),
            Counts::detached(),
        );
        let relay = Relay::new(
            trace_core::export::BufferLimits {
                batch_spans: 10,
                capacity_spans: 10,
                flush_interval_ms: 0,
                max_in_flight: 1,
                max_retries: 0,
                backoff: Default::default(),
            },
            Counts::detached(),
            Counts::detached(),
        );
        let (mut exchanges, mut resolved) = (Vec::new(), Vec::new());
        let start = clock.to_unix_ns(kernel.now);
        for (direction, payload) in [
            (
                Direction::ToWorkload,
                &b"GET /orders/7 HTTP/1.1\r\nHost: orders\r\n\r\n"[..],
            ),
            (
                Direction::FromWorkload,
                b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
            ),
        ] {
            kernel.advance(1_000_000);
            if let Some(event) = kernel.send(&mut tcp, direction, PSH, payload) {
                builder.handle(&event, &mut exchanges);
            }
        }
        let end = clock.to_unix_ns(kernel.now);
        hand_on(
            &mut exchanges,
            &mut resolved,
            &mut maker,
            &mut joiner,
            &clock,
            &relay,
        );
        assert_eq!(relay.held(), 0, "waiting for its sidecar span");
        let sidecar = ProtoSpan {
            trace_id: vec![7; 16],
            span_id: vec![8; 8],
            flags: 0x101,
            start_time_unix_nano: start,
            end_time_unix_nano: end + 1_000_000,
            attributes: vec![
                kv(
                    semconv::NETWORK_LOCAL_ADDRESS,
                    Any::StringValue("10.0.0.1".into()),
                ),
                kv(semconv::NETWORK_LOCAL_PORT, Any::IntValue(40_000)),
                kv(
                    semconv::NETWORK_PEER_ADDRESS,
                    Any::StringValue("10.0.0.2".into()),
                ),
                kv(semconv::NETWORK_PEER_PORT, Any::IntValue(8080)),
            ],
            ..Default::default()
        };
        let sidecar = SidecarSpan::from_proto(&sidecar).unwrap();
        joiner.add_sidecar(sidecar, clock.source().monotonic_ns(), &mut resolved);
        hand_on(
            &mut exchanges,
            &mut resolved,
            &mut maker,
            &mut joiner,
            &clock,
            &relay,
        );
        let batch = relay.queue().next_dispatch().unwrap().batch;
        let request = decode_request(&batch.entries).unwrap();
        let resource_spans = &request.resource_spans[0];
        let span = &resource_spans.scope_spans[0].spans[0];
        assert_eq!(span.name, "GET /orders/{id}");
        assert_eq!(span.trace_id, vec![7; 16]);
        assert_eq!(span.parent_span_id, vec![8; 8]);
        let source = trace_core::otlp::attribute(span, threadline::PARENT_SOURCE);
        assert_eq!(source, Some(&Any::StringValue("four_tuple".into())));
        let service = resource_spans.resource.as_ref().unwrap().attributes[0].clone();
        assert_eq!(
            service.value.unwrap().value,
            Some(Any::StringValue("orders".into()))
        );
    }
}
