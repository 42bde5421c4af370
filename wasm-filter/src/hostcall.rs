//! The host calls this filter makes itself, with every status handled.
//!
//! The Rust SDK's helpers for these calls panic on any status they do not expect, and a panic
//! traps the VM, which breaks traffic in Envoy. Here each call returns a `Result` instead, the
//! status is read as a plain `u32` (a value outside the SDK's enum cannot become undefined
//! behaviour), and memory the host hands over is taken back the way the SDK's allocator gave
//! it out. This is the only module with `unsafe` code.
#![allow(unsafe_code)]

use core::ptr::null_mut;

use crate::pairs::{self, Pair};

/// A non-OK status from the host, kept as its raw number for logs.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Status(pub u32);

const OK: u32 = 0;
const NOT_FOUND: u32 = 1;

/// Header maps, numbered as in the ABI.
#[derive(Clone, Copy, Debug)]
#[repr(u32)]
pub enum Map {
    /// The request headers of the current stream.
    RequestHeaders = 0,
    /// The response headers of an HTTP callout, in `on_http_call_response`.
    CallResponseHeaders = 6,
}

/// Metric types, numbered as in the ABI.
#[derive(Clone, Copy, Debug)]
#[repr(u32)]
pub enum MetricType {
    /// A monotonic counter.
    Counter = 0,
}

#[link(wasm_import_module = "env")]
unsafe extern "C" {
    fn proxy_get_property(
        path: *const u8,
        path_size: usize,
        value: *mut *mut u8,
        value_size: *mut usize,
    ) -> u32;
    fn proxy_get_header_map_pairs(map: u32, data: *mut *mut u8, size: *mut usize) -> u32;
    fn proxy_get_header_map_value(
        map: u32,
        key: *const u8,
        key_size: usize,
        value: *mut *mut u8,
        value_size: *mut usize,
    ) -> u32;
    fn proxy_replace_header_map_value(
        map: u32,
        key: *const u8,
        key_size: usize,
        value: *const u8,
        value_size: usize,
    ) -> u32;
    fn proxy_remove_header_map_value(map: u32, key: *const u8, key_size: usize) -> u32;
    fn proxy_get_current_time_nanoseconds(time: *mut u64) -> u32;
    fn proxy_define_metric(kind: u32, name: *const u8, name_size: usize, id: *mut u32) -> u32;
    fn proxy_increment_metric(id: u32, offset: i64) -> u32;
    fn proxy_set_tick_period_milliseconds(period: u32) -> u32;
    fn proxy_get_buffer_bytes(
        buffer: u32,
        start: usize,
        max_size: usize,
        data: *mut *mut u8,
        size: *mut usize,
    ) -> u32;
    fn proxy_done() -> u32;
}

/// The plugin configuration buffer, numbered as in the ABI.
const PLUGIN_CONFIGURATION: u32 = 7;

#[link(wasm_import_module = "wasi_snapshot_preview1")]
unsafe extern "C" {
    fn random_get(buf: *mut u8, len: usize) -> u16;
}

/// Takes ownership of a buffer the host allocated through `proxy_on_memory_allocate`.
fn take(data: *mut u8, size: usize) -> Vec<u8> {
    if data.is_null() || size == 0 {
        return Vec::new();
    }
    // SAFETY: the host filled `data` with `size` bytes from the SDK's allocator, which hands
    // out a `Vec<u8>` with capacity `size` and forgets it; it is ours to free, once.
    unsafe { Vec::from_raw_parts(data, size, size) }
}

/// Reads a property. `Ok(None)` when the host has no such value (NOT_FOUND).
pub fn property(path: &[&str]) -> Result<Option<Vec<u8>>, Status> {
    let encoded = path.join("\0");
    let (mut data, mut size) = (null_mut(), 0usize);
    // SAFETY: the path pointer and length describe `encoded`; the out pointers are valid.
    let status =
        unsafe { proxy_get_property(encoded.as_ptr(), encoded.len(), &mut data, &mut size) };
    match status {
        OK => Ok(Some(take(data, size))),
        NOT_FOUND => Ok(None),
        other => Err(Status(other)),
    }
}

/// Reads every pair of a header map.
pub fn header_pairs(map: Map) -> Result<Vec<Pair>, Status> {
    let (mut data, mut size) = (null_mut(), 0usize);
    // SAFETY: the out pointers are valid for writes.
    let status = unsafe { proxy_get_header_map_pairs(map as u32, &mut data, &mut size) };
    if status != OK {
        return Err(Status(status));
    }
    let bytes = take(data, size);
    if bytes.is_empty() {
        return Ok(Vec::new());
    }
    // A malformed map is reported like a failed call: the caller treats both as "no headers".
    pairs::decode(&bytes).ok_or(Status(u32::MAX))
}

