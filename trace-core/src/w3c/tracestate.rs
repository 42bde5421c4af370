//! The `tracestate` header: an ordered list of up to 32 `key=value` vendor members.

use core::fmt;

use super::trim_ows;

/// The most list members a `tracestate` may carry.
pub const MAX_MEMBERS: usize = 32;

/// The most bytes of `tracestate` input (all header values together) that are read. The longest
/// valid list is 32 members of 513 bytes plus commas, about 16 KiB; anything longer than this
/// bound is an attack or a bug, and is discarded without being scanned.
pub const MAX_TRACESTATE_INPUT: usize = 32 * 1024;

const MAX_KEY: usize = 256;
const MAX_VALUE: usize = 256;

/// A validated `tracestate`, kept in its canonical form (no whitespace, no empty members).
///
/// A key that appears more than once is kept as it came: the specification makes unique keys
/// the sender's duty and has the receiver propagate the list, not discard it. Lookups see the
/// left-most member of a key, the one its vendor last wrote.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct TraceState {
    header: String,
}

/// Why a `tracestate` was discarded. The specification says a vendor that cannot parse it
/// must not propagate any of it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum TraceStateError {
    /// The combined values exceed [`MAX_TRACESTATE_INPUT`].
    TooLong,
    /// More than [`MAX_MEMBERS`] list members.
    TooManyMembers,
    /// A list member has no `=`.
    MissingEquals,
    /// A key breaks the key grammar or its length limits.
    Key,
    /// A value is empty, too long, or has a character outside the value grammar.
    Value,
}

impl fmt::Display for TraceStateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::TooLong => "tracestate is too long",
            Self::TooManyMembers => "tracestate has more than 32 members",
            Self::MissingEquals => "tracestate member has no '='",
            Self::Key => "tracestate key is invalid",
            Self::Value => "tracestate value is invalid",
        })
    }
}

impl std::error::Error for TraceStateError {}

impl TraceState {
    /// Parses one header value.
    pub fn parse(value: &[u8]) -> Result<Self, TraceStateError> {
        Self::parse_values(core::iter::once(value))
    }

    /// Parses every `tracestate` value a request carried, in order, as one combined list.
    pub fn parse_values<'a>(
        values: impl Iterator<Item = &'a [u8]>,
    ) -> Result<Self, TraceStateError> {
        let mut header = String::new();
        let mut count = 0;
        let mut input = 0;
        for value in values {
            input += value.len();
            if input > MAX_TRACESTATE_INPUT {
                return Err(TraceStateError::TooLong);
            }
            for member in value.split(|b| *b == b',').map(trim_ows) {
                if member.is_empty() {
                    continue;
                }
                let (key, value) = split_member(member)?;
                count += 1;
                if count > MAX_MEMBERS {
                    return Err(TraceStateError::TooManyMembers);
                }
                if !header.is_empty() {
                    header.push(',');
                }
                header.push_str(key);
                header.push('=');
                header.push_str(value);
            }
        }
        Ok(Self { header })
    }

    /// The value of `key`'s left-most member, if there is one.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.members().find(|(k, _)| *k == key).map(|(_, v)| v)
    }

    /// The members in order, as `(key, value)`.
    pub fn members(&self) -> impl Iterator<Item = (&str, &str)> {
        self.header
            .split(',')
            .filter_map(|member| member.split_once('='))
    }

    /// How many members there are.
    pub fn len(&self) -> usize {
        self.members().count()
    }

    /// True when there are no members, in which case no `tracestate` header is sent.
    pub fn is_empty(&self) -> bool {
        self.header.is_empty()
    }

    /// The header value to send.
    pub fn as_str(&self) -> &str {
        &self.header
    }

    /// Puts `key=value` first, replacing every member with that key (a sender may have
    /// duplicated it), as a vendor must when it changes its own entry: the result holds the key
    /// once. When that makes more than 32 members, the right-most are dropped.
    pub fn insert_first(&mut self, key: &str, value: &str) -> Result<(), TraceStateError> {
        if !valid_key(key.as_bytes()) {
            return Err(TraceStateError::Key);
        }
        if !valid_value(value.as_bytes()) {
            return Err(TraceStateError::Value);
        }
        let mut header = String::with_capacity(self.header.len() + key.len() + value.len() + 2);
        header.push_str(key);
        header.push('=');
        header.push_str(value);
        for (k, v) in self
            .members()
            .filter(|(k, _)| *k != key)
            .take(MAX_MEMBERS - 1)
        {
            header.push(',');
            header.push_str(k);
            header.push('=');
            header.push_str(v);
        }
        self.header = header;
        Ok(())
    }

    /// Removes every member with `key`.
    pub fn remove(&mut self, key: &str) {
        if self.get(key).is_none() {
            return;
        }
        let kept: Vec<&str> = self
            .header
            .split(',')
            .filter(|member| member.split_once('=').map(|(k, _)| k) != Some(key))
            .collect();
        self.header = kept.join(",");
    }
}

