//! The standard `OTEL_*` variables over the file, read by trace-core's `otel_env` as every
//! Threadline binary reads them, and applied the way the edge applies them: the environment
//! wins; headers and resource attributes are added to the file's; a generic endpoint replaces
//! both of the file's endpoints; `OTEL_EXPORTER_OTLP_TIMEOUT=0` becomes the longest timeout
//! allowed. Where the agent has nothing to set, the variable is ignored with a warning:
//! `OTEL_SDK_DISABLED` (the agent relays the sidecars' spans whatever it does with its own),
//! `OTEL_PROPAGATORS` (it writes no headers) and `OTEL_BSP_EXPORT_TIMEOUT`.

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
    /// `error` from [`Config::validate`], naming the variable when one set its field.
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
        Ok(self.apply(otel_env::read(var)?))
    }

    fn apply(&mut self, env: OtelEnv) -> Applied {
        let mut applied = Applied {
            warnings: env.warnings,
            origins: Vec::new(),
        };
        let export = &mut self.export;
        if env.sdk_disabled {
            applied.warnings.push(ConfigError::new(
                otel_env::SDK_DISABLED,
                "ignored: node-probe relays the sidecars' spans, which it does not make",
            ));
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
        for (set, why) in [
            (
                env.export_timeout.map(|v| v.variable),
                "each export request is bounded by export.timeout_ms and retried export.max_retries times",
            ),
            (
                env.propagators.map(|v| v.variable),
                "node-probe writes no trace headers",
            ),
        ] {
            if let Some(variable) = set {
                applied
                    .warnings
                    .push(ConfigError::new(variable, format!("ignored: {why}")));
            }
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

    #[test]
    fn otel_variables_win_over_the_file() {
        let mut config = Config::from_toml("[export]\nendpoint = \"http://file:4318\"").unwrap();
        let applied = config
            .apply_env(lookup(&[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317"),
                ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
                ("OTEL_EXPORTER_OTLP_HEADERS", "authorization=Bearer%20x"),
                ("OTEL_SERVICE_NAME", "vm"),
                ("OTEL_TRACES_SAMPLER", "traceidratio"),
                ("OTEL_TRACES_SAMPLER_ARG", "0.25"),
                ("OTEL_BSP_MAX_QUEUE_SIZE", "4096"),
                ("OTEL_PROPAGATORS", "b3"),
            ]))
            .unwrap();
        let export = &config.export;
        assert_eq!(
            export.traces_url().as_deref(),
            Some("http://collector:4317")
        );
        assert_eq!(export.protocol, Protocol::Grpc);
        assert_eq!(export.headers["authorization"], "Bearer x");
        assert_eq!(export.service_name, "vm");
        assert_eq!(export.queue_size, 4096);
        assert_eq!(config.sampling.mode, SamplingMode::Proportional);
        assert_eq!(applied.warnings.len(), 1, "{:?}", applied.warnings);
    }

    #[test]
    fn errors_name_the_variable_that_was_set() {
        let mut config = Config::default();
        let e = config
            .apply_env(lookup(&[("OTEL_EXPORTER_OTLP_PROTOCOL", "udp")]))
            .unwrap_err();
        assert_eq!(e.field, "OTEL_EXPORTER_OTLP_PROTOCOL");
        let mut config = Config::default();
        let applied = config
            .apply_env(lookup(&[("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "100000")]))
            .unwrap();
        let e = applied.explain(config.validate().unwrap_err());
        assert_eq!(e.field, "OTEL_BSP_MAX_EXPORT_BATCH_SIZE");
        assert!(e.reason.contains("export.batch_size"), "{e}");
    }
}
