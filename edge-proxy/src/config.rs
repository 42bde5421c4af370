//! The edge proxy's configuration: TOML, typed with serde, overridden by the standard `OTEL_*`
//! environment variables, and checked once at start with errors that name the field.
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
//! address = "127.0.0.1:9464"       # Prometheus /metrics
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
//! b3_single = false
//! b3_multi = false
//! trace_id_response_header = "x-trace-id"   # optional
//!
//! [export]
//! endpoint = "http://127.0.0.1:4318"        # none: spans are printed to the terminal
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
//! ```

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use ipnet::IpNet;
use serde::Deserialize;
use trace_core::propagation::Formats;
use trace_core::sampling::{Sampler, SamplingConfig, SamplingMode};
use trace_core::semconv::threadline;
use trace_core::span::KeyValue;

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
    /// Plain-text addresses.
    pub http: Vec<String>,
    /// Accept HTTP/2 with prior knowledge on the plain-text addresses.
    pub h2c: bool,
    /// TLS listeners.
    pub tls: Vec<TlsListener>,
}

impl Default for Listen {
    fn default() -> Self {
        Self {
            http: vec!["127.0.0.1:8080".into()],
            h2c: false,
            tls: vec![],
        }
    }
}

/// One TLS listener; HTTP/2 is offered through ALPN.
#[derive(Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub struct TlsListener {
    /// Address to bind.
    pub address: String,
    /// PEM certificate chain.
    pub certificate: PathBuf,
    /// PEM private key.
    pub key: PathBuf,
}

/// The admin listener.
#[derive(Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields, default)]
pub struct Admin {
    /// Address of the Prometheus `/metrics` endpoint; empty disables it.
    pub address: String,
}

impl Default for Admin {
    fn default() -> Self {
        Self {
            address: "127.0.0.1:9464".into(),
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

/// Propagation to the upstream and the client.
#[derive(Deserialize, Debug, Clone, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Propagation {
    /// Also write the single `b3` header.
    pub b3_single: bool,
    /// Also write the `X-B3-*` headers.
    pub b3_multi: bool,
    /// A response header that tells the client its trace ID.
    pub trace_id_response_header: Option<String>,
}

/// OTLP export protocols.
#[derive(Deserialize, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Protocol {
    /// OTLP/HTTP with protobuf bodies.
    #[default]
    #[serde(rename = "http/protobuf")]
    HttpProtobuf,
    /// OTLP/gRPC.
    #[serde(rename = "grpc")]
    Grpc,
}

/// Span export.
#[derive(Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields, default)]
pub struct Export {
    /// Tracing on or off; off leaves propagation and spans out entirely.
    pub enabled: bool,
    /// Collector base URL; without one, finished spans are printed to the terminal.
    pub endpoint: Option<String>,
    /// OTLP protocol.
    pub protocol: Protocol,
    /// Timeout of one export request, in milliseconds.
    pub timeout_ms: u64,
    /// Spans per export request.
    pub batch_size: usize,
    /// A partial batch is sent after this many milliseconds.
    pub flush_interval_ms: u64,
    /// Finished spans waiting for export or being exported; beyond this they are dropped and
    /// counted.
    pub queue_size: usize,
    /// Retries of a failed export before its spans are dropped and counted.
    pub max_retries: u32,
    /// Extra request headers (e.g. authentication).
    pub headers: BTreeMap<String, String>,
    /// `service.name`.
    pub service_name: String,
    /// Extra resource attributes.
    pub resource_attributes: BTreeMap<String, String>,
}

impl Default for Export {
    fn default() -> Self {
        Self {
            enabled: true,
            endpoint: None,
            protocol: Protocol::default(),
            timeout_ms: 2000,
            batch_size: 512,
            flush_interval_ms: 1000,
            queue_size: 8192,
            max_retries: 2,
            headers: BTreeMap::new(),
            service_name: "edge-proxy".into(),
            resource_attributes: BTreeMap::new(),
        }
    }
}

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
    /// `host:port`.
    pub address: String,
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
}

impl Default for AccessLog {
    fn default() -> Self {
        Self { enabled: true }
    }
}

pub use trace_core::config::FieldError as ConfigError;
use trace_core::config::check_ranges;

fn invalid(field: impl Into<String>, reason: impl Into<String>) -> ConfigError {
    ConfigError::new(field, reason)
}

