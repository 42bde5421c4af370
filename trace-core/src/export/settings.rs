//! The `[export]` settings every exporting binary reads (the edge's spans, the node agent's
//! relay): where spans go, how they are batched, held and retried. One schema, one set of
//! checks and one way of applying the `OTEL_*` variables; each binary picks its defaults
//! through [`ExportDefaults`], because an edge and a relay fed by a whole node hold very
//! different volumes.
//!
//! The environment wins over the file. Where a binary differs from an SDK:
//! - Headers and resource attributes from the environment are added to the file's, a key set
//!   in both taking the environment's value.
//! - A generic endpoint replaces both `endpoint` and `traces_endpoint`; a traces endpoint
//!   replaces `traces_endpoint`, which wins over `endpoint`.
//! - `OTEL_EXPORTER_OTLP_TIMEOUT=0` (no limit) becomes [`MAX_TIMEOUT_MS`].
//! - `OTEL_BSP_EXPORT_TIMEOUT` has no equivalent: each request is bounded by `timeout_ms` and
//!   retried `max_retries` times. It is ignored with a warning.
//! - `OTEL_SDK_DISABLED`, the sampler and the propagators are the binary's to apply.

use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;

use crate::config::{FieldError, check_ranges};
use crate::otel_env::{Applied, Endpoint, OtelEnv, Protocol, Timeout, is_http_url};

use super::{Backoff, BufferLimits};

/// The longest export request timeout, in milliseconds; also what an unlimited
/// `OTEL_EXPORTER_OTLP_TIMEOUT=0` becomes.
pub const MAX_TIMEOUT_MS: u64 = 60_000;

/// A binary's defaults for the fields whose right value depends on what it exports.
pub trait ExportDefaults {
    /// `service.name` of the binary's own spans.
    const SERVICE_NAME: &'static str;
    /// Timeout of one export request, in milliseconds.
    const TIMEOUT_MS: u64;
    /// Spans held at most.
    const QUEUE_SIZE: usize;
    /// Retries of a failed export.
    const MAX_RETRIES: u32;
    /// How long the flush at shutdown may take, in milliseconds.
    const SHUTDOWN_TIMEOUT_MS: u64;
}

/// Span export to the collector: the `[export]` table.
#[cfg_attr(feature = "serde", derive(serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(deny_unknown_fields, default, bound = ""))]
pub struct ExportSettings<D: ExportDefaults> {
    /// Export on or off. Off, a binary makes no spans of its own.
    pub enabled: bool,
    /// Collector base URL, as `OTEL_EXPORTER_OTLP_ENDPOINT`: OTLP/HTTP appends `v1/traces`.
    pub endpoint: Option<String>,
    /// The traces URL itself, as `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`: used as is, and wins
    /// over `endpoint`.
    pub traces_endpoint: Option<String>,
    /// OTLP protocol.
    pub protocol: Protocol,
    /// Timeout of one export request, in milliseconds.
    pub timeout_ms: u64,
    /// Spans per export request.
    pub batch_size: usize,
    /// A partial batch is sent after this many milliseconds.
    pub flush_interval_ms: u64,
    /// Spans held, being exported included; beyond this they are dropped and counted.
    pub queue_size: usize,
    /// Retries of a failed export before its spans are dropped and counted.
    pub max_retries: u32,
    /// How long the flush at shutdown may take, in milliseconds; what is left then is
    /// dropped and counted.
    pub shutdown_timeout_ms: u64,
    /// Extra request headers (e.g. authentication).
    pub headers: BTreeMap<String, String>,
    /// `service.name` of the binary's own spans.
    pub service_name: String,
    /// Extra resource attributes of the binary's own spans.
    pub resource_attributes: BTreeMap<String, String>,
    #[cfg_attr(feature = "serde", serde(skip))]
    defaults: PhantomData<D>,
}

