//! The configuration file as written: serde types with defaults and a doc comment per field.
//! Addresses are typed here, so a bad one is refused as the file is read, by its path.
//!
//! ```toml
//! routes = ["/users/{id}"]         # span names and http.route; other paths are grouped
//!
//! [server]
//! threads = 2                      # workers, each with its own upstream connections
//! work_stealing = false            # true: idle workers take over queued requests
//! grace_period_seconds = 1         # in-flight requests get this long after SIGTERM
//!
//! [listen]
//! http = ["0.0.0.0:8080"]          # HTTP/1.1, and HTTP/2 with prior knowledge when h2c = true
//! h2c = false
//! [[listen.tls]]                   # HTTP/1.1 and HTTP/2 (ALPN)
//! address = "0.0.0.0:8443"
//! certificate = "/etc/edge/cert.pem"
//! key = "/etc/edge/key.pem"
//!
//! [admin]
//! address = "127.0.0.1:9464"       # Prometheus /metrics; "" turns it off
//!
//! [edge]                           # tags on every span
//! location = "fra1-edge"
//! region = "eu-central"
//! pop = "fra1"
//!
//! [trust]
//! client_networks = ["10.0.0.0/8"] # these callers' trace context is continued
//!
//! [sampling]
//! mode = "hash_seed"
//! percentage = 10.0
//! hash_seed = 22
//!
//! [propagation]
//! trace_context = true                      # W3C traceparent and tracestate
//! b3_single = false
//! b3_multi = false
//! trace_id_response_header = "x-trace-id"   # optional
//!
//! [export]
//! endpoint = "http://127.0.0.1:4318"        # base URL; none: spans are printed to the terminal
//! # traces_endpoint = "http://127.0.0.1:4318/v1/traces"   # used as is; wins over endpoint
//! protocol = "http/protobuf"                 # or "grpc"
//!
//! [upstreams]
//! selection = "round_robin"                  # or "consistent_hash" (by client address)
//! [upstreams.health_check]
//! kind = "http"                              # or "tcp"
//! path = "/healthz"
//! [[upstreams.locations]]
//! name = "fra1"
//! address = "10.1.0.10:80"
//! weight = 10
//!
//! [access_log]
//! enabled = true
//! buffer_bytes = 1048576                     # lines beyond this, unwritten, are dropped
//! ```

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::PathBuf;

use ipnet::IpNet;
use serde::Deserialize;
use trace_core::export::{ExportDefaults, ExportSettings};
use trace_core::sampling::SamplingConfig;

use super::ConfigError;
use super::address;

/// The configuration as written.
#[derive(Deserialize, Debug, Clone, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Process settings.
    pub server: Server,
    /// Client-facing listeners.
    pub listen: Listen,
    /// The admin listener.
    pub admin: Admin,
    /// Tags of this edge location.
    pub edge: EdgeTags,
    /// Whose trace context is continued.
    pub trust: Trust,
    /// Sampling of new traces.
    pub sampling: SamplingConfig,
    /// Headers written to the upstream and the client.
    pub propagation: Propagation,
    /// Where spans go.
    pub export: Export,
    /// Core locations.
    pub upstreams: Upstreams,
    /// The access log.
    pub access_log: AccessLog,
    /// Route templates for span names and `http.route`, e.g. `/users/{id}`; other paths are
    /// grouped by trace-core's heuristic.
    pub routes: Vec<String>,
}

impl Config {
    /// Parses TOML text; an error names the field by its path (`listen.http[0]`).
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        let deserializer = toml::Deserializer::parse(text)
            .map_err(|e| ConfigError::new("configuration", e.to_string()))?;
        serde_path_to_error::deserialize(deserializer).map_err(|e| {
            let path = e.path().to_string();
            ConfigError::at_path(path, e.inner().message())
        })
    }
}

/// Process settings: workers, shutdown and graceful upgrade.
#[derive(Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields, default)]
pub struct Server {
    /// Worker threads of the proxy.
    pub threads: usize,
    /// Let idle workers take requests from busy ones. Off by default: each worker then runs
    /// its own connections start to finish, which measured faster (BENCHMARKS.md).
    pub work_stealing: bool,
    /// Seconds that requests in flight get to finish once the listeners stop accepting: at
    /// SIGTERM, or 5 s after SIGQUIT handed the listeners to a new process. Requests still in
    /// flight after that are cut.
    pub grace_period_seconds: u64,
    /// Seconds the runtimes' blocking work gets once the grace period is over.
    pub graceful_shutdown_timeout_seconds: u64,
    /// Socket through which a new process takes over the listeners on `--upgrade`.
    pub upgrade_socket: String,
    /// PID file.
    pub pid_file: String,
}

