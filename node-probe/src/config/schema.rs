//! The configuration file as written: serde types with defaults and a doc comment per field.
//! Addresses are typed here, so a bad one is refused as the file is read, by its path.
//!
//! ```toml
//! routes = ["/users/{id}"]                 # span names and http.route; other paths are grouped
//!
//! [kernel]
//! interfaces = ["tap*", "fc-*"]            # tap devices to attach to, followed as they come and go
//!
//! [receiver]
//! http = "127.0.0.1:4318"                  # OTLP/HTTP for the sidecars, and the filter artifact
//! grpc = "127.0.0.1:4317"                  # OTLP/gRPC; "" turns it off
//! max_body_bytes = 4194304                 # larger bodies are answered 413
//!
//! [admin]
//! address = "127.0.0.1:9465"               # Prometheus /metrics and /healthz; "" turns it off
//!
//! [location]                               # tags on every black-box span
//! datacenter = "fra"
//! location = "fra1-core"
//! node = "core-17"
//!
//! [workloads]                              # interface (or prefix*) -> workload, the spans' service.name
//! "fc-orders-*" = "orders"
//!
//! [exchanges]
//! max_connections = 65536
//! max_requests_per_connection = 16         # pipelined requests beyond this are counted and dropped
//! max_split_heads = 4096                   # request heads split across segments held at once
//! quiet_ms = 2000                          # a response with no news this long has ended
//! response_timeout_ms = 120000
//! idle_ms = 300000
//!
//! [join]
//! window_ms = 5000                         # black-box spans wait this long for their sidecar span
//! clock_slack_ms = 5
//! inflight_wait_ms = 30000                 # a VM's call waits this much more for its server span
//! max_indexed = 65536
//! max_pending = 65536
//!
//! [sampling]                               # as the edge's: the same seed keeps the same traces
//! mode = "hash_seed"
//! percentage = 10.0
//! hash_seed = 22
//!
//! [export]
//! endpoint = "http://collector:4318"       # base URL; OTLP/HTTP appends v1/traces
//! protocol = "http/protobuf"               # or "grpc"
//! queue_size = 65536
//! service_name = "microvm"                 # service.name of spans whose interface has no workload
//!
//! [artifact]                               # optional: the filter, for mesh-config's code.remote
//! file = "/var/lib/threadline/filter.wasm"
//! path = "/filter.wasm"                    # its sha256 at /filter.wasm.sha256
//! ```

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::PathBuf;

use serde::Deserialize;
use trace_core::export::{ExportDefaults, ExportSettings};
use trace_core::sampling::SamplingConfig;

use super::ConfigError;
use super::address;

pub use trace_core::otel_env::Protocol;

/// The configuration as written.
#[derive(Deserialize, Debug, Clone, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// The kernel side.
    pub kernel: Kernel,
    /// The local OTLP receiver.
    pub receiver: Receiver,
    /// The admin listener.
    pub admin: Admin,
    /// Tags of this node, on every black-box span.
    pub location: LocationTags,
    /// Interface name (or `prefix*`) to workload: the spans' `service.name` and
    /// `threadline.workload`.
    pub workloads: BTreeMap<String, String>,
    /// The exchange builder's bounds.
    pub exchanges: Exchanges,
    /// Parent resolution.
    pub join: Join,
    /// Sampling of black-box spans that start a trace.
    pub sampling: SamplingConfig,
    /// Where spans go.
    pub export: Export,
    /// The filter artifact to serve.
    pub artifact: Option<Artifact>,
    /// Route templates for span names and `http.route`, e.g. `/users/{id}`.
    pub routes: Vec<String>,
}

impl Config {
    /// Parses TOML text; an error names the field by its path (`receiver.http`).
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        let deserializer = toml::Deserializer::parse(text)
            .map_err(|e| ConfigError::new("configuration", e.to_string()))?;
        serde_path_to_error::deserialize(deserializer).map_err(|e| {
            let path = e.path().to_string();
            ConfigError::at_path(path, e.inner().message())
        })
    }
}

/// The kernel side.
#[derive(Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields, default)]
pub struct Kernel {
    /// Interface name patterns (`*` matches any run of characters).
    pub interfaces: Vec<String>,
}

impl Default for Kernel {
    fn default() -> Self {
        Self {
            interfaces: vec!["tap*".into(), "fc-*".into()],
        }
    }
}

fn localhost(port: u16) -> SocketAddr {
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port))
}

/// The local OTLP receiver.
#[derive(Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields, default)]
pub struct Receiver {
    /// OTLP/HTTP address (`ip:port`), which also serves the artifact.
    #[serde(deserialize_with = "address::one")]
    pub http: SocketAddr,
    /// OTLP/gRPC address; `""` turns it off.
    #[serde(deserialize_with = "address::optional")]
    pub grpc: Option<SocketAddr>,
    /// The largest request body or gRPC message taken, in bytes.
    pub max_body_bytes: usize,
}

impl Default for Receiver {
    fn default() -> Self {
        Self {
            http: localhost(4318),
            grpc: Some(localhost(4317)),
            max_body_bytes: 4 << 20,
        }
    }
}

/// The admin listener.
#[derive(Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields, default)]
pub struct Admin {
    /// Address of `/metrics` and `/healthz`; `""` turns it off.
    #[serde(deserialize_with = "address::optional")]
    pub address: Option<SocketAddr>,
}

