//! The standard `OTEL_*` variables over the file: read by trace-core's `otel_env`, the same
//! way every Threadline binary reads them, and applied here. The environment wins.
//!
//! Where the edge differs from an SDK:
//! - Headers and resource attributes from the environment are added to the file's, a key
//!   set in both taking the environment's value.
//! - A generic endpoint replaces both `export.endpoint` and `export.traces_endpoint`; a
//!   traces endpoint replaces `export.traces_endpoint`, which wins over `export.endpoint`.
//! - `OTEL_EXPORTER_OTLP_TIMEOUT=0` (no limit) becomes the longest timeout the edge allows.
//! - `OTEL_BSP_EXPORT_TIMEOUT` has no equivalent: each request is bounded by
//!   `export.timeout_ms` and retried `export.max_retries` times. It is ignored with a warning.

use trace_core::otel_env::{self, Endpoint, FromVar, OtelEnv, Timeout};

use super::validate::MAX_EXPORT_TIMEOUT_MS;
use super::{Config, ConfigError};

/// What the environment changed.
#[derive(Debug, Default)]
pub struct Applied {
    /// Values that were ignored, each naming its variable, to be logged.
    pub warnings: Vec<ConfigError>,
    /// Fields whose value now comes from a variable: `(field, variable)`.
    origins: Vec<(&'static str, &'static str)>,
}

impl Applied {
    /// `error` from [`Config::validate`], naming the variable when its field was set by one:
    /// the variable is what the operator must fix.
    pub fn explain(&self, error: ConfigError) -> ConfigError {
        let from = self.origins.iter().rev().find(|(field, _)| {
            error.field.strip_prefix(field).is_some_and(|rest| {
                rest.is_empty() || rest.starts_with('.') || rest.starts_with('[')
            })
        });
        match from {
            Some((_, variable)) => {
                ConfigError::new(*variable, format!("{} (as {})", error.reason, error.field))
            }
            None => error,
        }
    }

    fn set<T>(&mut self, field: &'static str, from: &FromVar<T>) {
        self.origins.push((field, from.variable));
    }
}

impl Config {
    /// Applies the standard `OTEL_*` variables read through `var`; they win over the file.
    pub fn apply_env(
        &mut self,
        var: impl Fn(&str) -> Option<String>,
    ) -> Result<Applied, ConfigError> {
        let env = otel_env::read(var)?;
        Ok(self.apply(env))
    }

    fn apply(&mut self, env: OtelEnv) -> Applied {
        let mut applied = Applied {
            warnings: env.warnings,
            origins: Vec::new(),
        };
        let export = &mut self.export;
        if env.sdk_disabled {
            export.enabled = false;
        }
        if let Some(name) = env.service_name {
            applied.set("export.service_name", &name);
            export.service_name = name.value;
        }
        if let Some(attributes) = env.resource_attributes {
            applied.set("export.resource_attributes", &attributes);
            export.resource_attributes.extend(attributes.value);
        }
        if let Some(endpoint) = env.endpoint {
            match &endpoint.value {
                Endpoint::Base(url) => {
                    applied.set("export.endpoint", &endpoint);
                    export.endpoint = Some(url.clone());
                    export.traces_endpoint = None;
                }
                Endpoint::Traces(url) => {
                    applied.set("export.traces_endpoint", &endpoint);
                    export.traces_endpoint = Some(url.clone());
                }
            }
        }
        if let Some(protocol) = env.protocol {
            export.protocol = protocol.value;
        }
        if let Some(headers) = env.headers {
            applied.set("export.headers", &headers);
            export.headers.extend(headers.value);
        }
        if let Some(timeout) = env.timeout {
            applied.set("export.timeout_ms", &timeout);
            export.timeout_ms = match timeout.value {
                Timeout::After(d) => u64::try_from(d.as_millis()).unwrap_or(u64::MAX),
                Timeout::Unlimited => MAX_EXPORT_TIMEOUT_MS,
            };
        }
        if let Some(delay) = env.schedule_delay {
            applied.set("export.flush_interval_ms", &delay);
            export.flush_interval_ms = u64::try_from(delay.value.as_millis()).unwrap_or(u64::MAX);
        }
        if let Some(timeout) = env.export_timeout {
            applied.warnings.push(ConfigError::new(
                timeout.variable,
                "ignored: edge-proxy bounds each export request (OTEL_EXPORTER_OTLP_TIMEOUT, \
                 export.timeout_ms) and retries it export.max_retries times",
            ));
        }
        if let Some(size) = env.max_queue_size {
            applied.set("export.queue_size", &size);
            export.queue_size = size.value;
        }
        if let Some(size) = env.max_export_batch_size {
            applied.set("export.batch_size", &size);
            export.batch_size = size.value;
        }
        if let Some(sampler) = env.sampler {
            sampler.value.apply(&mut self.sampling);
        }
        if let Some(formats) = env.propagators {
            let propagation = &mut self.propagation;
            propagation.trace_context = formats.value.trace_context;
            propagation.b3_single = formats.value.b3_single;
            propagation.b3_multi = formats.value.b3_multi;
        }
        applied
    }
}

#[cfg(test)]
mod tests {
    use trace_core::sampling::SamplingMode;

    use super::*;
    use crate::config::Protocol;

