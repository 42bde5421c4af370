//! The plugin configuration: JSON from Envoy's `PluginConfig.configuration`, parsed and checked
//! once in `on_configure`. Every error names the field it is about.
//!
//! ```json
//! {
//!   "service_name": "payments-sidecar",
//!   "tags": { "datacenter": "eu-central", "location": "fra1" },
//!   "tags_from_node_metadata": true,
//!   "direction": "auto",
//!   "collector": { "cluster": "threadline_agent", "authority": "threadline-agent",
//!                  "path": "/v1/traces", "timeout_ms": 2000 },
//!   "batch": { "max_spans": 256, "flush_interval_ms": 1000, "max_queued_spans": 2048,
//!              "max_in_flight": 4, "max_retries": 2 },
//!   "without_context": "start_trace",
//!   "sampling": { "mode": "hash_seed", "percentage": 10.0, "hash_seed": 22 },
//!   "propagation": { "b3_single": false, "b3_multi": false },
//!   "no_touch": { "hosts": ["*.amazonaws.com"], "path_prefixes": ["/presigned/"] },
//!   "capture_headers": ["x-request-id"],
//!   "routes": ["/users/{id}"]
//! }
//! ```
//!
//! Every field is optional; `{}` is a working configuration.

use serde::Deserialize;
use trace_core::propagation::Formats;
use trace_core::route::RouteGrouper;
use trace_core::sampling::{Sampler, SamplingConfig};

/// The most header names `capture_headers` may list.
const MAX_CAPTURED_HEADERS: usize = 16;

/// The configuration as written.
#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields, default)]
pub struct FilterConfig {
    /// `service.name` of the spans.
    pub service_name: Option<String>,
    /// Location tags; a tag left out here may come from Envoy node metadata.
    pub tags: Tags,
    /// Read tags left out of `tags` from node metadata keys `THREADLINE_DATACENTER`,
    /// `THREADLINE_LOCATION`, `THREADLINE_NODE` and `THREADLINE_WORKLOAD`.
    pub tags_from_node_metadata: Option<bool>,
    /// Which kind of span to make.
    pub direction: Direction,
    /// Where spans are sent.
    pub collector: Collector,
    /// Batching, queueing and retries.
    pub batch: Batch,
    /// What to do for a request that arrives without trace context.
    pub without_context: WithoutContext,
    /// Sampling of traces that start here.
    pub sampling: SamplingConfig,
    /// Formats to write: W3C unless `trace_context` is false, B3 when asked (the caller's own
    /// format is always written back).
    pub propagation: Formats,
    /// Requests to pass byte for byte unchanged, besides SigV4-signed ones.
    pub no_touch: NoTouch,
    /// Request headers recorded as `http.request.header.<name>` attributes.
    pub capture_headers: Vec<String>,
    /// Route templates for span names and `http.route`, tried in order.
    pub routes: Vec<String>,
}

/// Where a span ran.
#[derive(Deserialize, Debug, Default, Clone, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct Tags {
    /// Datacenter.
    pub datacenter: Option<String>,
    /// Core location.
    pub location: Option<String>,
    /// Node (server).
    pub node: Option<String>,
    /// Workload.
    pub workload: Option<String>,
}

/// The kind of span a listener gets.
#[derive(Deserialize, Debug, Default, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// From Envoy's `xds.listener_direction`: SERVER inbound, CLIENT outbound.
    #[default]
    Auto,
    /// Always SERVER.
    Inbound,
    /// Always CLIENT.
    Outbound,
}

/// What to do for a request that arrives without trace context.
#[derive(Deserialize, Debug, Default, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum WithoutContext {
    /// Start a trace here, subject to `sampling`.
    #[default]
    StartTrace,
    /// Record nothing and add no headers.
    Ignore,
}

/// The OTLP/HTTP collector, reached through an Envoy cluster.
#[derive(Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct Collector {
    /// Envoy cluster name; by default the node agent on the same server.
    pub cluster: String,
    /// `:authority` of export requests.
    pub authority: String,
    /// `:path` of export requests.
    pub path: String,
    /// Timeout of one export request, in milliseconds.
    pub timeout_ms: u64,
}

impl Default for Collector {
    fn default() -> Self {
        Self {
            cluster: "threadline_agent".into(),
            authority: "threadline-agent".into(),
            path: trace_core::otlp::TRACES_PATH.into(),
            timeout_ms: 2000,
        }
    }
}

/// Batching, queueing and retries of the exporter of one worker.
#[derive(Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct Batch {
    /// Spans per export request; a full batch is sent on the next tick (100 ms).
    pub max_spans: usize,
    /// A partial batch is sent after this many milliseconds.
    pub flush_interval_ms: u64,
    /// Finished spans waiting for export; beyond this they are dropped and counted.
    pub max_queued_spans: usize,
    /// Export requests outstanding at once.
    pub max_in_flight: usize,
    /// Retries of a failed export request before its spans are dropped and counted.
    pub max_retries: u32,
}

