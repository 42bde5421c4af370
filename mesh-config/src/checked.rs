//! `validate()`: every check of the site, run once, producing the [`Checked`] site that the
//! renderers read. Nothing is rendered from an unchecked site, and every error names the
//! field (`datacenters[0].core_locations[1].address`).

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use trace_core::otel_env::is_http_url;
use trace_core::route::RouteGrouper;

use crate::FieldError;
use crate::plugin;
use crate::site::{
    CoreLocation, Datacenter, Delivery, EdgeLocation, Environment, Mesh, Site, Standalone,
    TracingMode,
};
use crate::version::Version;

/// The oldest Kuma whose `MeshProxyPatch` takes the `Mesh` and `Dataplane` (by labels)
/// `targetRef` forms that 3.x also accepts.
const OLDEST_KUMA: Version = Version::new(2, 10);
/// The oldest Envoy accepted: the filter reads the `xds.*` attributes, present well before.
const OLDEST_ENVOY: Version = Version::new(1, 30);
/// `PluginConfig.failure_policy` replaces the Boolean `fail_open` from this Envoy on
/// (data-plane-api, October 2024, between the 1.32 and 1.33 releases).
const FAILURE_POLICY_SINCE: Version = Version::new(1, 33);
/// A ConfigMap holds at most 1 MiB; the artifact leaves room for the base64 of a request.
const MAX_LOCAL_ARTIFACT: usize = 700 * 1024;

/// A site that passed every check, with what was derived from it once.
#[derive(Debug)]
pub struct Checked {
    /// The site as written.
    pub site: Site,
    /// The filter artifact.
    pub artifact: Artifact,
    /// Core locations by name, with their datacenter.
    pub core_locations: BTreeMap<String, Located<CoreLocation>>,
    /// Edge locations by name, with their datacenter.
    pub edge_locations: BTreeMap<String, Located<EdgeLocation>>,
    /// The meshes, with the policies each gets.
    pub meshes: Vec<CheckedMesh>,
    /// The standalone sidecar's failure-policy field and plugin configuration.
    pub standalone: Option<CheckedStandalone>,
    /// Things that are allowed but probably wrong.
    pub warnings: Vec<FieldError>,
}

/// A location and the datacenter it is in.
#[derive(Debug, Clone)]
pub struct Located<T> {
    /// The datacenter's name.
    pub datacenter: String,
    /// The location.
    pub location: T,
}

/// The filter artifact's bytes and digest.
#[derive(Debug, Clone)]
pub struct Artifact {
    /// The file, as read at render time.
    pub bytes: Vec<u8>,
    /// Its sha256, lowercase hex, as Envoy's `code.remote.sha256` takes it.
    pub sha256: String,
}

impl Artifact {
    /// Reads the artifact and computes its digest.
    pub fn read(path: &Path) -> Result<Self, FieldError> {
        let bytes = std::fs::read(path).map_err(|e| {
            FieldError::new(
                "filter.artifact",
                format!(
                    "cannot read {}: {e} (build it first: scripts/setup.sh publishes artifacts/threadline-filter.wasm)",
                    path.display()
                ),
            )
        })?;
        if !bytes.starts_with(b"\0asm") {
            return Err(FieldError::new(
                "filter.artifact",
                format!("{} is not a WebAssembly module", path.display()),
            ));
        }
        let sha256 = Sha256::digest(&bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        Ok(Self { bytes, sha256 })
    }
}

/// Which field of `PluginConfig` says "fail open": never both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailOpenField {
    /// `fail_open: true`, before Envoy 1.33.
    FailOpen,
    /// `failure_policy: FAIL_OPEN`, from Envoy 1.33 on.
    FailurePolicy,
}

impl FailOpenField {
    fn for_envoy(version: Version) -> Self {
        if version >= FAILURE_POLICY_SINCE {
            Self::FailurePolicy
        } else {
            Self::FailOpen
        }
    }
}

/// What a mesh's policies target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// Every dataplane of the mesh.
    Mesh,
    /// The Dataplanes with all these labels.
    Dataplanes(BTreeMap<String, String>),
}

