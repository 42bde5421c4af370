//! Kubernetes manifests as a kustomize tree: a base for the edge-proxy and one for the
//! node-probe, and one overlay per environment that picks the bases it runs, generates their
//! ConfigMaps from the rendered configuration files (a changed file gets a new name, so the
//! pods roll), and sets the image tag and the edge's replicas.

use std::collections::BTreeMap;

use base64::Engine as _;
use serde_json::{Value, json};

use crate::FieldError;
use crate::checked::Checked;
use crate::kuma::{LOCAL_FILE, LOCAL_PATCH, common_labels};
use crate::site::{Delivery, Environment};
use crate::{edge, probe, yaml};

/// The edge-proxy's namespace. The node-probe's is the site's `agent.namespace`: it needs the
/// privileged Pod Security level, which the edge must not share.
pub const EDGE_NAMESPACE: &str = "threadline-edge";
const EDGE_APP: &str = "edge-proxy";
const PROBE_APP: &str = "node-probe";
const EDGE_CONFIG_DIR: &str = "/etc/edge-proxy";
const PROBE_CONFIG_DIR: &str = "/etc/node-probe";

/// Files of the tree, by path relative to the render's `kubernetes/` directory.
pub type Files = BTreeMap<String, String>;

fn kustomization(checked: &Checked, namespace: &str, resources: &[&str]) -> Value {
    json!({
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "namespace": namespace,
        // Labels on every object, left out of selectors: a selector is immutable once applied.
        "labels": [{ "pairs": common_labels(checked), "includeSelectors": false }],
        "resources": resources,
    })
}

fn namespace(name: &str, pod_security: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": name,
            "labels": {
                "pod-security.kubernetes.io/enforce": pod_security,
                "pod-security.kubernetes.io/enforce-version": "latest",
            }
        }
    })
}

fn app_labels(app: &str) -> Value {
    json!({ "app.kubernetes.io/name": app })
}

fn edge_base(checked: &Checked, files: &mut Files) -> Result<(), FieldError> {
    let dir = "base/edge-proxy";
    let deployment = json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": { "name": EDGE_APP, "labels": app_labels(EDGE_APP) },
        "spec": {
            "replicas": 2,
            "selector": { "matchLabels": app_labels(EDGE_APP) },
            "template": {
                "metadata": { "labels": app_labels(EDGE_APP) },
                "spec": {
                    "securityContext": {
                        "runAsNonRoot": true,
                        "runAsUser": 65532,
                        "runAsGroup": 65532,
                        "seccompProfile": { "type": "RuntimeDefault" },
                    },
                    "containers": [{
                        "name": EDGE_APP,
                        "image": checked.site.images.edge_proxy,
                        "args": ["--config", format!("{EDGE_CONFIG_DIR}/edge-proxy.toml")],
                        "ports": [
                            { "name": "http", "containerPort": edge::HTTP_PORT },
                            { "name": "metrics", "containerPort": edge::ADMIN_PORT },
                        ],
                        "readinessProbe": { "tcpSocket": { "port": "http" } },
                        "securityContext": {
                            "allowPrivilegeEscalation": false,
                            "readOnlyRootFilesystem": true,
                            "capabilities": { "drop": ["ALL"] },
                        },
                        "volumeMounts": [
                            { "name": "config", "mountPath": EDGE_CONFIG_DIR, "readOnly": true },
                            { "name": "run", "mountPath": edge::RUN_DIR },
                        ],
                    }],
                    "volumes": [
                        { "name": "config", "configMap": { "name": EDGE_APP } },
                        { "name": "run", "emptyDir": {} },
                    ],
                }
            }
        }
    });
    let service = json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": { "name": EDGE_APP, "labels": app_labels(EDGE_APP) },
        "spec": {
            "type": "LoadBalancer",
            // Keeps the client's address, which the trusted-network check reads.
            "externalTrafficPolicy": "Local",
            "selector": app_labels(EDGE_APP),
            "ports": [{ "name": "http", "port": 80, "targetPort": "http" }],
        }
    });
    files.insert(
        format!("{dir}/kustomization.yaml"),
        yaml::document(&kustomization(
            checked,
            EDGE_NAMESPACE,
            &["namespace.yaml", "deployment.yaml", "service.yaml"],
        ))?,
    );
    // The edge-proxy needs nothing beyond the restricted level.
    files.insert(
        format!("{dir}/namespace.yaml"),
        yaml::document(&namespace(EDGE_NAMESPACE, "restricted"))?,
    );
    files.insert(
        format!("{dir}/deployment.yaml"),
        yaml::document(&deployment)?,
    );
    files.insert(format!("{dir}/service.yaml"), yaml::document(&service)?);
    Ok(())
}