impl Default for Batch {
    fn default() -> Self {
        Self {
            max_spans: 256,
            flush_interval_ms: 1000,
            max_queued_spans: 2048,
            max_in_flight: 4,
            max_retries: 2,
        }
    }
}

/// Requests the filter must not change.
#[derive(Deserialize, Debug, Default, Clone, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct NoTouch {
    /// `:authority` hosts: exact names, or `*.suffix` for any subdomain.
    pub hosts: Vec<String>,
    /// `:path` prefixes.
    pub path_prefixes: Vec<String>,
}

pub use trace_core::config::FieldError as ConfigError;
use trace_core::config::check_ranges;

fn invalid(field: impl Into<String>, reason: impl Into<String>) -> ConfigError {
    ConfigError::new(field, reason)
}

/// The checked configuration every request uses.
#[derive(Debug)]
pub struct Settings {
    /// `service.name`.
    pub service_name: String,
    /// Tags from the configuration; node metadata fills the gaps at start.
    pub tags: Tags,
    /// Whether node metadata may fill missing tags.
    pub tags_from_node_metadata: bool,
    /// Span kind selection.
    pub direction: Direction,
    /// Export target.
    pub collector: Collector,
    /// Export limits.
    pub batch: Batch,
    /// No-context policy.
    pub without_context: WithoutContext,
    /// The sampler for traces that start here.
    pub sampler: Sampler,
    /// Extra formats to write.
    pub propagation: Formats,
    /// No-touch rules.
    pub no_touch: NoTouch,
    /// Lowercase header names to capture.
    pub capture_headers: Vec<String>,
    /// Route grouping.
    pub routes: RouteGrouper,
}

impl Settings {
    /// Parses and checks a configuration. Empty input means all defaults.
    pub fn from_json(bytes: &[u8]) -> Result<Self, ConfigError> {
        let config: FilterConfig = if bytes.iter().all(u8::is_ascii_whitespace) {
            FilterConfig::default()
        } else {
            let mut json = serde_json::Deserializer::from_slice(bytes);
            serde_path_to_error::deserialize(&mut json).map_err(|e| {
                let path = e.path().to_string();
                let field = if path == "." {
                    "configuration".to_owned()
                } else {
                    path
                };
                invalid(field, e.into_inner().to_string())
            })?
        };
        config.validate()
    }
}

impl FilterConfig {
    /// Checks every field and builds the settings.
    pub fn validate(self) -> Result<Settings, ConfigError> {
        let service_name = self.service_name.unwrap_or_else(|| "envoy-sidecar".into());
        if service_name.trim().is_empty() {
            return Err(invalid("service_name", "must not be empty"));
        }
        for (field, value) in [
            ("tags.datacenter", &self.tags.datacenter),
            ("tags.location", &self.tags.location),
            ("tags.node", &self.tags.node),
            ("tags.workload", &self.tags.workload),
        ] {
            if value.as_deref().is_some_and(|v| v.trim().is_empty()) {
                return Err(invalid(field, "must not be empty when set"));
            }
        }
        let collector = self.collector;
        if collector.cluster.is_empty() {
            return Err(invalid("collector.cluster", "must name an Envoy cluster"));
        }
        if collector.authority.is_empty() {
            return Err(invalid("collector.authority", "must not be empty"));
        }
        if !collector.path.starts_with('/') {
            return Err(invalid("collector.path", "must start with '/'"));
        }
        if !(1..=60_000).contains(&collector.timeout_ms) {
            return Err(invalid(
                "collector.timeout_ms",
                "must be between 1 and 60000",
            ));
        }
        let batch = self.batch;
        check_ranges(&[
            ("batch.max_spans", batch.max_spans as u64, 1, 10_000),
            (
                "batch.flush_interval_ms",
                batch.flush_interval_ms,
                100,
                60_000,
            ),
            (
                "batch.max_queued_spans",
                batch.max_queued_spans as u64,
                1,
                1_000_000,
            ),
            ("batch.max_in_flight", batch.max_in_flight as u64, 1, 64),
            ("batch.max_retries", u64::from(batch.max_retries), 0, 10),
        ])?;
        if batch.max_queued_spans < batch.max_spans {
            return Err(invalid(
                "batch.max_queued_spans",
                "must be at least batch.max_spans",
            ));
        }
        let sampler = self.sampling.build().map_err(|e| e.within("sampling"))?;
        for (i, host) in self.no_touch.hosts.iter().enumerate() {
            let name = host.strip_prefix("*.").unwrap_or(host);
            if name.is_empty() || name.contains(['*', '/', ' ']) {
                return Err(invalid(
                    format!("no_touch.hosts[{i}]"),
                    "must be a host name or *.suffix",
                ));
            }
        }
        for (i, prefix) in self.no_touch.path_prefixes.iter().enumerate() {
            if !prefix.starts_with('/') {
                return Err(invalid(
                    format!("no_touch.path_prefixes[{i}]"),
                    "must start with '/'",
                ));
            }
        }
        if self.capture_headers.len() > MAX_CAPTURED_HEADERS {
            return Err(invalid(
                "capture_headers",
                format!("at most {MAX_CAPTURED_HEADERS} headers"),
            ));
        }
        let mut capture_headers = Vec::with_capacity(self.capture_headers.len());
        for (i, name) in self.capture_headers.iter().enumerate() {
            let token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
            if name.is_empty() || !name.bytes().all(token) {
                return Err(invalid(
                    format!("capture_headers[{i}]"),
                    "must be a header name",
                ));
            }
            capture_headers.push(name.to_ascii_lowercase());
        }
        let routes = RouteGrouper::new(&self.routes)?;
        Ok(Settings {
            service_name,
            tags: self.tags,
            tags_from_node_metadata: self.tags_from_node_metadata.unwrap_or(true),
            direction: self.direction,
            collector,
            batch,
            without_context: self.without_context,
            sampler,
            propagation: self.propagation,
            no_touch: self.no_touch,
            capture_headers,
            routes,
        })
    }
}