/// One `MeshProxyPatch`: the filter for one core location of a mesh.
#[derive(Debug, Clone)]
pub struct Patch {
    /// The resource's name.
    pub name: String,
    /// The core location whose tags the spans carry.
    pub location: String,
    /// What it targets.
    pub target: Target,
    /// The plugin configuration, JSON the filter's own code accepted.
    pub plugin_json: String,
}

/// A checked mesh.
#[derive(Debug, Clone)]
pub struct CheckedMesh {
    /// The Mesh's name.
    pub name: String,
    /// The failure-policy field its Envoy understands.
    pub fail_open: FailOpenField,
    /// One patch per core location.
    pub patches: Vec<Patch>,
    /// How it shares the mesh with MeshTrace.
    pub tracing: TracingMode,
}

/// The checked standalone sidecar.
#[derive(Debug, Clone)]
pub struct CheckedStandalone {
    /// The failure-policy field its Envoy understands.
    pub fail_open: FailOpenField,
    /// The plugin configuration.
    pub plugin_json: String,
}

fn invalid(field: impl Into<String>, reason: impl Into<String>) -> FieldError {
    FieldError::new(field, reason)
}

/// A DNS-1123 label: Kubernetes names of namespaces, Services and our objects.
fn dns_label(field: &str, value: &str) -> Result<(), FieldError> {
    let ok = !value.is_empty()
        && value.len() <= 63
        && value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !value.starts_with('-')
        && !value.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(invalid(
            field,
            format!("{value:?} must be a DNS label (a-z, 0-9 and '-', at most 63)"),
        ))
    }
}

/// A Kubernetes label value (tags become label values and Kuma zone labels).
fn label_value(field: &str, value: &str) -> Result<(), FieldError> {
    let alnum = |b: Option<&u8>| b.is_some_and(u8::is_ascii_alphanumeric);
    let bytes = value.as_bytes();
    let ok = value.len() <= 63
        && alnum(bytes.first())
        && alnum(bytes.last())
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(b));
    if ok {
        Ok(())
    } else {
        Err(invalid(
            field,
            format!(
                "{value:?} must be a label value (alphanumeric ends, '-', '_', '.', at most 63)"
            ),
        ))
    }
}

/// A Kubernetes label key: an optional DNS prefix and `/`, then a name.
fn label_key(field: &str, key: &str) -> Result<(), FieldError> {
    let name = key.rsplit_once('/').map_or(
        key,
        |(prefix, name)| {
            if prefix.is_empty() { "" } else { name }
        },
    );
    label_value(field, name).map_err(|_| invalid(field, format!("{key:?} is not a label key")))
}

fn socket_addr(field: &str, value: &str) -> Result<SocketAddr, FieldError> {
    value
        .parse()
        .map_err(|_| invalid(field, format!("{value:?} is not an ip:port")))
}

fn unique<'a>(
    field: impl Fn(usize) -> String,
    names: impl Iterator<Item = &'a str>,
) -> Result<(), FieldError> {
    let mut seen = BTreeSet::new();
    for (i, name) in names.enumerate() {
        if !seen.insert(name) {
            return Err(invalid(field(i), format!("{name:?} appears twice")));
        }
    }
    Ok(())
}