impl fmt::Debug for TraceState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TraceState({:?})", self.header)
    }
}

impl fmt::Display for TraceState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.header)
    }
}

/// Splits a trimmed member into a validated key and value.
fn split_member(member: &[u8]) -> Result<(&str, &str), TraceStateError> {
    let (key, value) = split_once(member, b'=').ok_or(TraceStateError::MissingEquals)?;
    if !valid_key(key) {
        return Err(TraceStateError::Key);
    }
    if !valid_value(value) {
        return Err(TraceStateError::Value);
    }
    // Both were just checked to be printable ASCII.
    let key = core::str::from_utf8(key).map_err(|_| TraceStateError::Key)?;
    let value = core::str::from_utf8(value).map_err(|_| TraceStateError::Value)?;
    Ok((key, value))
}

/// Splits at the first `separator`, dropping it.
fn split_once(bytes: &[u8], separator: u8) -> Option<(&[u8], &[u8])> {
    let at = bytes.iter().position(|b| *b == separator)?;
    let (head, tail) = bytes.split_at_checked(at)?;
    Some((head, tail.get(1..).unwrap_or_default()))
}

fn is_key_char(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'-' | b'*' | b'/' | b'@')
}

/// `(lcalpha / DIGIT) 0*255(keychar)`. The `@` of the former `tenant@system` form is an
/// ordinary key character now, with no part lengths of its own.
fn valid_key(key: &[u8]) -> bool {
    (1..=MAX_KEY).contains(&key.len())
        && key
            .first()
            .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && key.iter().all(|b| is_key_char(*b))
}

