//! # otlp-export
//!
//! The I/O that drives trace-core's export policy (`trace_core::export`) from tokio, for every
//! binary that sends spans to a collector itself: the edge proxy's own spans and the node
//! agent's relay. (The proxy-wasm filter drives the same policy through host callouts.)
//!
//! - [`transport`]: one export request over OTLP/HTTP protobuf or OTLP/gRPC, or to the
//!   terminal, and how it ended in the policy's terms;
//! - [`queue`]: the policy's buffer behind a lock, with its clock, its wake-up and its
//!   counters, shared by the producers and the exporter;
//! - [`exporter`]: the task that sends what is due, and the flush at shutdown.
//!
//! What is held, when a batch is due, what is retried after how long and what is dropped is
//! decided in trace-core; nothing here decides it again.

#![forbid(unsafe_code)]

pub mod exporter;
mod grpc;
pub mod queue;
pub mod transport;

pub use exporter::{Exporter, Framing};
pub use queue::{ExportCounters, Queue};
pub use transport::{Target, Transport};