impl Site {
    /// Checks every field, reads the filter artifact (from `artifact`, or the site's
    /// `filter.artifact` relative to `site_dir`) and derives what the renderers need.
    pub fn validate(self, site_dir: &Path, artifact: Option<&Path>) -> Result<Checked, FieldError> {
        label_value("name", &self.name)?;
        RouteGrouper::new(&self.routes)?;
        if !is_http_url(&self.collector.endpoint) {
            return Err(invalid(
                "collector.endpoint",
                format!(
                    "{:?} must be an http:// or https:// URL",
                    self.collector.endpoint
                ),
            ));
        }
        self.sampling.build().map_err(|e| e.within("sampling"))?;
        self.check_agent()?;
        self.check_images()?;
        let artifact_path: PathBuf = match artifact {
            Some(path) => path.to_owned(),
            None => site_dir.join(&self.filter.artifact),
        };
        let artifact = Artifact::read(&artifact_path)?;
        self.check_delivery(&artifact)?;
        let (core_locations, edge_locations) = locations(&self.datacenters)?;
        let mut warnings = Vec::new();
        dns_label("kuma.system_namespace", &self.kuma.system_namespace)?;
        unique(
            |i| format!("kuma.meshes[{i}].name"),
            self.kuma.meshes.iter().map(|m| m.name.as_str()),
        )?;
        let meshes = self
            .kuma
            .meshes
            .iter()
            .enumerate()
            .map(|(i, mesh)| self.check_mesh(i, mesh, &core_locations, &mut warnings))
            .collect::<Result<Vec<_>, _>>()?;
        let standalone = self
            .standalone
            .as_ref()
            .map(|s| self.check_standalone(s, &core_locations))
            .transpose()?;
        self.check_environments(&core_locations, &edge_locations)?;
        Ok(Checked {
            site: self,
            artifact,
            core_locations,
            edge_locations,
            meshes,
            standalone,
            warnings,
        })
    }

    fn check_agent(&self) -> Result<(), FieldError> {
        let agent = &self.agent;
        dns_label("agent.namespace", &agent.namespace)?;
        dns_label("agent.service", &agent.service)?;
        if agent.port == 0 {
            return Err(invalid("agent.port", "must not be 0"));
        }
        if !agent.filter_path.starts_with('/') || agent.filter_path.contains(char::is_whitespace) {
            return Err(invalid(
                "agent.filter_path",
                "must be a path starting with '/'",
            ));
        }
        if !agent.artifact_file.starts_with('/') {
            return Err(invalid("agent.artifact_file", "must be an absolute path"));
        }
        if agent.filter_path == trace_core::otlp::TRACES_PATH {
            return Err(invalid(
                "agent.filter_path",
                "must not be the OTLP traces path",
            ));
        }
        if agent.cluster_domain.is_empty()
            || !agent
                .cluster_domain
                .split('.')
                .all(|part| dns_label("", part).is_ok())
        {
            return Err(invalid("agent.cluster_domain", "must be a DNS name"));
        }
        if agent.namespace == self.kuma.system_namespace
            || agent.namespace == crate::kubernetes::EDGE_NAMESPACE
        {
            return Err(invalid(
                "agent.namespace",
                "must be a namespace of its own: it needs the privileged Pod Security level",
            ));
        }
        Ok(())
    }

    fn check_images(&self) -> Result<(), FieldError> {
        for (field, image) in [
            ("images.edge_proxy", &self.images.edge_proxy),
            ("images.node_probe", &self.images.node_probe),
        ] {
            let last = image.rsplit('/').next().unwrap_or(image);
            if image.is_empty() || image.contains(char::is_whitespace) {
                return Err(invalid(field, "must be an image name"));
            }
            if last.contains(':') || image.contains('@') {
                return Err(invalid(
                    field,
                    "must not carry a tag or digest: environments[].image_tag sets it",
                ));
            }
        }
        Ok(())
    }

    fn check_delivery(&self, artifact: &Artifact) -> Result<(), FieldError> {
        let local = &self.filter.local;
        if self.filter.delivery != Delivery::Local {
            if !local.namespaces.is_empty() {
                return Err(invalid(
                    "filter.local.namespaces",
                    "only used with filter.delivery = \"local\"",
                ));
            }
            return Ok(());
        }
        if !local.mount_path.starts_with('/') {
            return Err(invalid(
                "filter.local.mount_path",
                "must be an absolute path",
            ));
        }
        if local.namespaces.is_empty() {
            return Err(invalid(
                "filter.local.namespaces",
                "must list the workload namespaces that get the artifact's ConfigMap",
            ));
        }
        for (i, ns) in local.namespaces.iter().enumerate() {
            dns_label(&format!("filter.local.namespaces[{i}]"), ns)?;
        }
        unique(
            |i| format!("filter.local.namespaces[{i}]"),
            local.namespaces.iter().map(String::as_str),
        )?;
        if artifact.bytes.len() > MAX_LOCAL_ARTIFACT {
            return Err(invalid(
                "filter.delivery",
                format!(
                    "the artifact has {} bytes, more than a ConfigMap carries ({MAX_LOCAL_ARTIFACT}); use \"remote\"",
                    artifact.bytes.len()
                ),
            ));
        }
        Ok(())
    }

