//! Parent resolution for black-box spans: the `traceparent` in the payload, else the sidecar
//! span matched by 4-tuple and time window, else the VM's in-flight server span, else none.
//!
//! - [`sidecar`]: what the join reads of a sidecar's span, and the 4-tuple both sides share;
//! - [`index`]: sidecar spans by 4-tuple, bounded and expiring;
//! - [`joiner`]: the resolution itself;
//! - [`counts`]: what is counted, and the parent sources.

pub mod counts;
pub mod index;
pub mod joiner;
pub mod sidecar;

#[cfg(test)]
mod tests;

pub use counts::{JoinCount, ParentSource};
pub use joiner::{JoinSettings, Joiner, Resolved};
pub use sidecar::{SidecarSpan, Tuple};