/// The checked configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Everything as configured.
    pub config: Config,
    /// Plain-text listen addresses.
    pub http: Vec<SocketAddr>,
    /// The admin address, if enabled.
    pub admin: Option<SocketAddr>,
    /// The sampler.
    pub sampler: Sampler,
    /// Propagation formats besides W3C.
    pub formats: Formats,
    /// True when no upstream is configured: the built-in demo upstream serves.
    pub demo_upstream: bool,
    /// Route grouping.
    pub routes: trace_core::route::RouteGrouper,
    /// The `[edge]` tags as span attributes, copied onto every SERVER span without allocating.
    pub edge_tags: Vec<KeyValue>,
}

/// Configuration lives as long as the process. Leaking a value once lets every span borrow it
/// instead of copying it per request.
pub fn for_the_process(value: &str) -> &'static str {
    Box::leak(value.into())
}

impl Config {
    /// Parses TOML text.
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        let deserializer =
            toml::Deserializer::parse(text).map_err(|e| invalid("configuration", e.to_string()))?;
        serde_path_to_error::deserialize(deserializer).map_err(|e| {
            let path = e.path().to_string();
            let reason = e.inner().message().to_owned();
            invalid(
                if path == "." {
                    "configuration".into()
                } else {
                    path
                },
                reason,
            )
        })
    }

    /// Applies the standard `OTEL_*` variables, which win over the file.
    pub fn apply_env(&mut self, var: impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        let export = &mut self.export;
        if let Some(v) = var("OTEL_SDK_DISABLED") {
            export.enabled = !v.trim().eq_ignore_ascii_case("true");
        }
        if let Some(v) =
            var("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT").or_else(|| var("OTEL_EXPORTER_OTLP_ENDPOINT"))
        {
            export.endpoint = (!v.trim().is_empty()).then(|| v.trim().to_owned());
        }
        if let Some(v) =
            var("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL").or_else(|| var("OTEL_EXPORTER_OTLP_PROTOCOL"))
        {
            export.protocol = match v.trim() {
                "grpc" => Protocol::Grpc,
                "http/protobuf" => Protocol::HttpProtobuf,
                other => {
                    return Err(invalid(
                        "OTEL_EXPORTER_OTLP_PROTOCOL",
                        format!("must be grpc or http/protobuf, got {other:?}"),
                    ));
                }
            };
        }
        if let Some(v) = var("OTEL_EXPORTER_OTLP_TIMEOUT") {
            export.timeout_ms = number("OTEL_EXPORTER_OTLP_TIMEOUT", &v, "milliseconds")?;
        }
        if let Some(v) = var("OTEL_BSP_SCHEDULE_DELAY") {
            export.flush_interval_ms = number("OTEL_BSP_SCHEDULE_DELAY", &v, "milliseconds")?;
        }
        if let Some(v) = var("OTEL_BSP_MAX_QUEUE_SIZE") {
            export.queue_size = number("OTEL_BSP_MAX_QUEUE_SIZE", &v, "a span count")?;
        }
        if let Some(v) = var("OTEL_BSP_MAX_EXPORT_BATCH_SIZE") {
            export.batch_size = number("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", &v, "a span count")?;
        }
        if let Some(v) = var("OTEL_EXPORTER_OTLP_HEADERS") {
            export
                .headers
                .extend(key_values("OTEL_EXPORTER_OTLP_HEADERS", &v)?);
        }
        if let Some(v) = var("OTEL_SERVICE_NAME") {
            export.service_name = v;
        }
        if let Some(v) = var("OTEL_RESOURCE_ATTRIBUTES") {
            export
                .resource_attributes
                .extend(key_values("OTEL_RESOURCE_ATTRIBUTES", &v)?);
        }
        if let Some(v) = var("OTEL_TRACES_SAMPLER") {
            let (mode, parent_based) = match v.trim() {
                "always_on" => (SamplingMode::AlwaysOn, false),
                "always_off" => (SamplingMode::AlwaysOff, false),
                "traceidratio" => (SamplingMode::Proportional, false),
                "parentbased_always_on" => (SamplingMode::AlwaysOn, true),
                "parentbased_always_off" => (SamplingMode::AlwaysOff, true),
                "parentbased_traceidratio" => (SamplingMode::Proportional, true),
                other => {
                    return Err(invalid(
                        "OTEL_TRACES_SAMPLER",
                        format!("unsupported sampler {other:?}"),
                    ));
                }
            };
            self.sampling.mode = mode;
            self.sampling.parent_based = parent_based;
        }
        if let Some(v) = var("OTEL_TRACES_SAMPLER_ARG") {
            let ratio: f32 = v.trim().parse().map_err(|_| {
                invalid("OTEL_TRACES_SAMPLER_ARG", "must be a ratio between 0 and 1")
            })?;
            if !(0.0..=1.0).contains(&ratio) {
                return Err(invalid(
                    "OTEL_TRACES_SAMPLER_ARG",
                    "must be a ratio between 0 and 1",
                ));
            }
            self.sampling.percentage = ratio * 100.0;
        }
        Ok(())
    }

    /// Checks every field.
    pub fn validate(self) -> Result<Settings, ConfigError> {
        let http = self
            .listen
            .http
            .iter()
            .enumerate()
            .map(|(i, a)| {
                a.parse().map_err(|_| {
                    invalid(
                        format!("listen.http[{i}]"),
                        format!("{a:?} is not an ip:port"),
                    )
                })
            })
            .collect::<Result<Vec<SocketAddr>, _>>()?;
        if http.is_empty() && self.listen.tls.is_empty() {
            return Err(invalid("listen", "needs at least one http or tls address"));
        }
        for (i, tls) in self.listen.tls.iter().enumerate() {
            tls.address
                .parse::<SocketAddr>()
                .map_err(|_| invalid(format!("listen.tls[{i}].address"), "is not an ip:port"))?;
            for (name, path) in [("certificate", &tls.certificate), ("key", &tls.key)] {
                if !path.is_file() {
                    return Err(invalid(
                        format!("listen.tls[{i}].{name}"),
                        format!("{} is not a readable file", path.display()),
                    ));
                }
            }
            // Loaded here the way the listener will load them: a listener that fails later
            // would take the whole proxy service down with it.
            let loaded = pingora::tls::load_certs_and_key_files(
                &tls.certificate.to_string_lossy(),
                &tls.key.to_string_lossy(),
            );
            if !matches!(loaded, Ok(Some(_))) {
                return Err(invalid(
                    format!("listen.tls[{i}]"),
                    format!(
                        "{} and {} do not hold a PEM certificate chain and a PEM private key",
                        tls.certificate.display(),
                        tls.key.display()
                    ),
                ));
            }
        }
        if !(1..=256).contains(&self.server.threads) {
            return Err(invalid("server.threads", "must be between 1 and 256"));
        }
        if self.server.grace_period_seconds > 300
            || self.server.graceful_shutdown_timeout_seconds > 300
        {
            return Err(invalid(
                "server",
                "grace periods must be at most 300 seconds",
            ));
        }
        let admin = match self.admin.address.as_str() {
            "" => None,
            a => Some(
                a.parse()
                    .map_err(|_| invalid("admin.address", format!("{a:?} is not an ip:port")))?,
            ),
        };
        let sampler = self.sampling.build().map_err(|e| e.within("sampling"))?;
        let export = &self.export;
        if let Some(endpoint) = &export.endpoint
            && !(endpoint.starts_with("http://") || endpoint.starts_with("https://"))
        {
            return Err(invalid(
                "export.endpoint",
                "must be an http:// or https:// URL",
            ));
        }
        check_ranges(&[
            ("export.timeout_ms", export.timeout_ms, 1, 60_000),
            ("export.batch_size", export.batch_size as u64, 1, 10_000),
            (
                "export.flush_interval_ms",
                export.flush_interval_ms,
                10,
                60_000,
            ),
            ("export.queue_size", export.queue_size as u64, 1, 10_000_000),
            ("export.max_retries", u64::from(export.max_retries), 0, 10),
        ])?;
        // The exporter is woken when a batch is queued, so a batch must fit in the queue.
        if export.batch_size > export.queue_size {
            return Err(invalid(
                "export.batch_size",
                format!(
                    "{} is larger than export.queue_size ({})",
                    export.batch_size, export.queue_size
                ),
            ));
        }
        if export.service_name.trim().is_empty() {
            return Err(invalid("export.service_name", "must not be empty"));
        }
        if let Some(name) = &self.propagation.trace_id_response_header
            && http::HeaderName::from_bytes(name.as_bytes()).is_err()
        {
            return Err(invalid(
                "propagation.trace_id_response_header",
                "is not a header name",
            ));
        }
        let upstreams = &self.upstreams;
        for (i, location) in upstreams.locations.iter().enumerate() {
            if location.name.trim().is_empty() {
                return Err(invalid(
                    format!("upstreams.locations[{i}].name"),
                    "must not be empty",
                ));
            }
            let Ok(address) = location.address.parse::<SocketAddr>() else {
                return Err(invalid(
                    format!("upstreams.locations[{i}].address"),
                    format!("{:?} is not an ip:port", location.address),
                ));
            };
            // The balancer knows a location by its address.
            if let Some(first) = upstreams.locations[..i]
                .iter()
                .position(|l| l.address.parse::<SocketAddr>() == Ok(address))
            {
                return Err(invalid(
                    format!("upstreams.locations[{i}].address"),
                    format!("{address} is already upstreams.locations[{first}]"),
                ));
            }
            if location.weight == 0 {
                return Err(invalid(
                    format!("upstreams.locations[{i}].weight"),
                    "must be at least 1",
                ));
            }
        }
        check_ranges(&[
            ("server.threads", self.server.threads as u64, 1, 256),
            (
                "server.grace_period_seconds",
                self.server.grace_period_seconds,
                0,
                300,
            ),
            (
                "server.graceful_shutdown_timeout_seconds",
                self.server.graceful_shutdown_timeout_seconds,
                0,
                300,
            ),
            (
                "upstreams.connect_timeout_ms",
                upstreams.connect_timeout_ms,
                10,
                60_000,
            ),
            (
                "upstreams.read_timeout_ms",
                upstreams.read_timeout_ms,
                10,
                600_000,
            ),
            ("upstreams.retries", upstreams.retries as u64, 0, 3),
            (
                "upstreams.health_check.interval_ms",
                upstreams.health_check.interval_ms,
                100,
                60_000,
            ),
        ])?;
        if !upstreams.health_check.path.starts_with('/') {
            return Err(invalid(
                "upstreams.health_check.path",
                "must start with '/'",
            ));
        }
        let routes = trace_core::route::RouteGrouper::new(&self.routes)?;
        let formats = Formats {
            b3_single: self.propagation.b3_single,
            b3_multi: self.propagation.b3_multi,
            ..Formats::default()
        };
        let edge_tags = [
            (threadline::LOCATION, &self.edge.location),
            (threadline::REGION, &self.edge.region),
            (threadline::POP, &self.edge.pop),
        ]
        .into_iter()
        .filter_map(|(key, value)| Some(KeyValue::new(key, for_the_process(value.as_deref()?))))
        .collect();
        Ok(Settings {
            edge_tags,
            demo_upstream: upstreams.locations.is_empty(),
            routes,
            http,
            admin,
            sampler,
            formats,
            config: self,
        })
    }
}

