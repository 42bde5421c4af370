//! `server.address` and `server.port` from a `Host` header or `:authority`.
//!
//! The authority is `host [":" port]` (RFC 3986 §3.2), where an IPv6 host is bracketed. Every
//! input has a defined outcome, and none panics:
//!
//! | input                | address        | port   |
//! | -------------------- | -------------- | ------ |
//! | `example.com`        | `example.com`  | —      |
//! | `example.com:8080`   | `example.com`  | `8080` |
//! | `10.0.0.1:80`        | `10.0.0.1`     | `80`   |
//! | `[::1]`              | `::1`          | —      |
//! | `[::1]:8443`         | `::1`          | `8443` |
//! | `host:notaport`      | `host`         | —      |
//! | `host:`, `host:70000`| `host`         | —      |
//! | `user@host:80`       | `host`         | `80`   |
//! | `::1` (unbracketed)  | `::1`          | —      |
//! | `[::1`, `[::1]x`, `[]`, `:80`, `host]`, empty | — | — |
//!
//! An IPv6 address loses its brackets: they are URI syntax, and `server.address` holds the
//! address itself, as `client.address` and `network.peer.address` do.

/// A server's address and port, parsed from an authority.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Authority<'a> {
    /// Host name or IP address, never empty; an IPv6 address without its brackets.
    pub address: &'a str,
    /// The port, when one was given and is a valid port number.
    pub port: Option<u16>,
}

impl<'a> Authority<'a> {
    /// Parses `raw`; `None` when it names no host.
    ///
    /// A port that is not a number from 0 to 65535 is left out and the host kept: the host is
    /// still what the caller asked for. A malformed host (an unclosed or misplaced bracket, or
    /// none at all) yields nothing, since no part of it can be trusted to be the host.
    pub fn parse(raw: &'a str) -> Option<Self> {
        // Userinfo cannot contain an unencoded '@', so the host starts after the last one.
        let hostport = raw.rsplit_once('@').map_or(raw, |(_, rest)| rest);
        let (address, port) = if let Some(literal) = hostport.strip_prefix('[') {
            let (address, rest) = literal.split_once(']')?;
            let port = match rest {
                "" => None,
                _ => Some(rest.strip_prefix(':')?),
            };
            (address, port)
        } else if hostport.bytes().filter(|b| *b == b':').nth(1).is_some() {
            // Two colons or more: an IPv6 address sent without brackets. It cannot carry a
            // port unambiguously, so all of it is the address.
            (hostport, None)
        } else {
            match hostport.split_once(':') {
                Some((address, port)) => (address, Some(port)),
                None => (hostport, None),
            }
        };
        if address.is_empty() || address.contains(['[', ']']) {
            return None;
        }
        Some(Self {
            address,
            port: port.and_then(parse_port),
        })
    }
}

/// A port: one to five ASCII digits with a value that fits in 16 bits.
fn parse_port(text: &str) -> Option<u16> {
    // `u16::from_str` alone would also take a leading '+'.
    if text.is_empty() || text.len() > 5 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    type Parsed<'a> = Option<(&'a str, Option<u16>)>;

    fn parsed(raw: &str) -> Parsed<'_> {
        Authority::parse(raw).map(|a| (a.address, a.port))
    }

    #[test]
    fn every_form_has_a_defined_outcome() {
        let cases: [(&str, Parsed<'_>); 22] = [
            ("example.com", Some(("example.com", None))),
            ("example.com:8080", Some(("example.com", Some(8080)))),
            ("10.0.0.1:80", Some(("10.0.0.1", Some(80)))),
            ("[::1]", Some(("::1", None))),
            ("[::1]:8443", Some(("::1", Some(8443)))),
            ("[2001:db8::1]:443", Some(("2001:db8::1", Some(443)))),
            ("[::1]:", Some(("::1", None))),
            ("[::1]:x", Some(("::1", None))),
            ("host:notaport", Some(("host", None))),
            ("host:", Some(("host", None))),
            ("host:70000", Some(("host", None))),
            ("host:+80", Some(("host", None))),
            ("host:000080", Some(("host", None))),
            ("host:0", Some(("host", Some(0)))),
            ("user:pw@host:80", Some(("host", Some(80)))),
            ("::1", Some(("::1", None))),
            ("[::1", None),
            ("[::1]x", None),
            ("[]", None),
            (":80", None),
            ("", None),
            ("host]:80", None),
        ];
        for (raw, expected) in cases {
            assert_eq!(parsed(raw), expected, "{raw:?}");
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        let alphabet = ["[", "]", ":", "@", "1", "a", "", "é"];
        for a in alphabet {
            for b in alphabet {
                for c in alphabet {
                    for d in alphabet {
                        let raw = [a, b, c, d].concat();
                        if let Some(authority) = Authority::parse(&raw) {
                            assert!(!authority.address.is_empty(), "{raw:?}");
                        }
                    }
                }
            }
        }
    }
}
