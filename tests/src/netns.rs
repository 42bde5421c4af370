//! Network namespaces and veth pairs that remove themselves, also when a test panics.
//!
//! Names carry the creating process's PID (`tl-<kind>-<pid>-<n>`). A namespace whose creator
//! is gone (a test run killed before its destructors ran) is swept by the next [`Netns::create`]:
//! its processes are killed and it is deleted.

use std::fs::File;
use std::net::Ipv4Addr;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use nix::sched::{CloneFlags, setns};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::Error;
use crate::command::{self, ip, output_within};

/// Every namespace and veth name this crate makes starts with this.
const PREFIX: &str = "tl-";

static NEXT: AtomicU32 = AtomicU32::new(0);

/// A name unique to this process and call: `tl-<kind>-<pid>-<n>`.
fn unique_name(kind: &str) -> String {
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("{PREFIX}{kind}-{}-{n}", std::process::id())
}

/// A network namespace, deleted on drop together with every process still inside it.
///
/// A socket made inside (see [`Netns::run`]) keeps the kernel's namespace, and the interfaces
/// in it, alive after the name is deleted, until the socket closes.
#[derive(Debug)]
pub struct Netns {
    name: String,
}

impl Netns {
    /// Creates a namespace named `tl-<kind>-<pid>-<n>` with its loopback up.
    pub fn create(kind: &str) -> Result<Self, Error> {
        command::require_root()?;
        command::require_tool("ip", "Debian package iproute2")?;
        if kind.is_empty() || !kind.bytes().all(|b| b.is_ascii_lowercase()) {
            return Err(Error::Options(format!(
                "namespace kind {kind:?} is not lower-case letters"
            )));
        }
        sweep_stale();
        let name = unique_name(kind);
        ip(&["netns", "add", &name])?;
        let netns = Self { name };
        ip(&["-n", &netns.name, "link", "set", "lo", "up"])?;
        Ok(netns)
    }

    /// The namespace's name, as `ip netns` knows it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A command that runs `program` inside the namespace (`ip netns exec NAME program`).
    pub fn command(&self, program: &str) -> Command {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", &self.name, program]);
        command
    }

    /// Runs `program args…` inside the namespace, killed after `timeout`; its output whatever
    /// its exit status.
    pub fn exec(&self, program: &str, args: &[&str], timeout: Duration) -> Result<Output, Error> {
        let mut command = self.command(program);
        command.args(args);
        output_within(command, timeout)
    }

