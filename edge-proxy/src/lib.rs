//! The Pingora edge load balancer that assigns each request's root trace.
//!
//! Not implemented yet: this crate reserves its place in the workspace. It does nothing.
#![forbid(unsafe_code)]
