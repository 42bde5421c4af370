//! The `traceparent` header: `version-traceid-parentid-flags`.

use core::fmt;

use crate::context::TraceFlags;
use crate::hex;
use crate::id::{SpanId, TraceId};

use super::trim_ows;

/// Length of a version `00` traceparent, and the minimum length of any version.
pub const TRACEPARENT_LEN: usize = 55;

/// A parsed `traceparent`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct TraceParent {
    /// The trace ID; never all-zero once parsed.
    pub trace_id: TraceId,
    /// The caller's span ID; never all-zero once parsed.
    pub parent_id: SpanId,
    /// The known flags (sampled, random).
    pub flags: TraceFlags,
}

/// Why a `traceparent` value was rejected. Each one means "start a new trace".
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum TraceParentError {
    /// More than one `traceparent` header arrived.
    Duplicated,
    /// Shorter than 55 bytes, or version 00 with any other length.
    Length,
    /// The version is not two lowercase hex digits, or is `ff`.
    Version,
    /// The trace ID is malformed or all-zero.
    TraceId,
    /// The parent ID is malformed or all-zero.
    ParentId,
    /// The flags are not two lowercase hex digits.
    Flags,
    /// A separator is missing, or a future version's extra data does not start with `-`.
    Separator,
}

impl fmt::Display for TraceParentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Duplicated => "more than one traceparent header",
            Self::Length => "traceparent has the wrong length",
            Self::Version => "traceparent version is invalid",
            Self::TraceId => "traceparent trace-id is invalid",
            Self::ParentId => "traceparent parent-id is invalid",
            Self::Flags => "traceparent trace-flags are invalid",
            Self::Separator => "traceparent separator is missing",
        })
    }
}

impl std::error::Error for TraceParentError {}

impl TraceParent {
    /// Parses one header value, following every rule of the specification: optional whitespace
    /// around the value is ignored, version `ff` is invalid, version `00` must be exactly 55
    /// bytes, and a higher version is read by its version-00 prefix when what follows it starts
    /// with `-`.
    pub fn parse(value: &[u8]) -> Result<Self, TraceParentError> {
        let value = trim_ows(value);
        let fixed = value
            .get(..TRACEPARENT_LEN)
            .ok_or(TraceParentError::Length)?;
        let &[v0, v1, sep0, ..] = fixed else {
            return Err(TraceParentError::Length);
        };
        let version = match (hex::digit(v0), hex::digit(v1)) {
            (Some(hi), Some(lo)) => (hi << 4) | lo,
            _ => return Err(TraceParentError::Version),
        };
        if version == 0xff {
            return Err(TraceParentError::Version);
        }
        match value.get(TRACEPARENT_LEN) {
            None => {}
            Some(_) if version == 0 => return Err(TraceParentError::Length),
            Some(b'-') => {}
            Some(_) => return Err(TraceParentError::Separator),
        }
        if sep0 != b'-' || fixed.get(35) != Some(&b'-') || fixed.get(52) != Some(&b'-') {
            return Err(TraceParentError::Separator);
        }
        let trace_id = fixed
            .get(3..35)
            .and_then(TraceId::from_hex)
            .filter(TraceId::is_valid)
            .ok_or(TraceParentError::TraceId)?;
        let parent_id = fixed
            .get(36..52)
            .and_then(SpanId::from_hex)
            .filter(SpanId::is_valid)
            .ok_or(TraceParentError::ParentId)?;
        let [flags] = fixed
            .get(53..55)
            .and_then(hex::decode::<1>)
            .ok_or(TraceParentError::Flags)?;
        Ok(Self {
            trace_id,
            parent_id,
            flags: TraceFlags::from_wire(flags),
        })
    }

    /// The version-00 header value, written without allocating.
    pub fn to_bytes(&self) -> [u8; TRACEPARENT_LEN] {
        let mut out = [b'-'; TRACEPARENT_LEN];
        let (version, rest) = out.split_at_mut(2);
        version.copy_from_slice(b"00");
        let (_, rest) = rest.split_at_mut(1);
        let (trace, rest) = rest.split_at_mut(32);
        hex::encode_into(self.trace_id.as_bytes(), trace);
        let (_, rest) = rest.split_at_mut(1);
        let (parent, rest) = rest.split_at_mut(16);
        hex::encode_into(self.parent_id.as_bytes(), parent);
        let (_, flags) = rest.split_at_mut(1);
        hex::encode_into(&[self.flags.to_wire()], flags);
        out
    }
}

impl fmt::Display for TraceParent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bytes = self.to_bytes();
        f.write_str(core::str::from_utf8(&bytes).map_err(|_| fmt::Error)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALID: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn parses_the_specification_example() {
        let tp = TraceParent::parse(VALID.as_bytes()).unwrap();
        assert_eq!(tp.trace_id.to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(tp.parent_id.to_string(), "00f067aa0ba902b7");
        assert!(tp.flags.is_sampled());
        assert!(!tp.flags.is_random());
        assert_eq!(tp.to_string(), VALID);
    }

    #[test]
    fn keeps_the_random_flag_and_drops_unknown_ones() {
        let tp =
            TraceParent::parse(b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-ff").unwrap();
        assert_eq!(tp.flags.to_wire(), 0x03);
        assert!(tp.to_string().ends_with("-03"));
    }

    #[test]
    fn rejects_each_malformed_part() {
        use TraceParentError::*;
        let cases: &[(&str, TraceParentError)] = &[
            ("", Length),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0",
                Length,
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-",
                Length,
            ),
            (
                "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                Version,
            ),
            (
                "0A-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                Version,
            ),
            (
                "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
                TraceId,
            ),
            (
                "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
                TraceId,
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
                ParentId,
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0g",
                Flags,
            ),
            (
                "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                Separator,
            ),
            (
                "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01.x",
                Separator,
            ),
        ];
        for (value, error) in cases {
            assert_eq!(TraceParent::parse(value.as_bytes()), Err(*error), "{value}");
        }
    }

    #[test]
    fn reads_future_versions_by_their_prefix() {
        let tp = TraceParent::parse(
            b"cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-the-future-will-be",
        )
        .unwrap();
        assert_eq!(tp.trace_id.to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert!(tp.to_string().starts_with("00-"));
    }
}
