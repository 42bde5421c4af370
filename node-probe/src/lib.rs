//! The node agent that attaches TC programs to microVM tap devices and relays spans.
//!
//! Not implemented yet: this crate reserves its place in the workspace. It does nothing.
#![forbid(unsafe_code)]
