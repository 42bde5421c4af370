//! # mesh-config
//!
//! One site description, rendered into every artifact that deploys Threadline, so that the
//! sampling seed and percentage, the location tags and the collector endpoint agree across the
//! edge, the mesh and the node agents by construction.
//!
//! - [`site`]: the site file as serde types (TOML), read once with errors naming the field;
//! - [`checked`]: `validate()`, run once, producing the checked site every renderer reads;
//! - [`plugin`]: the filter's plugin configuration, checked by the filter's own code;
//! - [`envoy`]: the Envoy values (the wasm `HttpFilter`, the agent `Cluster`, a bootstrap);
//! - [`kuma`]: `MeshProxyPatch`, `ContainerPatch`, and the MeshTrace check;
//! - [`edge`], [`probe`]: the edge-proxy's and the node-probe's configuration files;
//! - [`kubernetes`]: the kustomize base and one overlay per environment;
//! - [`render`]: every file of a render, in a stable order.

#![forbid(unsafe_code)]
// A bad site file is an error naming the field, never a panic; tests may unwrap.
#![cfg_attr(
    not(test),
    deny(clippy::indexing_slicing, clippy::unwrap_used, clippy::panic)
)]

pub mod checked;
pub mod edge;
pub mod envoy;
pub mod kubernetes;
pub mod kuma;
pub mod plugin;
pub mod probe;
pub mod render;
pub mod site;
mod version;
mod yaml;

pub use trace_core::config::FieldError;
