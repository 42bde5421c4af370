//! The standard `OTEL_*` variables over the file, read by trace-core's `otel_env` and applied
//! to `[export]` by trace-core's export settings, as every Threadline binary applies them.
//! What is the agent's own: `OTEL_TRACES_SAMPLER` sets the sampling of black-box spans that
//! start a trace; `OTEL_SDK_DISABLED` (the agent relays the sidecars' spans whatever it does
//! with its own) and `OTEL_PROPAGATORS` (it writes no headers) are ignored with a warning.

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
            applied.ignore(
                otel_env::SDK_DISABLED,
                "node-probe relays the sidecars' spans, which it does not make",
            );
        }
        if let Some(sampler) = env.sampler {
            sampler.value.apply(&mut self.sampling);
        }
        if let Some(propagators) = env.propagators {
            applied.ignore(propagators.variable, "node-probe writes no trace headers");
        }
        Ok(applied)
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
