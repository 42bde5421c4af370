//! Trace and span identifiers, and the generator that makes them.

use core::fmt;

use crate::hex;

/// A 16-byte trace ID. The all-zero value is invalid on the wire.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct TraceId([u8; 16]);

/// An 8-byte span ID. The all-zero value is invalid on the wire.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct SpanId([u8; 8]);

macro_rules! id_type {
    ($name:ident, $len:literal) => {
        impl $name {
            /// The all-zero ID, which no valid context carries.
            pub const INVALID: Self = Self([0; $len]);

            /// Wraps raw bytes.
            pub const fn from_bytes(bytes: [u8; $len]) -> Self {
                Self(bytes)
            }

            /// The raw bytes.
            pub const fn to_bytes(self) -> [u8; $len] {
                self.0
            }

            /// The raw bytes, borrowed.
            pub const fn as_bytes(&self) -> &[u8; $len] {
                &self.0
            }

            /// True unless every byte is zero.
            pub fn is_valid(&self) -> bool {
                self.0 != [0; $len]
            }

            /// Parses exactly the lowercase hex form. Does not check validity.
            pub fn from_hex(src: &[u8]) -> Option<Self> {
                hex::decode::<$len>(src).map(Self)
            }

            /// The lowercase hex form, as ASCII bytes, without allocating.
            pub fn to_hex(&self) -> [u8; 2 * $len] {
                let mut out = [0u8; 2 * $len];
                hex::encode_into(&self.0, &mut out);
                out
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                let hex = self.to_hex();
                // to_hex only ever writes ASCII hex digits.
                f.write_str(core::str::from_utf8(&hex).map_err(|_| fmt::Error)?)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({self})", stringify!($name))
            }
        }
    };
}

id_type!(TraceId, 16);
id_type!(SpanId, 8);

impl TraceId {
    /// The 56 least-significant bits, which W3C Level 2 makes random when the random flag is
    /// set, and which OpenTelemetry consistent sampling uses as its randomness.
    pub fn randomness(&self) -> u64 {
        let [.., b9, b10, b11, b12, b13, b14, b15] = self.0;
        u64::from_be_bytes([0, b9, b10, b11, b12, b13, b14, b15])
    }
}

/// Makes random trace and span IDs from a fast, non-cryptographic generator (wyrand).
///
/// trace-core does no I/O, so the caller seeds it from real entropy once (the OS on a host,
/// whatever the proxy-wasm host offers in a filter). IDs it makes are never all-zero, and every
/// bit of a trace ID is random, which is what the W3C Level 2 random flag promises.
#[derive(Debug, Clone)]
pub struct IdGenerator {
    rng: fastrand::Rng,
}

impl IdGenerator {
    /// A generator seeded with `seed`.
    pub fn from_seed(seed: u64) -> Self {
        Self {
            rng: fastrand::Rng::with_seed(seed),
        }
    }

    /// A new random, valid trace ID.
    pub fn trace_id(&mut self) -> TraceId {
        loop {
            let bytes = self.rng.u128(..).to_be_bytes();
            let id = TraceId(bytes);
            if id.is_valid() {
                return id;
            }
        }
    }

    /// A random number from the same generator, for anything else that needs one (the
    /// jitter of a retry delay).
    pub fn random(&mut self) -> u64 {
        self.rng.u64(..)
    }

    /// A new random, valid span ID.
    pub fn span_id(&mut self) -> SpanId {
        loop {
            let id = SpanId(self.rng.u64(..).to_be_bytes());
            if id.is_valid() {
                return id;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip() {
        let id = TraceId::from_hex(b"4bf92f3577b34da6a3ce929d0e0e4736").unwrap();
        assert_eq!(&id.to_hex(), b"4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(id.to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
        let span = SpanId::from_hex(b"00f067aa0ba902b7").unwrap();
        assert_eq!(span.to_string(), "00f067aa0ba902b7");
    }

    #[test]
    fn invalid_is_all_zero() {
        assert!(!TraceId::INVALID.is_valid());
        assert!(!SpanId::from_hex(b"0000000000000000").unwrap().is_valid());
    }

    #[test]
    fn randomness_is_low_56_bits() {
        let id = TraceId::from_hex(b"ffffffffffffffffff0102030405060a").unwrap();
        assert_eq!(id.randomness(), 0x0001_0203_0405_060a);
    }

    #[test]
    fn generated_ids_are_valid_and_distinct() {
        let mut ids = IdGenerator::from_seed(7);
        let a = ids.trace_id();
        let b = ids.trace_id();
        assert!(a.is_valid() && b.is_valid());
        assert_ne!(a, b);
        assert_ne!(ids.span_id(), ids.span_id());
    }
}
