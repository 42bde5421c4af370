//! The checks of the whole configuration, once at start, and the state derived from it.

use otlp_export::Target;
use trace_core::config::check_ranges;
use trace_core::export::BufferLimits;
use trace_core::route::RouteGrouper;
use trace_core::sampling::Sampler;
use trace_core::semconv::threadline;
use trace_core::span::KeyValue;

use super::{Config, ConfigError};
use crate::artifact::Artifact;
use crate::exchange::{Limits, WorkloadMap};
use crate::join::JoinSettings;

const MS: u64 = 1_000_000;

/// The checked configuration and what is derived from it.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Everything as configured.
    pub config: Config,
    /// The sampler of black-box spans that start a trace.
    pub sampler: Sampler,
    /// Route grouping.
    pub routes: RouteGrouper,
    /// The `[location]` tags as span attributes.
    pub tags: Vec<KeyValue>,
    /// Interfaces to workloads.
    pub workloads: WorkloadMap,
    /// The exchange builder's bounds.
    pub limits: Limits,
    /// The join's.
    pub join: JoinSettings,
    /// The relay's buffer.
    pub buffer: BufferLimits,
    /// Where the relay sends.
    pub target: Target,
    /// The artifact, read.
    pub artifact: Option<Artifact>,
}

fn invalid(field: impl Into<String>, reason: impl Into<String>) -> ConfigError {
    ConfigError::new(field, reason)
}

impl Config {
    /// Checks every field and derives the agent's state.
    pub fn validate(self) -> Result<Settings, ConfigError> {
        let sampler = self.sampling.build().map_err(|e| e.within("sampling"))?;
        let routes = RouteGrouper::new(&self.routes)?;
        if self.kernel.interfaces.iter().any(|p| p.trim().is_empty()) {
            return Err(invalid("kernel.interfaces", "a pattern must not be empty"));
        }
        let x = &self.exchanges;
        let j = &self.join;
        let e = &self.export;
        check_ranges(&[
            (
                "receiver.max_body_bytes",
                self.receiver.max_body_bytes as u64,
                1024,
                64 << 20,
            ),
            (
                "exchanges.max_connections",
                x.max_connections as u64,
                1,
                4 << 20,
            ),
            (
                "exchanges.max_requests_per_connection",
                x.max_requests_per_connection as u64,
                1,
                1024,
            ),
            (
                "exchanges.max_split_heads",
                x.max_split_heads as u64,
                0,
                1 << 20,
            ),
            ("exchanges.quiet_ms", x.quiet_ms, 10, 600_000),
            (
                "exchanges.response_timeout_ms",
                x.response_timeout_ms,
                100,
                3_600_000,
            ),
            ("exchanges.idle_ms", x.idle_ms, 1000, 86_400_000),
            ("join.window_ms", j.window_ms, 0, 600_000),
            ("join.clock_slack_ms", j.clock_slack_ms, 0, 1000),
            ("join.inflight_wait_ms", j.inflight_wait_ms, 0, 600_000),
            ("join.max_indexed", j.max_indexed as u64, 1, 4 << 20),
            ("join.max_pending", j.max_pending as u64, 1, 4 << 20),
        ])?;
        e.check()?;
        if !e.enabled {
            return Err(invalid(
                "export.enabled",
                "node-probe cannot run with export off: it relays the sidecars' spans",
            ));
        }
        let Some(traces_url) = e.traces_url() else {
            return Err(invalid(
                "export.endpoint",
                "is required: the collector the agent relays to (or OTEL_EXPORTER_OTLP_ENDPOINT)",
            ));
        };
        if points_at(&traces_url, self.receiver.http)
            || self
                .receiver
                .grpc
                .is_some_and(|grpc| points_at(&traces_url, grpc))
        {
            return Err(invalid(
                e.endpoint_field(),
                format!("{traces_url} is this agent's own receiver: spans would loop"),
            ));
        }
        let target = Target::new(e)?;
        for (interface, workload) in &self.workloads {
            if interface.is_empty() || workload.trim().is_empty() {
                return Err(invalid(
                    format!("workloads.{interface}"),
                    "needs an interface name (or prefix*) and a workload name",
                ));
            }
        }
        let artifact = match &self.artifact {
            None => None,
            Some(a) => {
                if !a.path.starts_with('/') || a.path == trace_core::otlp::TRACES_PATH {
                    return Err(invalid(
                        "artifact.path",
                        "must start with '/' and not be /v1/traces",
                    ));
                }
                let loaded = Artifact::load(&a.file, &a.path).map_err(|err| {
                    invalid("artifact.file", format!("{}: {err}", a.file.display()))
                })?;
                Some(loaded)
            }
        };
        let tags = [
            (threadline::DATACENTER, &self.location.datacenter),
            (threadline::LOCATION, &self.location.location),
            (threadline::NODE, &self.location.node),
        ]
        .into_iter()
        .filter_map(|(key, value)| Some(KeyValue::new(key, value.clone()?)))
        .collect();
        Ok(Settings {
            sampler,
            routes,
            tags,
            workloads: WorkloadMap::new(self.workloads.clone()),
            limits: Limits {
                max_connections: x.max_connections,
                max_open_per_connection: x.max_requests_per_connection,
                max_assemblies: x.max_split_heads,
                quiet_ns: x.quiet_ms * MS,
                response_timeout_ns: x.response_timeout_ms * MS,
                idle_ns: x.idle_ms * MS,
            },
            join: JoinSettings {
                window_ns: j.window_ms * MS,
                slack_ns: j.clock_slack_ms * MS,
                inflight_wait_ns: j.inflight_wait_ms * MS,
                max_indexed: j.max_indexed,
                max_pending: j.max_pending,
            },
            buffer: e.buffer_limits(),
            target,
            artifact,
            config: self,
        })
    }
}

