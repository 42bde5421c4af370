//! The OpenTelemetry Collector probabilistic sampler's `hash_seed` mode, bit for bit.
//!
//! It hashes the seed's 4 little-endian bytes and then the 16 trace-ID bytes with 32-bit FNV-1a,
//! keeps the low 14 bits, and samples when they are below `uint32(percentage * 163.84)`, the
//! product taken in 32-bit float and truncated. Agents that share a seed and a percentage keep
//! exactly the same traces as each other and as a Collector configured the same way.

use crate::id::TraceId;

const FNV_OFFSET_BASIS: u32 = 0x811c_9dc5;
const FNV_PRIME: u32 = 0x0100_0193;
const HASH_BUCKETS_MASK: u32 = 0x3fff;
/// 2^14 buckets / 100 percent, as the Collector computes it in 32-bit float.
const PERCENT_TO_BUCKETS: f32 = 163.84;

/// A `hash_seed` sampler.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct HashSeedSampler {
    /// FNV-1a state after the seed bytes, so each decision hashes only the trace ID.
    seeded: u32,
    /// Buckets below this are sampled; 0 samples nothing, 16384 everything.
    scaled_rate: u32,
}

impl HashSeedSampler {
    /// A sampler for `percentage` in `[0, 100]` (callers validate it) and `seed`.
    pub fn new(percentage: f32, seed: u32) -> Self {
        // `as` saturates, so a percentage outside [0, 100] cannot wrap around.
        let scaled_rate = (percentage.clamp(0.0, 100.0) * PERCENT_TO_BUCKETS) as u32;
        Self {
            seeded: fnv1a(FNV_OFFSET_BASIS, &seed.to_le_bytes()),
            scaled_rate,
        }
    }

    /// Whether the Collector would keep this trace.
    #[inline]
    pub fn should_sample(&self, trace_id: &TraceId) -> bool {
        fnv1a(self.seeded, trace_id.as_bytes()) & HASH_BUCKETS_MASK < self.scaled_rate
    }
}

#[inline]
fn fnv1a(mut hash: u32, bytes: &[u8]) -> u32 {
    for byte in bytes {
        hash ^= u32::from(*byte);
        hash = hash.wrapping_mul(FNV_PRIME);
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a_matches_the_published_test_vectors() {
        assert_eq!(fnv1a(FNV_OFFSET_BASIS, b""), 0x811c_9dc5);
        assert_eq!(fnv1a(FNV_OFFSET_BASIS, b"a"), 0xe40c_292c);
        assert_eq!(fnv1a(FNV_OFFSET_BASIS, b"foobar"), 0xbf9c_f968);
    }

    #[test]
    fn rate_is_computed_in_32_bit_float() {
        // 33.33f32 * 163.84f32 rounds to 5460.787 in f32; truncation gives 5460.
        assert_eq!(HashSeedSampler::new(33.33, 0).scaled_rate, 5460);
        assert_eq!(HashSeedSampler::new(100.0, 0).scaled_rate, 16384);
        assert_eq!(HashSeedSampler::new(0.0, 0).scaled_rate, 0);
    }

    #[test]
    fn extremes_keep_all_or_nothing() {
        let all = HashSeedSampler::new(100.0, 42);
        let none = HashSeedSampler::new(0.0, 42);
        let mut ids = crate::id::IdGenerator::from_seed(1);
        for _ in 0..1000 {
            let id = ids.trace_id();
            assert!(all.should_sample(&id));
            assert!(!none.should_sample(&id));
        }
    }
}
