//! The site file as written: serde types with defaults and a doc comment per field. The
//! documented example is `examples/site.toml`; a test parses and renders it.
//!
//! The file is TOML rather than YAML: the edge-proxy and the node-probe read TOML, so one format
//! covers every configuration an operator edits, and TOML has no implicit typing (an unquoted
//! `no` or `010` stays what it looks like, where YAML 1.1 readers turn them into `false` and 8),
//! which matters for tags, seeds and versions that must agree everywhere.

use std::collections::BTreeMap;
use std::path::PathBuf;

use ipnet::IpNet;
use serde::Deserialize;
use trace_core::otel_env::Protocol;
use trace_core::sampling::SamplingConfig;

use crate::FieldError;

/// The whole site.
#[derive(Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub struct Site {
    /// The site's name, recorded as the `app.kubernetes.io/part-of` label.
    pub name: String,
    /// Route templates (`/users/{id}`) for span names and `http.route`, shared by the edge and
    /// the filter so that both tiers group paths alike.
    #[serde(default)]
    pub routes: Vec<String>,
    /// The OpenTelemetry collector that the edge-proxy and the node agents export to.
    pub collector: Collector,
    /// Sampling of traces that start at the edge or in the mesh: one type across the product.
    pub sampling: SamplingConfig,
    /// Whose trace context the edge continues.
    #[serde(default)]
    pub trust: Trust,
    /// The node agent (node-probe) on every core server.
    #[serde(default)]
    pub agent: Agent,
    /// The proxy-wasm filter artifact and how sidecars load it.
    #[serde(default)]
    pub filter: Filter,
    /// Container images.
    pub images: Images,
    /// Datacenters, each with its core and edge locations.
    pub datacenters: Vec<Datacenter>,
    /// Kuma: the system namespace and the meshes that carry the filter.
    pub kuma: Kuma,
    /// A standalone Envoy sidecar outside Kuma (the end-to-end tests' sidecar host).
    pub standalone: Option<Standalone>,
    /// Kubernetes environments, one kustomize overlay each.
    pub environments: Vec<Environment>,
}

/// The OTLP collector.
#[derive(Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub struct Collector {
    /// Base URL, as `OTEL_EXPORTER_OTLP_ENDPOINT` (OTLP/HTTP appends `v1/traces`).
    pub endpoint: String,
    /// OTLP protocol.
    #[serde(default)]
    pub protocol: Protocol,
}

/// Trusted client networks.
#[derive(Deserialize, Debug, Clone, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Trust {
    /// CIDRs whose trace context and sampling decision the edge continues.
    pub client_networks: Vec<IpNet>,
}

/// The node agent and the node-local Service in front of it.
#[derive(Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields, default)]
pub struct Agent {
    /// Namespace of the DaemonSet and the Service.
    pub namespace: String,
    /// Name of the node-local Service (`internalTrafficPolicy: Local`) the sidecars reach.
    pub service: String,
    /// The agent's local port: OTLP/HTTP from the sidecars, and the filter artifact.
    pub port: u16,
    /// The path at which the agent serves the filter artifact it was built with.
    pub filter_path: String,
    /// Where that artifact is in the node-probe image.
    pub artifact_file: String,
    /// The cluster domain of Service names.
    pub cluster_domain: String,
}

impl Default for Agent {
    fn default() -> Self {
        Self {
            namespace: "threadline-system".into(),
            service: "threadline-agent".into(),
            port: 4318,
            filter_path: "/filter.wasm".into(),
            artifact_file: "/var/lib/threadline/filter.wasm".into(),
            cluster_domain: "cluster.local".into(),
        }
    }
}

impl Agent {
    /// The node-local Service's DNS name.
    pub fn host(&self) -> String {
        format!(
            "{}.{}.svc.{}",
            self.service, self.namespace, self.cluster_domain
        )
    }
}

/// The filter artifact.
#[derive(Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields, default)]
pub struct Filter {
    /// The built `.wasm`, relative to the site file; its sha256 is computed at render time.
    pub artifact: PathBuf,
    /// How Kuma sidecars load it.
    pub delivery: Delivery,
    /// `code.local` delivery: where the file appears in the sidecar, and the workload
    /// namespaces that get the ConfigMap holding it.
    pub local: LocalDelivery,
}

