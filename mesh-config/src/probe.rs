//! The node-probe's configuration file. The agent's configuration schema does not exist yet,
//! so the file carries only comments recording the values it must agree on; the DaemonSet
//! passes the collector through the standard `OTEL_*` variables, which every Threadline
//! binary reads the same way (trace-core's `otel_env`). When the schema lands, this module
//! renders it in full and a test checks it with the agent's own code.

use crate::checked::{Checked, Located};
use crate::site::CoreLocation;

/// The node-probe TOML for the servers of `core`.
pub fn config(checked: &Checked, core: &Located<CoreLocation>) -> String {
    let site = &checked.site;
    let sampling = &site.sampling;
    let mode = serde_json::to_value(sampling.mode)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    format!(
        "# node-probe for core location {location}, rendered by mesh-config from site {name:?}.\n\
         # The agent's configuration schema is not settled yet: this file sets nothing, and the\n\
         # DaemonSet passes the collector as OTEL_EXPORTER_OTLP_ENDPOINT and _PROTOCOL.\n\
         # Values the agent must agree on with the edge and the filter:\n\
         #   datacenter = {datacenter:?}, location = {location:?}\n\
         #   collector = {endpoint:?}\n\
         #   sampling: mode = {mode:?}, percentage = {percentage:?}, hash_seed = {seed}\n\
         #   sidecars export to port {port}; the filter artifact is served at {path:?}\n",
        location = core.location.name,
        name = site.name,
        datacenter = core.datacenter,
        endpoint = site.collector.endpoint,
        percentage = sampling.percentage,
        seed = sampling.hash_seed,
        port = site.agent.port,
        path = site.agent.filter_path,
    )
}
