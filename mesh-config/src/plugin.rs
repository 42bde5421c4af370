//! The filter's plugin configuration: JSON built from the site, then parsed and checked by
//! the filter's own configuration code (`wasm_filter::config::Settings::from_json`), compiled
//! natively. A configuration the filter would refuse never leaves mesh-config, and the error
//! names the filter's field.

use serde_json::{Map, Value, json};

use crate::FieldError;
use crate::checked::Located;
use crate::site::{Agent, CoreLocation, Site};

/// The `:authority` of exports to the node-local Service.
pub fn agent_authority(agent: &Agent) -> String {
    format!("{}:{}", agent.host(), agent.port)
}

/// The Envoy cluster of the node agent: the filter's `collector.cluster`, and the cluster the
/// mesh's patch and the standalone bootstrap add.
pub const AGENT_CLUSTER: &str = "threadline_agent";

/// Plugin fields the site file sets for every tier alike; a mesh's `plugin` table may not.
pub const SITE_OWNED: &[&str] = &["tags", "sampling", "collector", "routes"];

/// The plugin configuration for the sidecars of one core location, exporting to the agent
/// at `authority`, with a mesh's further `fields`, as the JSON text Envoy hands to
/// `on_configure`. An error names the filter's field (`batch.max_spans`).
pub fn configuration(
    site: &Site,
    located: &Located<CoreLocation>,
    authority: &str,
    fields: &Map<String, Value>,
) -> Result<String, FieldError> {
    let sampling = serde_json::to_value(site.sampling)
        .map_err(|e| FieldError::new("sampling", e.to_string()))?;
    let mut config = json!({
        "tags": {
            "datacenter": located.datacenter,
            "location": located.location.name,
        },
        "collector": {
            "cluster": AGENT_CLUSTER,
            "authority": authority,
            "path": trace_core::otlp::TRACES_PATH,
        },
        "sampling": sampling,
        "routes": site.routes,
    });
    if let Value::Object(map) = &mut config {
        map.extend(fields.iter().map(|(k, v)| (k.clone(), v.clone())));
    }
    let text = serde_json::to_string(&config)
        .map_err(|e| FieldError::new("configuration", e.to_string()))?;
    wasm_filter::config::Settings::from_json(text.as_bytes())
        .map_err(|e| FieldError::new(e.field, format!("the filter refuses it: {}", e.reason)))?;
    Ok(text)
}
