//! A real microVM: a guest with its own kernel, booted by QEMU on a tap device inside a
//! namespace of its own, running the project's workload (`microvm/workload`).
//!
//! The guest image (`vmlinuz`, `initrd.gz`) is built by `scripts/microvm.sh` into
//! `target/microvm/` (`THREADLINE_MICROVM_DIR` overrides where it is looked for).
//!
//! QEMU runs with TCG by default: on nested virtual machines a KVM guest can hang before its
//! first console line. `THREADLINE_MICROVM_ACCEL=kvm` asks for KVM where it works.

use std::io::Read;
use std::net::{Ipv4Addr, SocketAddrV4, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::command::{self, describe, ip};
use crate::{Error, Netns};

/// What the guest's /init prints once eth0 is configured.
pub const READY_MARKER: &str = "THREADLINE-GUEST-READY";
/// What the guest's /init prints when it cannot bring the network up.
pub const FAILED_MARKER: &str = "THREADLINE-GUEST-FAILED";
/// What the workload prints once it accepts connections.
pub const LISTENING_MARKER: &str = "workload: listening on";
/// The tap device's name inside the namespace.
pub const TAP: &str = "tap0";

/// The most console output kept; older output is dropped first.
const CONSOLE_LIMIT: usize = 1 << 20;
/// How long QEMU has to exit after SIGTERM before it is killed.
const TERM_GRACE: Duration = Duration::from_secs(2);

/// How to boot the guest.
#[derive(Debug, Clone)]
pub struct MicroVmOptions {
    /// The guest's address on eth0.
    pub guest_ip: Ipv4Addr,
    /// The tap device's address, the guest's gateway.
    pub host_ip: Ipv4Addr,
    /// The prefix length of both.
    pub prefix: u8,
    /// The workload's port.
    pub port: u16,
    /// A SigV4 key pair (`ID:SECRET`) the workload accepts and signs its calls with.
    pub sigv4_credential: Option<String>,
    /// How long the guest has to print its ready marker and start the workload.
    pub boot_timeout: Duration,
    /// Guest memory.
    pub memory_mib: u32,
    /// Where `vmlinuz` and `initrd.gz` are.
    pub image_dir: PathBuf,
    /// QEMU's accelerator, `tcg` or `kvm`.
    pub accel: String,
}

impl Default for MicroVmOptions {
    fn default() -> Self {
        let image_dir = std::env::var_os("THREADLINE_MICROVM_DIR").map_or_else(
            || PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../target/microvm")),
            PathBuf::from,
        );
        Self {
            guest_ip: Ipv4Addr::new(10, 200, 0, 2),
            host_ip: Ipv4Addr::new(10, 200, 0, 1),
            prefix: 24,
            port: 8080,
            sigv4_credential: None,
            boot_timeout: Duration::from_secs(60),
            memory_mib: 256,
            image_dir,
            accel: std::env::var("THREADLINE_MICROVM_ACCEL").unwrap_or_else(|_| "tcg".into()),
        }
    }
}

/// The serial console as it arrives, shared with the threads that read it.
#[derive(Default)]
struct Console {
    text: Mutex<ConsoleText>,
    changed: Condvar,
}

#[derive(Default)]
struct ConsoleText {
    text: String,
    /// Both of QEMU's output pipes have closed.
    closed: u8,
}

impl Console {
    fn append(&self, bytes: &[u8]) {
        let mut guard = self.text.lock().unwrap_or_else(|p| p.into_inner());
        guard.text.push_str(&String::from_utf8_lossy(bytes));
        if guard.text.len() > CONSOLE_LIMIT {
            let cut = guard.text.len() - CONSOLE_LIMIT;
            let cut = (cut..guard.text.len())
                .find(|&i| guard.text.is_char_boundary(i))
                .unwrap_or(cut);
            guard.text.drain(..cut);
        }
        drop(guard);
        self.changed.notify_all();
    }

    fn close(&self) {
        self.text.lock().unwrap_or_else(|p| p.into_inner()).closed += 1;
        self.changed.notify_all();
    }

    fn snapshot(&self) -> String {
        self.text
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .text
            .clone()
    }

    /// Waits until `done` says yes about the console, or `deadline`.
    fn wait_until(&self, deadline: Instant, mut done: impl FnMut(&ConsoleText) -> bool) -> bool {
        let mut guard = self.text.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if done(&guard) {
                return true;
            }
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                return false;
            };
            // Short waits, so that a QEMU that exits without closing its pipes is still seen.
            let wait = left.min(Duration::from_millis(200));
            guard = self
                .changed
                .wait_timeout(guard, wait)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }
}

