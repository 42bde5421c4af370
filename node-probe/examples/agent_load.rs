//! The built agent's user-space cost: CPU per 1,000 spans and its memory (issue 11's benchmark;
//! `node-probe/bench/agent_cost.sh` builds everything, makes the veth topology, starts the
//! workload behind it and removes it all on exit).
//!
//! `agent_load run ...`, inside the namespace that holds the host-side veth end: a minimal
//! OTLP/HTTP collector on loopback that answers 200 and counts the spans it decodes; the agent
//! (its release binary) started on a configuration that exports there; a bounded keep-alive
//! load through the veth to the workload; then, once the collector holds a black-box span per
//! request (or a timeout passes), the agent's CPU time (utime + stime of /proc/PID/stat)
//! spent since before the load, VmRSS and VmHWM, and the agent's own counters.

use std::convert::Infallible;
use std::error::Error;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use clap::Parser;
use http_body_util::{BodyExt, Full};
use trace_core::otlp::decode_request;

type Result<T> = std::result::Result<T, Box<dyn Error>>;

/// `Span.kind` SERVER in OTLP: the black-box spans of the workload's inbound exchanges.
const SERVER: i32 = 2;

#[derive(Parser)]
#[command(about = "node-probe's CPU per 1,000 spans and RSS under a bounded load")]
struct Args {
    /// The agent's binary.
    #[arg(long)]
    agent: PathBuf,
    /// The host-side interface (where a tap device would be) the agent attaches to.
    #[arg(long)]
    interface: String,
    /// The workload's address behind it.
    #[arg(long)]
    server: SocketAddr,
    /// Requests to send.
    #[arg(long, default_value_t = 20_000)]
    requests: u64,
    /// Keep-alive connections, each one client thread.
    #[arg(long, default_value_t = 4)]
    connections: usize,
    /// Seconds the load may take before its clients stop.
    #[arg(long, default_value_t = 60)]
    deadline_secs: u64,
    /// Seconds to wait for the spans at the collector after the load.
    #[arg(long, default_value_t = 30)]
    wait_secs: u64,
    /// Clock ticks per second of /proc/PID/stat (`getconf CLK_TCK`).
    #[arg(long)]
    clk_tck: u64,
    /// Where the agent's configuration file is written.
    #[arg(long)]
    config: PathBuf,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let sink = listener.local_addr()?;
    let counts = {
        let _enter = runtime.enter();
        Counts::serve(listener)?
    };
    let admin = TcpListener::bind("127.0.0.1:0")?.local_addr()?;
    std::fs::write(&args.config, config(&args.interface, sink, admin))?;
    let mut agent = Agent::start(&args.agent, &args.config)?;
    let result = measure(&args, &counts, agent.pid(), admin);
    agent.stop();
    result
}

fn measure(args: &Args, counts: &Counts, pid: u32, admin: SocketAddr) -> Result<()> {
    let cpu_before = cpu_ticks(pid)?;
    let started = Instant::now();
    let done = drive(
        args.server,
        args.requests,
        args.connections,
        Duration::from_secs(args.deadline_secs),
    )?;
    let load = started.elapsed();
    // The last exchange of each connection ends at its FIN, then waits out the join window.
    let deadline = Instant::now() + Duration::from_secs(args.wait_secs);
    while counts.server.load(Ordering::Relaxed) < done && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(50));
    }
    let cpu_after = cpu_ticks(pid)?;
    let spans = counts.server.load(Ordering::Relaxed);
    let cpu_ms = (cpu_after - cpu_before) as f64 * 1000.0 / args.clk_tck as f64;
    let (rss, hwm) = memory(pid)?;
    println!(
        "requests={done} load_s={:.2} spans={spans} all_spans={} cpu_ms={cpu_ms:.0} \
         ms_per_1000_spans={:.2} vmrss_kib={rss} vmhwm_kib={hwm}",
        load.as_secs_f64(),
        counts.all.load(Ordering::Relaxed),
        cpu_ms * 1000.0 / spans.max(1) as f64,
    );
    for line in metrics(admin)?.lines().filter(|l| reported(l)) {
        println!("metric {line}");
    }
    Ok(())
}

/// The agent's counters that show where events or spans were lost on the way: the kernel's
/// (ring reservations that failed among them), the ring reader's, the exchange builder's and
/// the spans dropped.
fn reported(line: &str) -> bool {
    [
        "node_probe_kernel_total",
        "node_probe_kernel_reader_total",
        "node_probe_exchange_events_total",
        "node_probe_spans_dropped_total",
    ]
    .iter()
    .any(|family| line.starts_with(family))
}

/// The whole load is black-box SERVER spans at 100 %, the join window and quiet time left at
/// their defaults, as on a node.
fn config(interface: &str, sink: SocketAddr, admin: SocketAddr) -> String {
    format!(
        "routes = [\"/orders/{{id}}\"]\n\n[kernel]\ninterfaces = [\"{interface}\"]\n\n\
         [workloads]\n\"{interface}\" = \"orders\"\n\n\
         [receiver]\nhttp = \"127.0.0.1:0\"\ngrpc = \"\"\n\n[admin]\naddress = \"{admin}\"\n\n\
         [export]\nendpoint = \"http://{sink}\"\n\n\
         [sampling]\nmode = \"proportional\"\npercentage = 100.0\n"
    )
}

