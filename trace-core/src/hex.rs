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
/// Returns `None` for any other length or any byte that is not `[0-9a-f]`. Eight digits at a
/// time are decoded as one 64-bit word ([`decode8`]); the rest go through a lookup table.
#[inline]
pub fn decode<const N: usize>(src: &[u8]) -> Option<[u8; N]> {
    if src.len() != 2 * N {
        return None;
    }
    let mut out = [0u8; N];
    // Every word's invalid lanes are gathered and checked once: no branch per word.
    let mut invalid = 0u64;
    let words = N / 4;
    for k in 0..words {
        let digits: [u8; 8] = src.get(8 * k..8 * k + 8)?.try_into().ok()?;
        let (bytes, bad) = decode_word(digits);
        out.get_mut(4 * k..4 * k + 4)?.copy_from_slice(&bytes);
        invalid |= bad;
    }
    decode_pairs(src.get(8 * words..)?, out.get_mut(4 * words..)?)?;
    (invalid == 0).then_some(out)
}

/// The same rule byte pair by byte pair, through the table: the reference for [`decode8`].
#[allow(
    clippy::indexing_slicing,
    reason = "a u8 always indexes the 256-entry table"
)]
fn decode_pairs(src: &[u8], out: &mut [u8]) -> Option<()> {
    // Branch-free: invalid digits decode to 0xff, whose high bit is checked once at the end.
    let mut invalid = 0u8;
    for (byte, pair) in out.iter_mut().zip(src.chunks_exact(2)) {
        if let &[hi, lo] = pair {
            let (hi, lo) = (DECODE[usize::from(hi)], DECODE[usize::from(lo)]);
            invalid |= hi | lo;
            *byte = (hi << 4) | (lo & 0x0f);
        }
    }
    (invalid & 0x80 == 0).then_some(())
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGH: u64 = 0x8080_8080_8080_8080;

/// The high bit of each byte lane of `word` is set where that byte is `>= bound`. Only valid
/// for bytes below 0x80, which the caller checks: setting every high bit first stops a borrow
/// from crossing into the next lane.
#[inline]
const fn at_least(word: u64, bound: u8) -> u64 {
    ((word | HIGH).wrapping_sub(ONES * bound as u64)) & HIGH
}

/// Decodes 8 lowercase hex digits into 4 bytes with 64-bit arithmetic (SWAR).
#[inline]
pub fn decode8(digits: [u8; 8]) -> Option<[u8; 4]> {
    let (bytes, bad) = decode_word(digits);
    (bad == 0).then_some(bytes)
}

/// [`decode8`] without the branch: the bytes, and a mask whose high bit is set in each lane
/// that was not a lowercase hex digit (zero when all were).
#[inline]
fn decode_word(digits: [u8; 8]) -> ([u8; 4], u64) {
    let word = u64::from_le_bytes(digits);
    let digit = at_least(word, b'0') & !at_least(word, b'9' + 1);
    let letter = at_least(word, b'a') & !at_least(word, b'f' + 1);
    // A lane with its own high bit set is no ASCII at all; otherwise it must be one of the two.
    let bad = (word & HIGH) | ((digit | letter) ^ HIGH);
    // '0'..'9' keep their low nibble; 'a'..'f' have low nibbles 1..6, so add 9.
    let nibbles = (word & (ONES * 0x0f)) + (letter >> 7) * 9;
    // Lane k holds the k-th digit; output byte j is digit 2j (high) and digit 2j+1 (low).
    let even = nibbles & 0x00ff_00ff_00ff_00ff;
    let odd = (nibbles >> 8) & 0x00ff_00ff_00ff_00ff;
    let pairs = (even << 4) | odd;
    let pairs = (pairs | (pairs >> 8)) & 0x0000_ffff_0000_ffff;
    let pairs = (pairs | (pairs >> 16)) & 0xffff_ffff;
    ((pairs as u32).to_le_bytes(), bad)
}

/// Encodes 4 bytes as 8 lowercase hex digits with 64-bit arithmetic (SWAR).
#[inline]
fn encode_word(bytes: [u8; 4]) -> [u8; 8] {
    // Spread each byte's two nibbles into two lanes, high nibble first.
    let x = u64::from(u32::from_le_bytes(bytes));
    let x = (x | (x << 16)) & 0x0000_ffff_0000_ffff;
    let x = (x | (x << 8)) & 0x00ff_00ff_00ff_00ff;
    let nibbles = ((x >> 4) & (ONES * 0x0f)) | ((x & (ONES * 0x0f)) << 8);
    // A lane of 10 or more becomes a letter: 0x76 + 10 sets its high bit.
    let letters = ((nibbles + ONES * 0x76) & HIGH) >> 7;
    (nibbles + ONES * u64::from(b'0') + letters * u64::from(b'a' - b'0' - 10)).to_le_bytes()
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
    let mut words = src.chunks_exact(4);
    let mut outputs = dst.chunks_exact_mut(8);
    for (word, output) in words.by_ref().zip(outputs.by_ref()) {
        output.copy_from_slice(&encode_word(word.try_into().unwrap_or([0; 4])));
    }
    for (byte, pair) in words
        .remainder()
        .iter()
        .zip(outputs.into_remainder().chunks_exact_mut(2))
    {
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
    fn word_decoding_agrees_with_the_table_for_every_byte() {
        for bad in 0..=255u8 {
            for position in 0..8 {
                let mut digits = *b"0123abcd";
                digits[position] = bad;
                let mut expected = [0u8; 4];
                let table = decode_pairs(&digits, &mut expected).map(|()| expected);
                assert_eq!(decode8(digits), table, "byte {bad:#x} at {position}");
            }
        }
        assert_eq!(decode8(*b"deadbeef"), Some([0xde, 0xad, 0xbe, 0xef]));
        assert_eq!(decode8(*b"09afAF00"), None);
    }

    #[test]
    fn word_encoding_agrees_with_the_table() {
        for value in [
            0u32,
            1,
            0x0123_4567,
            0x89ab_cdef,
            0xffff_ffff,
            0xa0b0_c0d0,
            0x1f2e_3d4c,
        ] {
            let bytes = value.to_be_bytes();
            let expected = format!("{value:08x}");
            assert_eq!(&encode_word(bytes), expected.as_bytes());
        }
    }

    #[test]
    fn encodes_lowercase() {
        let mut out = [0u8; 4];
        assert!(encode_into(&[0xab, 0x01], &mut out));
        assert_eq!(&out, b"ab01");
        assert!(!encode_into(&[0xab], &mut out));
    }
}
