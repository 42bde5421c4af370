//! The OpenTelemetry SDK environment variables (`OTEL_*`), read the same way by every
//! Threadline binary, as the current specification defines them
//! (`configuration/sdk-environment-variables.md`, `protocol/exporter.md`).
//!
//! [`read`] does no I/O: it takes a lookup, `std::env::var` in a binary and a map in a test,
//! and returns [`OtelEnv`], the overrides that were set. The binary applies them over its
//! own configuration file; the environment wins.
//!
//! The rules:
//! - An empty variable is the same as an unset one.
//! - A per-signal variable (`OTEL_EXPORTER_OTLP_TRACES_*`) wins over its generic one
//!   (`OTEL_EXPORTER_OTLP_*`), as a whole: per-signal headers replace the generic headers.
//! - Every error and warning names the variable that was actually set, and quotes its value.
//! - Enumerations are read without regard to case.
//! - `OTEL_SERVICE_NAME` wins over a `service.name` in `OTEL_RESOURCE_ATTRIBUTES`; either one
//!   becomes [`OtelEnv::service_name`], and `service.name` is taken out of the attributes.
//! - `OTEL_TRACES_SAMPLER=traceidratio` (and `parentbased_traceidratio`) is
//!   [`SamplingMode::Proportional`]: the specification deprecates `TraceIdRatioBased`, whose
//!   algorithm it never fixed, in favour of `ProbabilitySampler`, which is W3C randomness
//!   against a threshold recorded in `ot=th`: exactly the proportional mode. Its argument is
//!   a ratio from 0 to 1, 1 when absent. The argument is used only with a sampler set here
//!   and only by the ratio samplers; otherwise it is ignored with a warning.
//! - `OTEL_PROPAGATORS` selects the formats written to the next hop. `tracecontext`, `b3`
//!   and `b3multi` are supported and `none` writes none of them (it wins over the others).
//!   Any other value, `baggage` among them, is ignored with a warning, which is what the
//!   specification asks for a value an implementation does not recognise: the list is often
//!   set once for services written in several languages, and the headers of a format we do
//!   not implement pass through untouched anyway.
//! - `OTEL_SDK_DISABLED` is a Boolean: only `true` (in any case) disables; a word other than
//!   `false` is read as false with a warning.
//!
//! One deliberate difference from the specification: where it asks an SDK to warn and carry
//! on with a value it cannot use (an unknown protocol or sampler, a malformed number, list or
//! sampler argument), these binaries refuse to start and name the variable. An SDK that
//! carries on keeps an application running; a proxy that carries on sends its traces to the
//! wrong place or keeps the wrong share of them, and nobody reads the warning. Refusing bad
//! configuration at start is this project's rule for its own files too.

mod applied;
mod endpoint;
mod values;

use core::time::Duration;

pub use applied::Applied;
pub use endpoint::{Endpoint, Protocol, TRACES_PATH, is_http_url};
pub use values::{FromVar, Timeout};

use crate::config::FieldError;
use crate::propagation::Formats;
use crate::sampling::{SamplingConfig, SamplingMode};
use crate::semconv;
use values::Encoded;