impl Default for Server {
    fn default() -> Self {
        Self {
            threads: std::thread::available_parallelism().map_or(1, usize::from),
            work_stealing: false,
            grace_period_seconds: 1,
            graceful_shutdown_timeout_seconds: 5,
            upgrade_socket: "/tmp/edge-proxy-upgrade.sock".into(),
            pid_file: "/tmp/edge-proxy.pid".into(),
        }
    }
}

/// Client-facing listeners.
#[derive(Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields, default)]
pub struct Listen {
    /// Plain-text addresses (`ip:port`).
    #[serde(deserialize_with = "address::list")]
    pub http: Vec<SocketAddr>,
    /// Accept HTTP/2 with prior knowledge on the plain-text addresses.
    pub h2c: bool,
    /// TLS listeners.
    pub tls: Vec<TlsListener>,
}

impl Default for Listen {
    fn default() -> Self {
        Self {
            http: vec![SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 8080))],
            h2c: false,
            tls: vec![],
        }
    }
}

/// One TLS listener; HTTP/2 is offered through ALPN.
#[derive(Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub struct TlsListener {
    /// Address to bind (`ip:port`).
    #[serde(deserialize_with = "address::one")]
    pub address: SocketAddr,
    /// PEM certificate chain.
    pub certificate: PathBuf,
    /// PEM private key.
    pub key: PathBuf,
}

/// The admin listener.
#[derive(Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields, default)]
pub struct Admin {
    /// Address (`ip:port`) of the Prometheus `/metrics` endpoint; `""` disables it.
    #[serde(deserialize_with = "address::optional")]
    pub address: Option<SocketAddr>,
}

impl Default for Admin {
    fn default() -> Self {
        Self {
            address: Some(SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 9464))),
        }
    }
}

/// Tags of this edge location, on every span.
#[derive(Deserialize, Debug, Clone, Default)]
#[serde(deny_unknown_fields, default)]
pub struct EdgeTags {
    /// Edge location name.
    pub location: Option<String>,
    /// Region.
    pub region: Option<String>,
    /// Point of presence.
    pub pop: Option<String>,
}

/// Trusted client networks.
#[derive(Deserialize, Debug, Clone, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Trust {
    /// CIDRs whose trace context and sampling decision are continued. Anyone else gets a new
    /// root trace, with their valid context kept as a span link.
    pub client_networks: Vec<IpNet>,
}

/// Propagation to the upstream and the client. A caller's own format is always written back
/// besides these (see `Formats::with_incoming`).
#[derive(Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields, default)]
pub struct Propagation {
    /// Write W3C `traceparent` and `tracestate`.
    pub trace_context: bool,
    /// Also write the single `b3` header.
    pub b3_single: bool,
    /// Also write the `X-B3-*` headers.
    pub b3_multi: bool,
    /// A response header that tells the client its trace ID.
    pub trace_id_response_header: Option<String>,
}

impl Default for Propagation {
    fn default() -> Self {
        Self {
            trace_context: true,
            b3_single: false,
            b3_multi: false,
            trace_id_response_header: None,
        }
    }
}

/// The edge's defaults: its own spans, sent close to where they are made.
#[derive(Debug, Clone, Copy)]
pub struct EdgeDefaults;

impl ExportDefaults for EdgeDefaults {
    const SERVICE_NAME: &'static str = "edge-proxy";
    const TIMEOUT_MS: u64 = 2000;
    const QUEUE_SIZE: usize = 8192;
    const MAX_RETRIES: u32 = 2;
    const SHUTDOWN_TIMEOUT_MS: u64 = 5000;
}

/// Span export: trace-core's `[export]` settings. `enabled = false` leaves propagation and
/// spans out entirely; without an endpoint, finished spans are printed to the terminal.
pub type Export = ExportSettings<EdgeDefaults>;

/// How an upstream is picked.
#[derive(Deserialize, Debug, Clone, Copy, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum Selection {
    /// Weighted round robin.
    #[default]
    RoundRobin,
    /// Consistent hashing (Ketama) on the client address.
    ConsistentHash,
}

/// Active health checks.
#[derive(Deserialize, Debug, Clone, Copy, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum HealthCheckKind {
    /// A TCP connect.
    #[default]
    Tcp,
    /// An HTTP GET that must answer 200.
    Http,
}

/// Health check settings.
#[derive(Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields, default)]
pub struct HealthCheck {
    /// TCP or HTTP.
    pub kind: HealthCheckKind,
    /// Path of HTTP checks.
    pub path: String,
    /// Host header of HTTP checks.
    pub host: String,
    /// Time between checks, in milliseconds.
    pub interval_ms: u64,
}

