//! # wasm-filter
//!
//! A proxy-wasm filter for Envoy and Kuma sidecars. It emits one span per request per proxy
//! (SERVER on inbound listeners, CLIENT on outbound ones) tagged with where it ran, rewrites
//! the propagated parent to its own span, passes AWS SigV4-signed and other no-touch requests
//! byte for byte unchanged (recording their upstream 4-tuple instead), and exports batches as
//! OTLP/HTTP protobuf through `dispatch_http_call`.
//!
//! - [`config`]: the plugin configuration, checked once in `on_configure`;
//! - `root`: configuration, and the export callouts on its tick;
//! - `request`: one request's span;
//! - `worker`: the state a worker's root and requests share;
//! - `export`: the worker's span buffer (trace-core's export policy) and its callouts;
//! - `hostcall`, `pairs`, `properties`, `metrics`: the host interface, with every status handled.

#![deny(unsafe_code)]

pub mod config;
mod export;
mod hostcall;
mod metrics;
pub mod pairs;
mod properties;
mod request;
mod root;
mod worker;

/// The plugin entry point.
#[allow(
    unsafe_code,
    reason = "proxy-wasm's main! exports the `_initialize` symbol"
)]
mod entry {
    use proxy_wasm::traits::RootContext;
    use proxy_wasm::types::LogLevel;

    proxy_wasm::main! {{
        proxy_wasm::set_log_level(LogLevel::Info);
        proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(crate::root::Root::new()) });
    }}
}