impl Default for Filter {
    fn default() -> Self {
        Self {
            artifact: "../artifacts/threadline-filter.wasm".into(),
            delivery: Delivery::Remote,
            local: LocalDelivery::default(),
        }
    }
}

/// How sidecars load the filter.
#[derive(Deserialize, Debug, Clone, Copy, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum Delivery {
    /// `code.remote` from the node agent, pinned by sha256.
    #[default]
    Remote,
    /// `code.local`: a ConfigMap mounted into the sidecar by a Kuma `ContainerPatch`.
    Local,
}

/// `code.local` delivery.
#[derive(Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields, default)]
pub struct LocalDelivery {
    /// Directory in the sidecar container where the artifact is mounted.
    pub mount_path: String,
    /// Workload namespaces that get the ConfigMap with the artifact.
    pub namespaces: Vec<String>,
}

impl Default for LocalDelivery {
    fn default() -> Self {
        Self {
            mount_path: "/var/lib/threadline".into(),
            namespaces: vec![],
        }
    }
}

/// Container images, without tags: each environment sets its tag.
#[derive(Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub struct Images {
    /// The edge-proxy image.
    pub edge_proxy: String,
    /// The node-probe image.
    pub node_probe: String,
}

/// A datacenter.
#[derive(Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub struct Datacenter {
    /// Name: the `datacenter` tag of the mesh's and the agents' spans, the `region` of the
    /// edge's.
    pub name: String,
    /// Core locations: where the mesh and the microVMs run.
    #[serde(default)]
    pub core_locations: Vec<CoreLocation>,
    /// Edge locations: where the edge-proxy runs.
    #[serde(default)]
    pub edge_locations: Vec<EdgeLocation>,
}

/// A core location.
#[derive(Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub struct CoreLocation {
    /// Name: the `location` tag, and the upstream name on the edge's CLIENT spans.
    pub name: String,
    /// `ip:port` where edge-proxies send this location's requests.
    pub address: String,
    /// Relative weight at the edge.
    #[serde(default = "default_weight")]
    pub weight: usize,
    /// The Kuma zone of this location (its Dataplanes' `kuma.io/zone` label); the name by
    /// default.
    pub kuma_zone: Option<String>,
}

fn default_weight() -> usize {
    1
}

/// An edge location.
#[derive(Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub struct EdgeLocation {
    /// Name: the edge's `location` tag.
    pub name: String,
    /// Point of presence: the edge's `pop` tag.
    pub pop: String,
}

/// Kuma.
#[derive(Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub struct Kuma {
    /// Kuma's system namespace, where the policies go.
    #[serde(default = "default_system_namespace")]
    pub system_namespace: String,
    /// The meshes that carry the filter.
    pub meshes: Vec<Mesh>,
}

fn default_system_namespace() -> String {
    "kuma-system".into()
}

/// A Kuma mesh.
#[derive(Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub struct Mesh {
    /// The Mesh's name.
    pub name: String,
    /// The control plane's version (2.10 or later).
    pub kuma_version: String,
    /// The Envoy version of the mesh's dataplanes (`kuma-dp --version`, or the Kuma release
    /// notes: Kuma patch releases move Envoy forward, so this is not derived).
    pub envoy_version: String,
    /// The core locations (Kuma zones) this mesh runs in.
    pub core_locations: Vec<String>,
    /// How the filter and Kuma's MeshTrace share the mesh.
    #[serde(default)]
    pub tracing: TracingMode,
    /// `partitioned` mode: the Dataplane labels that select the proxies carrying the filter.
    #[serde(default)]
    pub filter_dataplanes: BTreeMap<String, String>,
    /// `partitioned` mode: the Dataplane labels that Kuma's MeshTrace selects. The check warns
    /// unless they provably exclude the filter's Dataplanes.
    #[serde(default)]
    pub meshtrace_dataplanes: BTreeMap<String, String>,
    /// Further fields of the filter's plugin configuration (`batch`, `no_touch`,
    /// `capture_headers`, …), checked by the filter's own configuration code. The site owns
    /// `tags`, `sampling`, `collector` and `routes`.
    #[serde(default)]
    pub plugin: serde_json::Map<String, serde_json::Value>,
}

