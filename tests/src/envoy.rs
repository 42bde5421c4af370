//! What a proxy-wasm host must do to present a filter with Envoy, shared by the filter's own
//! tests (`wasm-filter/tests/support`) and the [`sidecar`](crate::sidecar): the published
//! artifact and its staleness check, one compiled module per artifact, Envoy's attribute
//! encodings, and its rules for which attributes exist during which callback.
//!
//! The rules come from Envoy's attribute documentation and `source/extensions/common/wasm/
//! context.cc` (see `/work/shared/reference/envoy-proxy-wasm.md`), not from what the filter
//! happens to read, so that a filter that works here works in Envoy.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use proxy_wasm_host::abi::v0_2_1::Callback;
use proxy_wasm_host::abi::v0_2_1::types::Status;
use proxy_wasm_host::{Engine, Module};

/// The workspace root, from this crate's manifest (both crates that use this sit one level
/// below it).
const WORKSPACE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");

/// The filter as `scripts/setup.sh` publishes it: what Envoy loads.
pub const FILTER: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../artifacts/threadline-filter.wasm"
);

/// The empty filter, the benchmark's baseline.
pub const EMPTY_FILTER: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../artifacts/empty-filter.wasm"
);

/// `xds.listener_direction` of an inbound listener (Envoy's `TrafficDirection::INBOUND`).
pub const INBOUND: i64 = 1;
/// `xds.listener_direction` of an outbound listener (`TrafficDirection::OUTBOUND`).
pub const OUTBOUND: i64 = 2;

/// Why an artifact cannot be used: missing, or older than a source it is built from (a test
/// of a stale build passes or fails for code that is no longer there).
pub fn check_artifact(path: &Path) -> Result<(), String> {
    let built = std::fs::metadata(path)
        .and_then(|m| m.modified())
        .map_err(|e| {
            format!(
                "{}: {e}. Run ./scripts/setup.sh to build and publish it",
                path.display()
            )
        })?;
    let mut newest: Option<(SystemTime, PathBuf)> = None;
    let mut dirs: Vec<PathBuf> = ["wasm-filter/src", "trace-core/src"]
        .iter()
        .map(|d| Path::new(WORKSPACE).join(d))
        .collect();
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let source = entry.path();
            if source.is_dir() {
                dirs.push(source);
            } else if let Ok(modified) = entry.metadata().and_then(|m| m.modified())
                && newest.as_ref().is_none_or(|(t, _)| modified > *t)
            {
                newest = Some((modified, source));
            }
        }
    }
    match newest {
        Some((modified, source)) if modified > built => Err(format!(
            "{} is older than {}: it is a stale build. Rebuild it with ./scripts/setup.sh",
            path.display(),
            source.display()
        )),
        _ => Ok(()),
    }
}

/// The artifact at `path` compiled, once per process and file version: compiling the filter
/// takes seconds, and every host made from the module gets its own guest instance anyway.
pub fn compiled(path: &Path) -> Result<(Engine, Module), String> {
    static ENGINE: OnceLock<Result<Engine, String>> = OnceLock::new();
    static MODULES: Mutex<Vec<(PathBuf, SystemTime, Module)>> = Mutex::new(Vec::new());
    let engine = ENGINE
        .get_or_init(|| Engine::new().map_err(|e| format!("wasmtime engine: {e}")))
        .clone()?;
    let modified = std::fs::metadata(path)
        .and_then(|m| m.modified())
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let mut modules = MODULES.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, _, module)) = modules.iter().find(|(p, t, _)| p == path && *t == modified) {
        return Ok((engine, module.clone()));
    }
    let wasm = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let module = Module::new(&engine, &wasm)
        .map_err(|e| format!("{} does not compile: {e}", path.display()))?;
    modules.push((path.to_owned(), modified, module.clone()));
    Ok((engine, module))
}

/// An int or uint attribute: 8 bytes, little-endian.
pub fn int(value: i64) -> Vec<u8> {
    value.to_le_bytes().to_vec()
}

/// A timestamp attribute (`request.time`): Unix nanoseconds as an int64, little-endian.
pub fn timestamp(at: SystemTime) -> Vec<u8> {
    let nanos = at
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX));
    int(nanos)
}

/// A duration attribute (`request.duration`): nanoseconds as an int64, little-endian.
pub fn duration(length: Duration) -> Vec<u8> {
    int(i64::try_from(length.as_nanos()).unwrap_or(i64::MAX))
}

/// An address attribute: `1.2.3.4:80`, or `[::1]:80` for IPv6, as text (which is exactly how
/// `SocketAddr` prints).
pub fn address(addr: SocketAddr) -> Vec<u8> {
    addr.to_string().into_bytes()
}

/// Which kind of context reads an attribute.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Reader {
    /// A root context: it has `xds.*` (and the `plugin_*` names the host crate serves), and
    /// no request, response, connection or upstream attributes.
    Root,
    /// An HTTP stream context.
    Stream,
}