    fn check_mesh(
        &self,
        i: usize,
        mesh: &Mesh,
        core_locations: &BTreeMap<String, Located<CoreLocation>>,
        warnings: &mut Vec<FieldError>,
    ) -> Result<CheckedMesh, FieldError> {
        let field = |name: &str| format!("kuma.meshes[{i}].{name}");
        dns_label(&field("name"), &mesh.name)?;
        Version::parse(&field("kuma_version"), &mesh.kuma_version, OLDEST_KUMA)?;
        let envoy = Version::parse(&field("envoy_version"), &mesh.envoy_version, OLDEST_ENVOY)?;
        if mesh.core_locations.is_empty() {
            return Err(invalid(
                field("core_locations"),
                "must name at least one core location",
            ));
        }
        unique(
            |j| field(&format!("core_locations[{j}]")),
            mesh.core_locations.iter().map(String::as_str),
        )?;
        for (key, value) in &mesh.filter_dataplanes {
            label_key(&field("filter_dataplanes"), key)?;
            label_value(&field(&format!("filter_dataplanes.{key}")), value)?;
        }
        for (key, value) in &mesh.meshtrace_dataplanes {
            label_key(&field("meshtrace_dataplanes"), key)?;
            label_value(&field(&format!("meshtrace_dataplanes.{key}")), value)?;
        }
        match mesh.tracing {
            TracingMode::Exclusive => {
                if !mesh.filter_dataplanes.is_empty() {
                    return Err(invalid(
                        field("filter_dataplanes"),
                        "only in tracing = \"partitioned\": exclusive puts the filter on every dataplane",
                    ));
                }
                if !mesh.meshtrace_dataplanes.is_empty() {
                    warnings.push(invalid(
                        field("meshtrace_dataplanes"),
                        "the mesh is exclusive, so no dataplane of it may run MeshTrace: Envoy's tracer would overwrite the filter's traceparent",
                    ));
                }
            }
            TracingMode::Partitioned => {
                if mesh.filter_dataplanes.is_empty() {
                    return Err(invalid(
                        field("filter_dataplanes"),
                        "tracing = \"partitioned\" needs the labels of the Dataplanes that carry the filter",
                    ));
                }
                if mesh.meshtrace_dataplanes.is_empty() {
                    warnings.push(invalid(
                        field("meshtrace_dataplanes"),
                        "not declared: nothing shows that MeshTrace stays off the filter's Dataplanes (check the cluster with --meshtraces)",
                    ));
                } else if !disjoint(&mesh.filter_dataplanes, &mesh.meshtrace_dataplanes) {
                    warnings.push(invalid(
                        field("meshtrace_dataplanes"),
                        "may select Dataplanes that carry the filter: give both selections one label key with different values",
                    ));
                }
            }
        }
        for owned in plugin::SITE_OWNED {
            if mesh.plugin.contains_key(*owned) {
                return Err(invalid(
                    field(&format!("plugin.{owned}")),
                    "set by the site file, the same for every tier: remove it here",
                ));
            }
        }
        let zones = mesh.core_locations.len() > 1;
        let patches = mesh
            .core_locations
            .iter()
            .enumerate()
            .map(|(j, location)| {
                let located = core_locations.get(location).ok_or_else(|| {
                    invalid(
                        field(&format!("core_locations[{j}]")),
                        format!("{location:?} is not a core location of any datacenter"),
                    )
                })?;
                let mut labels = mesh.filter_dataplanes.clone();
                let name = if zones {
                    let zone = located.location.kuma_zone.as_deref().unwrap_or(location);
                    labels.insert("kuma.io/zone".into(), zone.into());
                    format!("threadline-{}-{location}", mesh.name)
                } else {
                    format!("threadline-{}", mesh.name)
                };
                let target = if labels.is_empty() {
                    Target::Mesh
                } else {
                    Target::Dataplanes(labels)
                };
                let plugin_json = plugin::configuration(
                    self,
                    located,
                    &plugin::agent_authority(&self.agent),
                    &mesh.plugin,
                )
                .map_err(|e| e.within(&field("plugin")))?;
                Ok(Patch {
                    name,
                    location: location.clone(),
                    target,
                    plugin_json,
                })
            })
            .collect::<Result<Vec<_>, FieldError>>()?;
        Ok(CheckedMesh {
            name: mesh.name.clone(),
            fail_open: FailOpenField::for_envoy(envoy),
            patches,
            tracing: mesh.tracing,
        })
    }