/// `OTEL_SDK_DISABLED`.
pub const SDK_DISABLED: &str = "OTEL_SDK_DISABLED";
/// `OTEL_SERVICE_NAME`.
pub const SERVICE_NAME: &str = "OTEL_SERVICE_NAME";
/// `OTEL_RESOURCE_ATTRIBUTES`.
pub const RESOURCE_ATTRIBUTES: &str = "OTEL_RESOURCE_ATTRIBUTES";
/// `OTEL_EXPORTER_OTLP_ENDPOINT`.
pub const ENDPOINT: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";
/// `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`.
pub const TRACES_ENDPOINT: &str = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT";
/// `OTEL_EXPORTER_OTLP_PROTOCOL`.
pub const PROTOCOL: &str = "OTEL_EXPORTER_OTLP_PROTOCOL";
/// `OTEL_EXPORTER_OTLP_TRACES_PROTOCOL`.
pub const TRACES_PROTOCOL: &str = "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL";
/// `OTEL_EXPORTER_OTLP_HEADERS`.
pub const HEADERS: &str = "OTEL_EXPORTER_OTLP_HEADERS";
/// `OTEL_EXPORTER_OTLP_TRACES_HEADERS`.
pub const TRACES_HEADERS: &str = "OTEL_EXPORTER_OTLP_TRACES_HEADERS";
/// `OTEL_EXPORTER_OTLP_TIMEOUT`.
pub const TIMEOUT: &str = "OTEL_EXPORTER_OTLP_TIMEOUT";
/// `OTEL_EXPORTER_OTLP_TRACES_TIMEOUT`.
pub const TRACES_TIMEOUT: &str = "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT";
/// `OTEL_BSP_SCHEDULE_DELAY`.
pub const BSP_SCHEDULE_DELAY: &str = "OTEL_BSP_SCHEDULE_DELAY";
/// `OTEL_BSP_EXPORT_TIMEOUT`.
pub const BSP_EXPORT_TIMEOUT: &str = "OTEL_BSP_EXPORT_TIMEOUT";
/// `OTEL_BSP_MAX_QUEUE_SIZE`.
pub const BSP_MAX_QUEUE_SIZE: &str = "OTEL_BSP_MAX_QUEUE_SIZE";
/// `OTEL_BSP_MAX_EXPORT_BATCH_SIZE`.
pub const BSP_MAX_EXPORT_BATCH_SIZE: &str = "OTEL_BSP_MAX_EXPORT_BATCH_SIZE";
/// `OTEL_TRACES_SAMPLER`.
pub const TRACES_SAMPLER: &str = "OTEL_TRACES_SAMPLER";
/// `OTEL_TRACES_SAMPLER_ARG`.
pub const TRACES_SAMPLER_ARG: &str = "OTEL_TRACES_SAMPLER_ARG";
/// `OTEL_PROPAGATORS`.
pub const PROPAGATORS: &str = "OTEL_PROPAGATORS";

/// The `OTEL_*` overrides that were set; `None` leaves the binary's own setting alone.
#[derive(Clone, PartialEq, Debug, Default)]
pub struct OtelEnv {
    /// `OTEL_SDK_DISABLED=true`: no spans at all. False leaves the file's choice alone.
    pub sdk_disabled: bool,
    /// `service.name`, from `OTEL_SERVICE_NAME` or else `OTEL_RESOURCE_ATTRIBUTES`.
    pub service_name: Option<FromVar<String>>,
    /// The other resource attributes, in order.
    pub resource_attributes: Option<FromVar<Vec<(String, String)>>>,
    /// Where traces go.
    pub endpoint: Option<FromVar<Endpoint>>,
    /// The OTLP protocol.
    pub protocol: Option<FromVar<Protocol>>,
    /// Export request headers, in order.
    pub headers: Option<FromVar<Vec<(String, String)>>>,
    /// Time one export request may take.
    pub timeout: Option<FromVar<Timeout>>,
    /// Delay between two exports of a partial batch.
    pub schedule_delay: Option<FromVar<Duration>>,
    /// Time one export (its retries included) may take.
    pub export_timeout: Option<FromVar<Timeout>>,
    /// Spans queued at most.
    pub max_queue_size: Option<FromVar<usize>>,
    /// Spans per export at most.
    pub max_export_batch_size: Option<FromVar<usize>>,
    /// The sampler.
    pub sampler: Option<FromVar<SamplerChoice>>,
    /// The formats written to the next hop.
    pub propagators: Option<FromVar<Formats>>,
    /// Values that were ignored, each naming its variable, for the binary to log.
    pub warnings: Vec<FieldError>,
}

/// `OTEL_TRACES_SAMPLER` and its argument, as sampling settings.
#[derive(Clone, Copy, PartialEq, Debug)]
pub struct SamplerChoice {
    /// The root sampler.
    pub mode: SamplingMode,
    /// A `parentbased_` sampler.
    pub parent_based: bool,
    /// The ratio of the ratio samplers, 0 to 1.
    pub ratio: Option<f64>,
}

impl SamplerChoice {
    /// Writes this choice over `config`, leaving the settings it does not speak of (seed,
    /// precision) as they were.
    pub fn apply(&self, config: &mut SamplingConfig) {
        config.mode = self.mode;
        config.parent_based = self.parent_based;
        if let Some(ratio) = self.ratio {
            // Within 0..=1, so the product fits an f32 to the precision a percentage needs.
            config.percentage = (ratio * 100.0) as f32;
        }
    }
}