impl Default for Admin {
    fn default() -> Self {
        Self {
            address: Some(localhost(9465)),
        }
    }
}

/// Tags of this node.
#[derive(Deserialize, Debug, Clone, Default)]
#[serde(deny_unknown_fields, default)]
pub struct LocationTags {
    /// `threadline.datacenter`.
    pub datacenter: Option<String>,
    /// `threadline.location`.
    pub location: Option<String>,
    /// `threadline.node`.
    pub node: Option<String>,
}

/// The exchange builder's bounds.
#[derive(Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields, default)]
pub struct Exchanges {
    /// Connections tracked at once.
    pub max_connections: usize,
    /// Requests open on one connection (pipelining).
    pub max_requests_per_connection: usize,
    /// Request heads split across segments, held at once (up to 768 bytes each).
    pub max_split_heads: usize,
    /// A response that no event has told about for this long has ended, in milliseconds.
    pub quiet_ms: u64,
    /// A request without a response for this long fails, in milliseconds.
    pub response_timeout_ms: u64,
    /// A connection with nothing open and no event for this long is forgotten, in ms.
    pub idle_ms: u64,
}

impl Default for Exchanges {
    fn default() -> Self {
        Self {
            max_connections: 65_536,
            max_requests_per_connection: 16,
            max_split_heads: 4096,
            quiet_ms: 2000,
            response_timeout_ms: 120_000,
            idle_ms: 300_000,
        }
    }
}

/// Parent resolution.
#[derive(Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields, default)]
pub struct Join {
    /// How long a black-box span waits for its sidecar span, and a sidecar span is kept, ms.
    pub window_ms: u64,
    /// How far the sidecar's and the kernel's clocks may disagree, in milliseconds.
    pub clock_slack_ms: u64,
    /// How much longer a VM's call waits for its in-flight server span, in milliseconds.
    pub inflight_wait_ms: u64,
    /// Sidecar spans indexed at most.
    pub max_indexed: usize,
    /// Black-box spans waiting at most.
    pub max_pending: usize,
}

impl Default for Join {
    fn default() -> Self {
        Self {
            window_ms: 5000,
            clock_slack_ms: 5,
            inflight_wait_ms: 30_000,
            max_indexed: 65_536,
            max_pending: 65_536,
        }
    }
}

/// The relay's defaults: it holds the spans of every sidecar and workload on its node.
#[derive(Debug, Clone, Copy)]
pub struct RelayDefaults;

impl ExportDefaults for RelayDefaults {
    /// `service.name` of black-box spans whose interface maps to no workload.
    const SERVICE_NAME: &'static str = "microvm";
    const TIMEOUT_MS: u64 = 5000;
    const QUEUE_SIZE: usize = 65_536;
    const MAX_RETRIES: u32 = 3;
    const SHUTDOWN_TIMEOUT_MS: u64 = 10_000;
}

/// Span export to the collector: trace-core's `[export]` settings. One of the two endpoints
/// is required: the OTLP default (localhost:4318) is where the agent itself receives.
/// `service_name` and `resource_attributes` describe black-box spans whose interface maps to
/// no workload.
pub type Export = ExportSettings<RelayDefaults>;

/// The filter artifact.
#[derive(Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub struct Artifact {
    /// The file to serve.
    pub file: PathBuf,
    /// The path it is served at on the receiver's HTTP port.
    #[serde(default = "default_artifact_path")]
    pub path: String,
}

fn default_artifact_path() -> String {
    "/filter.wasm".into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(toml: &str) -> ConfigError {
        match Config::from_toml(toml) {
            Ok(config) => panic!("{toml} was read as {config:?}"),
            Err(e) => e,
        }
    }

    #[test]
    fn the_documented_example_parses() {
        let example: String = include_str!("schema.rs")
            .lines()
            .filter_map(|l| l.strip_prefix("//! ").or(l.strip_prefix("//!")))
            .skip_while(|l| !l.starts_with("```toml"))
            .skip(1)
            .take_while(|l| !l.starts_with("```"))
            .collect::<Vec<_>>()
            .join("\n");
        let config = Config::from_toml(&example).unwrap();
        assert_eq!(config.workloads["fc-orders-*"], "orders");
        assert_eq!(
            config.receiver.grpc,
            Some("127.0.0.1:4317".parse().unwrap())
        );
        assert_eq!(config.join.window_ms, 5000);
        assert_eq!(config.artifact.unwrap().path, "/filter.wasm");
        assert_eq!(
            config.export.traces_url().as_deref(),
            Some("http://collector:4318/v1/traces")
        );
    }

    #[test]
    fn errors_name_the_field() {
        assert_eq!(error("[receiver]\nhttp = \"nope\"").field, "receiver.http");
        assert!(
            error("[receiver]\nhttp = \"nope\"")
                .reason
                .contains("\"nope\"")
        );
        assert_eq!(error("[join]\nwindow = 1").field, "join.window");
        assert_eq!(
            error("[exchanges]\nquiet_ms = \"x\"").field,
            "exchanges.quiet_ms"
        );
        assert_eq!(error("[artifact]\npath = \"/x\"").field, "artifact");
        assert!(error("[exports]\nx = 1").reason.contains("unknown field"));
        assert_eq!(
            Config::from_toml("[admin]\naddress = \"\"")
                .unwrap()
                .admin
                .address,
            None
        );
    }
}
