//! The whole path of one request, on this machine, over the real parts: the edge-proxy
//! binary, a sidecar running the built filter in a real proxy-wasm host, the workload in a
//! real microVM behind its tap device, node-probe attached to that tap with its receiver and
//! relay, and the collector stand-in. Everything runs inside the microVM's namespace, which
//! is removed with the stack; the only traffic is inside it.
//!
//! ```text
//! client ─► edge-proxy ─► sidecar (filter) ─► tap0 ─► guest workload ─► tap0 ─► callee
//!               │               │                │
//!               └── OTLP ──┐    └─ OTLP ─► node-probe (TC on tap0) ── OTLP ──► collector
//!                          └──────────────────────────────────────────────────►
//! ```

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use serde_json::Value;

use crate::collector::Collector;
use crate::process::{Process, built_binary};
use crate::sidecar::{DEFAULT_COLLECTOR_CLUSTER, Sidecar, SidecarOptions};
use crate::{Error, MicroVm, MicroVmOptions};

/// How long any part may take to come up or answer.
pub const WAIT: Duration = Duration::from_secs(30);

/// The SigV4 key pair the workload accepts.
pub const CREDENTIAL: &str = "AKIDTHREADLINE:threadline-demo-secret";

/// The workload's name, as the probe and the sidecar tag it.
pub const WORKLOAD: &str = "orders";

/// How the stack samples and joins.
#[derive(Clone, Debug)]
pub struct StackOptions {
    /// The edge's hash_seed percentage; the probe samples traces it starts the same way.
    pub percentage: f32,
    /// How long the probe waits for a sidecar span.
    pub join_window_ms: u64,
}

impl Default for StackOptions {
    fn default() -> Self {
        Self {
            percentage: 100.0,
            join_window_ms: 1000,
        }
    }
}

/// The running path. Dropping it stops every part by its PID (the edge and the probe with
/// SIGTERM, so that they flush), then the microVM, and removes the namespace.
pub struct Stack {
    edge: Option<Process>,
    sidecar: Option<Sidecar>,
    probe: Option<Process>,
    collector: Collector,
    callee: SocketAddr,
    edge_addr: SocketAddr,
    vm: MicroVm,
}

/// One exchange with the edge, as the client saw it.
#[derive(Debug)]
pub struct Exchange {
    /// The bytes sent.
    pub sent: Vec<u8>,
    /// The response status.
    pub status: u16,
    /// The response body as JSON (the workload's echo), or `Null`.
    pub echo: Value,
}

fn io(what: &str) -> impl Fn(std::io::Error) -> Error + '_ {
    move |e| Error::Command {
        command: what.to_owned(),
        detail: e.to_string(),
    }
}

impl Stack {
    /// Boots the microVM and starts every part around it.
    pub fn start(options: StackOptions) -> Result<Self, Error> {
        let edge_binary = built_binary("edge-proxy")?;
        let probe_binary = built_binary("node-probe")?;
        let vm = MicroVm::boot(MicroVmOptions {
            sigv4_credential: Some(CREDENTIAL.into()),
            ..MicroVmOptions::default()
        })?;
        let netns = vm.netns();
        let in_ns = |addr: (std::net::Ipv4Addr, u16)| {
            netns
                .run(|| TcpListener::bind(addr))
                .and_then(|bound| bound.map_err(io("bind in the namespace")))
        };
        let localhost = std::net::Ipv4Addr::LOCALHOST;
        let collector = Collector::start(in_ns((localhost, 0))?)?;

        // The second service the workload calls, reached through the tap.
        let callee_listener = in_ns((vm.host_ip(), 0))?;
        let callee = callee_listener.local_addr().map_err(io("callee"))?;
        std::thread::spawn(move || workload::serve(callee_listener, workload::Config::default()));

        let wrapper = ["ip", "netns", "exec", netns.name()];
        let (probe, started) = Process::start(
            "node-probe",
            &probe_binary,
            &wrapper,
            &probe_config(collector.addr(), vm.tap(), &options),
            "node-probe started",
            WAIT,
        )?;
        let receiver: SocketAddr = serde_json::from_str::<Value>(&started)
            .ok()
            .and_then(|line| line["fields"]["http"].as_str()?.parse().ok())
            .ok_or_else(|| Error::Options(format!("no receiver address in {started}")))?;

        let sidecar = Sidecar::start_in(
            netns,
            SidecarOptions::new(in_ns((localhost, 0))?, vm.guest_addr().into())
                .configuration(&sidecar_config())
                .cluster(DEFAULT_COLLECTOR_CLUSTER, receiver),
        )
        .map_err(|e| Error::Command {
            command: "sidecar".into(),
            detail: e.to_string(),
        })?;

        // A free port for the edge, inside the namespace: bound, read and released.
        let edge_addr = in_ns((localhost, 0))?
            .local_addr()
            .map_err(io("edge port"))?;
        let (edge, _) = Process::start(
            "edge-proxy",
            &edge_binary,
            &wrapper,
            &edge_config(edge_addr, sidecar.addr(), collector.addr(), &options),
            "edge-proxy starting",
            WAIT,
        )?;
        let stack = Self {
            edge: Some(edge),
            sidecar: Some(sidecar),
            probe: Some(probe),
            collector,
            callee,
            edge_addr,
            vm,
        };
        stack.wait_for_edge()?;
        Ok(stack)
    }

