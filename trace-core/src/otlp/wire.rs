//! Protobuf wire format primitives.

const VARINT: u8 = 0;
const FIXED64: u8 = 1;
const LEN: u8 = 2;
const FIXED32: u8 = 5;

fn varint(buf: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        buf.push((value as u8) | 0x80);
        value >>= 7;
    }
    buf.push(value as u8);
}

/// The varint encoding of `value`, on the stack, and its length.
fn varint_bytes(mut value: u64) -> ([u8; 10], usize) {
    let mut bytes = [0u8; 10];
    let mut len = 0;
    for slot in bytes.iter_mut() {
        len += 1;
        if value < 0x80 {
            *slot = value as u8;
            break;
        }
        *slot = (value as u8) | 0x80;
        value >>= 7;
    }
    (bytes, len)
}

fn key(buf: &mut Vec<u8>, field: u32, wire_type: u8) {
    varint(buf, u64::from(field << 3 | u32::from(wire_type)));
}

/// How many bytes the varint encoding of `value` takes.
pub fn varint_len(value: u64) -> usize {
    // One byte per started group of 7 bits; 0 still takes a byte.
    (64 - (value | 1).leading_zeros() as usize).div_ceil(7)
}

/// How many bytes a length-delimited field of `len` bytes takes, with its key and length.
pub fn delimited_len(field: u32, len: usize) -> usize {
    varint_len(u64::from(field << 3)) + varint_len(len as u64) + len
}

/// The key and length of a length-delimited field whose `len` bytes the caller writes next.
pub fn delimited_header(buf: &mut Vec<u8>, field: u32, len: usize) {
    key(buf, field, LEN);
    varint(buf, len as u64);
}

/// A `bytes` or `string` field, omitted when empty (proto3 default).
pub fn bytes(buf: &mut Vec<u8>, field: u32, data: &[u8]) {
    if !data.is_empty() {
        oneof_bytes(buf, field, data);
    }
}

/// A `bytes` or `string` member of a `oneof`, written even when empty.
pub fn oneof_bytes(buf: &mut Vec<u8>, field: u32, data: &[u8]) {
    key(buf, field, LEN);
    varint(buf, data.len() as u64);
    buf.extend_from_slice(data);
}

/// A varint field (uint32, uint64, int64, enum, bool), omitted when zero.
pub fn uint(buf: &mut Vec<u8>, field: u32, value: u64) {
    if value != 0 {
        oneof_uint(buf, field, value);
    }
}

/// A varint member of a `oneof`, written even when zero.
pub fn oneof_uint(buf: &mut Vec<u8>, field: u32, value: u64) {
    key(buf, field, VARINT);
    varint(buf, value);
}

/// A `fixed64` or `double` field, written as is.
pub fn fixed64(buf: &mut Vec<u8>, field: u32, value: u64) {
    key(buf, field, FIXED64);
    buf.extend_from_slice(&value.to_le_bytes());
}

/// A `fixed32` field, omitted when zero.
pub fn fixed32(buf: &mut Vec<u8>, field: u32, value: u32) {
    if value != 0 {
        key(buf, field, FIXED32);
        buf.extend_from_slice(&value.to_le_bytes());
    }
}

/// An embedded message written by `body`, in one pass: a one-byte length is reserved and
/// widened afterwards when the body is 128 bytes or more. Small messages (attributes, events,
/// links, the resource) fit the byte; a span body and a whole request are usually longer, and
/// pay one move of their bytes instead of a second pass to size them.
pub fn message(buf: &mut Vec<u8>, field: u32, body: impl FnOnce(&mut Vec<u8>)) {
    key(buf, field, LEN);
    let len_at = buf.len();
    buf.push(0);
    let start = buf.len();
    body(buf);
    let (prefix, prefix_len) = varint_bytes((buf.len() - start) as u64);
    let prefix = prefix.get(..prefix_len).unwrap_or_default();
    if let [byte] = prefix {
        if let Some(slot) = buf.get_mut(len_at) {
            *slot = *byte;
        }
    } else {
        // Widen the reserved byte: move the body up and write the whole length before it.
        let end = buf.len();
        buf.resize(end + prefix.len() - 1, 0);
        buf.copy_within(start..end, len_at + prefix.len());
        if let Some(slots) = buf.get_mut(len_at..len_at + prefix.len()) {
            slots.copy_from_slice(prefix);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_match_the_protobuf_examples() {
        let mut buf = Vec::new();
        varint(&mut buf, 150);
        assert_eq!(buf, [0x96, 0x01]);
        buf.clear();
        varint(&mut buf, u64::MAX);
        assert_eq!(buf.len(), 10);
    }

    #[test]
    fn varint_lengths_match_the_encoding() {
        for value in [
            0,
            1,
            127,
            128,
            16_383,
            16_384,
            u64::from(u32::MAX),
            u64::MAX,
        ] {
            let mut buf = Vec::new();
            varint(&mut buf, value);
            assert_eq!(varint_len(value), buf.len(), "{value}");
        }
    }

    #[test]
    fn long_messages_get_a_wide_length() {
        let mut buf = Vec::new();
        message(&mut buf, 1, |b| b.extend_from_slice(&[7; 300]));
        assert_eq!(&buf[..3], &[0x0a, 0xac, 0x02]);
        assert_eq!(buf.len(), 303);
        buf.clear();
        message(&mut buf, 1, |b| b.extend_from_slice(&[7; 20_000]));
        assert_eq!(&buf[..4], &[0x0a, 0xa0, 0x9c, 0x01]);
        assert_eq!(buf.len(), 20_004);
        assert!(buf[4..].iter().all(|&b| b == 7));
        buf.clear();
        message(&mut buf, 2, |b| b.extend_from_slice(&[7; 3]));
        assert_eq!(buf, [0x12, 3, 7, 7, 7]);
    }
}
