//! Where OTLP traces go: the protocol, and the URL built from a base or a per-signal endpoint
//! as the OTLP exporter specification (`protocol/exporter.md`) prescribes.

/// OTLP export protocols.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
#[cfg_attr(feature = "serde", derive(serde::Deserialize))]
pub enum Protocol {
    /// OTLP/HTTP with protobuf bodies, the specification's default.
    #[default]
    #[cfg_attr(feature = "serde", serde(rename = "http/protobuf"))]
    HttpProtobuf,
    /// OTLP/gRPC.
    #[cfg_attr(feature = "serde", serde(rename = "grpc"))]
    Grpc,
}

impl Protocol {
    /// The value as the environment variables and the configuration files spell it.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::HttpProtobuf => "http/protobuf",
            Self::Grpc => "grpc",
        }
    }
}

/// An endpoint as configured: which kind decides how the traces URL is built.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Endpoint {
    /// A base URL for every signal (`OTEL_EXPORTER_OTLP_ENDPOINT`): OTLP/HTTP sends traces to
    /// its `v1/traces`.
    Base(String),
    /// The traces endpoint itself (`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`), used as it is.
    Traces(String),
}

/// The path OTLP/HTTP appends to a base URL.
pub const TRACES_PATH: &str = "v1/traces";

impl Endpoint {
    /// The URL the traces go to over `protocol`.
    ///
    /// - OTLP/HTTP, base: the base with a `/` ensured at its end, then `v1/traces`, so
    ///   `http://c:4318` and `http://c:4318/` both give `http://c:4318/v1/traces`, and
    ///   `http://c:4318/mycollector/` gives `http://c:4318/mycollector/v1/traces`.
    /// - OTLP/HTTP, traces endpoint: unchanged, except that a URL without a path gets the
    ///   root path `/` (the specification's only exception).
    /// - OTLP/gRPC: the endpoint is the gRPC target; no path is added to either kind.
    pub fn traces_url(&self, protocol: Protocol) -> String {
        match (self, protocol) {
            (Self::Base(url) | Self::Traces(url), Protocol::Grpc) => url.clone(),
            (Self::Base(url), Protocol::HttpProtobuf) => {
                // Query and fragment are URL components the specification lets us ignore; a
                // path is appended to the path, not after them.
                let (before, after) = split_path_end(url);
                let slash = if before.ends_with('/') { "" } else { "/" };
                format!("{before}{slash}{TRACES_PATH}{after}")
            }
            (Self::Traces(url), Protocol::HttpProtobuf) => {
                let (before, after) = split_path_end(url);
                if path_is_empty(before) {
                    format!("{before}/{after}")
                } else {
                    url.clone()
                }
            }
        }
    }

    /// The URL as configured.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Base(url) | Self::Traces(url) => url,
        }
    }
}

/// Whether `url` is an absolute `http://` or `https://` URL, the form both protocols must
/// accept (OTLP/HTTP accepts no other).
pub fn is_http_url(url: &str) -> bool {
    ["http://", "https://"].iter().any(|scheme| {
        url.get(..scheme.len())
            .is_some_and(|s| s.eq_ignore_ascii_case(scheme))
            && url.len() > scheme.len()
    })
}

/// `url` split where its path ends: before any `?query` or `#fragment`.
fn split_path_end(url: &str) -> (&str, &str) {
    url.split_at(url.find(['?', '#']).unwrap_or(url.len()))
}

/// Whether `url` (without query or fragment) has no path after its authority.
fn path_is_empty(url: &str) -> bool {
    let authority = url.split_once("://").map_or(url, |(_, rest)| rest);
    !authority.contains('/')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn http(endpoint: Endpoint) -> String {
        endpoint.traces_url(Protocol::HttpProtobuf)
    }

    #[test]
    fn a_base_url_gets_v1_traces_with_exactly_one_slash() {
        // The specification's examples 1 and 3.
        let base = |url: &str| http(Endpoint::Base(url.into()));
        assert_eq!(
            base("http://collector:4318"),
            "http://collector:4318/v1/traces"
        );
        assert_eq!(
            base("http://collector:4318/"),
            "http://collector:4318/v1/traces"
        );
        assert_eq!(
            base("http://collector:4318/mycollector/"),
            "http://collector:4318/mycollector/v1/traces"
        );
        assert_eq!(
            base("http://collector:4318/mycollector"),
            "http://collector:4318/mycollector/v1/traces"
        );
        // Not "smart" about a base that already names the signal: that is what the traces
        // variable is for, and the specification forbids other changes.
        assert_eq!(
            base("http://collector:4318/v1/traces"),
            "http://collector:4318/v1/traces/v1/traces"
        );
        assert_eq!(
            base("https://c.example/otlp?tenant=a"),
            "https://c.example/otlp/v1/traces?tenant=a"
        );
    }

    #[test]
    fn a_traces_url_is_used_as_is_except_for_an_empty_path() {
        let traces = |url: &str| http(Endpoint::Traces(url.into()));
        // The specification's example 2: the root path, not /v1/traces.
        assert_eq!(traces("http://collector:4318"), "http://collector:4318/");
        assert_eq!(
            traces("https://collector.example.com/v1/metrics/"),
            "https://collector.example.com/v1/metrics/"
        );
        assert_eq!(traces("http://c:4318/custom"), "http://c:4318/custom");
        assert_eq!(traces("http://c:4318?x=1"), "http://c:4318/?x=1");
    }

    #[test]
    fn grpc_uses_either_endpoint_as_the_target() {
        for endpoint in [
            Endpoint::Base("http://collector:4317".into()),
            Endpoint::Traces("http://collector:4317".into()),
        ] {
            assert_eq!(endpoint.traces_url(Protocol::Grpc), "http://collector:4317");
        }
    }

    #[test]
    fn only_http_and_https_urls_are_urls() {
        assert!(is_http_url("http://c:4318"));
        assert!(is_http_url("HTTPS://c"));
        assert!(!is_http_url("http://"));
        assert!(!is_http_url("localhost:4318"));
        assert!(!is_http_url("unix:///run/otlp.sock"));
    }
}
