//! A sidecar for the end-to-end tests: a small real HTTP/1.1 proxy that runs the built filter
//! (`artifacts/threadline-filter.wasm`) in a real proxy-wasm host, where a Kuma/Envoy sidecar
//! stands: beside the microVM, in front of its tap device, on an inbound listener. Envoy
//! cannot be installed here; this is the nearest thing that runs the same bytes.
//!
//! Per request it makes Envoy's callbacks in Envoy's order: a new HTTP context,
//! `on_http_request_headers` (the one place request headers change), `on_http_request_body`
//! when there is a body, then the request goes upstream exactly as the header map holds it
//! after the filter ran, then `on_http_response_headers`, `on_http_response_body`, and at the
//! end `on_done`, `on_log` (read-only maps) and `on_delete`. Attributes have Envoy's names,
//! encodings and lifetimes ([`crate::envoy`]): `upstream.address` and
//! `upstream.local_address` are the two ends of the real upstream TCP connection, which the
//! node agent joins spans on. The root's `on_tick` runs in real time at the period the filter
//! set; `dispatch_http_call` is a real HTTP/1.1 request to the named cluster's address. At
//! [`Sidecar::stop`] the root gets `on_done` and the proxy keeps delivering callouts and ticks
//! until the filter says `proxy_done` or [`SidecarOptions::drain_timeout`] passes.
//!
//! Where it is simpler than Envoy:
//! - One upstream connection per downstream connection, opened at its first request and
//!   reused while both stay open (Envoy pools per worker; for one client connection at a time
//!   the 4-tuples are the same). A reused connection the workload closed is replaced once.
//! - Bodies are buffered whole (up to 16 MiB) and each body callback runs once with
//!   `end_of_stream`; the filter may read bodies, not change them. Bodies are forwarded as they
//!   were framed (chunked stays chunked, byte for byte).
//! - Header names are lowercased, as Envoy's HTTP/1 codec does, and `host` becomes
//!   `:authority`, forwarded first as `host`; nothing is added (no `x-forwarded-*`,
//!   `x-request-id`, `x-envoy-*`) or removed, hop-by-hop headers included, so a request whose
//!   headers came lowercased with `host` first reaches the workload byte for byte.
//! - `Pause`, local responses and stream callouts are not served: a paused request goes on.
//! - A filter that traps fails open (Envoy's `fail_open`): counted, and later requests pass
//!   untraced; the VM is not reloaded.
//! - The host crate orders `on_done` before `on_log` (the proxy-wasm specification); Envoy
//!   1.19+ logs first. Stream `on_done` is a no-op in this filter, so nothing can tell.

mod callout;
mod filter;
mod host;
mod proxy;
mod wire;

use std::collections::{BTreeMap, HashMap};
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::Netns;
use crate::envoy::{self, Attributes};

/// The cluster the filter exports to unless its configuration names another
/// (`collector.cluster` in the filter's configuration).
pub const DEFAULT_COLLECTOR_CLUSTER: &str = "threadline_agent";

/// What the sidecar runs and where it sends traffic.
#[derive(Debug)]
pub struct SidecarOptions {
    /// The filter's `.wasm`; by default the published artifact, refused when stale.
    pub wasm: PathBuf,
    /// The plugin configuration (`PluginConfig.configuration`), the filter's own JSON.
    pub configuration: String,
    /// `PluginConfig.name`, read back as the `plugin_name` attribute.
    pub plugin_name: String,
    /// `PluginConfig.root_id`.
    pub root_id: String,
    /// Where clients connect; bind it inside a namespace (with [`Netns::run`]) to serve there.
    pub listener: TcpListener,
    /// The workload.
    pub upstream: SocketAddr,
    /// The upstream cluster's name, `xds.cluster_name` (Kuma names an inbound one
    /// `localhost:<port>`).
    pub upstream_cluster: String,
    /// Clusters `dispatch_http_call` can reach, by name; any other is refused as Envoy refuses
    /// an unknown cluster.
    pub clusters: HashMap<String, SocketAddr>,
    /// `xds.listener_direction`: [`envoy::INBOUND`] (1, SERVER spans) or [`envoy::OUTBOUND`]
    /// (2, CLIENT spans).
    pub listener_direction: i64,
    /// `xds.node.id`.
    pub node_id: String,
    /// `xds.node.cluster`.
    pub node_cluster: String,
    /// `xds.node.metadata.<key>` string values (the filter reads `THREADLINE_*` tags there
    /// when `tags_from_node_metadata` is set).
    pub node_metadata: BTreeMap<String, String>,
    /// How long connecting upstream or to a cluster may take (Envoy's `connect_timeout`).
    pub connect_timeout: Duration,
    /// How long the workload may take to answer (Envoy's route timeout, 15 s by default).
    pub request_timeout: Duration,
    /// How long a downstream connection may stay silent between requests.
    pub idle_timeout: Duration,
    /// At stop, how long requests in flight may take to finish before they are cut.
    pub grace: Duration,
    /// At stop, how long the root may drain (the filter gives up on its own after 10 s).
    pub drain_timeout: Duration,
}

