//! Socket addresses in the configuration, parsed as the file is read, with an error that
//! quotes the value (serde's own says only "invalid socket address syntax").

use std::net::SocketAddr;

use serde::de::Error as _;
use serde::{Deserialize, Deserializer};

fn parse(text: &str) -> Result<SocketAddr, String> {
    text.parse()
        .map_err(|_| format!("{text:?} is not an ip:port"))
}

/// One `ip:port`.
pub fn one<'de, D: Deserializer<'de>>(deserializer: D) -> Result<SocketAddr, D::Error> {
    let text = String::deserialize(deserializer)?;
    parse(&text).map_err(D::Error::custom)
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
