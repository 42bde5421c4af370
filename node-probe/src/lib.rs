//! # node-probe
//!
//! The node agent. The TC programs on each microVM's tap device (`node-probe-ebpf`) report
//! HTTP/1.x message starts and connection events; this crate turns them into black-box spans,
//! finds each span's parent, and relays them with the sidecars' own spans to the collector:
//!
//! - [`kernel`]: the TC programs loaded, attached to the tap devices as they come and go, and
//!   their events and counters read;
//! - [`exchange`]: events to request/response exchanges per connection, and exchanges to spans;
//! - [`clock`]: kernel `CLOCK_MONOTONIC` times to wall-clock times;
//! - [`receiver`]: the local OTLP receiver (HTTP/protobuf and gRPC) the sidecars export to;
//! - [`join`]: each black-box span's parent (header, 4-tuple, the VM's in-flight span, none);
//! - [`relay`]: sampling, batching and retries to the collector, through trace-core's export
//!   policy;
//! - [`artifact`]: the filter artifact served to the sidecars, with its sha256;
//! - [`config`], [`metrics`], [`admin`], [`agent`]: running it.
//!
//! Everything here but the kernel layer builds and tests without the kernel.

// The kernel layer registers its two file descriptors (the ring buffer, the netlink socket)
// with tokio, which takes `unsafe` (`AsyncFd::register`); it allows it at those two calls, each
// with a SAFETY comment. Nothing else may.
#![deny(unsafe_code)]
#![cfg_attr(
    not(test),
    deny(
        clippy::indexing_slicing,
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic
    )
)]

pub mod admin;
pub mod agent;
pub mod artifact;
pub mod clock;
pub mod config;
pub mod exchange;
pub mod join;
pub mod kernel;
pub mod metrics;
pub mod receiver;
pub mod relay;

#[cfg(test)]
mod testing;
