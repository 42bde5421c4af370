//! The kernel layer: loads the TC programs (`node-probe-ebpf`, embedded at build time),
//! attaches them to every interface whose name matches the configured patterns and follows
//! interfaces as they come and go, reads the events they write, and exposes their counters.
//!
//! [`Probe::start`] checks first and refuses with a message that names what is missing:
//! CAP_BPF, CAP_NET_ADMIN, CAP_PERFMON, the kernel's BTF, or the object itself (a build
//! without `scripts/setup.sh`). From kernel 6.6 the programs are TCX links, first in order;
//! before it they are clsact filters at the first priority, with a warning.
//!
//! Nothing here is an error once started: an interface that cannot be attached or vanishes
//! while attached, an undecodable record, a full channel are each counted
//! ([`UserCounters`]) and logged, and the probe goes on.

mod attach;
mod checks;
mod netlink;
mod pattern;
mod ring;

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use aya::maps::{HashMap, MapData, MapError, PerCpuArray, RingBuf};
use aya::programs::{ProgramError, SchedClassifier};
use aya::{Ebpf, EbpfError};
use node_probe_common::{
    COUNTERS, Counter, EVENTS, FLOWS, FlowKey, FlowState, MAP_NAMES, PROGRAM_NAMES, PacketEvent,
};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use attach::Attacher;
use netlink::LinkSocket;
use pattern::Patterns;

/// The TC programs' object as build.rs embedded it; empty when it was built without one.
fn object() -> &'static [u8] {
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/node-probe-ebpf.o"))
}

/// How long the link follower waits before listing the interfaces again after its socket
/// failed, so a broken socket costs a listing a second, not a busy loop.
const RETRY_AFTER_SOCKET_ERROR: Duration = Duration::from_secs(1);

/// How the programs are attached.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub enum AttachMode {
    /// TCX from kernel 6.6, the clsact qdisc (with a warning) before it.
    #[default]
    Auto,
    /// TCX links only; refuses to start on a kernel without TCX.
    Tcx,
    /// Filters on the clsact qdisc through netlink, on any kernel: for hosts whose other
    /// tools manage tc filters and expect ours among them.
    Netlink,
}

/// Why the probe did not start.
#[derive(Debug)]
pub enum StartError {
    /// The agent was built without the eBPF object.
    NoObject,
    /// The process lacks these capabilities.
    MissingCapabilities(Vec<&'static str>),
    /// `/proc/self/status` has no readable `CapEff`.
    CapabilitiesUnreadable,
    /// The kernel has no BTF.
    NoBtf,
    /// TCX was required and the kernel is older than 6.6.
    NoTcx,
    /// No interface pattern was given.
    NoPatterns,
    /// A pattern that no interface name can match.
    BadPattern(String),
    /// Not called inside a tokio runtime with I/O enabled.
    NoRuntime,
    /// The object could not be loaded.
    Load(EbpfError),
    /// The object lacks a map or program the agent needs (an object of another version).
    Missing {
        /// "map" or "program".
        kind: &'static str,
        /// Its name.
        name: &'static str,
    },
    /// A map is not of the type the agent expects.
    Map {
        /// The map's name.
        name: &'static str,
        /// What aya said.
        error: MapError,
    },
    /// The kernel refused a program (the verifier's log is in the error).
    Program {
        /// The program's name.
        name: &'static str,
        /// What aya said.
        error: ProgramError,
    },
    /// The NETLINK_ROUTE socket for link events, or the ring buffer's polling, failed.
    Io {
        /// What was being set up.
        what: &'static str,
        /// The error.
        error: std::io::Error,
    },
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoObject => f.write_str("built without the eBPF object: run scripts/setup.sh"),
            Self::MissingCapabilities(missing) => write!(
                f,
                "missing capabilities: {} (the probe needs CAP_BPF, CAP_NET_ADMIN and \
                 CAP_PERFMON)",
                missing.join(", ")
            ),
            Self::CapabilitiesUnreadable => {
                f.write_str("cannot read the effective capabilities (CapEff in /proc/self/status)")
            }
            Self::NoBtf => write!(
                f,
                "the kernel has no BTF ({} is missing; it needs CONFIG_DEBUG_INFO_BTF)",
                checks::VMLINUX_BTF
            ),
            Self::NoTcx => f.write_str("TCX attachment was required, and it needs kernel 6.6"),
            Self::NoPatterns => f.write_str("no interface patterns: nothing to attach to"),
            Self::BadPattern(pattern) => {
                write!(
                    f,
                    "interface pattern {pattern:?} can match no interface name"
                )
            }
            Self::NoRuntime => {
                f.write_str("the probe must be started inside a tokio runtime with I/O enabled")
            }
            Self::Load(error) => write!(f, "loading the eBPF object: {error}"),
            Self::Missing { kind, name } => {
                write!(
                    f,
                    "the eBPF object has no {kind} {name}: rebuild it (scripts/setup.sh)"
                )
            }
            Self::Map { name, error } => write!(f, "map {name}: {error}"),
            Self::Program { name, error } => {
                write!(f, "the kernel refused program {name}: {error}")
            }
            Self::Io { what, error } => write!(f, "{what}: {error}"),
        }
    }
}

