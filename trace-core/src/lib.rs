//! # trace-core
//!
//! The rules every Threadline component shares, implemented once: trace and span IDs, W3C
//! Trace Context Level 2, B3, sampling (including the OpenTelemetry Collector's `hash_seed`
//! mode), the span model with OpenTelemetry semantic-convention names and route grouping,
//! the HTTP span rules (request attributes, status per span kind), OTLP protobuf encoding,
//! and AWS SigV4 detection.
//!
//! It does no I/O and starts no threads, so the same code runs in the edge proxy, inside the
//! proxy-wasm filter (wasm32) and in the node agent. Every parser takes untrusted bytes and
//! returns a typed error rather than panicking; callers turn errors into "no context" and a
//! counted, logged fallback.

#![forbid(unsafe_code)]
#![cfg_attr(
    not(test),
    deny(clippy::indexing_slicing, clippy::unwrap_used, clippy::panic)
)]

pub mod b3;
pub mod config;
pub mod context;
pub mod export;
pub mod hex;
pub mod http;
pub mod id;
pub mod otel_env;
pub mod otlp;
pub mod propagation;
pub mod route;
pub mod sampling;
pub mod semconv;
pub mod sigv4;
pub mod span;
pub mod start;
pub mod w3c;

pub use context::{SpanContext, TraceFlags};
pub use id::{IdGenerator, SpanId, TraceId};
