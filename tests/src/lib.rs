//! Test infrastructure across the real Threadline parts.
//!
//! - [`netns`]: network namespaces that delete themselves ([`Netns`]), and veth pairs with
//!   one end inside one ([`Veth`]): the node probe's fast topology.
//! - [`microvm`]: a real guest with its own kernel, booted by QEMU on a tap device inside a
//!   namespace of its own ([`MicroVm`]), running the project's workload server. The host sees
//!   its traffic on the tap device alone, as it sees a Firecracker microVM's.
//! - [`sidecar`]: the built proxy-wasm filter in a real host behind a small real HTTP/1.1
//!   proxy ([`Sidecar`]), where Envoy would stand in front of the workload; [`envoy`]: the
//!   Envoy rules it and the filter's own tests share (attribute encodings and lifetimes, the
//!   artifact's staleness check). Both behind the default `sidecar` feature (wasmtime).
//!
//! Namespaces and the microVM need root. Where root, QEMU or the guest image is missing they
//! return an [`Error`] that says which; [`or_skip`] turns that into a printed skip, or into a
//! failure when CI sets `THREADLINE_REQUIRE_MICROVM=1`.
#![forbid(unsafe_code)]

pub mod collector;
mod command;
#[cfg(feature = "sidecar")]
pub mod envoy;
pub mod error;
pub mod microvm;
pub mod netns;
pub mod process;
#[cfg(feature = "sidecar")]
pub mod sidecar;
#[cfg(feature = "sidecar")]
pub mod stack;
pub mod trace;

pub use collector::Collector;
pub use error::{Error, or_skip};
pub use microvm::{MicroVm, MicroVmOptions};
pub use netns::{Netns, Veth};
pub use process::{Process, built_binary};
#[cfg(feature = "sidecar")]
pub use sidecar::{Sidecar, SidecarOptions};
