//! The TC programs' cost per packet, beside the empty program `tc_pass` measured in the same
//! run (issue 11's benchmark; `node-probe/bench/tc_cost.sh` runs every step and cleans up).
//!
//! - `tc_cost test-run`: `BPF_PROG_TEST_RUN` of `tap_ingress` and of `tc_pass` on fixed frames
//!   built here, the kernel's `duration` per run, several rounds, medians. A test run repeats
//!   one packet on one map state, and `FlowState::observe` changes the state: after its first
//!   run a request start is a retransmit. So a case whose packet changes the state runs one
//!   packet per call (`repeat` 1), with `FLOWS` restored from user space before each call, and
//!   its baseline is `tc_pass` run the same way; a case whose packet leaves the state as it
//!   found it (a pure ACK, a retransmit) runs with a large `repeat`. After each batch the
//!   kernel counters must show that every run took the path the case names (an event each,
//!   no failed reservation, no retransmit where none is meant), or the run fails.
//! - `tc_cost serve ADDR`: the workload, an HTTP/1.1 keep-alive responder (run inside the
//!   namespace).
//! - `tc_cost traffic ...`: the probe (`Probe::start`, as the agent runs it) on one veth and
//!   `tc_pass` on another, the same bounded load through each in alternating rounds, then the
//!   kernel's `run_time_ns / run_cnt` per program (needs `kernel.bpf_stats_enabled=1`), the
//!   events lost (failed ring reservations, channel drops) and the requests per second.

use std::error::Error;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use aya::maps::{HashMap, MapData, PerCpuArray, RingBuf};
use aya::programs::{ProgramInfo, SchedClassifier, TcAttachType, TestRun, TestRunOptions};
use aya::{Ebpf, include_bytes_aligned};
use clap::{Parser, Subcommand};
use node_probe::kernel::Probe;
use node_probe_common::{
    COUNTERS, Counter, Direction, EVENTS, FLOWS, FlowKey, FlowState, HalfFlow, PacketEvent,
    TAP_EGRESS, TAP_INGRESS, TC_PASS, parse_frame,
};
use tokio::sync::mpsc;

type Result<T> = std::result::Result<T, Box<dyn Error>>;

/// The object the agent embeds (build.rs copies it into OUT_DIR for every target).
fn object() -> &'static [u8] {
    include_bytes_aligned!(concat!(env!("OUT_DIR"), "/node-probe-ebpf.o"))
}

const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
/// `TCX_NEXT` (-1) as the test run's `u32` return value: every program must pass the packet.
const TCX_NEXT: u32 = u32::MAX;
const RESPONSE: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";

fn request() -> Vec<u8> {
    format!("GET /users/42 HTTP/1.1\r\nHost: x\r\ntraceparent: {TRACEPARENT}\r\n\r\n").into_bytes()
}

#[derive(Parser)]
#[command(about = "The cost of node-probe's TC programs beside an empty TC program")]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// BPF_PROG_TEST_RUN of tap_ingress and tc_pass on fixed frames.
    TestRun {
        /// Rounds; each runs every case and its baseline once, in turn.
        #[arg(long, default_value_t = 7)]
        rounds: usize,
        /// `repeat` of the cases whose packet leaves the flow state unchanged.
        #[arg(long, default_value_t = 1_000_000)]
        repeat: u32,
        /// Calls (one run each) of the cases whose packet changes the flow state.
        #[arg(long, default_value_t = 100_000)]
        calls: u32,
    },
    /// The workload: answers every request head with a fixed 200 response, keep-alive.
    Serve {
        /// Address to listen on.
        addr: SocketAddr,
    },
    /// Real traffic through the probe's veth and tc_pass's veth, in alternating rounds.
    Traffic {
        /// Host-side interface the probe attaches to.
        #[arg(long)]
        probe_if: String,
        /// The server's address behind it.
        #[arg(long)]
        probe_addr: SocketAddr,
        /// Host-side interface tc_pass is attached to (ingress and egress).
        #[arg(long)]
        pass_if: String,
        /// The server's address behind it.
        #[arg(long)]
        pass_addr: SocketAddr,
        /// Requests per round and interface.
        #[arg(long, default_value_t = 20_000)]
        requests: u64,
        /// Keep-alive connections, each one client thread.
        #[arg(long, default_value_t = 4)]
        connections: usize,
        /// Rounds (each interface once per round, the order alternating).
        #[arg(long, default_value_t = 3)]
        rounds: usize,
        /// Seconds a round may take before its clients stop.
        #[arg(long, default_value_t = 60)]
        deadline_secs: u64,
        /// Capacity of the channel from the ring reader to the consumer.
        #[arg(long, default_value_t = 8_192)]
        channel: usize,
    },
}