/// Whether Envoy has the attribute `path` (dotted) during `callback`:
/// - a root context has only `xds.*`;
/// - `upstream.*` and the upstream cluster's `xds.*` exist only once the router has chosen a
///   host, never while request headers are processed;
/// - `response.*` exists from the response headers on;
/// - `request.duration` only once the request is complete, so from `on_log` on.
pub fn exists_during(path: &str, callback: Option<Callback>, reader: Reader) -> bool {
    if reader == Reader::Root {
        return path.starts_with("xds.");
    }
    let upstream = path.starts_with("upstream.")
        || path.starts_with("xds.cluster_")
        || path == "xds.upstream_host_metadata";
    let response = path.starts_with("response.");
    let request_side = matches!(
        callback,
        Some(Callback::RequestHeaders | Callback::RequestBody | Callback::RequestTrailers)
    );
    if upstream && callback == Some(Callback::RequestHeaders) {
        return false;
    }
    if response && request_side {
        return false;
    }
    if path == "request.duration" {
        return matches!(
            callback,
            Some(Callback::Log | Callback::Done | Callback::Delete)
        );
    }
    true
}

/// Attributes by dotted path (`upstream.address`, `xds.node.metadata.KEY`), already in
/// Envoy's encodings, served with Envoy's rules.
#[derive(Clone, Debug, Default)]
pub struct Attributes {
    values: HashMap<String, Vec<u8>>,
}

impl Attributes {
    /// Sets an attribute (already encoded: see [`int`], [`timestamp`], [`address`]).
    pub fn set(&mut self, path: &str, value: impl Into<Vec<u8>>) {
        self.values.insert(path.to_owned(), value.into());
    }

    /// Removes an attribute.
    pub fn remove(&mut self, path: &str) {
        self.values.remove(path);
    }

    /// An attribute's encoded value, whatever the callback.
    pub fn get(&self, path: &str) -> Option<&[u8]> {
        self.values.get(path).map(Vec::as_slice)
    }

    /// What `proxy_get_property` answers for `path` (its NUL-separated parts) during
    /// `callback`: the value, NotFound for a missing (or not yet existing) one, and
    /// SerializationFailure for a whole map such as `request`, as Envoy does.
    pub fn read(
        &self,
        path: &[&[u8]],
        callback: Option<Callback>,
        reader: Reader,
        out: &mut Vec<u8>,
    ) -> Result<(), Status> {
        let path = path
            .iter()
            .map(|p| String::from_utf8_lossy(p))
            .collect::<Vec<_>>()
            .join(".");
        match self.values.get(&path) {
            Some(value) if exists_during(&path, callback, reader) => {
                out.extend_from_slice(value);
                Ok(())
            }
            None if WHOLE_MAPS.contains(&path.as_str()) => Err(Status::SerializationFailure),
            _ => Err(Status::NotFound),
        }
    }
}

/// Attribute groups that Envoy cannot serialise as one value.
const WHOLE_MAPS: &[&str] = &[
    "request",
    "response",
    "upstream",
    "source",
    "destination",
    "connection",
    "xds",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_exist_when_envoy_has_them() {
        let stream = Reader::Stream;
        let headers = Some(Callback::RequestHeaders);
        assert!(!exists_during("upstream.address", headers, stream));
        assert!(exists_during(
            "upstream.address",
            Some(Callback::Log),
            stream
        ));
        assert!(!exists_during(
            "response.code",
            Some(Callback::RequestBody),
            stream
        ));
        assert!(exists_during(
            "response.code",
            Some(Callback::ResponseHeaders),
            stream
        ));
        assert!(!exists_during(
            "request.duration",
            Some(Callback::ResponseBody),
            stream
        ));
        assert!(exists_during(
            "request.duration",
            Some(Callback::Log),
            stream
        ));
        assert!(exists_during("xds.listener_direction", headers, stream));
        assert!(exists_during(
            "xds.node.metadata.K",
            Some(Callback::Tick),
            Reader::Root
        ));
        assert!(!exists_during(
            "source.address",
            Some(Callback::Tick),
            Reader::Root
        ));
    }

    #[test]
    fn reads_answer_with_envoy_statuses() {
        let mut attributes = Attributes::default();
        attributes.set("upstream.address", address("[::1]:80".parse().unwrap()));
        let mut out = Vec::new();
        let log = Some(Callback::Log);
        assert_eq!(
            attributes.read(&[b"upstream", b"address"], log, Reader::Stream, &mut out),
            Ok(())
        );
        assert_eq!(out, b"[::1]:80");
        assert_eq!(
            attributes.read(&[b"upstream"], log, Reader::Stream, &mut out),
            Err(Status::SerializationFailure)
        );
        assert_eq!(
            attributes.read(&[b"response", b"code"], log, Reader::Stream, &mut out),
            Err(Status::NotFound)
        );
        assert_eq!(int(503), 503i64.to_le_bytes());
        assert_eq!(
            duration(Duration::from_millis(3)),
            3_000_000i64.to_le_bytes()
        );
    }
}