impl Default for HealthCheck {
    fn default() -> Self {
        Self {
            kind: HealthCheckKind::Tcp,
            path: "/healthz".into(),
            host: "localhost".into(),
            interval_ms: 1000,
        }
    }
}

/// One core location.
#[derive(Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub struct Location {
    /// Name, recorded on the CLIENT span.
    pub name: String,
    /// `ip:port`.
    #[serde(deserialize_with = "address::one")]
    pub address: SocketAddr,
    /// Relative weight.
    #[serde(default = "default_weight")]
    pub weight: usize,
}

fn default_weight() -> usize {
    1
}

/// Core locations and how to reach them.
#[derive(Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields, default)]
pub struct Upstreams {
    /// Selection policy.
    pub selection: Selection,
    /// Health checks.
    pub health_check: HealthCheck,
    /// Connect timeout, in milliseconds.
    pub connect_timeout_ms: u64,
    /// Read timeout, in milliseconds.
    pub read_timeout_ms: u64,
    /// Attempts on another healthy upstream after a failed connect or response.
    pub retries: usize,
    /// The locations; the embedded default uses a built-in demo upstream instead.
    pub locations: Vec<Location>,
}

impl Default for Upstreams {
    fn default() -> Self {
        Self {
            selection: Selection::RoundRobin,
            health_check: HealthCheck::default(),
            connect_timeout_ms: 1000,
            read_timeout_ms: 30_000,
            retries: 1,
            locations: vec![],
        }
    }
}

/// The JSON access log.
#[derive(Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields, default)]
pub struct AccessLog {
    /// Write one JSON line per request to standard output.
    pub enabled: bool,
    /// Bytes of lines waiting for standard output. A reader that falls this far behind loses
    /// lines (counted in `edge_access_log_dropped_total`) rather than stalling requests.
    pub buffer_bytes: usize,
}

impl Default for AccessLog {
    fn default() -> Self {
        Self {
            enabled: true,
            buffer_bytes: 1 << 20,
        }
    }
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
        assert_eq!(config.upstreams.locations[0].name, "fra1");
        assert_eq!(
            config.upstreams.locations[0].address,
            "10.1.0.10:80".parse().unwrap()
        );
        assert_eq!(
            config.listen.tls[0].address,
            "0.0.0.0:8443".parse().unwrap()
        );
        assert_eq!(config.trust.client_networks.len(), 1);
        assert_eq!(config.access_log.buffer_bytes, 1 << 20);
    }

    #[test]
    fn addresses_are_typed_as_the_file_is_read_and_errors_name_them() {
        let config =
            Config::from_toml("[listen]\nhttp = [\"[::1]:8080\", \"10.0.0.1:80\"]").unwrap();
        assert_eq!(config.listen.http[1], "10.0.0.1:80".parse().unwrap());
        let e = error("[listen]\nhttp = [\"127.0.0.1:1\", \"nope\"]");
        assert_eq!(e.field, "listen.http[1]");
        assert!(e.reason.contains("\"nope\" is not an ip:port"), "{e}");
        assert_eq!(
            error("[admin]\naddress = \"localhost:9464\"").field,
            "admin.address"
        );
        assert_eq!(
            error("[[listen.tls]]\naddress = \"x\"\ncertificate = \"c\"\nkey = \"k\"").field,
            "listen.tls[0].address"
        );
        assert_eq!(
            error("[[upstreams.locations]]\nname = \"a\"\naddress = \"a:80\"").field,
            "upstreams.locations[0].address"
        );
        assert_eq!(
            Config::from_toml("[admin]\naddress = \"\"")
                .unwrap()
                .admin
                .address,
            None
        );
        assert!(Config::default().admin.address.is_some());
    }

    #[test]
    fn unknown_fields_are_refused() {
        assert!(error("[exports]\nx = 1").reason.contains("unknown field"));
        assert_eq!(
            error("[export]\nendpoints = \"x\"").field,
            "export.endpoints"
        );
    }

    #[test]
    fn the_traces_url_follows_the_endpoint_rules() {
        let export = |toml: &str| Config::from_toml(toml).unwrap().export;
        assert_eq!(export("").traces_url(), None);
        assert_eq!(
            export("[export]\nendpoint = \"http://c:4318\"").traces_url(),
            Some("http://c:4318/v1/traces".into())
        );
        assert_eq!(
            export("[export]\nendpoint = \"http://c:4318\"\ntraces_endpoint = \"http://t:4318/x\"")
                .traces_url(),
            Some("http://t:4318/x".into())
        );
        assert_eq!(
            export("[export]\nendpoint = \"http://c:4317\"\nprotocol = \"grpc\"").traces_url(),
            Some("http://c:4317".into())
        );
    }
}