impl<D: ExportDefaults> Default for ExportSettings<D> {
    fn default() -> Self {
        Self {
            enabled: true,
            endpoint: None,
            traces_endpoint: None,
            protocol: Protocol::default(),
            timeout_ms: D::TIMEOUT_MS,
            batch_size: 512,
            flush_interval_ms: 1000,
            queue_size: D::QUEUE_SIZE,
            max_retries: D::MAX_RETRIES,
            shutdown_timeout_ms: D::SHUTDOWN_TIMEOUT_MS,
            headers: BTreeMap::new(),
            service_name: D::SERVICE_NAME.to_owned(),
            resource_attributes: BTreeMap::new(),
            defaults: PhantomData,
        }
    }
}

impl<D: ExportDefaults> Clone for ExportSettings<D> {
    fn clone(&self) -> Self {
        Self {
            enabled: self.enabled,
            endpoint: self.endpoint.clone(),
            traces_endpoint: self.traces_endpoint.clone(),
            protocol: self.protocol,
            timeout_ms: self.timeout_ms,
            batch_size: self.batch_size,
            flush_interval_ms: self.flush_interval_ms,
            queue_size: self.queue_size,
            max_retries: self.max_retries,
            shutdown_timeout_ms: self.shutdown_timeout_ms,
            headers: self.headers.clone(),
            service_name: self.service_name.clone(),
            resource_attributes: self.resource_attributes.clone(),
            defaults: PhantomData,
        }
    }
}

impl<D: ExportDefaults> fmt::Debug for ExportSettings<D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Header values are credentials more often than not.
        let headers: Vec<&str> = self.headers.keys().map(String::as_str).collect();
        f.debug_struct("ExportSettings")
            .field("enabled", &self.enabled)
            .field("endpoint", &self.endpoint)
            .field("traces_endpoint", &self.traces_endpoint)
            .field("protocol", &self.protocol)
            .field("timeout_ms", &self.timeout_ms)
            .field("batch_size", &self.batch_size)
            .field("flush_interval_ms", &self.flush_interval_ms)
            .field("queue_size", &self.queue_size)
            .field("max_retries", &self.max_retries)
            .field("shutdown_timeout_ms", &self.shutdown_timeout_ms)
            .field("headers", &headers)
            .field("service_name", &self.service_name)
            .field("resource_attributes", &self.resource_attributes)
            .finish()
    }
}

impl<D: ExportDefaults> ExportSettings<D> {
    /// The endpoint in effect: `traces_endpoint` if set, else `endpoint`.
    pub fn endpoint(&self) -> Option<Endpoint> {
        match (&self.traces_endpoint, &self.endpoint) {
            (Some(traces), _) => Some(Endpoint::Traces(traces.clone())),
            (None, Some(base)) => Some(Endpoint::Base(base.clone())),
            (None, None) => None,
        }
    }