/// Whether `url` names the port `listener` listens on, on this host.
fn points_at(url: &str, listener: std::net::SocketAddr) -> bool {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split('/').next().unwrap_or_default();
    let Some((host, port)) = authority.rsplit_once(':') else {
        return false;
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if port.parse::<u16>().ok() != Some(listener.port()) {
        return false;
    }
    let local = host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback() || ip.is_unspecified());
    let ip = listener.ip();
    host.parse::<std::net::IpAddr>().is_ok_and(|h| h == ip)
        || (local && (ip.is_loopback() || ip.is_unspecified()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The error of `toml`, given a collector when it names none.
    fn error(toml: &str) -> ConfigError {
        let toml = if toml.contains("[export]") {
            toml.to_owned()
        } else {
            format!("{toml}\n[export]\nendpoint = \"http://collector:4318\"")
        };
        match Config::from_toml(&toml).and_then(Config::validate) {
            Ok(_) => panic!("{toml} was accepted"),
            Err(e) => e,
        }
    }

    #[test]
    fn the_defaults_are_valid() {
        let settings = Config::from_toml("[export]\nendpoint = \"http://collector:4318\"")
            .and_then(Config::validate)
            .unwrap();
        assert_eq!(
            settings.target.describe(),
            "http://collector:4318/v1/traces"
        );
        assert_eq!(settings.limits, Limits::default());
        assert_eq!(settings.join, JoinSettings::default());
    }

    #[test]
    fn errors_name_the_field() {
        let none = Config::default().validate().unwrap_err();
        assert_eq!(none.field, "export.endpoint");
        let looping = "[export]\nendpoint = \"http://localhost:4318\"";
        assert!(error(looping).reason.contains("loop"), "{}", error(looping));
        let grpc = "[export]\nendpoint = \"http://127.0.0.1:4317\"\nprotocol = \"grpc\"";
        assert_eq!(error(grpc).field, "export.endpoint");
        for (toml, field) in [
            ("[export]\nbatch_size = 0", "export.batch_size"),
            (
                "[export]\ntraces_endpoint = \"http://[::1]:4318/v1/traces\"",
                "export.traces_endpoint",
            ),
            (
                "[export]\nbatch_size = 100\nqueue_size = 50",
                "export.batch_size",
            ),
            ("[export]\nendpoint = \"collector:4318\"", "export.endpoint"),
            (
                "[export.headers]\n\"bad name\" = \"x\"",
                "export.headers.bad name",
            ),
            ("[export]\nenabled = false", "export.enabled"),
            ("[join]\nmax_pending = 0", "join.max_pending"),
            ("[exchanges]\nquiet_ms = 1", "exchanges.quiet_ms"),
            ("[sampling]\npercentage = 120.0", "sampling.percentage"),
            (
                "[artifact]\nfile = \"/nonexistent/filter.wasm\"",
                "artifact.file",
            ),
            (
                "[artifact]\nfile = \"/dev/null\"\npath = \"x\"",
                "artifact.path",
            ),
            ("[workloads]\n\"tap0\" = \" \"", "workloads.tap0"),
            ("[kernel]\ninterfaces = [\"\"]", "kernel.interfaces"),
            ("routes = [\"no-slash\"]", "routes[0]"),
        ] {
            assert_eq!(error(toml).field, field, "{toml}");
        }
    }
}
