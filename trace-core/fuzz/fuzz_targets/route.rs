#![no_main]
//! Route templates and path grouping: the first line is a template, the rest a path.
use libfuzzer_sys::fuzz_target;
use trace_core::route::{MAX_SEGMENTS, RouteGrouper};

fuzz_target!(|data: &str| {
    let (template, path) = data.split_once('\n').unwrap_or(("", data));
    let grouper = RouteGrouper::new(&[template]).unwrap_or_default();
    let route = grouper.route(path);
    assert!(route.as_str().matches('/').count() <= MAX_SEGMENTS + 1 || route.as_str() == template);
});