    /// Runs `f` on a thread that has entered the namespace, and returns its result. Sockets
    /// made inside `f` stay in the namespace wherever they are used afterwards, so a test can
    /// bind a server or connect a client here and drive it from any thread.
    ///
    /// A panic in `f` is resumed on the caller's thread.
    pub fn run<T: Send>(&self, f: impl FnOnce() -> T + Send) -> Result<T, Error> {
        let path = format!("/run/netns/{}", self.name);
        let file = File::open(&path).map_err(|e| Error::Command {
            command: format!("open {path}"),
            detail: e.to_string(),
        })?;
        let joined = std::thread::scope(|scope| {
            scope
                .spawn(move || {
                    // Only this short-lived thread moves; the caller's stays where it was.
                    setns(&file, CloneFlags::CLONE_NEWNET).map_err(|e| Error::Command {
                        command: format!("setns {path}"),
                        detail: e.to_string(),
                    })?;
                    Ok(f())
                })
                .join()
        });
        match joined {
            Ok(result) => result,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    }

    /// The PIDs of the processes inside the namespace, other than this one.
    pub fn pids(&self) -> Result<Vec<Pid>, Error> {
        pids_in(&self.name)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        remove(&self.name);
    }
}

fn pids_in(name: &str) -> Result<Vec<Pid>, Error> {
    let ours = std::process::id();
    Ok(ip(&["netns", "pids", name])?
        .split_whitespace()
        .filter_map(|pid| pid.parse::<u32>().ok())
        .filter(|&pid| pid != ours)
        .filter_map(|pid| i32::try_from(pid).ok().map(Pid::from_raw))
        .collect())
}

/// Kills what is left inside the namespace, then deletes it.
fn remove(name: &str) {
    for _ in 0..50 {
        match pids_in(name) {
            Ok(pids) if !pids.is_empty() => {
                for pid in pids {
                    let _ = kill(pid, Signal::SIGKILL);
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            _ => break,
        }
    }
    if let Err(error) = ip(&["netns", "del", name]) {
        eprintln!("threadline-tests: cannot delete namespace {name}: {error}");
    }
}

/// Whether a namespace named `name` exists (`ip netns list`).
pub fn netns_exists(name: &str) -> Result<bool, Error> {
    Ok(netns_names()?.iter().any(|n| n == name))
}

fn netns_names() -> Result<Vec<String>, Error> {
    Ok(ip(&["netns", "list"])?
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .map(str::to_owned)
        .collect())
}

/// Removes namespaces of ours whose creating process no longer runs.
fn sweep_stale() {
    for name in netns_names().unwrap_or_default() {
        let creator = name
            .strip_prefix(PREFIX)
            .and_then(|rest| rest.split('-').nth(1))
            .and_then(|pid| pid.parse::<u32>().ok());
        if let Some(pid) = creator
            && !std::path::Path::new(&format!("/proc/{pid}")).exists()
        {
            eprintln!("threadline-tests: removing stale namespace {name}");
            remove(&name);
        }
    }
}

/// A veth pair: one end on this side (the namespace the test runs in), the other, `eth0`,
/// inside a [`Netns`], each with an IPv4 address in the same /30. Deleted on drop; deleting
/// the namespace also deletes it.
#[derive(Debug)]
pub struct Veth {
    host: String,
    host_addr: Ipv4Addr,
    peer_addr: Ipv4Addr,
}

impl Veth {
    /// The name of the end inside the namespace.
    pub const PEER: &'static str = "eth0";

    /// Creates a pair into `netns` with addresses from 10.201.0.0/16, chosen from this
    /// process's PID and a counter so that concurrent test processes do not collide.
    pub fn create(netns: &Netns) -> Result<Self, Error> {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let block = std::process::id().wrapping_mul(8).wrapping_add(n) % 16_384;
        let [a, b] = u16::try_from(block * 4).unwrap_or_default().to_be_bytes();
        Self::create_with(
            netns,
            Ipv4Addr::new(10, 201, a, b.wrapping_add(1)),
            Ipv4Addr::new(10, 201, a, b.wrapping_add(2)),
            30,
        )
    }

    /// Creates a pair into `netns`, `host_addr/prefix` on this side and `peer_addr/prefix` on
    /// `eth0` inside.
    pub fn create_with(
        netns: &Netns,
        host_addr: Ipv4Addr,
        peer_addr: Ipv4Addr,
        prefix: u8,
    ) -> Result<Self, Error> {
        // Interface names have 15 bytes at most: `tlv<pid>-<n>` fits for any PID.
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let host = format!("tlv{}-{}", std::process::id(), n % 100);
        ip(&[
            "link",
            "add",
            &host,
            "type",
            "veth",
            "peer",
            "name",
            Self::PEER,
            "netns",
            netns.name(),
        ])?;
        let veth = Self {
            host,
            host_addr,
            peer_addr,
        };
        let ns = netns.name();
        ip(&[
            "addr",
            "add",
            &format!("{host_addr}/{prefix}"),
            "dev",
            &veth.host,
        ])?;
        ip(&["link", "set", &veth.host, "up"])?;
        ip(&[
            "-n",
            ns,
            "addr",
            "add",
            &format!("{peer_addr}/{prefix}"),
            "dev",
            Self::PEER,
        ])?;
        ip(&["-n", ns, "link", "set", Self::PEER, "up"])?;
        Ok(veth)
    }

    /// The name of this side's end, where a probe attaches.
    pub fn host_name(&self) -> &str {
        &self.host
    }

    /// This side's address.
    pub fn host_addr(&self) -> Ipv4Addr {
        self.host_addr
    }

    /// The address of `eth0` inside the namespace.
    pub fn peer_addr(&self) -> Ipv4Addr {
        self.peer_addr
    }

    /// The interface index of this side's end.
    pub fn host_index(&self) -> Result<u32, Error> {
        let path = format!("/sys/class/net/{}/ifindex", self.host);
        std::fs::read_to_string(&path)
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .ok_or_else(|| Error::Command {
                command: format!("read {path}"),
                detail: "no such interface".into(),
            })
    }
}

impl Drop for Veth {
    fn drop(&mut self) {
        // Already gone when its namespace was deleted first: nothing to do then.
        if std::path::Path::new(&format!("/sys/class/net/{}", self.host)).exists() {
            let _ = ip(&["link", "del", &self.host]);
        }
    }
}