fn main() -> Result<()> {
    match Args::parse().command {
        Command::TestRun {
            rounds,
            repeat,
            calls,
        } => test_run(rounds, repeat, calls),
        Command::Serve { addr } => serve(addr),
        Command::Traffic {
            probe_if,
            probe_addr,
            pass_if,
            pass_addr,
            requests,
            connections,
            rounds,
            deadline_secs,
            channel,
        } => traffic(&Traffic {
            probe_if,
            probe_addr,
            pass_if,
            pass_addr,
            requests,
            connections,
            rounds,
            deadline: Duration::from_secs(deadline_secs),
            channel,
        }),
    }
}

// ---- frames ---------------------------------------------------------------------------------

#[derive(Clone, Copy)]
enum L3 {
    V4,
    V6,
}

const ACK: u8 = 0x10;
const PSH: u8 = 0x08;
/// The workload's outbound call as tap ingress sees it: workload 10.0.0.2:40000 (fd00::2),
/// peer 10.0.0.1:8080 (fd00::1).
const WORKLOAD_PORT: u16 = 40_000;
const PEER_PORT: u16 = 8_080;
const SEQ: u32 = 1_000_000;

/// Ethernet (with one 802.1Q tag if `vlan`), IPv4 or IPv6, TCP with the timestamp option
/// (as Linux sends), then `payload`. Checksums are not computed: neither the programs nor the
/// test run check them.
fn frame(l3: L3, vlan: bool, seq: u32, flags: u8, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2];
    if vlan {
        f.extend_from_slice(&[0x81, 0x00, 0x00, 0x64]);
    }
    let tcp_len = 32 + payload.len();
    match l3 {
        L3::V4 => {
            f.extend_from_slice(&[0x08, 0x00]);
            let total = u16::try_from(20 + tcp_len).unwrap_or(u16::MAX);
            f.extend_from_slice(&[0x45, 0]);
            f.extend_from_slice(&total.to_be_bytes());
            f.extend_from_slice(&[0, 0, 0x40, 0, 64, 6, 0, 0]);
            f.extend_from_slice(&[10, 0, 0, 2, 10, 0, 0, 1]);
        }
        L3::V6 => {
            f.extend_from_slice(&[0x86, 0xdd]);
            f.extend_from_slice(&[0x60, 0, 0, 0]);
            let len = u16::try_from(tcp_len).unwrap_or(u16::MAX);
            f.extend_from_slice(&len.to_be_bytes());
            f.extend_from_slice(&[6, 64]);
            let mut addr = [0u8; 16];
            addr[0] = 0xfd;
            addr[15] = 2;
            f.extend_from_slice(&addr);
            addr[15] = 1;
            f.extend_from_slice(&addr);
        }
    }
    f.extend_from_slice(&WORKLOAD_PORT.to_be_bytes());
    f.extend_from_slice(&PEER_PORT.to_be_bytes());
    f.extend_from_slice(&seq.to_be_bytes());
    f.extend_from_slice(&7_000u32.to_be_bytes());
    f.extend_from_slice(&[8 << 4, flags, 0x01, 0xf6, 0, 0, 0, 0]);
    f.extend_from_slice(&[1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2]);
    f.extend_from_slice(payload);
    f
}

/// How a case leaves `FLOWS` before it runs.
#[derive(Clone, Copy)]
enum Flow {
    /// No entry: the packet opens the connection.
    Absent,
    /// The connection is tracked, both directions seen; the workload's next sequence number
    /// is `next_seq`, and an earlier request started it (so payload is not "non-HTTP").
    Tracked { next_seq: u32 },
}

