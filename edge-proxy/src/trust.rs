//! Which callers may continue their own trace.

use std::net::IpAddr;

use ipnet::IpNet;

/// The trusted client networks.
#[derive(Debug, Clone, Default)]
pub struct TrustedNetworks(Vec<IpNet>);

impl TrustedNetworks {
    /// Trusts `networks`.
    pub fn new(networks: Vec<IpNet>) -> Self {
        Self(networks)
    }

    /// Whether `client` is in a trusted network. An IPv4 address mapped into IPv6
    /// (`::ffff:10.0.0.1`) is matched as IPv4.
    pub fn contains(&self, client: IpAddr) -> bool {
        let client = client.to_canonical();
        self.0.iter().any(|net| net.contains(&client))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_v4_v6_and_mapped_addresses() {
        let trusted = TrustedNetworks::new(vec![
            "10.0.0.0/8".parse().unwrap(),
            "fd00::/8".parse().unwrap(),
        ]);
        assert!(trusted.contains("10.1.2.3".parse().unwrap()));
        assert!(trusted.contains("::ffff:10.1.2.3".parse().unwrap()));
        assert!(trusted.contains("fd00::1".parse().unwrap()));
        assert!(!trusted.contains("11.0.0.1".parse().unwrap()));
        assert!(!TrustedNetworks::default().contains("10.0.0.1".parse().unwrap()));
    }
}