/// A whole number from the variable `name`; `unit` says what it counts in the error.
fn number<T: std::str::FromStr>(name: &str, value: &str, unit: &str) -> Result<T, ConfigError> {
    value
        .trim()
        .parse()
        .map_err(|_| invalid(name, format!("must be {unit}, got {value:?}")))
}

/// `key=value,key2=value2`, as the OpenTelemetry environment variables write them.
fn key_values(variable: &str, text: &str) -> Result<BTreeMap<String, String>, ConfigError> {
    text.split(',')
        .filter(|pair| !pair.trim().is_empty())
        .map(|pair| {
            let (k, v) = pair
                .split_once('=')
                .ok_or_else(|| invalid(variable, format!("{pair:?} is not key=value")))?;
            // Values are percent-encoded, as in W3C Baggage ("Bearer%20token").
            let value = percent_encoding::percent_decode_str(v.trim())
                .decode_utf8()
                .map_err(|_| invalid(variable, format!("{pair:?} is not UTF-8 once decoded")))?;
            Ok((k.trim().to_owned(), value.into_owned()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(toml: &str) -> ConfigError {
        match Config::from_toml(toml).and_then(Config::validate) {
            Ok(_) => panic!("{toml} was accepted"),
            Err(e) => e,
        }
    }

    #[test]
    fn the_embedded_default_and_the_documented_example_are_valid() {
        let settings = Config::default().validate().unwrap();
        assert!(settings.demo_upstream);
        assert_eq!(settings.http, ["127.0.0.1:8080".parse().unwrap()]);
        let doc = include_str!("config.rs");
        let example: String = doc
            .lines()
            .filter_map(|l| l.strip_prefix("//! "))
            .skip_while(|l| !l.starts_with("```toml"))
            .skip(1)
            .take_while(|l| !l.starts_with("```"))
            .collect::<Vec<_>>()
            .join("\n");
        let config = Config::from_toml(&example).unwrap();
        assert_eq!(config.upstreams.locations[0].name, "fra1");
        assert_eq!(config.trust.client_networks.len(), 1);
    }

    #[test]
    fn errors_name_the_field() {
        assert_eq!(error("[export]\nbatch_size = 0").field, "export.batch_size");
        assert_eq!(
            error("[export]\nbatch_size = 100\nqueue_size = 50").field,
            "export.batch_size"
        );
        assert_eq!(
            error("[export]\nbatch_size = \"x\"").field,
            "export.batch_size"
        );
        assert_eq!(
            error("[export]\nendpoint = \"localhost:4318\"").field,
            "export.endpoint"
        );
        assert_eq!(
            error("[trust]\nclient_networks = [\"10.0.0.0/33\"]").field,
            "trust.client_networks[0]"
        );
        assert_eq!(error("[listen]\nhttp = [\"nope\"]").field, "listen.http[0]");
        assert_eq!(
            error("[sampling]\npercentage = 120.0").field,
            "sampling.percentage"
        );
        assert_eq!(
            error("[[upstreams.locations]]\nname = \"a\"\naddress = \"1.2.3.4:80\"\nweight = 0")
                .field,
            "upstreams.locations[0].weight"
        );
        let twice = "[[upstreams.locations]]\nname = \"a\"\naddress = \"1.2.3.4:80\"\n";
        let twice = format!("{twice}{}", twice.replace("\"a\"", "\"b\""));
        assert_eq!(error(&twice).field, "upstreams.locations[1].address");
        assert_eq!(error("[[listen.tls]]\naddress = \"127.0.0.1:8443\"\ncertificate = \"/nope\"\nkey = \"/nope\"").field, "listen.tls[0].certificate");
        assert!(error("[exports]\nx = 1").reason.contains("unknown field"));
    }

    #[test]
    fn otel_environment_variables_override_the_file() {
        let mut config = Config::default();
        let env = [
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
            (
                "OTEL_EXPORTER_OTLP_HEADERS",
                "authorization=Bearer%20x, team=edge",
            ),
            ("OTEL_SERVICE_NAME", "edge-fra1"),
            ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"),
            ("OTEL_TRACES_SAMPLER_ARG", "0.25"),
            ("OTEL_BSP_SCHEDULE_DELAY", "250"),
            ("OTEL_BSP_MAX_QUEUE_SIZE", "4096"),
            ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "128"),
        ];
        config
            .apply_env(|k| {
                env.iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            })
            .unwrap();
        assert_eq!(
            config.export.endpoint.as_deref(),
            Some("http://collector:4317")
        );
        assert_eq!(config.export.protocol, Protocol::Grpc);
        assert_eq!(config.export.headers["team"], "edge");
        assert_eq!(config.export.headers["authorization"], "Bearer x");
        assert_eq!(config.export.service_name, "edge-fra1");
        assert_eq!(config.sampling.mode, SamplingMode::Proportional);
        assert!((config.sampling.percentage - 25.0).abs() < 1e-4);
        assert_eq!(config.export.flush_interval_ms, 250);
        assert_eq!(config.export.queue_size, 4096);
        assert_eq!(config.export.batch_size, 128);
        let mut off = Config::default();
        off.apply_env(|k| (k == "OTEL_SDK_DISABLED").then(|| "true".into()))
            .unwrap();
        assert!(!off.export.enabled);
        let bad = Config::default()
            .apply_env(|k| (k == "OTEL_EXPORTER_OTLP_PROTOCOL").then(|| "udp".into()));
        assert_eq!(bad.unwrap_err().field, "OTEL_EXPORTER_OTLP_PROTOCOL");
        let bad =
            Config::default().apply_env(|k| (k == "OTEL_BSP_SCHEDULE_DELAY").then(|| "1s".into()));
        assert_eq!(bad.unwrap_err().field, "OTEL_BSP_SCHEDULE_DELAY");
    }
}
