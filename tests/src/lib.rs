//! End-to-end tests across the real Threadline parts.
//!
//! None yet: they arrive with the edge proxy, the filter and the probe.
#![forbid(unsafe_code)]