/// Spans the collector decoded: all of them, and the SERVER ones.
#[derive(Default)]
struct Counts {
    all: AtomicU64,
    server: AtomicU64,
}

impl Counts {
    fn serve(listener: TcpListener) -> Result<Arc<Self>> {
        listener.set_nonblocking(true)?;
        let listener = tokio::net::TcpListener::from_std(listener)?;
        let counts = Arc::new(Self::default());
        let serving = Arc::clone(&counts);
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let counts = Arc::clone(&serving);
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(
                        move |request: http::Request<hyper::body::Incoming>| {
                            let counts = Arc::clone(&counts);
                            async move {
                                if let Ok(body) = request.into_body().collect().await {
                                    counts.add(&body.to_bytes());
                                }
                                Ok::<_, Infallible>(http::Response::new(Full::new(
                                    bytes::Bytes::new(),
                                )))
                            }
                        },
                    );
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Ok(counts)
    }

    fn add(&self, body: &[u8]) {
        let Ok(request) = decode_request(body) else {
            return;
        };
        let spans = request
            .resource_spans
            .iter()
            .flat_map(|rs| &rs.scope_spans)
            .flat_map(|ss| &ss.spans);
        for span in spans {
            self.all.fetch_add(1, Ordering::Relaxed);
            if span.kind == SERVER {
                self.server.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// The agent, stopped by its PID.
struct Agent {
    child: Child,
}

impl Agent {
    /// Starts the agent and waits for its "started" line, written once it has attached.
    fn start(binary: &PathBuf, config: &PathBuf) -> Result<Self> {
        let mut child = Command::new(binary)
            .arg("--config")
            .arg(config)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()?;
        let stderr = child.stderr.take().ok_or("no stderr")?;
        let (found, started) = std::sync::mpsc::channel();
        thread::spawn(move || {
            let mut found = Some(found);
            // Read to the end so that the agent never blocks on a full pipe.
            for line in BufReader::new(stderr).lines().map_while(|l| l.ok()) {
                if line.contains("node-probe started")
                    && let Some(found) = found.take()
                {
                    let _ = found.send(());
                }
            }
        });
        let mut agent = Self { child };
        if started.recv_timeout(Duration::from_secs(30)).is_err() {
            agent.stop();
            return Err("the agent did not start".into());
        }
        Ok(agent)
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// utime + stime of the process, in clock ticks.
fn cpu_ticks(pid: u32) -> Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command name may hold spaces; the fields after it are plain.
    let rest = stat.rsplit_once(')').ok_or("no ')' in stat")?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // Fields 14 and 15 of proc(5); `rest` starts at field 3.
    let field = |n: usize| -> Result<u64> {
        Ok(fields.get(n - 3).ok_or("stat too short")?.parse::<u64>()?)
    };
    Ok(field(14)? + field(15)?)
}

/// VmRSS and VmHWM of the process, in KiB.
fn memory(pid: u32) -> Result<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kib = |key: &str| -> Result<u64> {
        let line = status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .ok_or_else(|| format!("no {key} in status"))?;
        Ok(line.trim().trim_end_matches("kB").trim().parse()?)
    };
    Ok((kib("VmRSS:")?, kib("VmHWM:")?))
}

/// The agent's Prometheus text.
fn metrics(admin: SocketAddr) -> Result<String> {
    let mut stream = TcpStream::connect_timeout(&admin, Duration::from_secs(5))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.write_all(b"GET /metrics HTTP/1.1\r\nHost: agent\r\nConnection: close\r\n\r\n")?;
    let mut text = String::new();
    stream.read_to_string(&mut text)?;
    Ok(text)
}

/// Sends `requests` requests over `connections` keep-alive connections to the workload at
/// `addr`, each waiting for its response, then closes them; stops early at `deadline`.
/// Requests answered.
fn drive(addr: SocketAddr, requests: u64, connections: usize, deadline: Duration) -> Result<u64> {
    let next = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let clients: Vec<_> = (0..connections)
        .map(|_| {
            let (next, done) = (Arc::clone(&next), Arc::clone(&done));
            thread::spawn(move || -> std::io::Result<()> {
                let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
                stream.set_nodelay(true)?;
                stream.set_read_timeout(Some(Duration::from_secs(5)))?;
                let mut writer = stream.try_clone()?;
                let mut reader = BufReader::new(stream);
                loop {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    if n >= requests || started.elapsed() >= deadline {
                        return Ok(());
                    }
                    let request = format!("GET /orders/{n} HTTP/1.1\r\nHost: w\r\n\r\n");
                    writer.write_all(request.as_bytes())?;
                    read_response(&mut reader)?;
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for client in clients {
        client
            .join()
            .map_err(|_| "a client thread panicked")?
            .map_err(|e| format!("client to {addr}: {e}"))?;
    }
    Ok(done.load(Ordering::Relaxed))
}

/// Reads one response framed by Content-Length (all the workload sends).
fn read_response(reader: &mut BufReader<TcpStream>) -> std::io::Result<()> {
    let mut length = 0usize;
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        if line == "\r\n" {
            break;
        }
        if let Some((name, value)) = line.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0u8; length];
    reader.read_exact(&mut body)
}