/// Reads one header value. `Ok(None)` when absent.
pub fn header_value(map: Map, name: &str) -> Result<Option<Vec<u8>>, Status> {
    let (mut data, mut size) = (null_mut(), 0usize);
    // SAFETY: the key pointer and length describe `name`; the out pointers are valid.
    let status = unsafe {
        proxy_get_header_map_value(map as u32, name.as_ptr(), name.len(), &mut data, &mut size)
    };
    match status {
        OK => Ok(Some(take(data, size))),
        NOT_FOUND => Ok(None),
        other => Err(Status(other)),
    }
}

/// Sets a header, replacing any value it had.
pub fn replace_header(map: Map, name: &str, value: &str) -> Result<(), Status> {
    // SAFETY: both pointers and lengths describe live strings.
    let status = unsafe {
        proxy_replace_header_map_value(
            map as u32,
            name.as_ptr(),
            name.len(),
            value.as_ptr(),
            value.len(),
        )
    };
    if status == OK {
        Ok(())
    } else {
        Err(Status(status))
    }
}

/// Removes a header.
pub fn remove_header(map: Map, name: &str) -> Result<(), Status> {
    // SAFETY: the pointer and length describe `name`.
    let status = unsafe { proxy_remove_header_map_value(map as u32, name.as_ptr(), name.len()) };
    if status == OK {
        Ok(())
    } else {
        Err(Status(status))
    }
}

/// The host's wall clock, in Unix nanoseconds.
pub fn now_nanos() -> Result<u64, Status> {
    let mut time = 0u64;
    // SAFETY: the out pointer is valid for writes.
    let status = unsafe { proxy_get_current_time_nanoseconds(&mut time) };
    if status == OK {
        Ok(time)
    } else {
        Err(Status(status))
    }
}

/// Defines a metric and returns its ID.
pub fn define_metric(kind: MetricType, name: &str) -> Result<u32, Status> {
    let mut id = 0u32;
    // SAFETY: the pointer and length describe `name`; the out pointer is valid.
    let status = unsafe { proxy_define_metric(kind as u32, name.as_ptr(), name.len(), &mut id) };
    if status == OK {
        Ok(id)
    } else {
        Err(Status(status))
    }
}

/// Adds `offset` (greater than 0) to a counter.
pub fn increment_metric(id: u32, offset: i64) -> Result<(), Status> {
    // SAFETY: plain values.
    let status = unsafe { proxy_increment_metric(id, offset) };
    if status == OK {
        Ok(())
    } else {
        Err(Status(status))
    }
}

/// Asks for `on_tick` every `period_ms` milliseconds.
pub fn set_tick_period(period_ms: u32) -> Result<(), Status> {
    // SAFETY: plain value.
    let status = unsafe { proxy_set_tick_period_milliseconds(period_ms) };
    if status == OK {
        Ok(())
    } else {
        Err(Status(status))
    }
}

/// 8 random bytes from the host (WASI `random_get`, which Envoy provides to every plugin).
pub fn random_u64() -> Result<u64, Status> {
    let mut bytes = [0u8; 8];
    // SAFETY: the pointer and length describe `bytes`.
    let errno = unsafe { random_get(bytes.as_mut_ptr(), bytes.len()) };
    if errno == 0 {
        Ok(u64::from_le_bytes(bytes))
    } else {
        Err(Status(u32::from(errno)))
    }
}

/// The plugin configuration. An absent one (NOT_FOUND) is empty: `{}` is the default.
pub fn plugin_configuration() -> Result<Vec<u8>, Status> {
    let (mut data, mut size) = (null_mut(), 0usize);
    // SAFETY: the out pointers are valid for writes.
    let status = unsafe {
        proxy_get_buffer_bytes(PLUGIN_CONFIGURATION, 0, usize::MAX, &mut data, &mut size)
    };
    match status {
        OK => Ok(take(data, size)),
        NOT_FOUND => Ok(Vec::new()),
        other => Err(Status(other)),
    }
}

/// Tells the host that the current context, which answered `false` to `on_done`, is done.
pub fn done() -> Result<(), Status> {
    // SAFETY: no arguments.
    let status = unsafe { proxy_done() };
    if status == OK {
        Ok(())
    } else {
        Err(Status(status))
    }
}