impl std::error::Error for StartError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Load(error) => Some(error),
            Self::Map { error, .. } => Some(error),
            Self::Program { error, .. } => Some(error),
            Self::Io { error, .. } => Some(error),
            _ => None,
        }
    }
}

/// The user-space side's counters, cumulative since start.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct UserCounters {
    /// Records read from the ring buffer.
    pub ring_records: u64,
    /// Records that did not decode as an event this build knows (dropped).
    pub undecodable: u64,
    /// Events dropped because the channel to the span pipeline was full or closed.
    pub channel_dropped: u64,
    /// Interfaces attached (both programs).
    pub attached: u64,
    /// Interfaces detached, for any reason.
    pub detached: u64,
    /// Interfaces that vanished (deleted or moved away) while attached; also in `detached`.
    pub interfaces_vanished: u64,
    /// Interfaces that matched and could not be attached.
    pub attach_failures: u64,
    /// Times the interfaces were listed again because link notifications may have been lost.
    pub link_resyncs: u64,
    /// Kernel counters that could not be read (their value then reads as 0).
    pub counter_read_failures: u64,
}

/// The counters as the tasks update them.
#[derive(Debug, Default)]
struct Stats {
    ring_records: AtomicU64,
    undecodable: AtomicU64,
    channel_dropped: AtomicU64,
    attached: AtomicU64,
    detached: AtomicU64,
    interfaces_vanished: AtomicU64,
    attach_failures: AtomicU64,
    link_resyncs: AtomicU64,
    counter_read_failures: AtomicU64,
}

impl Stats {
    fn count(&self, counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    fn snapshot(&self) -> UserCounters {
        let get = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        UserCounters {
            ring_records: get(&self.ring_records),
            undecodable: get(&self.undecodable),
            channel_dropped: get(&self.channel_dropped),
            attached: get(&self.attached),
            detached: get(&self.detached),
            interfaces_vanished: get(&self.interfaces_vanished),
            attach_failures: get(&self.attach_failures),
            link_resyncs: get(&self.link_resyncs),
            counter_read_failures: get(&self.counter_read_failures),
        }
    }
}

/// The running probe. Dropping it detaches every program; [`Probe::shutdown`] also hands on
/// the events still in the ring first.
pub struct Probe {
    attacher: Arc<Mutex<Attacher>>,
    stats: Arc<Stats>,
    counters: PerCpuArray<MapData, u64>,
    flows: HashMap<MapData, FlowKey, FlowState>,
    stop: watch::Sender<bool>,
    reader: Option<JoinHandle<()>>,
    follower: Option<JoinHandle<()>>,
}

impl fmt::Debug for Probe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Probe")
            .field("attached", &self.attached())
            .field("counters", &self.stats.snapshot())
            .finish_non_exhaustive()
    }
}

impl Probe {
    /// Checks what the probe needs, loads the programs, attaches them to every interface whose
    /// name matches one of `patterns` (`*` matches any run of characters), follows
    /// interfaces as they appear and disappear, and sends every event to `events`. Must be
    /// called inside a tokio runtime with I/O enabled.
    pub fn start(
        patterns: &[String],
        events: mpsc::Sender<PacketEvent>,
    ) -> Result<Probe, StartError> {
        Self::start_with(patterns, events, AttachMode::Auto)
    }

