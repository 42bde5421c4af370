//! The standard `OTEL_*` variables over the file: read by trace-core's `otel_env` and applied
//! to `[export]` by trace-core's export settings, the same way in every Threadline binary.
//! The environment wins. What is the edge's own: `OTEL_SDK_DISABLED=true` turns tracing off
//! (`export.enabled`), `OTEL_TRACES_SAMPLER` sets `[sampling]` and `OTEL_PROPAGATORS` the
//! formats written upstream (`[propagation]`).

use trace_core::otel_env::{self, Applied};

use super::{Config, ConfigError};

impl Config {
    /// Applies the standard `OTEL_*` variables read through `var`; they win over the file.
    pub fn apply_env(
        &mut self,
        var: impl Fn(&str) -> Option<String>,
    ) -> Result<Applied, ConfigError> {
        let mut env = otel_env::read(var)?;
        let mut applied = Applied::new(std::mem::take(&mut env.warnings));
        self.export.apply_env(&mut env, &mut applied);
        if env.sdk_disabled {
            self.export.enabled = false;
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
        Ok(applied)
    }
}

#[cfg(test)]
mod tests {
    use trace_core::sampling::SamplingMode;

    use trace_core::export::settings::MAX_TIMEOUT_MS;

    use super::*;
    use trace_core::otel_env::Protocol;

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
        assert_eq!(export.timeout_ms, MAX_TIMEOUT_MS);
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