impl Flow {
    fn state(next_seq: u32) -> FlowState {
        let half = HalfFlow {
            next_seq,
            start_seq: next_seq.wrapping_sub(500),
            start_ns: 1,
            last_payload_ns: 1,
            seen: 1,
            ..HalfFlow::default()
        };
        FlowState {
            opened_ns: 1,
            from_workload: half,
            to_workload: HalfFlow {
                next_seq: 7_000,
                ..half
            },
        }
    }
}

/// How a case is run.
#[derive(Clone, Copy)]
enum Mode {
    /// One run per call, `FLOWS` restored before each call.
    PerCall,
    /// One call, the packet repeated; the state must be one the packet does not change.
    Repeat,
}

/// What every run of `tap_ingress` in a case must have done, checked on the counters.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
struct Path {
    events: bool,
    retransmit: bool,
}

struct Case {
    name: &'static str,
    packet: &'static str,
    frame: Vec<u8>,
    flow: Flow,
    mode: Mode,
    path: Path,
    /// Read the ring after every call, so that every event's commit finds the reader caught
    /// up (before the programs submitted without a wake-up, this queued one per event); otherwise
    /// the ring is read every 256 calls, which keeps it below the programs' wake-up threshold
    /// (`EVENTS_WAKEUP_BYTES`), as a reader that keeps up does.
    wake: bool,
}

fn cases() -> Vec<Case> {
    let request = request();
    let body = vec![b'x'; 1_000];
    let start = |name, packet, l3, vlan, flow| Case {
        name,
        packet,
        frame: frame(l3, vlan, SEQ, ACK | PSH, &request),
        flow,
        mode: Mode::PerCall,
        path: Path {
            events: true,
            retransmit: false,
        },
        wake: false,
    };
    let tracked = Flow::Tracked { next_seq: SEQ };
    let body_end = SEQ.wrapping_add(body.len() as u32);
    let quiet = Path {
        events: false,
        retransmit: false,
    };
    vec![
        start("start-tracked-v4", "start", L3::V4, false, tracked),
        start("start-tracked-v6", "start", L3::V6, false, tracked),
        start("start-tracked-vlan-v4", "start", L3::V4, true, tracked),
        start("start-new-flow-v4", "start", L3::V4, false, Flow::Absent),
        Case {
            name: "start-tracked-v4, reader woken",
            wake: true,
            ..start("", "start", L3::V4, false, tracked)
        },
        Case {
            name: "body-segment-v4",
            packet: "non-start",
            frame: frame(L3::V4, false, SEQ, ACK | PSH, &body),
            flow: tracked,
            mode: Mode::PerCall,
            path: quiet,
            wake: false,
        },
        Case {
            name: "pure-ack-v4 (per call)",
            packet: "non-start",
            frame: frame(L3::V4, false, SEQ, ACK, &[]),
            flow: tracked,
            mode: Mode::PerCall,
            path: quiet,
            wake: false,
        },
        Case {
            name: "pure-ack-v4",
            packet: "non-start",
            frame: frame(L3::V4, false, SEQ, ACK, &[]),
            flow: tracked,
            mode: Mode::Repeat,
            path: quiet,
            wake: false,
        },
        Case {
            name: "pure-ack-v6",
            packet: "non-start",
            frame: frame(L3::V6, false, SEQ, ACK, &[]),
            flow: tracked,
            mode: Mode::Repeat,
            path: quiet,
            wake: false,
        },
        Case {
            name: "pure-ack-vlan-v4",
            packet: "non-start",
            frame: frame(L3::V4, true, SEQ, ACK, &[]),
            flow: tracked,
            mode: Mode::Repeat,
            path: quiet,
            wake: false,
        },
        Case {
            name: "retransmit-v4",
            packet: "non-start",
            frame: frame(L3::V4, false, SEQ, ACK | PSH, &body),
            flow: Flow::Tracked { next_seq: body_end },
            mode: Mode::Repeat,
            path: Path {
                events: false,
                retransmit: true,
            },
            wake: false,
        },
    ]
}

// ---- BPF_PROG_TEST_RUN ----------------------------------------------------------------------

struct Maps {
    flows: HashMap<MapData, FlowKey, FlowState>,
    counters: PerCpuArray<MapData, u64>,
    ring: RingBuf<MapData>,
}