    /// [`Probe::start`] with the attach mechanism chosen.
    pub fn start_with(
        patterns: &[String],
        events: mpsc::Sender<PacketEvent>,
        mode: AttachMode,
    ) -> Result<Probe, StartError> {
        if object().is_empty() {
            return Err(StartError::NoObject);
        }
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| StartError::NoRuntime)?;
        let patterns = Patterns::new(patterns)?;
        checks::check_process()?;
        let mode = checks::resolve(mode)?;

        let mut ebpf = Ebpf::load(object()).map_err(StartError::Load)?;
        for name in MAP_NAMES {
            if ebpf.map(name).is_none() {
                return Err(StartError::Missing { kind: "map", name });
            }
        }
        for name in PROGRAM_NAMES {
            let program: &mut SchedClassifier = ebpf
                .program_mut(name)
                .ok_or(StartError::Missing {
                    kind: "program",
                    name,
                })?
                .try_into()
                .map_err(|error| StartError::Program { name, error })?;
            program
                .load()
                .map_err(|error| StartError::Program { name, error })?;
        }
        let ring = take_map(&mut ebpf, EVENTS, RingBuf::try_from)?;
        let counters = take_map(&mut ebpf, COUNTERS, PerCpuArray::try_from)?;
        let flows = take_map(&mut ebpf, FLOWS, HashMap::try_from)?;

        let _guard = runtime.enter();
        // Subscribed before the interfaces are listed, so none created in between is missed.
        let socket = LinkSocket::open().map_err(|error| StartError::Io {
            what: "opening the NETLINK_ROUTE socket for link events",
            error,
        })?;
        let ring = ring::register(ring).map_err(|error| StartError::Io {
            what: "polling the ring buffer",
            error,
        })?;
        let stats = Arc::new(Stats::default());
        let attacher = Arc::new(Mutex::new(Attacher::new(
            ebpf,
            mode,
            patterns,
            Arc::clone(&stats),
        )));
        resync(&attacher);

        let (stop, stopped) = watch::channel(false);
        let reader = runtime.spawn(ring::run(ring, events, Arc::clone(&stats), stopped));
        let follower = runtime.spawn(follow(socket, Arc::clone(&attacher), Arc::clone(&stats)));
        Ok(Probe {
            attacher,
            stats,
            counters,
            flows,
            stop,
            reader: Some(reader),
            follower: Some(follower),
        })
    }

    /// The interfaces the programs are attached to: index and name.
    pub fn attached(&self) -> Vec<(u32, String)> {
        lock(&self.attacher).attached()
    }

    /// The kernel-side counters, summed over the CPUs, indexed by [`Counter::index`].
    pub fn kernel_counters(&self) -> [u64; Counter::COUNT as usize] {
        let mut out = [0; Counter::COUNT as usize];
        for (slot, counter) in out.iter_mut().zip(Counter::ALL) {
            match self.counters.get(&counter.index(), 0) {
                Ok(values) => *slot = values.iter().fold(0u64, |sum, v| sum.wrapping_add(*v)),
                Err(_) => self.stats.count(&self.stats.counter_read_failures),
            }
        }
        out
    }

    /// The user-space side's counters.
    pub fn user_counters(&self) -> UserCounters {
        self.stats.snapshot()
    }

    /// The kernel's state of one connection, `None` when it is not tracked (never seen,
    /// evicted, or the lookup failed): for timing the end of a response on a quiet
    /// connection.
    pub fn flow(&self, key: &FlowKey) -> Option<FlowState> {
        self.flows.get(key, 0).ok()
    }

    /// Detaches every program, hands on the events still in the ring, and stops.
    pub async fn shutdown(mut self) {
        self.detach_and_stop();
        if let Some(reader) = self.reader.take() {
            // The reader ends by itself once it has drained the ring; a panic in it has
            // nothing left to clean up.
            let _ = reader.await;
        }
    }

    fn detach_and_stop(&mut self) {
        if let Some(follower) = self.follower.take() {
            follower.abort();
        }
        lock(&self.attacher).detach_all();
        // Fails only when the reader is gone already.
        let _ = self.stop.send(true);
    }
}

impl Drop for Probe {
    fn drop(&mut self) {
        self.detach_and_stop();
    }
}

/// Takes map `name` out of the object as the type `convert` makes of it.
fn take_map<T>(
    ebpf: &mut Ebpf,
    name: &'static str,
    convert: impl FnOnce(aya::maps::Map) -> Result<T, MapError>,
) -> Result<T, StartError> {
    let map = ebpf
        .take_map(name)
        .ok_or(StartError::Missing { kind: "map", name })?;
    convert(map).map_err(|error| StartError::Map { name, error })
}