/// Reads every supported variable through `var`.
pub fn read(var: impl Fn(&str) -> Option<String>) -> Result<OtelEnv, FieldError> {
    let env = Lookup(var);
    let mut warnings = Vec::new();
    let sdk_disabled = env
        .get(SDK_DISABLED)
        .is_some_and(|set| values::boolean(set.variable, &set.value, &mut warnings));

    let mut resource_attributes = env
        .get(RESOURCE_ATTRIBUTES)
        .map(|set| parse(set, |v, t| values::key_values(v, t, Encoded::KeysAndValues)))
        .transpose()?;
    let from_resource = resource_attributes.as_mut().and_then(|set| {
        let at = set
            .value
            .iter()
            .rposition(|(key, _)| key == semconv::SERVICE_NAME)?;
        let (_, name) = set.value.remove(at);
        set.value.retain(|(key, _)| key != semconv::SERVICE_NAME);
        Some(FromVar {
            variable: set.variable,
            value: name,
        })
    });
    let service_name = env
        .get(SERVICE_NAME)
        .map(|set| set.map(|name| name.trim().to_owned()))
        .or(from_resource);

    let endpoint = env
        .signal(TRACES_ENDPOINT, ENDPOINT)
        .map(|set| {
            let url = set.value.trim();
            if !is_http_url(url) {
                return Err(FieldError::new(
                    set.variable,
                    format!("must be an http:// or https:// URL, got {url:?}"),
                ));
            }
            let url = url.to_owned();
            let endpoint = if set.variable == TRACES_ENDPOINT {
                Endpoint::Traces(url)
            } else {
                Endpoint::Base(url)
            };
            Ok(FromVar {
                variable: set.variable,
                value: endpoint,
            })
        })
        .transpose()?;
    let protocol = env
        .signal(TRACES_PROTOCOL, PROTOCOL)
        .map(|set| parse(set, protocol))
        .transpose()?;
    let headers = env
        .signal(TRACES_HEADERS, HEADERS)
        .map(|set| parse(set, |v, t| values::key_values(v, t, Encoded::Values)))
        .transpose()?;
    let timeout = env
        .signal(TRACES_TIMEOUT, TIMEOUT)
        .map(|set| parse(set, values::timeout))
        .transpose()?;

    let schedule_delay = env
        .get(BSP_SCHEDULE_DELAY)
        .map(|set| parse(set, values::duration))
        .transpose()?;
    let export_timeout = env
        .get(BSP_EXPORT_TIMEOUT)
        .map(|set| parse(set, values::timeout))
        .transpose()?;
    let max_queue_size = env
        .get(BSP_MAX_QUEUE_SIZE)
        .map(|set| parse(set, values::positive))
        .transpose()?;
    let max_export_batch_size = env
        .get(BSP_MAX_EXPORT_BATCH_SIZE)
        .map(|set| parse(set, values::positive))
        .transpose()?;
    if let (Some(batch), Some(queue)) = (&max_export_batch_size, &max_queue_size)
        && batch.value > queue.value
    {
        return Err(FieldError::new(
            batch.variable,
            format!(
                "{} is larger than {BSP_MAX_QUEUE_SIZE} ({})",
                batch.value, queue.value
            ),
        ));
    }

    let sampler = sampler(&env, &mut warnings)?;
    let propagators = env
        .get(PROPAGATORS)
        .map(|set| propagators(set, &mut warnings));

    Ok(OtelEnv {
        sdk_disabled,
        service_name,
        resource_attributes,
        endpoint,
        protocol,
        headers,
        timeout,
        schedule_delay,
        export_timeout,
        max_queue_size,
        max_export_batch_size,
        sampler,
        propagators,
        warnings,
    })
}

/// The lookup, with empty values read as unset.
struct Lookup<F>(F);

impl<F: Fn(&str) -> Option<String>> Lookup<F> {
    fn get(&self, variable: &'static str) -> Option<FromVar<String>> {
        (self.0)(variable)
            .filter(|value| !value.trim().is_empty())
            .map(|value| FromVar { variable, value })
    }

    /// The per-signal variable if set, else the generic one.
    fn signal(&self, traces: &'static str, generic: &'static str) -> Option<FromVar<String>> {
        self.get(traces).or_else(|| self.get(generic))
    }
}