    /// The field that holds the endpoint in effect, for errors about it.
    pub fn endpoint_field(&self) -> &'static str {
        if self.traces_endpoint.is_some() {
            "export.traces_endpoint"
        } else {
            "export.endpoint"
        }
    }

    /// Where the traces go: the OTLP/HTTP URL or the gRPC target, by the specification's
    /// rules ([`Endpoint::traces_url`]); `None` when no endpoint is set.
    pub fn traces_url(&self) -> Option<String> {
        self.endpoint().map(|e| e.traces_url(self.protocol))
    }

    /// The export policy's bounds, for one request in flight at a time: a slow collector is
    /// better met by backing off than by more connections.
    pub fn buffer_limits(&self) -> BufferLimits {
        BufferLimits {
            batch_spans: self.batch_size,
            capacity_spans: self.queue_size,
            flush_interval_ms: self.flush_interval_ms,
            max_in_flight: 1,
            max_retries: self.max_retries,
            backoff: Backoff::default(),
        }
    }

    /// The headers in order, for a transport.
    pub fn header_pairs(&self) -> Vec<(String, String)> {
        self.headers
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// Checks every field; errors name it under `export.`.
    pub fn check(&self) -> Result<(), FieldError> {
        for (field, url) in [
            ("export.endpoint", &self.endpoint),
            ("export.traces_endpoint", &self.traces_endpoint),
        ] {
            if let Some(url) = url
                && !is_http_url(url)
            {
                return Err(FieldError::new(field, "must be an http:// or https:// URL"));
            }
        }
        check_ranges(&[
            ("export.timeout_ms", self.timeout_ms, 1, MAX_TIMEOUT_MS),
            ("export.batch_size", self.batch_size as u64, 1, 10_000),
            (
                "export.flush_interval_ms",
                self.flush_interval_ms,
                10,
                60_000,
            ),
            ("export.queue_size", self.queue_size as u64, 1, 10_000_000),
            ("export.max_retries", u64::from(self.max_retries), 0, 10),
            (
                "export.shutdown_timeout_ms",
                self.shutdown_timeout_ms,
                0,
                300_000,
            ),
        ])?;
        // A full batch wakes the exporter, so a batch must fit in the queue.
        if self.batch_size > self.queue_size {
            return Err(FieldError::new(
                "export.batch_size",
                format!(
                    "{} is larger than export.queue_size ({})",
                    self.batch_size, self.queue_size
                ),
            ));
        }
        for (name, value) in &self.headers {
            let field = || format!("export.headers.{name}");
            if !is_header_name(name) {
                return Err(FieldError::new(field(), "is not a header name"));
            }
            if !is_header_value(value) {
                return Err(FieldError::new(field(), "is not a valid header value"));
            }
        }
        if self.service_name.trim().is_empty() {
            return Err(FieldError::new("export.service_name", "must not be empty"));
        }
        Ok(())
    }

    /// Applies the export part of `env` (taking it out of `env`) and records in `applied`
    /// which field each variable set.
    pub fn apply_env(&mut self, env: &mut OtelEnv, applied: &mut Applied) {
        if let Some(name) = env.service_name.take() {
            applied.set("export.service_name", &name);
            self.service_name = name.value;
        }
        if let Some(attributes) = env.resource_attributes.take() {
            applied.set("export.resource_attributes", &attributes);
            self.resource_attributes.extend(attributes.value);
        }
        if let Some(endpoint) = env.endpoint.take() {
            match &endpoint.value {
                Endpoint::Base(url) => {
                    applied.set("export.endpoint", &endpoint);
                    self.endpoint = Some(url.clone());
                    self.traces_endpoint = None;
                }
                Endpoint::Traces(url) => {
                    applied.set("export.traces_endpoint", &endpoint);
                    self.traces_endpoint = Some(url.clone());
                }
            }
        }
        if let Some(protocol) = env.protocol.take() {
            applied.set("export.protocol", &protocol);
            self.protocol = protocol.value;
        }
        if let Some(headers) = env.headers.take() {
            applied.set("export.headers", &headers);
            self.headers.extend(headers.value);
        }
        if let Some(timeout) = env.timeout.take() {
            applied.set("export.timeout_ms", &timeout);
            self.timeout_ms = match timeout.value {
                Timeout::After(d) => u64::try_from(d.as_millis()).unwrap_or(u64::MAX),
                Timeout::Unlimited => MAX_TIMEOUT_MS,
            };
        }
        if let Some(delay) = env.schedule_delay.take() {
            applied.set("export.flush_interval_ms", &delay);
            self.flush_interval_ms = u64::try_from(delay.value.as_millis()).unwrap_or(u64::MAX);
        }
        if let Some(size) = env.max_queue_size.take() {
            applied.set("export.queue_size", &size);
            self.queue_size = size.value;
        }
        if let Some(size) = env.max_export_batch_size.take() {
            applied.set("export.batch_size", &size);
            self.batch_size = size.value;
        }
        if let Some(timeout) = env.export_timeout.take() {
            applied.ignore(
                timeout.variable,
                "each export request is bounded by export.timeout_ms (OTEL_EXPORTER_OTLP_TIMEOUT) \
                 and retried export.max_retries times",
            );
        }
    }
}

/// An HTTP field name: a `token` of RFC 9110.
fn is_header_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// A field value that every HTTP/1.1 and HTTP/2 stack sends as it is: visible ASCII, spaces
/// and tabs.
fn is_header_value(value: &str) -> bool {
    value
        .bytes()
        .all(|b| b == b'\t' || (b' '..=b'~').contains(&b))
}

#[cfg(test)]
mod tests;