    fn wait_for_edge(&self) -> Result<(), Error> {
        let deadline = std::time::Instant::now() + WAIT;
        loop {
            if let Ok(exchange) = self.send(b"GET /healthz HTTP/1.1\r\nHost: edge\r\n\r\n")
                && exchange.status == 200
            {
                return Ok(());
            }
            if std::time::Instant::now() > deadline {
                return Err(Error::Options(format!(
                    "the edge did not answer within {WAIT:?}; its log: {:#?}",
                    self.edge.as_ref().map(Process::log)
                )));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The collector.
    pub fn collector(&self) -> &Collector {
        &self.collector
    }

    /// The microVM.
    pub fn vm(&self) -> &MicroVm {
        &self.vm
    }

    /// The second service's address, for `/call?to=`.
    pub fn callee(&self) -> SocketAddr {
        self.callee
    }

    /// The edge's address inside the namespace.
    pub fn edge_addr(&self) -> SocketAddr {
        self.edge_addr
    }

    /// Sends one request (`Connection: close` is added) to the edge from inside the
    /// namespace, and reads the whole response.
    pub fn send(&self, request: &[u8]) -> Result<Exchange, Error> {
        let addr = self.edge_addr;
        let mut stream = self
            .vm
            .netns()
            .run(|| TcpStream::connect_timeout(&addr, WAIT))
            .and_then(|s| s.map_err(io("connect to the edge")))?;
        stream.set_read_timeout(Some(WAIT)).map_err(io("edge"))?;
        let head_end = find(request, b"\r\n\r\n").unwrap_or(request.len());
        let mut sent = request[..head_end].to_vec();
        sent.extend_from_slice(b"\r\nConnection: close");
        sent.extend_from_slice(&request[head_end..]);
        stream.write_all(&sent).map_err(io("send to the edge"))?;
        let mut response = Vec::new();
        stream
            .read_to_end(&mut response)
            .map_err(io("read from the edge"))?;
        let status = std::str::from_utf8(response.get(9..12).unwrap_or_default())
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let body_at = find(&response, b"\r\n\r\n").map_or(response.len(), |at| at + 4);
        let head = String::from_utf8_lossy(&response[..body_at]).to_ascii_lowercase();
        let body = if head.contains("transfer-encoding: chunked") {
            dechunk(&response[body_at..])
        } else {
            response[body_at..].to_vec()
        };
        Ok(Exchange {
            sent,
            status,
            echo: serde_json::from_slice(&body).unwrap_or(Value::Null),
        })
    }

    /// Stops the edge, the sidecar and the probe in the order a request meets them, each
    /// flushing its spans; the collector and the microVM stay for the test to read.
    pub fn stop_parts(&mut self) {
        drop(self.edge.take());
        if let Some(sidecar) = self.sidecar.take() {
            sidecar.stop();
        }
        drop(self.probe.take());
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        self.stop_parts();
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn dechunk(mut body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(line_end) = find(body, b"\r\n") {
        let size = std::str::from_utf8(&body[..line_end])
            .ok()
            .and_then(|s| usize::from_str_radix(s.trim(), 16).ok())
            .unwrap_or(0);
        body = &body[line_end + 2..];
        if size == 0 || body.len() < size {
            break;
        }
        out.extend_from_slice(&body[..size]);
        body = body.get(size + 2..).unwrap_or_default();
    }
    out
}

fn sampling(options: &StackOptions) -> String {
    format!(
        "[sampling]\nmode = \"hash_seed\"\npercentage = {:.1}\nhash_seed = 22\n",
        options.percentage
    )
}

fn probe_config(collector: SocketAddr, tap: &str, options: &StackOptions) -> String {
    format!(
        "routes = [\"/orders/{{id}}\"]\n\n[kernel]\ninterfaces = [\"{tap}\"]\n\n\
         [receiver]\nhttp = \"127.0.0.1:0\"\ngrpc = \"\"\n\n[admin]\naddress = \"\"\n\n\
         [location]\ndatacenter = \"fra\"\nlocation = \"fra1-core\"\nnode = \"core-17\"\n\n\
         [workloads]\n\"{tap}\" = \"{WORKLOAD}\"\n\n\
         [exchanges]\nquiet_ms = 200\n\n[join]\nwindow_ms = {}\ninflight_wait_ms = 3000\n\n\
         [export]\nendpoint = \"http://{collector}\"\nflush_interval_ms = 100\nbatch_size = 256\n\
         queue_size = 65536\nmax_retries = 10\nshutdown_timeout_ms = 10000\n\n{}",
        options.join_window_ms,
        sampling(options)
    )
}

fn edge_config(
    listen: SocketAddr,
    sidecar: SocketAddr,
    collector: SocketAddr,
    options: &StackOptions,
) -> String {
    format!(
        "routes = [\"/orders/{{id}}\"]\n\n[server]\nthreads = 1\ngrace_period_seconds = 0\n\
         graceful_shutdown_timeout_seconds = 1\n\n[listen]\nhttp = [\"{listen}\"]\n\n\
         [admin]\naddress = \"\"\n\n\
         [edge]\nlocation = \"fra1-edge\"\nregion = \"eu-central\"\npop = \"fra1\"\n\n\
         [export]\nendpoint = \"http://{collector}\"\nflush_interval_ms = 100\nbatch_size = 256\n\
         queue_size = 65536\nmax_retries = 10\nshutdown_timeout_ms = 10000\n\n\
         [access_log]\nenabled = false\n\n\
         [upstreams.health_check]\nkind = \"tcp\"\n\n\
         [[upstreams.locations]]\nname = \"fra1-core\"\naddress = \"{sidecar}\"\n\n{}",
        sampling(options)
    )
}

/// The filter's plugin configuration: the tags Kuma's bootstrap cannot carry.
fn sidecar_config() -> String {
    format!(
        r#"{{"service_name": "{WORKLOAD}-sidecar", "tags": {{"datacenter": "fra", "location": "fra1-core", "node": "core-17", "workload": "{WORKLOAD}"}}, "routes": ["/orders/{{id}}"], "batch": {{"flush_interval_ms": 100}}}}"#
    )
}