impl SidecarOptions {
    /// The published filter with an empty configuration on an inbound listener, in front of
    /// `upstream`, and no cluster yet (add the collector with [`SidecarOptions::cluster`]).
    pub fn new(listener: TcpListener, upstream: SocketAddr) -> Self {
        Self {
            wasm: PathBuf::from(envoy::FILTER),
            configuration: "{}".into(),
            plugin_name: "threadline".into(),
            root_id: String::new(),
            listener,
            upstream,
            upstream_cluster: format!("localhost:{}", upstream.port()),
            clusters: HashMap::new(),
            listener_direction: envoy::INBOUND,
            node_id: "sidecar-test".into(),
            node_cluster: "threadline-tests".into(),
            node_metadata: BTreeMap::new(),
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(15),
            idle_timeout: Duration::from_secs(60),
            grace: Duration::from_secs(2),
            drain_timeout: Duration::from_secs(15),
        }
    }

    /// Sets the plugin configuration.
    #[must_use]
    pub fn configuration(mut self, json: &str) -> Self {
        self.configuration = json.to_owned();
        self
    }

    /// Adds a cluster for `dispatch_http_call`.
    #[must_use]
    pub fn cluster(mut self, name: &str, addr: SocketAddr) -> Self {
        self.clusters.insert(name.to_owned(), addr);
        self
    }

    /// The `xds.*` attributes, which root and stream contexts both have.
    fn xds_attributes(&self) -> Attributes {
        let mut attributes = Attributes::default();
        attributes.set(
            "xds.listener_direction",
            envoy::int(self.listener_direction),
        );
        attributes.set("xds.node.id", self.node_id.as_str());
        attributes.set("xds.node.cluster", self.node_cluster.as_str());
        for (key, value) in &self.node_metadata {
            attributes.set(&format!("xds.node.metadata.{key}"), value.as_str());
        }
        attributes
    }
}

/// Why the sidecar did not start.
#[derive(Debug)]
pub enum Error {
    /// The `.wasm` is missing or older than its sources.
    Artifact(String),
    /// The module did not compile or instantiate, or a start callback failed.
    Filter(String),
    /// `on_vm_start` or `on_configure` answered false: Envoy would reject the listener.
    Refused {
        /// What the filter logged.
        logs: Vec<String>,
    },
    /// A socket or thread could not be set up.
    Io(std::io::Error),
    /// The namespace could not be entered.
    Namespace(crate::Error),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Artifact(why) => write!(f, "filter artifact: {why}"),
            Self::Filter(why) => write!(f, "filter: {why}"),
            Self::Refused { logs } => write!(f, "the filter refused to start: {logs:?}"),
            Self::Io(e) => write!(f, "sidecar: {e}"),
            Self::Namespace(e) => write!(f, "sidecar namespace: {e}"),
        }
    }
}

impl std::error::Error for Error {}

/// What the sidecar counted, shared with its thread.
#[derive(Default, Debug)]
struct Counters {
    requests_proxied: AtomicU64,
    local_replies: AtomicU64,
    upstream_connections: AtomicU64,
    filter_errors: AtomicU64,
    callouts_sent: AtomicU64,
    callouts_answered: AtomicU64,
    callouts_failed: AtomicU64,
    callouts_refused: AtomicU64,
}