/// A booted guest, its QEMU and its namespace. Dropping it kills QEMU by its PID (SIGTERM,
/// then SIGKILL after a grace period), waits for it, and deletes the namespace.
pub struct MicroVm {
    qemu: Child,
    console: Arc<Console>,
    options: MicroVmOptions,
    boot_time: Duration,
    // Dropped after `Drop::drop` has stopped QEMU, so the namespace is empty when deleted.
    netns: Netns,
}

impl std::fmt::Debug for MicroVm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MicroVm")
            .field("netns", &self.netns.name())
            .field("qemu_pid", &self.qemu.id())
            .field("guest", &self.guest_addr())
            .finish_non_exhaustive()
    }
}

impl MicroVm {
    /// Boots a guest: a fresh namespace `tl-vm-<pid>-<n>` with `tap0` at `host_ip`, QEMU in
    /// it, and a wait for the workload to listen. On failure everything made is removed again.
    pub fn boot(options: MicroVmOptions) -> Result<Self, Error> {
        command::require_root()?;
        command::require_tool(
            "qemu-system-x86_64",
            "Debian package qemu-system-x86; scripts/microvm.sh installs it",
        )?;
        command::require_tool("ip", "Debian package iproute2")?;
        let kernel = options.image_dir.join("vmlinuz");
        let initrd = options.image_dir.join("initrd.gz");
        for path in [&kernel, &initrd] {
            if !path.is_file() {
                return Err(Error::MissingImage { path: path.clone() });
            }
        }
        let accel = match options.accel.as_str() {
            "tcg" => vec!["-accel", "tcg"],
            "kvm" => vec!["-accel", "kvm", "-cpu", "host"],
            other => return Err(Error::Options(format!("accelerator {other:?}"))),
        };
        let mut append = format!(
            "console=ttyS0 panic=-1 quiet threadline.ip={}/{} threadline.gw={} threadline.port={}",
            options.guest_ip, options.prefix, options.host_ip, options.port
        );
        if let Some(credential) = &options.sigv4_credential {
            if !credential.contains(':') || !credential.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(Error::Options(
                    "the SigV4 credential is ID:SECRET without spaces".into(),
                ));
            }
            append.push_str(&format!(" threadline.sigv4={credential}"));
        }

        let netns = Netns::create("vm")?;
        let ns = netns.name();
        ip(&["-n", ns, "tuntap", "add", "dev", TAP, "mode", "tap"])?;
        ip(&[
            "-n",
            ns,
            "addr",
            "add",
            &format!("{}/{}", options.host_ip, options.prefix),
            "dev",
            TAP,
        ])?;
        ip(&["-n", ns, "link", "set", TAP, "up"])?;