/// `0*255(chr) nblk-chr`: printable ASCII without `,` and `=`, not ending in a space.
fn valid_value(value: &[u8]) -> bool {
    (1..=MAX_VALUE).contains(&value.len())
        && value
            .iter()
            .all(|b| (0x20..=0x7e).contains(b) && *b != b',' && *b != b'=')
        && value.last() != Some(&b' ')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(values: &[&str]) -> Result<TraceState, TraceStateError> {
        TraceState::parse_values(values.iter().map(|v| v.as_bytes()))
    }

    #[test]
    fn parses_the_specification_example() {
        let ts = parse(&["rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"]).unwrap();
        assert_eq!(ts.get("rojo"), Some("00f067aa0ba902b7"));
        assert_eq!(ts.get("congo"), Some("t61rcWkgMzE"));
        assert_eq!(ts.len(), 2);
    }

    #[test]
    fn combines_headers_in_order_and_drops_whitespace_and_empty_members() {
        let ts = parse(&["foo=1 \t , \t bar=2,,", "", " baz=3"]).unwrap();
        assert_eq!(ts.as_str(), "foo=1,bar=2,baz=3");
    }

    #[test]
    fn enforces_the_member_limit() {
        let members: Vec<String> = (1..=32).map(|i| format!("k{i}=v")).collect();
        assert_eq!(parse(&[&members.join(",")]).unwrap().len(), 32);
        let too_many = format!("{},k33=v", members.join(","));
        assert_eq!(parse(&[&too_many]), Err(TraceStateError::TooManyMembers));
    }

    #[test]
    fn enforces_the_key_grammar() {
        let long = "z".repeat(256);
        assert!(parse(&[&format!("{long}=1")]).is_ok());
        assert_eq!(parse(&[&format!("{long}z=1")]), Err(TraceStateError::Key));
        // `@` is a key character like any other: what the old tenant@system form refused (an
        // empty or second part, a tenant over 241 or a system over 14 characters, a system
        // starting with a digit) is a key now, as long as the whole stays within 256.
        let tenant_limits = [
            format!("{}@{}", "t".repeat(241), "v".repeat(14)),
            format!("{}@v", "t".repeat(242)),
            format!("t@{}", "v".repeat(15)),
            format!("{}@", "t".repeat(255)),
        ];
        let short = [
            "foo@",
            "foo@@bar",
            "foo@bar@baz",
            "1special",
            "0",
            "a@1",
            "a@_",
            "a/b*c-d_e",
        ];
        for key in tenant_limits.iter().map(String::as_str).chain(short) {
            let ts = parse(&[&format!("{key}=1")]).unwrap_or_else(|e| panic!("{key}: {e}"));
            assert_eq!(ts.get(key), Some("1"), "{key}");
        }
        for bad in [
            "FOO=1",
            "foo.bar=1",
            "foo =1",
            "@foo=1",
            "_foo=1",
            "*=1",
            "=1",
            "fo\u{e9}=1",
        ] {
            assert_eq!(parse(&[bad]), Err(TraceStateError::Key), "{bad}");
        }
        assert_eq!(parse(&[&format!("{long}@=1")]), Err(TraceStateError::Key));
    }

    #[test]
    fn enforces_the_value_grammar() {
        assert_eq!(parse(&["foo=bar=baz"]), Err(TraceStateError::Value));
        assert_eq!(parse(&["foo=,bar=3"]), Err(TraceStateError::Value));
        assert_eq!(parse(&["foo"]), Err(TraceStateError::MissingEquals));
        assert_eq!(parse(&["foo=a\u{7f}"]), Err(TraceStateError::Value));
        assert!(parse(&["foo= leading-space-is-fine"]).is_ok());
    }

    #[test]
    fn keeps_duplicated_keys_as_received() {
        let ts = parse(&["foo=1,bar=2,foo=3"]).unwrap();
        assert_eq!(ts.as_str(), "foo=1,bar=2,foo=3");
        assert_eq!(ts.get("foo"), Some("1"));
        assert_eq!(ts.len(), 3);
        let ts = parse(&["foo=1", "foo=1"]).unwrap();
        assert_eq!(ts.as_str(), "foo=1,foo=1");
        // Duplicates still count towards the 32 members.
        let same: Vec<&str> = vec!["k=v"; 33];
        assert_eq!(
            parse(&[&same.join(",")]),
            Err(TraceStateError::TooManyMembers)
        );
    }

    #[test]
    fn our_member_replaces_every_duplicate_of_our_key() {
        let mut ts = parse(&["ot=th:8,vendor=x,ot=th:c", "other=1,ot=rv:00"]).unwrap();
        ts.insert_first("ot", "th:f").unwrap();
        assert_eq!(ts.as_str(), "ot=th:f,vendor=x,other=1");
        let mut ts = parse(&["vendor=x,ot=th:8,vendor=y,ot=th:c"]).unwrap();
        ts.remove("ot");
        assert_eq!(ts.as_str(), "vendor=x,vendor=y");
        // 32 members, four of them ours: ours once at the front and the other 28 in order.
        let mut members: Vec<String> = (1..=28).map(|i| format!("k{i}=v")).collect();
        for at in [0, 10, 20, 31] {
            members.insert(at, format!("ot=th:{at}"));
        }
        let mut ts = parse(&[&members.join(",")]).unwrap();
        assert_eq!(ts.len(), 32);
        ts.insert_first("ot", "th:8").unwrap();
        let expected: Vec<String> = std::iter::once("ot=th:8".to_owned())
            .chain((1..=28).map(|i| format!("k{i}=v")))
            .collect();
        assert_eq!(ts.as_str(), expected.join(","));
    }

    #[test]
    fn rejects_oversized_input_before_scanning() {
        let huge = ",".repeat(MAX_TRACESTATE_INPUT + 1);
        assert_eq!(parse(&[&huge]), Err(TraceStateError::TooLong));
    }

    #[test]
    fn insert_first_moves_our_member_to_the_front_and_keeps_the_limit() {
        let members: Vec<String> = (1..=32).map(|i| format!("k{i}=v")).collect();
        let mut ts = parse(&[&members.join(",")]).unwrap();
        ts.insert_first("ot", "th:8").unwrap();
        assert_eq!(ts.len(), 32);
        assert!(ts.as_str().starts_with("ot=th:8,k1=v"));
        assert_eq!(ts.get("k32"), None);
        ts.insert_first("k5", "new").unwrap();
        assert!(ts.as_str().starts_with("k5=new,ot=th:8,k1=v"));
        assert_eq!(ts.len(), 32);
        assert_eq!(ts.insert_first("BAD", "x"), Err(TraceStateError::Key));
        assert_eq!(ts.insert_first("ok", "a,b"), Err(TraceStateError::Value));
        ts.remove("ot");
        assert_eq!(ts.get("ot"), None);
        assert_eq!(ts.len(), 31);
    }
}