/// A snapshot of what the sidecar counted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Requests answered with the workload's response.
    pub requests_proxied: u64,
    /// Requests answered by the sidecar itself (bad request, upstream unreachable or too
    /// slow), as Envoy's local replies.
    pub local_replies: u64,
    /// Upstream TCP connections opened.
    pub upstream_connections: u64,
    /// Filter callbacks that failed (a trap, a host error); the request went on.
    pub filter_errors: u64,
    /// Callouts sent to a cluster.
    pub callouts_sent: u64,
    /// Callouts the cluster answered (whatever the status).
    pub callouts_answered: u64,
    /// Callouts that got no answer: connect failure, timeout or reset.
    pub callouts_failed: u64,
    /// Callouts refused at once (unknown cluster, missing `:method`/`:path`/`:authority`).
    pub callouts_refused: u64,
}

impl Counters {
    fn snapshot(&self) -> Stats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        Stats {
            requests_proxied: get(&self.requests_proxied),
            local_replies: get(&self.local_replies),
            upstream_connections: get(&self.upstream_connections),
            filter_errors: get(&self.filter_errors),
            callouts_sent: get(&self.callouts_sent),
            callouts_answered: get(&self.callouts_answered),
            callouts_failed: get(&self.callouts_failed),
            callouts_refused: get(&self.callouts_refused),
        }
    }
}

/// A running sidecar. [`Sidecar::stop`] (or drop) drains the filter and ends its thread.
pub struct Sidecar {
    addr: SocketAddr,
    counters: Arc<Counters>,
    metrics: Arc<host::Metrics>,
    logs: Arc<host::Logs>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl std::fmt::Debug for Sidecar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sidecar")
            .field("addr", &self.addr)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl Sidecar {
    /// Loads the filter and serves on `options.listener`, on a thread of its own that makes
    /// every socket (upstream and callouts) in the namespace the calling thread is in.
    /// Returns once the filter is configured.
    pub fn start(options: SidecarOptions) -> Result<Self, Error> {
        let addr = options.listener.local_addr().map_err(Error::Io)?;
        options.listener.set_nonblocking(true).map_err(Error::Io)?;
        let counters = Arc::new(Counters::default());
        let metrics = Arc::new(host::Metrics::default());
        let logs = Arc::new(host::Logs::default());
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let (ready, started) = std::sync::mpsc::channel();
        let shared = (counters.clone(), metrics.clone(), logs.clone());
        let thread = std::thread::Builder::new()
            .name("threadline-sidecar".into())
            .spawn(move || proxy::run(options, shared, &ready, stopped))
            .map_err(Error::Io)?;
        match started.recv() {
            Ok(Ok(())) => Ok(Self {
                addr,
                counters,
                metrics,
                logs,
                stop: Some(stop),
                thread: Some(thread),
            }),
            Ok(Err(error)) => {
                let _ = thread.join();
                Err(error)
            }
            Err(_) => {
                let _ = thread.join();
                Err(Error::Filter(
                    "the sidecar thread ended while starting".into(),
                ))
            }
        }
    }

    /// [`Sidecar::start`] from a thread inside `netns`: the upstream and callout sockets are
    /// made there (bind `options.listener` there too, with [`Netns::run`]).
    pub fn start_in(netns: &Netns, options: SidecarOptions) -> Result<Self, Error> {
        netns
            .run(move || Self::start(options))
            .map_err(Error::Namespace)?
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// What it counted so far.
    pub fn stats(&self) -> Stats {
        self.counters.snapshot()
    }

    /// A metric the filter defined (`threadline_spans_exported`, …); `None` if never defined.
    pub fn metric(&self, name: &str) -> Option<u64> {
        self.metrics.get(name)
    }

    /// The filter's log lines so far.
    pub fn log_lines(&self) -> Vec<String> {
        self.logs
            .lines
            .lock()
            .map(|lines| lines.iter().map(|(_, l)| l.clone()).collect())
            .unwrap_or_default()
    }

    /// Stops accepting, lets requests in flight finish (for [`SidecarOptions::grace`]), ends
    /// the root as Envoy ends one (its queue is flushed and exported), and joins the thread;
    /// returns the final counts.
    pub fn stop(mut self) -> Stats {
        self.shut_down();
        self.stats()
    }

    fn shut_down(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Sidecar {
    fn drop(&mut self) {
        self.shut_down();
    }
}
