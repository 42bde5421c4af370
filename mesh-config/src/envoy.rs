//! Envoy v3 values: the wasm `HttpFilter`, the node agent's `Cluster`, and a standalone
//! bootstrap. Field names are the proto names; the tests parse every value against Envoy's
//! own `.proto` files with unknown fields refused, because Kuma's patch reader ignores them.

use std::net::SocketAddr;

use serde_json::{Value, json};

use crate::checked::{Checked, FailOpenField};
use crate::plugin::AGENT_CLUSTER;
use crate::site::Standalone;

/// The wasm HTTP filter's name, and the router it goes before.
pub const WASM_FILTER: &str = "envoy.filters.http.wasm";
/// Envoy's router filter.
pub const ROUTER_FILTER: &str = "envoy.filters.http.router";
/// The plugin's name, root ID and VM ID in Envoy.
const PLUGIN_NAME: &str = "threadline";
/// How long Envoy waits for the artifact from the agent, per attempt.
const FETCH_TIMEOUT: &str = "10s";
/// Attempts to fetch the artifact: the agent on a node that just booted may not be up yet.
const FETCH_RETRIES: u32 = 5;

/// Where the filter's code comes from.
#[derive(Debug, Clone)]
pub enum Code<'a> {
    /// `code.remote`: fetched over `AGENT_CLUSTER` from `uri`, checked against `sha256`.
    Remote {
        /// The agent's URL of the artifact.
        uri: String,
        /// The artifact's digest.
        sha256: &'a str,
    },
    /// `code.local`: a file in the proxy's file system.
    Local {
        /// The file.
        filename: String,
    },
}

/// The `HttpFilter` that loads the filter with `plugin_json` as its configuration.
pub fn wasm_filter(plugin_json: &str, code: &Code<'_>, fail_open: FailOpenField) -> Value {
    let code = match code {
        Code::Remote { uri, sha256 } => json!({
            "remote": {
                "http_uri": { "uri": uri, "cluster": AGENT_CLUSTER, "timeout": FETCH_TIMEOUT },
                "sha256": sha256,
                "retry_policy": { "num_retries": FETCH_RETRIES },
            }
        }),
        Code::Local { filename } => json!({ "local": { "filename": filename } }),
    };
    let mut config = json!({
        "name": PLUGIN_NAME,
        "root_id": PLUGIN_NAME,
        "vm_config": {
            "vm_id": PLUGIN_NAME,
            "runtime": "envoy.wasm.runtime.v8",
            "code": code,
        },
        "configuration": {
            "@type": "type.googleapis.com/google.protobuf.StringValue",
            "value": plugin_json,
        },
    });
    // Tracing never breaks the data path: a VM that fails lets requests through untraced.
    // The deprecated `fail_open` and its successor are never set together.
    let (field, value) = match fail_open {
        FailOpenField::FailOpen => ("fail_open", json!(true)),
        FailOpenField::FailurePolicy => ("failure_policy", json!("FAIL_OPEN")),
    };
    if let Value::Object(map) = &mut config {
        map.insert(field.into(), value);
    }
    json!({
        "name": WASM_FILTER,
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
            "config": config,
        }
    })
}

/// The agent's cluster: STRICT_DNS to the node-local Service, whose `internalTrafficPolicy:
/// Local` makes each sidecar reach the agent on its own node (a patch is static text and
/// cannot carry the node's IP).
pub fn agent_cluster(checked: &Checked) -> Value {
    let agent = &checked.site.agent;
    cluster(AGENT_CLUSTER, "STRICT_DNS", &agent.host(), agent.port)
}

fn cluster(name: &str, kind: &str, host: &str, port: u16) -> Value {
    json!({
        "name": name,
        "type": kind,
        "connect_timeout": "1s",
        "load_assignment": {
            "cluster_name": name,
            "endpoints": [{
                "lb_endpoints": [{
                    "endpoint": {
                        "address": { "socket_address": { "address": host, "port_value": port } }
                    }
                }]
            }]
        }
    })
}

fn static_cluster(name: &str, addr: SocketAddr) -> Value {
    cluster(name, "STATIC", &addr.ip().to_string(), addr.port())
}

fn socket_address(addr: SocketAddr) -> Value {
    json!({ "socket_address": { "address": addr.ip().to_string(), "port_value": addr.port() } })
}

/// The agent's URL of the artifact.
pub fn artifact_uri(checked: &Checked) -> String {
    let agent = &checked.site.agent;
    format!(
        "http://{}:{}{}",
        agent.host(),
        agent.port,
        agent.filter_path
    )
}

fn listener(name: &str, direction: &str, addr: SocketAddr, cluster: &str, wasm: &Value) -> Value {
    json!({
        "name": name,
        "address": socket_address(addr),
        // The filter's direction comes from `xds.listener_direction`, i.e. from this field.
        "traffic_direction": direction,
        "filter_chains": [{
            "filters": [{
                "name": "envoy.filters.network.http_connection_manager",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                    "stat_prefix": name,
                    "route_config": {
                        "name": name,
                        "virtual_hosts": [{
                            "name": name,
                            "domains": ["*"],
                            "routes": [{ "match": { "prefix": "/" }, "route": { "cluster": cluster } }]
                        }]
                    },
                    "http_filters": [
                        wasm,
                        {
                            "name": ROUTER_FILTER,
                            "typed_config": {
                                "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"
                            }
                        }
                    ]
                }
            }]
        }]
    })
}

/// A bootstrap for an Envoy sidecar outside Kuma: an inbound listener (SERVER spans) in front
/// of the workload, an outbound one (CLIENT spans) to its upstream, the filter from a file on
/// both, and the agent's cluster. Addresses were checked by `validate()`; one that does not
/// parse here is reported, not panicked on.
pub fn bootstrap(
    standalone: &Standalone,
    plugin_json: &str,
    fail_open: FailOpenField,
) -> Result<Value, crate::FieldError> {
    let addr = |field: &str, value: &str| -> Result<SocketAddr, crate::FieldError> {
        value
            .parse()
            .map_err(|_| crate::FieldError::new(field, format!("{value:?} is not an ip:port")))
    };
    let wasm = wasm_filter(
        plugin_json,
        &Code::Local {
            filename: standalone.filter_file.clone(),
        },
        fail_open,
    );
    Ok(json!({
        "node": { "id": "threadline-sidecar", "cluster": "threadline" },
        "admin": { "address": socket_address(addr("standalone.admin", &standalone.admin)?) },
        "static_resources": {
            "listeners": [
                listener("inbound", "INBOUND", addr("standalone.inbound_listen", &standalone.inbound_listen)?, "workload", &wasm),
                listener("outbound", "OUTBOUND", addr("standalone.outbound_listen", &standalone.outbound_listen)?, "upstream", &wasm),
            ],
            "clusters": [
                static_cluster("workload", addr("standalone.workload", &standalone.workload)?),
                static_cluster("upstream", addr("standalone.upstream", &standalone.upstream)?),
                static_cluster(AGENT_CLUSTER, addr("standalone.agent", &standalone.agent)?),
            ]
        }
    }))
}