impl Maps {
    fn counters(&self) -> Result<[u64; Counter::COUNT as usize]> {
        let mut out = [0; Counter::COUNT as usize];
        for (slot, counter) in out.iter_mut().zip(Counter::ALL) {
            let values = self.counters.get(&counter.index(), 0)?;
            *slot = values.iter().sum();
        }
        Ok(out)
    }

    fn set(&mut self, key: &FlowKey, flow: Flow) -> Result<()> {
        match flow {
            // Not found is fine: the previous run may have left nothing.
            Flow::Absent => drop(self.flows.remove(key)),
            Flow::Tracked { next_seq } => self.flows.insert(key, Flow::state(next_seq), 0)?,
        }
        Ok(())
    }

    /// Reads and discards what the ring holds, so that no reservation fails for lack of room.
    fn drain(&mut self) -> u64 {
        let mut n = 0;
        while let Some(record) = self.ring.next() {
            drop(record);
            n += 1;
        }
        n
    }
}

fn load(ebpf: &mut Ebpf, name: &str) -> Result<()> {
    let program: &mut SchedClassifier = ebpf
        .program_mut(name)
        .ok_or_else(|| format!("no program {name} in the object"))?
        .try_into()?;
    program.load()?;
    Ok(())
}

fn classifier<'a>(ebpf: &'a Ebpf, name: &str) -> Result<&'a SchedClassifier> {
    Ok(ebpf
        .program(name)
        .ok_or_else(|| format!("no program {name} in the object"))?
        .try_into()?)
}

/// Nanoseconds per run of `program` on `case`, as the kernel timed them.
fn measure(
    program: &SchedClassifier,
    case: &Case,
    key: &FlowKey,
    maps: &mut Maps,
    repeat: u32,
    calls: u32,
) -> Result<(f64, u64)> {
    let run = |repeat: u32| -> Result<Duration> {
        let result = program.test_run(TestRunOptions {
            data_in: Some(&case.frame),
            repeat,
            ..TestRunOptions::default()
        })?;
        if result.return_value != TCX_NEXT {
            return Err(format!("{}: returned {}", case.name, result.return_value).into());
        }
        Ok(result.duration)
    };
    match case.mode {
        Mode::Repeat => {
            maps.set(key, case.flow)?;
            let duration = run(repeat)?;
            maps.drain();
            // The kernel reports the total divided by `repeat`, in whole nanoseconds.
            Ok((duration.as_nanos() as f64, u64::from(repeat)))
        }
        Mode::PerCall => {
            let mut total = Duration::ZERO;
            for i in 0..calls {
                maps.set(key, case.flow)?;
                total += run(1)?;
                // The ring holds about 6,000 events.
                if case.wake || i % 256 == 255 {
                    maps.drain();
                }
            }
            maps.drain();
            Ok((total.as_nanos() as f64 / f64::from(calls), u64::from(calls)))
        }
    }
}

