//! The export policy every component drives with its own I/O: which spans are held and how
//! many, when a batch is due, which outcomes are retried and after how long, and why spans
//! that never reached the collector were dropped.
//!
//! - [`verdict`]: what an export's HTTP or gRPC outcome means, per the OTLP specification;
//! - [`backoff`]: exponential backoff with jitter, and the server's throttling hint;
//! - [`buffer`]: the bounded buffer of encoded spans, from the first span to the last retry;
//! - [`settings`]: the `[export]` settings, their checks and the `OTEL_*` variables over them.
//!
//! The edge drives it from tokio, the filter from proxy-wasm ticks and callouts, the node agent
//! from tokio again; none of them decides any of these rules itself.

pub mod backoff;
pub mod buffer;
pub mod settings;
pub mod verdict;

pub use backoff::Backoff;
pub use buffer::{
    Admission, BufferLimits, Dispatch, DropReason, EncodedBatch, Settled, SpanBuffer,
};
pub use settings::{ExportDefaults, ExportSettings};
pub use verdict::{Delivery, Verdict};
