//! The checks of the whole configuration, once at start, and the state derived from it that
//! every request uses (sampler, formats, route grouping, span tags).

use trace_core::config::check_ranges;
use trace_core::propagation::Formats;
use trace_core::route::RouteGrouper;
use trace_core::sampling::Sampler;
use trace_core::semconv::threadline;
use trace_core::span::KeyValue;

use super::{Config, ConfigError};

/// The checked configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Everything as configured.
    pub config: Config,
    /// The sampler.
    pub sampler: Sampler,
    /// Propagation formats written upstream.
    pub formats: Formats,
    /// True when no upstream is configured: the built-in demo upstream serves.
    pub demo_upstream: bool,
    /// Route grouping.
    pub routes: RouteGrouper,
    /// The `[edge]` tags as span attributes, copied onto every SERVER span without allocating.
    pub edge_tags: Vec<KeyValue>,
}

/// Configuration lives as long as the process. Leaking a value once lets every span borrow it
/// instead of copying it per request.
pub fn for_the_process(value: &str) -> &'static str {
    Box::leak(value.into())
}

fn invalid(field: impl Into<String>, reason: impl Into<String>) -> ConfigError {
    ConfigError::new(field, reason)
}

impl Config {
    /// Checks every field and derives the per-request state.
    pub fn validate(self) -> Result<Settings, ConfigError> {
        self.check_listeners()?;
        self.check_server()?;
        let sampler = self.sampling.build().map_err(|e| e.within("sampling"))?;
        self.export.check()?;
        if let Some(name) = &self.propagation.trace_id_response_header
            && http::HeaderName::from_bytes(name.as_bytes()).is_err()
        {
            return Err(invalid(
                "propagation.trace_id_response_header",
                "is not a header name",
            ));
        }
        self.check_upstreams()?;
        check_ranges(&[(
            "access_log.buffer_bytes",
            self.access_log.buffer_bytes as u64,
            4096,
            256 << 20,
        )])?;
        let routes = RouteGrouper::new(&self.routes)?;
        let formats = Formats {
            trace_context: self.propagation.trace_context,
            b3_single: self.propagation.b3_single,
            b3_multi: self.propagation.b3_multi,
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
            demo_upstream: self.upstreams.locations.is_empty(),
            routes,
            sampler,
            formats,
            config: self,
        })
    }

    fn check_listeners(&self) -> Result<(), ConfigError> {
        if self.listen.http.is_empty() && self.listen.tls.is_empty() {
            return Err(invalid("listen", "needs at least one http or tls address"));
        }
        for (i, tls) in self.listen.tls.iter().enumerate() {
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
        Ok(())
    }

    fn check_server(&self) -> Result<(), ConfigError> {
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
        ])
    }

    fn check_upstreams(&self) -> Result<(), ConfigError> {
        let upstreams = &self.upstreams;
        for (i, location) in upstreams.locations.iter().enumerate() {
            if location.name.trim().is_empty() {
                return Err(invalid(
                    format!("upstreams.locations[{i}].name"),
                    "must not be empty",
                ));
            }
            // The balancer knows a location by its address.
            if let Some(first) = upstreams
                .locations
                .iter()
                .take(i)
                .position(|l| l.address == location.address)
            {
                return Err(invalid(
                    format!("upstreams.locations[{i}].address"),
                    format!(
                        "{} is already upstreams.locations[{first}]",
                        location.address
                    ),
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
        Ok(())
    }
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
    fn the_embedded_default_is_valid() {
        let settings = Config::default().validate().unwrap();
        assert!(settings.demo_upstream);
        assert_eq!(
            settings.config.listen.http,
            ["127.0.0.1:8080".parse().unwrap()]
        );
        assert_eq!(settings.formats, Formats::default());
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
            error("[export]\ntraces_endpoint = \"localhost:4318\"").field,
            "export.traces_endpoint"
        );
        assert_eq!(
            error("[export.headers]\n\"bad name\" = \"x\"").field,
            "export.headers.bad name"
        );
        assert_eq!(
            error("[export.headers]\nauthorization = \"a\\nb\"").field,
            "export.headers.authorization"
        );
        assert_eq!(
            error("[trust]\nclient_networks = [\"10.0.0.0/33\"]").field,
            "trust.client_networks[0]"
        );
        assert_eq!(error("[listen]\nhttp = [\"nope\"]").field, "listen.http[0]");
        assert_eq!(error("[listen]\nhttp = []").field, "listen");
        assert_eq!(error("[server]\nthreads = 0").field, "server.threads");
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
        assert_eq!(
            error("[access_log]\nbuffer_bytes = 10").field,
            "access_log.buffer_bytes"
        );
        assert!(error("[exports]\nx = 1").reason.contains("unknown field"));
    }

    #[test]
    fn propagation_settings_become_the_formats() {
        let settings = Config::from_toml("[propagation]\ntrace_context = false\nb3_single = true")
            .and_then(Config::validate)
            .unwrap();
        assert_eq!(
            settings.formats,
            Formats {
                trace_context: false,
                b3_single: true,
                b3_multi: false
            }
        );
    }
}
