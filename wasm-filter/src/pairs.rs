//! The proxy-wasm "pairs" encoding of header maps: a u32 count, a u32 key length and a u32
//! value length per pair, then `key\0value\0` per pair, all little-endian.
//!
//! Decoding is bounded and checked: a malformed map from a host is refused, never indexed
//! out of range.

/// The most pairs a map may declare; Envoy's own limit on headers is lower.
pub const MAX_PAIRS: usize = 1024;

/// One decoded pair. Names are lossily UTF-8 (a name that is not cannot match ours anyway);
/// values stay bytes, because a header value need not be UTF-8.
pub type Pair = (String, Vec<u8>);

/// Decodes a serialized map, or `None` when it is malformed.
pub fn decode(bytes: &[u8]) -> Option<Vec<Pair>> {
    let count = read_u32(bytes, 0)? as usize;
    if count > MAX_PAIRS {
        return None;
    }
    let mut data = 4 + 8 * count;
    let mut pairs = Vec::with_capacity(count);
    for i in 0..count {
        let key_len = read_u32(bytes, 4 + 8 * i)? as usize;
        let value_len = read_u32(bytes, 8 + 8 * i)? as usize;
        let key = bytes.get(data..data.checked_add(key_len)?)?;
        data += key_len + 1;
        let value = bytes.get(data..data.checked_add(value_len)?)?;
        data += value_len + 1;
        pairs.push((String::from_utf8_lossy(key).into_owned(), value.to_vec()));
    }
    Some(pairs)
}

/// Encodes pairs, for the tests and the benchmark host.
pub fn encode<K: AsRef<[u8]>, V: AsRef<[u8]>>(pairs: &[(K, V)]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&(pairs.len() as u32).to_le_bytes());
    for (key, value) in pairs {
        out.extend_from_slice(&(key.as_ref().len() as u32).to_le_bytes());
        out.extend_from_slice(&(value.as_ref().len() as u32).to_le_bytes());
    }
    for (key, value) in pairs {
        out.extend_from_slice(key.as_ref());
        out.push(0);
        out.extend_from_slice(value.as_ref());
        out.push(0);
    }
    out
}

fn read_u32(bytes: &[u8], at: usize) -> Option<u32> {
    let word = bytes.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes(word.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let pairs = [(":method", &b"GET"[..]), ("x-bin", &[0xff, 0x00, 0x80][..])];
        let decoded = decode(&encode(&pairs)).unwrap();
        assert_eq!(decoded[0], (":method".to_string(), b"GET".to_vec()));
        assert_eq!(decoded[1].1, vec![0xff, 0x00, 0x80]);
        assert_eq!(decode(&encode::<&str, &str>(&[])), Some(vec![]));
    }

    #[test]
    fn refuses_malformed_maps() {
        let good = encode(&[("a", "b")]);
        for cut in 0..good.len() - 1 {
            assert_eq!(decode(&good[..cut]), None, "cut at {cut}");
        }
        let mut huge = good.clone();
        huge[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(decode(&huge), None);
        assert_eq!(decode(&(MAX_PAIRS as u32 + 1).to_le_bytes()), None);
    }
}