/// Fails unless every one of `runs` runs of tap_ingress took `case`'s path.
fn check_path(case: &Case, before: &[u64], after: &[u64], runs: u64) -> Result<()> {
    let delta = |c: Counter| {
        let i = c.index() as usize;
        after.get(i).copied().unwrap_or(0) - before.get(i).copied().unwrap_or(0)
    };
    let want = |on: bool| if on { runs } else { 0 };
    let seen = (
        delta(Counter::PacketsSeen),
        delta(Counter::EventsEmitted),
        delta(Counter::Retransmits),
        delta(Counter::RingbufFull),
        delta(Counter::NonHttpPayloads),
        delta(Counter::FlowInsertFailed),
        delta(Counter::ParseFailures),
    );
    let expected = (
        runs,
        want(case.path.events),
        want(case.path.retransmit),
        0,
        0,
        0,
        0,
    );
    if seen != expected {
        return Err(format!(
            "{}: counters (seen, emitted, retransmits, ringbuf_full, non_http, insert_failed, \
             parse_failures) = {seen:?}, expected {expected:?}",
            case.name
        )
        .into());
    }
    Ok(())
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    match n {
        0 => f64::NAN,
        _ if n % 2 == 1 => values[n / 2],
        _ => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

fn test_run(rounds: usize, repeat: u32, calls: u32) -> Result<()> {
    let mut ebpf = Ebpf::load(object())?;
    load(&mut ebpf, TAP_INGRESS)?;
    load(&mut ebpf, TC_PASS)?;
    let take = |ebpf: &mut Ebpf, name: &str| {
        ebpf.take_map(name)
            .ok_or_else(|| format!("no map {name} in the object"))
    };
    let mut maps = Maps {
        flows: HashMap::try_from(take(&mut ebpf, FLOWS)?)?,
        counters: PerCpuArray::try_from(take(&mut ebpf, COUNTERS)?)?,
        ring: RingBuf::try_from(take(&mut ebpf, EVENTS)?)?,
    };
    let tap = classifier(&ebpf, TAP_INGRESS)?;
    let pass = classifier(&ebpf, TC_PASS)?;
    let cases = cases();
    let keys = cases
        .iter()
        .map(|case| {
            let frame =
                parse_frame(case.frame.as_slice()).map_err(|e| format!("{}: {e:?}", case.name))?;
            Ok(FlowKey::new(&frame, Direction::FromWorkload))
        })
        .collect::<Result<Vec<_>>>()?;

    // Per case: (tap_ingress, tc_pass) per round.
    let mut figures = vec![Vec::new(); cases.len()];
    for round in 0..rounds {
        for ((case, key), figures) in cases.iter().zip(&keys).zip(&mut figures) {
            let before = maps.counters()?;
            let (tap_ns, runs) = measure(tap, case, key, &mut maps, repeat, calls)?;
            check_path(case, &before, &maps.counters()?, runs)?;
            let (pass_ns, _) = measure(pass, case, key, &mut maps, repeat, calls)?;
            figures.push((tap_ns, pass_ns));
        }
        eprintln!("round {} of {rounds} done", round + 1);
    }

    println!(
        "BPF_PROG_TEST_RUN, {rounds} rounds; per-call cases: {calls} calls of repeat 1 each \
         (FLOWS restored before each call); repeat cases: repeat {repeat}. Median over rounds, \
         ns per run."
    );
    println!();
    println!(
        "| case | packet | method | tap_ingress ns | tc_pass ns | added ns (median of \
         per-round differences) | range of added | ratio |"
    );
    println!("|---|---|---|---:|---:|---:|---:|---:|");
    for (case, figures) in cases.iter().zip(&figures) {
        let mut tap: Vec<f64> = figures.iter().map(|f| f.0).collect();
        let mut pass: Vec<f64> = figures.iter().map(|f| f.1).collect();
        let mut added: Vec<f64> = figures.iter().map(|f| f.0 - f.1).collect();
        let (tap, pass, added_median) = (median(&mut tap), median(&mut pass), median(&mut added));
        let method = match case.mode {
            Mode::PerCall => format!("{calls} x repeat 1"),
            Mode::Repeat => format!("repeat {repeat}"),
        };
        println!(
            "| {} | {} | {method} | {tap:.1} | {pass:.1} | {added_median:.1} | {:.1} to {:.1} | \
             {:.2} |",
            case.name,
            case.packet,
            added.first().copied().unwrap_or(f64::NAN),
            added.last().copied().unwrap_or(f64::NAN),
            tap / pass
        );
    }
    Ok(())
}

// ---- the workload ---------------------------------------------------------------------------

fn serve(addr: SocketAddr) -> Result<()> {
    let listener = TcpListener::bind(addr)?;
    for stream in listener.incoming() {
        let stream = stream?;
        thread::spawn(move || {
            // A connection that fails just ends.
            let _ = answer(stream);
        });
    }
    Ok(())
}

/// Writes [`RESPONSE`] for every complete request head the connection sends.
fn answer(mut stream: TcpStream) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    let mut buffer = Vec::with_capacity(4_096);
    let mut chunk = [0u8; 4_096];
    loop {
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Ok(());
        }
        buffer.extend_from_slice(chunk.get(..n).unwrap_or_default());
        while let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            buffer.drain(..end + 4);
            stream.write_all(RESPONSE)?;
        }
    }
}

// ---- real traffic ---------------------------------------------------------------------------

