//! The proxy-wasm filter that emits sidecar spans.
//!
//! Not implemented yet: this crate reserves its place in the workspace. It does nothing.
#![forbid(unsafe_code)]