impl NoTouch {
    /// Whether a request for `authority` and `path` must pass unchanged.
    pub fn matches(&self, authority: &str, path: &str) -> bool {
        let authority = authority.to_ascii_lowercase();
        let host = authority
            .rsplit_once(':')
            .filter(|(_, port)| port.bytes().all(|b| b.is_ascii_digit()))
            .map_or(authority.as_str(), |(host, _)| host);
        self.hosts.iter().any(|rule| match rule.strip_prefix("*.") {
            Some(suffix) => host
                .strip_suffix(suffix.to_ascii_lowercase().as_str())
                .is_some_and(|rest| rest.ends_with('.')),
            None => host.eq_ignore_ascii_case(rule),
        }) || self
            .path_prefixes
            .iter()
            .any(|p| path.starts_with(p.as_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(json: &str) -> ConfigError {
        Settings::from_json(json.as_bytes()).unwrap_err()
    }

    #[test]
    fn empty_and_minimal_configurations_work() {
        let settings = Settings::from_json(b"").unwrap();
        assert_eq!(settings.collector.cluster, "threadline_agent");
        assert_eq!(settings.service_name, "envoy-sidecar");
        assert!(Settings::from_json(b"{}").is_ok());
        let doc = include_str!("config.rs");
        let example: String = doc
            .lines()
            .filter_map(|l| l.strip_prefix("//! "))
            .skip_while(|l| !l.starts_with("```json"))
            .skip(1)
            .take_while(|l| !l.starts_with("```"))
            .collect::<Vec<_>>()
            .join("\n");
        let documented = Settings::from_json(example.as_bytes()).unwrap();
        assert_eq!(documented.service_name, "payments-sidecar");
        assert_eq!(documented.capture_headers, ["x-request-id"]);
    }

    #[test]
    fn errors_name_the_field() {
        assert_eq!(
            error(r#"{"batch": {"max_spans": 0}}"#).field,
            "batch.max_spans"
        );
        assert_eq!(
            error(r#"{"batch": {"max_spans": "many"}}"#).field,
            "batch.max_spans"
        );
        assert_eq!(
            error(r#"{"collector": {"cluster": ""}}"#).field,
            "collector.cluster"
        );
        assert_eq!(
            error(r#"{"collector": {"path": "v1"}}"#).field,
            "collector.path"
        );
        assert_eq!(
            error(r#"{"sampling": {"percentage": 150}}"#).field,
            "sampling.percentage"
        );
        assert_eq!(error(r#"{"routes": ["/ok", "nope"]}"#).field, "routes[1]");
        assert_eq!(
            error(r#"{"capture_headers": ["x-ok", "bad header"]}"#).field,
            "capture_headers[1]"
        );
        assert_eq!(
            error(r#"{"no_touch": {"hosts": ["a*b"]}}"#).field,
            "no_touch.hosts[0]"
        );
        assert_eq!(error(r#"{"direction": "sideways"}"#).field, "direction");
        assert_eq!(
            error(r#"{"tags": {"location": " "}}"#).field,
            "tags.location"
        );
        assert!(
            error(r#"{"colector": {}}"#)
                .reason
                .contains("unknown field")
        );
        assert_eq!(error("not json").field, "configuration");
        assert!(
            error(r#"{"batch": {"max_spans": 0}}"#)
                .to_string()
                .contains("batch.max_spans")
        );
    }

    #[test]
    fn no_touch_rules_match_hosts_and_paths() {
        let rules = NoTouch {
            hosts: vec!["*.amazonaws.com".into(), "exact.example".into()],
            path_prefixes: vec!["/presigned/".into()],
        };
        assert!(rules.matches("s3.eu-west-1.amazonaws.com", "/"));
        assert!(rules.matches("s3.amazonaws.com:443", "/"));
        assert!(!rules.matches("amazonaws.com", "/"));
        assert!(!rules.matches("evilamazonaws.com", "/"));
        assert!(rules.matches("EXACT.example", "/"));
        assert!(rules.matches("other", "/presigned/x"));
        assert!(!rules.matches("other", "/x"));
    }
}
