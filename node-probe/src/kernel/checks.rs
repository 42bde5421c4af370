//! What the probe needs from the process and the kernel, checked before anything is loaded,
//! so that a refusal names what is missing instead of surfacing as a syscall's EPERM.

use std::path::Path;

use aya::util::KernelVersion;

use super::{AttachMode, StartError};

/// The kernel's BTF, which aya reads to load programs and maps that carry their own.
pub(crate) const VMLINUX_BTF: &str = "/sys/kernel/btf/vmlinux";

const CAP_NET_ADMIN: u32 = 12;
const CAP_SYS_ADMIN: u32 = 21;
const CAP_PERFMON: u32 = 38;
const CAP_BPF: u32 = 39;

/// The capabilities `/proc/self/status` grants that the probe lacks, by name.
///
/// CAP_SYS_ADMIN stands in for CAP_BPF and CAP_PERFMON, as the kernel lets it
/// (`bpf_capable()`, `perfmon_capable()`); kernels before 5.8 have no other way to grant them.
pub(crate) fn missing_capabilities(status: &str) -> Result<Vec<&'static str>, StartError> {
    let effective = status
        .lines()
        .find_map(|line| line.strip_prefix("CapEff:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .ok_or(StartError::CapabilitiesUnreadable)?;
    let has = |bit: u32| effective & (1 << bit) != 0;
    let admin = has(CAP_SYS_ADMIN);
    let mut missing = Vec::new();
    if !has(CAP_BPF) && !admin {
        missing.push("CAP_BPF");
    }
    if !has(CAP_NET_ADMIN) {
        missing.push("CAP_NET_ADMIN");
    }
    if !has(CAP_PERFMON) && !admin {
        missing.push("CAP_PERFMON");
    }
    Ok(missing)
}

/// Refuses to go on without the capabilities, or without the kernel's BTF.
pub(crate) fn check_process() -> Result<(), StartError> {
    let status = std::fs::read_to_string("/proc/self/status")
        .map_err(|_| StartError::CapabilitiesUnreadable)?;
    let missing = missing_capabilities(&status)?;
    if !missing.is_empty() {
        return Err(StartError::MissingCapabilities(missing));
    }
    if !Path::new(VMLINUX_BTF).exists() {
        return Err(StartError::NoBtf);
    }
    Ok(())
}

/// How programs are attached: TCX links from kernel 6.6, the clsact qdisc before it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Resolved {
    /// TCX links, first in order.
    Tcx,
    /// Netlink filters on the clsact qdisc, at the first priority.
    Netlink,
}

/// The attach mechanism for `requested` on this kernel.
pub(crate) fn resolve(requested: AttachMode) -> Result<Resolved, StartError> {
    let version = KernelVersion::current().ok();
    let tcx = version.is_some_and(|v| v >= KernelVersion::new(6, 6, 0));
    match requested {
        AttachMode::Tcx if !tcx => Err(StartError::NoTcx),
        AttachMode::Tcx => Ok(Resolved::Tcx),
        AttachMode::Netlink => Ok(Resolved::Netlink),
        AttachMode::Auto if tcx => Ok(Resolved::Tcx),
        AttachMode::Auto => {
            tracing::warn!(
                kernel = ?version,
                "kernel older than 6.6 (or its version unreadable): no TCX, attaching through \
                 the clsact qdisc instead, where programs of other tools at the same hook may \
                 run before ours"
            );
            Ok(Resolved::Netlink)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(cap_eff: &str) -> String {
        format!(
            "Name:\tagent\nCapInh:\t0000000000000000\nCapEff:\t{cap_eff}\nCapBnd:\t000001ffffffffff\n"
        )
    }

    #[test]
    fn each_missing_capability_is_named() {
        assert_eq!(
            missing_capabilities(&status("000001ffffffffff")).unwrap(),
            Vec::<&str>::new()
        );
        assert_eq!(
            missing_capabilities(&status("0000000000000000")).unwrap(),
            ["CAP_BPF", "CAP_NET_ADMIN", "CAP_PERFMON"]
        );
        // CAP_BPF | CAP_NET_ADMIN, no CAP_PERFMON.
        let bpf_net = (1u64 << 39) | (1 << 12);
        assert_eq!(
            missing_capabilities(&status(&format!("{bpf_net:016x}"))).unwrap(),
            ["CAP_PERFMON"]
        );
        // CAP_SYS_ADMIN stands in for CAP_BPF and CAP_PERFMON, not for CAP_NET_ADMIN.
        assert_eq!(
            missing_capabilities(&status(&format!("{:016x}", 1u64 << 21))).unwrap(),
            ["CAP_NET_ADMIN"]
        );
        let least = (1u64 << 39) | (1 << 38) | (1 << 12);
        assert!(
            missing_capabilities(&status(&format!("{least:016x}")))
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn an_unreadable_status_is_an_error() {
        assert!(missing_capabilities("Name:\tagent\n").is_err());
        assert!(missing_capabilities(&status("zz")).is_err());
    }
}