    fn check_standalone(
        &self,
        standalone: &Standalone,
        core_locations: &BTreeMap<String, Located<CoreLocation>>,
    ) -> Result<CheckedStandalone, FieldError> {
        let located = core_locations
            .get(&standalone.core_location)
            .ok_or_else(|| {
                invalid(
                    "standalone.core_location",
                    format!(
                        "{:?} is not a core location of any datacenter",
                        standalone.core_location
                    ),
                )
            })?;
        let envoy = Version::parse(
            "standalone.envoy_version",
            &standalone.envoy_version,
            OLDEST_ENVOY,
        )?;
        if !standalone.filter_file.starts_with('/') {
            return Err(invalid(
                "standalone.filter_file",
                "must be an absolute path",
            ));
        }
        for (field, value) in [
            ("standalone.inbound_listen", &standalone.inbound_listen),
            ("standalone.workload", &standalone.workload),
            ("standalone.outbound_listen", &standalone.outbound_listen),
            ("standalone.upstream", &standalone.upstream),
            ("standalone.agent", &standalone.agent),
            ("standalone.admin", &standalone.admin),
        ] {
            socket_addr(field, value)?;
        }
        let plugin_json =
            plugin::configuration(self, located, &standalone.agent, &serde_json::Map::new())?;
        Ok(CheckedStandalone {
            fail_open: FailOpenField::for_envoy(envoy),
            plugin_json,
        })
    }

    fn check_environments(
        &self,
        core_locations: &BTreeMap<String, Located<CoreLocation>>,
        edge_locations: &BTreeMap<String, Located<EdgeLocation>>,
    ) -> Result<(), FieldError> {
        if self.environments.is_empty() {
            return Err(invalid(
                "environments",
                "must list at least one environment",
            ));
        }
        unique(
            |i| format!("environments[{i}].name"),
            self.environments.iter().map(|e| e.name.as_str()),
        )?;
        for (i, env) in self.environments.iter().enumerate() {
            check_environment(i, env, core_locations, edge_locations)?;
        }
        Ok(())
    }
}

fn check_environment(
    i: usize,
    env: &Environment,
    core_locations: &BTreeMap<String, Located<CoreLocation>>,
    edge_locations: &BTreeMap<String, Located<EdgeLocation>>,
) -> Result<(), FieldError> {
    let field = |name: &str| format!("environments[{i}].{name}");
    dns_label(&field("name"), &env.name)?;
    if env.edge_location.is_none() && env.core_location.is_none() {
        return Err(invalid(
            field("name"),
            "an environment runs an edge location, a core location, or both",
        ));
    }
    if let Some(edge) = &env.edge_location
        && !edge_locations.contains_key(edge)
    {
        return Err(invalid(
            field("edge_location"),
            format!("{edge:?} is not an edge location of any datacenter"),
        ));
    }
    if let Some(core) = &env.core_location
        && !core_locations.contains_key(core)
    {
        return Err(invalid(
            field("core_location"),
            format!("{core:?} is not a core location of any datacenter"),
        ));
    }
    let tag = env.image_tag.as_bytes();
    let tag_ok = tag.len() <= 128
        && tag
            .first()
            .is_some_and(|b| b.is_ascii_alphanumeric() || *b == b'_')
        && tag
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(b));
    if !tag_ok {
        return Err(invalid(
            field("image_tag"),
            format!("{:?} is not an image tag", env.image_tag),
        ));
    }
    if env.edge_replicas == 0 {
        return Err(invalid(field("edge_replicas"), "must be at least 1"));
    }
    Ok(())
}

