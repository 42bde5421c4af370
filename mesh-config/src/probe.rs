//! The node-probe's configuration file for the servers of one core location, after the
//! documented example of the agent's own schema (`node-probe/src/config/schema.rs`): the
//! location's tags, the site's sampling and routes, the collector, the receiver the sidecars
//! export to, and the filter artifact it serves for `code.remote`.

use serde_json::json;

use crate::FieldError;
use crate::checked::{Checked, Located};
use crate::site::{CoreLocation, Delivery};

/// The agent's Prometheus `/metrics` and `/healthz` port (its schema's default).
pub const ADMIN_PORT: u16 = 9465;

/// The node-probe TOML for the servers of `core`.
pub fn config(checked: &Checked, core: &Located<CoreLocation>) -> Result<String, FieldError> {
    let site = &checked.site;
    let agent = &site.agent;
    let mut config = json!({
        "routes": site.routes,
        // Host network: the node-local Service reaches the agent at the node's address, and
        // sidecars export nothing over gRPC.
        "receiver": { "http": format!("0.0.0.0:{}", agent.port), "grpc": "" },
        "admin": { "address": format!("0.0.0.0:{ADMIN_PORT}") },
        "location": { "datacenter": core.datacenter, "location": core.location.name },
        "sampling": site.sampling,
        "export": {
            "endpoint": site.collector.endpoint,
            "protocol": site.collector.protocol.as_str(),
        },
    });
    if site.filter.delivery == Delivery::Remote
        && let Some(map) = config.as_object_mut()
    {
        map.insert(
            "artifact".into(),
            json!({ "file": agent.artifact_file, "path": agent.filter_path }),
        );
    }
    let table =
        toml::Value::try_from(config).map_err(|e| FieldError::new("render", e.to_string()))?;
    let text = toml::to_string(&table).map_err(|e| FieldError::new("render", e.to_string()))?;
    Ok(format!(
        "# node-probe for core location {}, rendered by mesh-config from site {:?}.\n{text}",
        core.location.name, site.name
    ))
}