/// How the filter and Kuma's MeshTrace share a mesh. Envoy's own tracer rewrites the
/// `traceparent` the filter wrote, so no dataplane may run both.
#[derive(Deserialize, Debug, Clone, Copy, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum TracingMode {
    /// The filter on every dataplane of the mesh; no MeshTrace in the mesh.
    #[default]
    Exclusive,
    /// The filter on the Dataplanes `filter_dataplanes` selects; MeshTrace only on others.
    Partitioned,
}

/// A standalone Envoy sidecar that loads the filter from a file.
#[derive(Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub struct Standalone {
    /// The core location whose tags the spans carry.
    pub core_location: String,
    /// Envoy's version, for the failure-policy field.
    pub envoy_version: String,
    /// Where the artifact is on the sidecar host.
    pub filter_file: String,
    /// Inbound listener `ip:port` (SERVER spans).
    pub inbound_listen: String,
    /// The workload behind the inbound listener, `ip:port`.
    pub workload: String,
    /// Outbound listener `ip:port` (CLIENT spans).
    pub outbound_listen: String,
    /// The service behind the outbound listener, `ip:port`.
    pub upstream: String,
    /// The node agent, `ip:port`.
    pub agent: String,
    /// Envoy's admin listener, `ip:port`.
    #[serde(default = "default_admin")]
    pub admin: String,
}

fn default_admin() -> String {
    "127.0.0.1:9901".into()
}

/// A Kubernetes environment: one cluster, one overlay.
#[derive(Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub struct Environment {
    /// The overlay's name.
    pub name: String,
    /// The edge location this cluster serves: an edge-proxy Deployment.
    pub edge_location: Option<String>,
    /// The core location this cluster is in: the node-probe DaemonSet.
    pub core_location: Option<String>,
    /// The image tag of both images.
    pub image_tag: String,
    /// Replicas of the edge-proxy Deployment.
    #[serde(default = "default_replicas")]
    pub edge_replicas: u32,
}

fn default_replicas() -> u32 {
    2
}

impl Site {
    /// Parses TOML text; an error names the field by its path (`kuma.meshes[0].name`).
    pub fn from_toml(text: &str) -> Result<Self, FieldError> {
        let deserializer =
            toml::Deserializer::parse(text).map_err(|e| FieldError::new("site", e.to_string()))?;
        serde_path_to_error::deserialize(deserializer)
            .map_err(|e| FieldError::at_path(e.path().to_string(), e.inner().message()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(text: &str) -> FieldError {
        match Site::from_toml(text) {
            Ok(site) => panic!("{text} was read as {site:?}"),
            Err(e) => e,
        }
    }

    const EXAMPLE: &str = include_str!("../examples/site.toml");

    #[test]
    fn the_documented_example_parses() {
        let site = Site::from_toml(EXAMPLE).unwrap();
        assert_eq!(site.sampling.hash_seed, 22);
        assert_eq!(site.kuma.meshes[0].name, "payments");
        assert_eq!(site.environments.len(), 2);
    }

    #[test]
    fn errors_name_the_field() {
        let bad_seed = EXAMPLE.replace("hash_seed = 22", "hash_seed = \"22\"");
        assert_eq!(error(&bad_seed).field, "sampling.hash_seed");
        let unknown = EXAMPLE.replace("kuma_version =", "kuma_versoin =");
        let e = error(&unknown);
        assert_eq!(e.field, "kuma.meshes[0].kuma_versoin");
        assert!(e.reason.contains("unknown field"), "{e}");
        let bad_cidr = EXAMPLE.replace("\"10.0.0.0/8\"", "\"10.0.0.0/33\"");
        assert_eq!(error(&bad_cidr).field, "trust.client_networks[0]");
        assert_eq!(error("name = ").field, "site");
    }
}