type Locations = (
    BTreeMap<String, Located<CoreLocation>>,
    BTreeMap<String, Located<EdgeLocation>>,
);

fn locations(datacenters: &[Datacenter]) -> Result<Locations, FieldError> {
    if datacenters.is_empty() {
        return Err(invalid("datacenters", "must list at least one datacenter"));
    }
    unique(
        |i| format!("datacenters[{i}].name"),
        datacenters.iter().map(|d| d.name.as_str()),
    )?;
    let mut core = BTreeMap::new();
    let mut edge = BTreeMap::new();
    for (i, dc) in datacenters.iter().enumerate() {
        label_value(&format!("datacenters[{i}].name"), &dc.name)?;
        for (j, location) in dc.core_locations.iter().enumerate() {
            let field = |name: &str| format!("datacenters[{i}].core_locations[{j}].{name}");
            dns_label(&field("name"), &location.name)?;
            socket_addr(&field("address"), &location.address)?;
            if location.weight == 0 {
                return Err(invalid(field("weight"), "must be at least 1"));
            }
            if let Some(zone) = &location.kuma_zone {
                label_value(&field("kuma_zone"), zone)?;
            }
            let located = Located {
                datacenter: dc.name.clone(),
                location: location.clone(),
            };
            if core.insert(location.name.clone(), located).is_some() {
                return Err(invalid(
                    field("name"),
                    format!("{:?} is already a core location", location.name),
                ));
            }
        }
        for (j, location) in dc.edge_locations.iter().enumerate() {
            let field = |name: &str| format!("datacenters[{i}].edge_locations[{j}].{name}");
            dns_label(&field("name"), &location.name)?;
            label_value(&field("pop"), &location.pop)?;
            let located = Located {
                datacenter: dc.name.clone(),
                location: location.clone(),
            };
            if edge.insert(location.name.clone(), located).is_some() {
                return Err(invalid(
                    field("name"),
                    format!("{:?} is already an edge location", location.name),
                ));
            }
        }
    }
    if core.is_empty() {
        return Err(invalid(
            "datacenters",
            "must have at least one core location: the edge has nowhere to send requests",
        ));
    }
    Ok((core, edge))
}

/// Whether two equality label selectors can never select the same object: they must disagree
/// on the value of a key both name.
pub fn disjoint(a: &BTreeMap<String, String>, b: &BTreeMap<String, String>) -> bool {
    a.iter()
        .any(|(key, value)| b.get(key).is_some_and(|other| other != value))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn selectors_are_disjoint_only_when_a_shared_key_differs() {
        let filter = labels(&[("tracing", "filter"), ("team", "a")]);
        assert!(disjoint(&filter, &labels(&[("tracing", "envoy")])));
        assert!(!disjoint(&filter, &labels(&[("tracing", "filter")])));
        assert!(!disjoint(&filter, &labels(&[("other", "x")])));
        assert!(!disjoint(&filter, &labels(&[])));
    }

    #[test]
    fn names_and_labels_are_checked_as_kubernetes_does() {
        assert!(dns_label("f", "threadline-system").is_ok());
        for bad in ["", "-a", "a-", "A", "a.b", &"a".repeat(64)] {
            assert_eq!(dns_label("f", bad).unwrap_err().field, "f", "{bad:?}");
        }
        assert!(label_value("f", "eu-central_1.a").is_ok());
        assert!(label_value("f", "").is_err());
        assert!(label_value("f", "-a").is_err());
        assert!(label_key("f", "kuma.io/zone").is_ok());
        assert!(label_key("f", "zone").is_ok());
        assert!(label_key("f", "/zone").is_err());
        assert!(label_key("f", "kuma.io/").is_err());
    }
}