/// The attacher, also after a panic elsewhere: its state stays consistent, since every
/// change is one map insert or remove.
fn lock(attacher: &Mutex<Attacher>) -> MutexGuard<'_, Attacher> {
    attacher.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Lists the interfaces and brings the attachments in line.
fn resync(attacher: &Mutex<Attacher>) {
    match nix::net::if_::if_nameindex() {
        Ok(interfaces) => {
            let interfaces: Vec<(u32, String)> = interfaces
                .iter()
                .map(|i| (i.index(), i.name().to_string_lossy().into_owned()))
                .collect();
            lock(attacher).resync(&interfaces);
        }
        Err(error) => tracing::warn!(%error, "cannot list the interfaces"),
    }
}

/// Applies link events as they arrive, until aborted.
async fn follow(mut socket: LinkSocket, attacher: Arc<Mutex<Attacher>>, stats: Arc<Stats>) {
    loop {
        match socket.next().await {
            Ok(datagram) => {
                {
                    let mut attacher = lock(&attacher);
                    for event in datagram.events {
                        attacher.apply(event);
                    }
                }
                if datagram.resync {
                    stats.count(&stats.link_resyncs);
                    resync(&attacher);
                }
            }
            Err(error) => {
                tracing::warn!(%error, "reading link events failed; listing the interfaces");
                tokio::time::sleep(RETRY_AFTER_SOCKET_ERROR).await;
                stats.count(&stats.link_resyncs);
                resync(&attacher);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use node_probe_common::{EVENTS_BYTES, FLOWS_ENTRIES, TC_PASS};

    /// The object the agent embeds defines every map and program under the names the
    /// common crate gives them, with the sizes it gives them: the check that the eBPF
    /// crate's identifiers, which aya's attributes turn into names, still match.
    #[test]
    fn the_object_defines_the_shared_names_and_sizes() {
        assert!(
            !object().is_empty(),
            "built without the eBPF object: run scripts/setup.sh"
        );
        let object = aya_obj::Object::parse(object()).unwrap();
        let mut programs: Vec<&str> = object.programs.keys().map(String::as_str).collect();
        programs.sort_unstable();
        let mut want = PROGRAM_NAMES.to_vec();
        want.push(TC_PASS);
        want.sort_unstable();
        assert_eq!(programs, want);
        let mut maps: Vec<&str> = object.maps.keys().map(String::as_str).collect();
        maps.sort_unstable();
        let mut want = MAP_NAMES.to_vec();
        want.sort_unstable();
        assert_eq!(maps, want);

        let map = |name: &str| object.maps.get(name).unwrap();
        assert_eq!(map(EVENTS).max_entries(), EVENTS_BYTES);
        assert_eq!(map(FLOWS).max_entries(), FLOWS_ENTRIES);
        assert_eq!(map(FLOWS).key_size() as usize, size_of::<FlowKey>());
        assert_eq!(map(FLOWS).value_size() as usize, size_of::<FlowState>());
        assert_eq!(map(COUNTERS).max_entries(), Counter::COUNT);
        assert_eq!(map(COUNTERS).value_size() as usize, size_of::<u64>());
    }

    #[test]
    fn the_probe_can_be_shared_across_tasks() {
        fn shared<T: Send + Sync>() {}
        shared::<Probe>();
    }

    #[test]
    fn messages_name_what_is_missing() {
        assert_eq!(
            StartError::NoObject.to_string(),
            "built without the eBPF object: run scripts/setup.sh"
        );
        let missing = StartError::MissingCapabilities(vec!["CAP_BPF", "CAP_PERFMON"]);
        assert!(
            missing
                .to_string()
                .starts_with("missing capabilities: CAP_BPF, CAP_PERFMON")
        );
        assert!(
            StartError::NoBtf
                .to_string()
                .contains("/sys/kernel/btf/vmlinux")
        );
    }

    #[test]
    fn starting_outside_a_runtime_is_refused() {
        let (events, _) = mpsc::channel(1);
        let error = Probe::start(&["tap*".into()], events).unwrap_err();
        assert!(matches!(error, StartError::NoRuntime), "{error}");
    }
}