    fn lookup(env: &[(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |k| {
            env.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    }

    fn apply(env: &[(&'static str, &'static str)]) -> Result<(Config, Applied), ConfigError> {
        let mut config = Config::default();
        let applied = config.apply_env(lookup(env))?;
        Ok((config, applied))
    }

    /// The first error of the file with `env` over it, as the binary reports it.
    fn error(toml: &str, env: &[(&'static str, &'static str)]) -> ConfigError {
        let mut config = Config::from_toml(toml).unwrap();
        let applied = match config.apply_env(lookup(env)) {
            Ok(applied) => applied,
            Err(e) => return e,
        };
        match config.validate() {
            Ok(_) => panic!("{env:?} over {toml:?} was accepted"),
            Err(e) => applied.explain(e),
        }
    }

    #[test]
    fn otel_environment_variables_override_the_file() {
        let (config, _) = apply(&[
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
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "0"),
            ("OTEL_PROPAGATORS", "b3,baggage"),
        ])
        .unwrap();
        let export = &config.export;
        assert_eq!(export.endpoint.as_deref(), Some("http://collector:4317"));
        assert_eq!(
            export.traces_url().as_deref(),
            Some("http://collector:4317")
        );
        assert_eq!(export.protocol, Protocol::Grpc);
        assert_eq!(export.headers["team"], "edge");
        assert_eq!(export.headers["authorization"], "Bearer x");
        assert_eq!(export.service_name, "edge-fra1");
        assert_eq!(export.flush_interval_ms, 250);
        assert_eq!(export.queue_size, 4096);
        assert_eq!(export.batch_size, 128);
        assert_eq!(export.timeout_ms, MAX_EXPORT_TIMEOUT_MS);
        assert_eq!(config.sampling.mode, SamplingMode::Proportional);
        assert!(config.sampling.parent_based);
        assert!((config.sampling.percentage - 25.0).abs() < 1e-4);
        let propagation = &config.propagation;
        assert!(!propagation.trace_context && propagation.b3_single && !propagation.b3_multi);
        assert!(config.validate().is_ok());

        let (off, _) = apply(&[("OTEL_SDK_DISABLED", "true")]).unwrap();
        assert!(!off.export.enabled);
        let mut file_off = Config::from_toml("[export]\nenabled = false").unwrap();
        file_off
            .apply_env(lookup(&[("OTEL_SDK_DISABLED", "false")]))
            .unwrap();
        assert!(!file_off.export.enabled, "false leaves the file's choice");
    }

    #[test]
    fn a_traces_endpoint_is_used_as_is_and_a_base_gets_v1_traces() {
        let (config, _) = apply(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318/")]).unwrap();
        assert_eq!(
            config.export.traces_url().as_deref(),
            Some("http://c:4318/v1/traces")
        );
        let mut config =
            Config::from_toml("[export]\ntraces_endpoint = \"http://file:4318/x\"").unwrap();
        config
            .apply_env(lookup(&[
                (
                    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                    "http://env:4318/custom",
                ),
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://ignored:4318"),
            ]))
            .unwrap();
        assert_eq!(
            config.export.traces_url().as_deref(),
            Some("http://env:4318/custom")
        );
        // A generic endpoint from the environment replaces the file's traces endpoint.
        let mut config =
            Config::from_toml("[export]\ntraces_endpoint = \"http://file:4318/x\"").unwrap();
        config
            .apply_env(lookup(&[(
                "OTEL_EXPORTER_OTLP_ENDPOINT",
                "http://env:4318",
            )]))
            .unwrap();
        assert_eq!(
            config.export.traces_url().as_deref(),
            Some("http://env:4318/v1/traces")
        );
    }

    #[test]
    fn errors_name_the_variable_that_was_set() {
        let traces = [
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
            ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "udp"),
        ];
        assert_eq!(
            error("", &traces).field,
            "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"
        );
        assert_eq!(
            error("", &[("OTEL_EXPORTER_OTLP_PROTOCOL", "udp")]).field,
            "OTEL_EXPORTER_OTLP_PROTOCOL"
        );
        assert_eq!(
            error("", &[("OTEL_BSP_SCHEDULE_DELAY", "1s")]).field,
            "OTEL_BSP_SCHEDULE_DELAY"
        );
        // Within what otel_env accepts, beyond what the edge allows: still the variable.
        let e = error("", &[("OTEL_BSP_SCHEDULE_DELAY", "5")]);
        assert_eq!(e.field, "OTEL_BSP_SCHEDULE_DELAY");
        assert!(e.reason.contains("export.flush_interval_ms"), "{e}");
        assert_eq!(
            error("", &[("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "120000")]).field,
            "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT"
        );
        assert_eq!(
            error("", &[("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "10000")]).field,
            "OTEL_BSP_MAX_EXPORT_BATCH_SIZE"
        );
        assert_eq!(
            error("", &[("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "bad name=x")]).field,
            "OTEL_EXPORTER_OTLP_TRACES_HEADERS"
        );
        // The file's own mistakes keep the file's names.
        assert_eq!(
            error(
                "[export]\nbatch_size = 0",
                &[("OTEL_BSP_MAX_QUEUE_SIZE", "100")]
            )
            .field,
            "export.batch_size"
        );
    }

    #[test]
    fn ignored_values_come_back_as_warnings() {
        let (_, applied) = apply(&[
            ("OTEL_PROPAGATORS", "tracecontext,baggage"),
            ("OTEL_BSP_EXPORT_TIMEOUT", "30000"),
        ])
        .unwrap();
        let fields: Vec<&str> = applied.warnings.iter().map(|w| w.field.as_str()).collect();
        assert_eq!(fields, ["OTEL_PROPAGATORS", "OTEL_BSP_EXPORT_TIMEOUT"]);
    }
}
