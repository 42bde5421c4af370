//! Socket addresses in the configuration, parsed once as the file is read, with an error that
//! quotes the value (serde's own says only "invalid socket address syntax").

use std::net::SocketAddr;

use serde::de::Error as _;
use serde::{Deserialize, Deserializer};

/// An `ip:port` as text.
struct Address(SocketAddr);

impl<'de> Deserialize<'de> for Address {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        parse(&text).map(Address).map_err(D::Error::custom)
    }
}

fn parse(text: &str) -> Result<SocketAddr, String> {
    text.parse()
        .map_err(|_| format!("{text:?} is not an ip:port"))
}

/// One `ip:port`.
pub fn one<'de, D: Deserializer<'de>>(deserializer: D) -> Result<SocketAddr, D::Error> {
    Address::deserialize(deserializer).map(|a| a.0)
}

/// A list of `ip:port`.
pub fn list<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<SocketAddr>, D::Error> {
    Vec::<Address>::deserialize(deserializer).map(|all| all.into_iter().map(|a| a.0).collect())
}

/// An `ip:port`, or `""` for none (TOML has no null).
pub fn optional<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<SocketAddr>, D::Error> {
    let text = String::deserialize(deserializer)?;
    match text.as_str() {
        "" => Ok(None),
        text => parse(text).map(Some).map_err(D::Error::custom),
    }
}