fn probe_base(checked: &Checked, files: &mut Files) -> Result<(), FieldError> {
    let dir = "base/node-probe";
    let agent = &checked.site.agent;
    let host_path = |path: &str| json!({ "path": path, "type": "Directory" });
    let daemonset = json!({
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": { "name": PROBE_APP, "labels": app_labels(PROBE_APP) },
        "spec": {
            "selector": { "matchLabels": app_labels(PROBE_APP) },
            "template": {
                "metadata": { "labels": app_labels(PROBE_APP) },
                "spec": {
                    // The taps of the microVMs are in the host's network namespace.
                    "hostNetwork": true,
                    "dnsPolicy": "ClusterFirstWithHostNet",
                    "nodeSelector": { "kubernetes.io/os": "linux" },
                    "securityContext": { "seccompProfile": { "type": "RuntimeDefault" } },
                    "containers": [{
                        "name": PROBE_APP,
                        "image": checked.site.images.node_probe,
                        "args": ["--config", format!("{PROBE_CONFIG_DIR}/node-probe.toml")],
                        "ports": [
                            { "name": "otlp-http", "containerPort": agent.port, "protocol": "TCP" },
                            { "name": "metrics", "containerPort": probe::ADMIN_PORT, "protocol": "TCP" },
                        ],
                        "readinessProbe": { "httpGet": { "path": "/healthz", "port": "metrics" } },
                        // Root inside the container, because runtimes grant added capabilities
                        // to UID 0 only; everything else a root process could do is dropped.
                        "securityContext": {
                            "privileged": false,
                            "allowPrivilegeEscalation": false,
                            "readOnlyRootFilesystem": true,
                            "capabilities": {
                                "drop": ["ALL"],
                                "add": ["BPF", "NET_ADMIN", "PERFMON"],
                            },
                        },
                        "volumeMounts": [
                            { "name": "config", "mountPath": PROBE_CONFIG_DIR, "readOnly": true },
                            { "name": "btf", "mountPath": "/sys/kernel/btf", "readOnly": true },
                            { "name": "bpffs", "mountPath": "/sys/fs/bpf" },
                        ],
                    }],
                    "volumes": [
                        { "name": "config", "configMap": { "name": PROBE_APP } },
                        { "name": "btf", "hostPath": host_path("/sys/kernel/btf") },
                        { "name": "bpffs", "hostPath": host_path("/sys/fs/bpf") },
                    ],
                }
            }
        }
    });
    let service = json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": { "name": agent.service, "labels": app_labels(PROBE_APP) },
        "spec": {
            // Each sidecar reaches the agent on its own node, never another node's.
            "internalTrafficPolicy": "Local",
            "selector": app_labels(PROBE_APP),
            "ports": [{ "name": "otlp-http", "port": agent.port, "targetPort": "otlp-http", "protocol": "TCP" }],
        }
    });
    files.insert(
        format!("{dir}/kustomization.yaml"),
        yaml::document(&kustomization(
            checked,
            &agent.namespace,
            &["namespace.yaml", "daemonset.yaml", "service.yaml"],
        ))?,
    );
    // hostNetwork, hostPath volumes and added capabilities are each refused below the
    // privileged level, although the container itself is not privileged.
    files.insert(
        format!("{dir}/namespace.yaml"),
        yaml::document(&namespace(&agent.namespace, "privileged"))?,
    );
    files.insert(format!("{dir}/daemonset.yaml"), yaml::document(&daemonset)?);
    files.insert(format!("{dir}/service.yaml"), yaml::document(&service)?);
    Ok(())
}