        let mut qemu = netns.command("qemu-system-x86_64");
        qemu.args(["-M", "pc"])
            .args(&accel)
            .args(["-m", &options.memory_mib.to_string(), "-smp", "1"])
            // -no-reboot: a guest that panics or powers off ends QEMU instead of looping.
            .args([
                "-nodefaults",
                "-nographic",
                "-no-reboot",
                "-serial",
                "stdio",
            ])
            .arg("-kernel")
            .arg(&kernel)
            .arg("-initrd")
            .arg(&initrd)
            .args(["-append", &append])
            .args([
                "-netdev",
                &format!("tap,id=n0,ifname={TAP},script=no,downscript=no"),
                // No option ROM: the guest boots its kernel directly, never over iPXE.
                "-device",
                "virtio-net-pci,netdev=n0,romfile=",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let line = describe(&qemu);
        let started = Instant::now();
        // `ip netns exec` execs QEMU in place, so this PID is QEMU's own.
        let mut child = qemu.spawn().map_err(|e| Error::Command {
            command: line,
            detail: format!("cannot start: {e}"),
        })?;
        let console = Arc::new(Console::default());
        for pipe in [
            child
                .stdout
                .take()
                .map(|p| Box::new(p) as Box<dyn Read + Send>),
            child
                .stderr
                .take()
                .map(|p| Box::new(p) as Box<dyn Read + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let console = Arc::clone(&console);
            std::thread::spawn(move || read_into(pipe, &console));
        }
        let mut vm = Self {
            qemu: child,
            console,
            options,
            boot_time: Duration::ZERO,
            netns,
        };
        vm.wait_ready(started)?;
        vm.boot_time = started.elapsed();
        Ok(vm)
    }

    fn wait_ready(&mut self, started: Instant) -> Result<(), Error> {
        let deadline = started + self.options.boot_timeout;
        let mut outcome = None;
        let qemu = &mut self.qemu;
        self.console.wait_until(deadline, |console| {
            let text = &console.text;
            outcome = if text.contains(FAILED_MARKER) {
                Some(Err("the guest could not bring up its network".to_owned()))
            } else if text
                .find(READY_MARKER)
                .is_some_and(|at| text.get(at..).is_some_and(|t| t.contains(LISTENING_MARKER)))
            {
                Some(Ok(()))
            } else if console.closed >= 2 {
                Some(Err("QEMU closed its console".to_owned()))
            } else {
                match qemu.try_wait() {
                    Ok(Some(status)) => Some(Err(format!("QEMU exited: {status}"))),
                    _ => None,
                }
            };
            outcome.is_some()
        });
        match outcome {
            Some(Ok(())) => Ok(()),
            Some(Err(reason)) => Err(self.boot_error(reason)),
            None => Err(self.boot_error(format!(
                "no {READY_MARKER} and {LISTENING_MARKER:?} within {:?} ({} acceleration)",
                self.options.boot_timeout, self.options.accel
            ))),
        }
    }

    fn boot_error(&self, reason: String) -> Error {
        Error::Boot {
            reason,
            console: self.console.snapshot(),
        }
    }

    /// The namespace the tap device, QEMU and the test's clients share.
    pub fn netns(&self) -> &Netns {
        &self.netns
    }

    /// The tap device's name inside the namespace.
    pub fn tap(&self) -> &'static str {
        TAP
    }

    /// The guest's address.
    pub fn guest_ip(&self) -> Ipv4Addr {
        self.options.guest_ip
    }

    /// The tap device's address, which the guest reaches as its gateway.
    pub fn host_ip(&self) -> Ipv4Addr {
        self.options.host_ip
    }

    /// The workload's address in the guest.
    pub fn guest_addr(&self) -> SocketAddrV4 {
        SocketAddrV4::new(self.options.guest_ip, self.options.port)
    }

    /// How long the guest took from QEMU's start to the workload listening.
    pub fn boot_time(&self) -> Duration {
        self.boot_time
    }

    /// QEMU's PID.
    pub fn qemu_pid(&self) -> u32 {
        self.qemu.id()
    }

    /// The serial console so far (kernel, /init and workload output, and QEMU's own messages).
    pub fn console(&self) -> String {
        self.console.snapshot()
    }

    /// Runs `program args…` inside the namespace (a client such as curl), killed after
    /// `timeout`.
    pub fn exec_in_ns(
        &self,
        program: &str,
        args: &[&str],
        timeout: Duration,
    ) -> Result<Output, Error> {
        self.netns.exec(program, args, timeout)
    }

    /// A TCP connection to the workload, made from inside the namespace.
    pub fn connect(&self, timeout: Duration) -> Result<TcpStream, Error> {
        let address = self.guest_addr();
        self.netns
            .run(|| TcpStream::connect_timeout(&address.into(), timeout))?
            .map_err(|e| Error::Command {
                command: format!("connect {address}"),
                detail: e.to_string(),
            })
    }

    /// A command that runs `program` inside the namespace, for clients that need more than
    /// [`MicroVm::exec_in_ns`].
    pub fn command_in_ns(&self, program: &str) -> Command {
        self.netns.command(program)
    }
}

fn read_into(mut pipe: Box<dyn Read + Send>, console: &Console) {
    let mut buffer = [0u8; 4096];
    while let Ok(read) = pipe.read(&mut buffer) {
        if read == 0 {
            break;
        }
        console.append(buffer.get(..read).unwrap_or_default());
    }
    console.close();
}

impl Drop for MicroVm {
    fn drop(&mut self) {
        if let Ok(None) = self.qemu.try_wait() {
            if let Ok(pid) = i32::try_from(self.qemu.id()) {
                let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
            }
            let deadline = Instant::now() + TERM_GRACE;
            while matches!(self.qemu.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            // SIGKILL if it is still there; harmless if it has just exited.
            let _ = self.qemu.kill();
        }
        let _ = self.qemu.wait();
    }
}