fn parse<T>(
    set: FromVar<String>,
    parser: impl FnOnce(&'static str, &str) -> Result<T, FieldError>,
) -> Result<FromVar<T>, FieldError> {
    let value = parser(set.variable, &set.value)?;
    Ok(FromVar {
        variable: set.variable,
        value,
    })
}

fn protocol(variable: &'static str, text: &str) -> Result<Protocol, FieldError> {
    let text = text.trim();
    [Protocol::Grpc, Protocol::HttpProtobuf]
        .into_iter()
        .find(|p| p.as_str().eq_ignore_ascii_case(text))
        .ok_or_else(|| {
            let reason = if text.eq_ignore_ascii_case("http/json") {
                "http/json is not supported: use http/protobuf or grpc".to_owned()
            } else {
                format!("must be grpc or http/protobuf, got {text:?}")
            };
            FieldError::new(variable, reason)
        })
}

fn sampler<F: Fn(&str) -> Option<String>>(
    env: &Lookup<F>,
    warnings: &mut Vec<FieldError>,
) -> Result<Option<FromVar<SamplerChoice>>, FieldError> {
    let argument = env.get(TRACES_SAMPLER_ARG);
    let Some(set) = env.get(TRACES_SAMPLER) else {
        if argument.is_some() {
            warnings.push(FieldError::new(
                TRACES_SAMPLER_ARG,
                format!("ignored: it is read only together with {TRACES_SAMPLER}"),
            ));
        }
        return Ok(None);
    };
    let name = set.value.trim().to_ascii_lowercase();
    let (parent_based, root) = match name.strip_prefix("parentbased_") {
        Some(root) => (true, root),
        None => (false, name.as_str()),
    };
    let (mode, takes_ratio) = match root {
        "always_on" => (SamplingMode::AlwaysOn, false),
        "always_off" => (SamplingMode::AlwaysOff, false),
        "traceidratio" => (SamplingMode::Proportional, true),
        _ => {
            return Err(FieldError::new(
                set.variable,
                format!(
                    "must be always_on, always_off, traceidratio or their parentbased_ forms, got {:?}",
                    set.value.trim()
                ),
            ));
        }
    };
    let ratio = match (takes_ratio, argument) {
        (true, None) => Some(1.0),
        (true, Some(argument)) => Some(ratio(&argument.value)?),
        (false, None) => None,
        (false, Some(_)) => {
            warnings.push(FieldError::new(
                TRACES_SAMPLER_ARG,
                format!("ignored: {name} takes no argument"),
            ));
            None
        }
    };
    Ok(Some(FromVar {
        variable: set.variable,
        value: SamplerChoice {
            mode,
            parent_based,
            ratio,
        },
    }))
}

fn ratio(text: &str) -> Result<f64, FieldError> {
    text.trim()
        .parse::<f64>()
        .ok()
        .filter(|r| (0.0..=1.0).contains(r))
        .ok_or_else(|| {
            FieldError::new(
                TRACES_SAMPLER_ARG,
                format!("must be a ratio from 0 to 1, got {text:?}"),
            )
        })
}

fn propagators(set: FromVar<String>, warnings: &mut Vec<FieldError>) -> FromVar<Formats> {
    let mut formats = Formats {
        trace_context: false,
        b3_single: false,
        b3_multi: false,
    };
    let mut none = false;
    let mut others = false;
    for name in set
        .value
        .split(',')
        .map(str::trim)
        .filter(|n| !n.is_empty())
    {
        match name.to_ascii_lowercase().as_str() {
            "tracecontext" => formats.trace_context = true,
            "b3" => formats.b3_single = true,
            "b3multi" => formats.b3_multi = true,
            "none" => none = true,
            _ => warnings.push(FieldError::new(
                set.variable,
                format!("{name:?} is not supported (tracecontext, b3, b3multi, none); ignored"),
            )),
        }
        others |= !name.eq_ignore_ascii_case("none");
    }
    if none {
        if others {
            warnings.push(FieldError::new(
                set.variable,
                "none is listed: the other propagators are ignored",
            ));
        }
        formats = Formats {
            trace_context: false,
            b3_single: false,
            b3_multi: false,
        };
    }
    FromVar {
        variable: set.variable,
        value: formats,
    }
}

#[cfg(test)]
mod tests;