fn overlay(checked: &Checked, env: &Environment, files: &mut Files) -> Result<(), FieldError> {
    let dir = format!("overlays/{}", env.name);
    let site = &checked.site;
    let mut resources = Vec::new();
    let mut generators = Vec::new();
    let mut images = Vec::new();
    if let Some(edge) = env
        .edge_location
        .as_ref()
        .and_then(|name| checked.edge_locations.get(name))
    {
        resources.push("../../base/edge-proxy");
        generators.push(
            json!({ "name": EDGE_APP, "namespace": EDGE_NAMESPACE, "files": ["edge-proxy.toml"] }),
        );
        images.push(json!({ "name": site.images.edge_proxy, "newTag": env.image_tag }));
        files.insert(
            format!("{dir}/edge-proxy.toml"),
            edge::config(checked, edge)?,
        );
    }
    if let Some(core) = env
        .core_location
        .as_ref()
        .and_then(|name| checked.core_locations.get(name))
    {
        resources.push("../../base/node-probe");
        generators.push(json!({ "name": PROBE_APP, "namespace": site.agent.namespace, "files": ["node-probe.toml"] }));
        images.push(json!({ "name": site.images.node_probe, "newTag": env.image_tag }));
        files.insert(
            format!("{dir}/node-probe.toml"),
            probe::config(checked, core)?,
        );
    }
    let mut kustomization = json!({
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        // The generated ConfigMaps get the labels the bases give everything else.
        "labels": [{ "pairs": common_labels(checked), "includeSelectors": false }],
        "resources": resources,
        "configMapGenerator": generators,
        "images": images,
    });
    if env.edge_location.is_some()
        && let Value::Object(map) = &mut kustomization
    {
        map.insert(
            "replicas".into(),
            json!([{ "name": EDGE_APP, "count": env.edge_replicas }]),
        );
    }
    files.insert(
        format!("{dir}/kustomization.yaml"),
        yaml::document(&kustomization)?,
    );
    Ok(())
}

fn filter_local(checked: &Checked, files: &mut Files) -> Result<(), FieldError> {
    let data = base64::engine::general_purpose::STANDARD.encode(&checked.artifact.bytes);
    let maps: Vec<Value> = checked
        .site
        .filter
        .local
        .namespaces
        .iter()
        .map(|ns| {
            json!({
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": { "name": LOCAL_PATCH, "namespace": ns, "labels": common_labels(checked) },
                "binaryData": { LOCAL_FILE: data },
            })
        })
        .collect();
    files.insert(
        "filter-local/kustomization.yaml".into(),
        yaml::document(&json!({
            "apiVersion": "kustomize.config.k8s.io/v1beta1",
            "kind": "Kustomization",
            "resources": ["configmaps.yaml"],
        }))?,
    );
    files.insert(
        "filter-local/configmaps.yaml".into(),
        yaml::documents(&maps)?,
    );
    Ok(())
}

/// The whole tree.
pub fn render(checked: &Checked) -> Result<Files, FieldError> {
    let mut files = Files::new();
    edge_base(checked, &mut files)?;
    probe_base(checked, &mut files)?;
    for env in &checked.site.environments {
        overlay(checked, env, &mut files)?;
    }
    if checked.site.filter.delivery == Delivery::Local {
        filter_local(checked, &mut files)?;
    }
    Ok(files)
}