struct Traffic {
    probe_if: String,
    probe_addr: SocketAddr,
    pass_if: String,
    pass_addr: SocketAddr,
    requests: u64,
    connections: usize,
    rounds: usize,
    deadline: Duration,
    channel: usize,
}

/// Run time and run count of the programs attached to `interface` (both directions) named
/// `name`, from the kernel's `bpf_prog_info`.
fn stats(interface: &str, name: &str) -> Result<(u64, u64)> {
    let mut ids = Vec::new();
    let mut total = (0, 0);
    for attach in [TcAttachType::Ingress, TcAttachType::Egress] {
        let (_, programs) = SchedClassifier::query_tcx(interface, attach)?;
        for info in programs.iter().filter(|p| p.name_as_str() == Some(name)) {
            // One program attached to both directions counts once.
            if ids.contains(&info.id()) {
                continue;
            }
            ids.push(info.id());
            total = add(total, info);
        }
    }
    if ids.is_empty() {
        return Err(format!("{name} is not attached to {interface}").into());
    }
    Ok(total)
}

fn add((time, count): (u64, u64), info: &ProgramInfo) -> (u64, u64) {
    (
        time + info.run_time().as_nanos() as u64,
        count + info.run_count(),
    )
}

/// Sends `requests` requests over `connections` keep-alive connections to `addr`, each
/// waiting for its response; stops early at `deadline`. Requests done and the time taken.
fn drive(
    addr: SocketAddr,
    requests: u64,
    connections: usize,
    deadline: Duration,
) -> Result<(u64, Duration)> {
    let next = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let clients: Vec<_> = (0..connections)
        .map(|_| {
            let (next, done) = (Arc::clone(&next), Arc::clone(&done));
            thread::spawn(move || -> std::io::Result<()> {
                let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
                stream.set_nodelay(true)?;
                stream.set_read_timeout(Some(Duration::from_secs(5)))?;
                let request = request();
                let mut response = vec![0u8; RESPONSE.len()];
                while next.fetch_add(1, Ordering::Relaxed) < requests
                    && started.elapsed() < deadline
                {
                    stream.write_all(&request)?;
                    stream.read_exact(&mut response)?;
                    done.fetch_add(1, Ordering::Relaxed);
                }
                Ok(())
            })
        })
        .collect();
    for client in clients {
        client
            .join()
            .map_err(|_| "a client thread panicked")?
            .map_err(|e| format!("client to {addr}: {e}"))?;
    }
    Ok((done.load(Ordering::Relaxed), started.elapsed()))
}

