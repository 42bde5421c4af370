//! The empty proxy-wasm filter: the same SDK and HTTP context plumbing as the real filter, and
//! no work. The filter's benchmark subtracts its cost.

#![allow(
    unsafe_code,
    reason = "proxy-wasm's main! exports the `_initialize` symbol"
)]

use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{ContextType, LogLevel};

/// The plugin entry point.
mod entry {
    use super::*;

    proxy_wasm::main! {{
        proxy_wasm::set_log_level(LogLevel::Info);
        proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Empty) });
    }}
}

struct Empty;

impl Context for Empty {}

impl RootContext for Empty {
    fn create_http_context(&self, _: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Empty))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

impl HttpContext for Empty {}
