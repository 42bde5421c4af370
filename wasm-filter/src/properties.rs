//! Envoy attributes, read through `proxy_get_property` with Envoy's documented encodings:
//! integers, timestamps and durations are 8 little-endian bytes (timestamps and durations in
//! nanoseconds), addresses are text (`1.2.3.4:80`, `[::1]:80`), strings are raw bytes.
//! A missing value or a failed read is `None`: the span simply lacks that attribute.

use crate::hostcall;

/// `request.time`: when the first byte of the request arrived.
pub const REQUEST_TIME: &[&str] = &["request", "time"];
/// `request.duration`: only once the request is complete, so in `on_log`.
pub const REQUEST_DURATION: &[&str] = &["request", "duration"];
/// `request.protocol`: `HTTP/1.1`, `HTTP/2`, …
pub const REQUEST_PROTOCOL: &[&str] = &["request", "protocol"];
/// `response.code`.
pub const RESPONSE_CODE: &[&str] = &["response", "code"];
/// `source.address`: the downstream peer.
pub const SOURCE_ADDRESS: &[&str] = &["source", "address"];
/// `upstream.address`: the upstream host; only once the router chose one.
pub const UPSTREAM_ADDRESS: &[&str] = &["upstream", "address"];
/// `upstream.local_address`: our end of the upstream connection.
pub const UPSTREAM_LOCAL_ADDRESS: &[&str] = &["upstream", "local_address"];
/// `xds.listener_direction`: 1 inbound, 2 outbound.
pub const LISTENER_DIRECTION: &[&str] = &["xds", "listener_direction"];

/// Envoy's listener direction.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ListenerDirection {
    /// Traffic into the workload.
    Inbound,
    /// Traffic from the workload.
    Outbound,
}

/// An 8-byte little-endian integer.
pub fn decode_i64(bytes: &[u8]) -> Option<i64> {
    Some(i64::from_le_bytes(bytes.try_into().ok()?))
}

/// An `ip:port` or `[ipv6]:port` address.
pub fn decode_address(bytes: &[u8]) -> Option<(String, u16)> {
    let text = core::str::from_utf8(bytes).ok()?;
    let (host, port) = text.rsplit_once(':')?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if host.is_empty() {
        return None;
    }
    Some((host.to_owned(), port.parse().ok()?))
}

fn read(path: &[&str]) -> Option<Vec<u8>> {
    hostcall::property(path).ok().flatten()
}

/// An integer property.
pub fn integer(path: &[&str]) -> Option<i64> {
    read(path).as_deref().and_then(decode_i64)
}

/// A string property.
pub fn string(path: &[&str]) -> Option<String> {
    read(path).and_then(|bytes| String::from_utf8(bytes).ok())
}

/// An address property.
pub fn address(path: &[&str]) -> Option<(String, u16)> {
    read(path).as_deref().and_then(decode_address)
}

/// The listener direction, when Envoy reports one.
pub fn listener_direction() -> Option<ListenerDirection> {
    match integer(LISTENER_DIRECTION)? {
        1 => Some(ListenerDirection::Inbound),
        2 => Some(ListenerDirection::Outbound),
        _ => None,
    }
}

/// A string value of the node metadata (`xds.node.metadata.<key>`).
pub fn node_metadata(key: &str) -> Option<String> {
    string(&["xds", "node", "metadata", key]).filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_envoy_encodings() {
        assert_eq!(decode_i64(&503i64.to_le_bytes()), Some(503));
        assert_eq!(decode_i64(&[1, 2, 3]), None);
        assert_eq!(
            decode_address(b"10.0.0.7:8080"),
            Some(("10.0.0.7".into(), 8080))
        );
        assert_eq!(
            decode_address(b"[1:23::ef]:32000"),
            Some(("1:23::ef".into(), 32000))
        );
        assert_eq!(decode_address(b"10.0.0.7"), None);
        assert_eq!(decode_address(b":80"), None);
        assert_eq!(decode_address(b"h:99999"), None);
        assert_eq!(decode_address(&[0xff, b':', b'1']), None);
    }
}