fn traffic(t: &Traffic) -> Result<()> {
    let enabled = std::fs::read_to_string("/proc/sys/kernel/bpf_stats_enabled")?;
    if enabled.trim() != "1" {
        return Err("kernel.bpf_stats_enabled is not 1: run_time_ns would stay 0".into());
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let (tx, mut rx) = mpsc::channel::<PacketEvent>(t.channel);
    let probe = {
        let _enter = runtime.enter();
        Probe::start(std::slice::from_ref(&t.probe_if), tx)?
    };
    let received = Arc::new(AtomicU64::new(0));
    let consumer = {
        let received = Arc::clone(&received);
        runtime.spawn(async move {
            while rx.recv().await.is_some() {
                received.fetch_add(1, Ordering::Relaxed);
            }
        })
    };

    let mut ebpf = Ebpf::load(object())?;
    let pass: &mut SchedClassifier = ebpf
        .program_mut(TC_PASS)
        .ok_or("no tc_pass in the object")?
        .try_into()?;
    pass.load()?;
    pass.attach(&t.pass_if, TcAttachType::Ingress)?;
    pass.attach(&t.pass_if, TcAttachType::Egress)?;

    let tap_stats = |dir: &str| stats(&t.probe_if, dir);
    let before = (
        tap_stats(TAP_INGRESS)?,
        tap_stats(TAP_EGRESS)?,
        stats(&t.pass_if, TC_PASS)?,
    );
    let kernel_before = probe.kernel_counters();

    let mut rates = Vec::new();
    let mut pass_rates = Vec::new();
    let mut total_requests = 0;
    for round in 0..t.rounds {
        let probe_first = round % 2 == 0;
        for probed in [probe_first, !probe_first] {
            let addr = if probed { t.probe_addr } else { t.pass_addr };
            let (done, took) = drive(addr, t.requests, t.connections, t.deadline)?;
            let rate = done as f64 / took.as_secs_f64();
            if probed {
                total_requests += done;
                rates.push(rate);
            } else {
                pass_rates.push(rate);
            }
            eprintln!(
                "round {} {}: {done} requests in {:.2} s, {rate:.0} requests/s",
                round + 1,
                if probed { "probe" } else { "tc_pass" },
                took.as_secs_f64()
            );
        }
    }

    let after = (
        tap_stats(TAP_INGRESS)?,
        tap_stats(TAP_EGRESS)?,
        stats(&t.pass_if, TC_PASS)?,
    );
    let kernel_after = probe.kernel_counters();
    // Every event emitted has been read (or dropped) once the reader's count reaches the
    // kernel's; the load has ended, so only stray packets (IPv6 router solicitations, ...)
    // can add to either.
    let emitted = kernel_after
        .get(Counter::EventsEmitted.index() as usize)
        .copied()
        .unwrap_or(0);
    let waited = Instant::now();
    while probe.user_counters().ring_records < emitted && waited.elapsed() < t.deadline {
        thread::sleep(Duration::from_millis(10));
    }
    let user = probe.user_counters();
    runtime.block_on(async {
        probe.shutdown().await;
        // The sender went with the probe: the consumer ends once it has read everything.
        consumer.await
    })?;

    let per_run = |b: (u64, u64), a: (u64, u64)| {
        let (time, count) = (a.0 - b.0, a.1 - b.1);
        (time as f64 / count.max(1) as f64, count)
    };
    let ingress = per_run(before.0, after.0);
    let egress = per_run(before.1, after.1);
    let both = per_run(
        (before.0.0 + before.1.0, before.0.1 + before.1.1),
        (after.0.0 + after.1.0, after.0.1 + after.1.1),
    );
    let pass = per_run(before.2, after.2);
    let k = |c: Counter| {
        let i = c.index() as usize;
        kernel_after.get(i).copied().unwrap_or(0) - kernel_before.get(i).copied().unwrap_or(0)
    };

    println!(
        "Real traffic: {} rounds of {} requests per interface over {} keep-alive \
         connections, `kernel.bpf_stats_enabled=1`, run_time_ns / run_cnt over the whole run.",
        t.rounds, t.requests, t.connections
    );
    println!();
    println!("| program | runs | ns per run | added over tc_pass |");
    println!("|---|---:|---:|---:|");
    for (name, (ns, runs)) in [
        ("tap_ingress (responses, ACKs)", ingress),
        ("tap_egress (requests, ACKs)", egress),
        ("tap_ingress + tap_egress", both),
        ("tc_pass (ingress + egress)", pass),
    ] {
        println!("| {name} | {runs} | {ns:.0} | {:.0} |", ns - pass.0);
    }
    println!();
    let mut sorted = rates.clone();
    let mut pass_sorted = pass_rates.clone();
    println!(
        "Requests/s through the probe's veth: {} (median {:.0}); through tc_pass's veth: {} \
         (median {:.0}).",
        rates
            .iter()
            .map(|r| format!("{r:.0}"))
            .collect::<Vec<_>>()
            .join(", "),
        median(&mut sorted),
        pass_rates
            .iter()
            .map(|r| format!("{r:.0}"))
            .collect::<Vec<_>>()
            .join(", "),
        median(&mut pass_sorted),
    );
    println!(
        "Kernel counters over the load: packets_seen {}, events_emitted {} (for {} requests), \
         ringbuf_full {}, retransmits {}, non_http {}, parse_failures {}, flow_insert_failed {}.",
        k(Counter::PacketsSeen),
        k(Counter::EventsEmitted),
        total_requests,
        k(Counter::RingbufFull),
        k(Counter::Retransmits),
        k(Counter::NonHttpPayloads),
        k(Counter::ParseFailures),
        k(Counter::FlowInsertFailed),
    );
    println!(
        "Agent: ring records read {}, undecodable {}, channel drops {}, events received by the \
         consumer {}.",
        user.ring_records,
        user.undecodable,
        user.channel_dropped,
        received.load(Ordering::Relaxed)
    );
    Ok(())
}
