//! The edge-proxy's configuration file for one edge location: its tags, the trusted
//! networks, the site's sampling and routes, the collector, and every core location as an
//! upstream. The tests run edge-proxy's own `--check-config` on it.

use serde_json::json;

use crate::FieldError;
use crate::checked::{Checked, Located};
use crate::site::EdgeLocation;

/// The edge-proxy's client-facing port in its container.
pub const HTTP_PORT: u16 = 8080;
/// The edge-proxy's Prometheus port in its container.
pub const ADMIN_PORT: u16 = 9464;
/// Where the Deployment mounts writable scratch space (the PID file and upgrade socket).
pub const RUN_DIR: &str = "/run/edge-proxy";

/// The edge-proxy TOML for `edge`.
pub fn config(checked: &Checked, edge: &Located<EdgeLocation>) -> Result<String, FieldError> {
    let site = &checked.site;
    let locations: Vec<_> = checked
        .core_locations
        .values()
        .map(|core| {
            json!({
                "name": core.location.name,
                "address": core.location.address,
                "weight": core.location.weight,
            })
        })
        .collect();
    let networks: Vec<String> = site
        .trust
        .client_networks
        .iter()
        .map(ToString::to_string)
        .collect();
    let config = json!({
        "routes": site.routes,
        "server": {
            "pid_file": format!("{RUN_DIR}/edge-proxy.pid"),
            "upgrade_socket": format!("{RUN_DIR}/upgrade.sock"),
        },
        "listen": { "http": [format!("0.0.0.0:{HTTP_PORT}")] },
        "admin": { "address": format!("0.0.0.0:{ADMIN_PORT}") },
        "edge": {
            "location": edge.location.name,
            "region": edge.datacenter,
            "pop": edge.location.pop,
        },
        "trust": { "client_networks": networks },
        "sampling": site.sampling,
        "export": {
            "endpoint": site.collector.endpoint,
            "protocol": site.collector.protocol.as_str(),
        },
        "upstreams": { "locations": locations },
    });
    let table =
        toml::Value::try_from(config).map_err(|e| FieldError::new("render", e.to_string()))?;
    let text = toml::to_string(&table).map_err(|e| FieldError::new("render", e.to_string()))?;
    Ok(format!(
        "# edge-proxy for edge location {}, rendered by mesh-config from site {:?}.\n{text}",
        edge.location.name, site.name
    ))
}
