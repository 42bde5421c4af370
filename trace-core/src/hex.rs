//! Lowercase hexadecimal, as W3C Trace Context and B3 require it.
//!
//! Decoding accepts lowercase only: both specifications define IDs as lowercase hex, and an
//! uppercase ID is a malformed header, not a variant to normalise.

const INVALID: u8 = 0xff;

/// Value of each ASCII byte as a lowercase hex digit, or `INVALID`.
#[allow(
    clippy::indexing_slicing,
    reason = "indices are below 256 by construction"
)]
const DECODE: [u8; 256] = {
    let mut table = [INVALID; 256];
    let mut i = 0;
    while i < 10 {
        table[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        table[b'a' as usize + i] = 10 + i as u8;
        i += 1;
    }
    table
};

const ENCODE: &[u8; 16] = b"0123456789abcdef";

/// Decodes exactly `2 * N` lowercase hex digits into `N` bytes.
///
/// Returns `None` for any other length or any byte that is not `[0-9a-f]`.
#[inline]
#[allow(
    clippy::indexing_slicing,
    reason = "a u8 always indexes the 256-entry table"
)]
pub fn decode<const N: usize>(src: &[u8]) -> Option<[u8; N]> {
    if src.len() != 2 * N {
        return None;
    }
    let mut out = [0u8; N];
    for (byte, pair) in out.iter_mut().zip(src.chunks_exact(2)) {
        let &[hi, lo] = pair else { return None };
        let (hi, lo) = (DECODE[usize::from(hi)], DECODE[usize::from(lo)]);
        if hi == INVALID || lo == INVALID {
            return None;
        }
        *byte = (hi << 4) | lo;
    }
    Some(out)
}

/// Decodes one lowercase hex digit.
#[inline]
#[allow(
    clippy::indexing_slicing,
    reason = "a u8 always indexes the 256-entry table"
)]
pub fn digit(byte: u8) -> Option<u8> {
    match DECODE[usize::from(byte)] {
        INVALID => None,
        value => Some(value),
    }
}

/// Encodes `src` as lowercase hex into `dst`, which must be exactly twice as long.
///
/// Returns `false`, writing nothing, when the lengths do not match.
#[inline]
#[allow(
    clippy::indexing_slicing,
    reason = "a nibble always indexes the 16-entry table"
)]
pub fn encode_into(src: &[u8], dst: &mut [u8]) -> bool {
    if dst.len() != 2 * src.len() {
        return false;
    }
    for (byte, pair) in src.iter().zip(dst.chunks_exact_mut(2)) {
        if let [hi, lo] = pair {
            *hi = ENCODE[usize::from(byte >> 4)];
            *lo = ENCODE[usize::from(byte & 0x0f)];
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_lowercase_only() {
        assert_eq!(decode::<2>(b"0aff"), Some([0x0a, 0xff]));
        assert_eq!(decode::<2>(b"0AFF"), None);
        assert_eq!(decode::<2>(b"0af"), None);
        assert_eq!(decode::<2>(b"0afg"), None);
        assert_eq!(decode::<1>(b"-1"), None);
    }

    #[test]
    fn encodes_lowercase() {
        let mut out = [0u8; 4];
        assert!(encode_into(&[0xab, 0x01], &mut out));
        assert_eq!(&out, b"ab01");
        assert!(!encode_into(&[0xab], &mut out));
    }
}
