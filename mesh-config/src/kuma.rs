//! Kuma resources: a `MeshProxyPatch` per mesh and core location, the `ContainerPatch` of
//! `code.local` delivery, and the check of a cluster's MeshTraces against the site's tracing
//! mode.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::FieldError;
use crate::checked::{Checked, CheckedMesh, Patch, Target, disjoint};
use crate::envoy::{self, Code, ROUTER_FILTER};
use crate::site::{Delivery, TracingMode};
use crate::yaml;

/// Kuma's policy API version.
const API_VERSION: &str = "kuma.io/v1alpha1";
/// The `ContainerPatch` (and the volume and ConfigMap) of `code.local` delivery.
pub const LOCAL_PATCH: &str = "threadline-filter";
/// The artifact's file name in the ConfigMap and the sidecar.
pub const LOCAL_FILE: &str = "threadline-filter.wasm";

/// The labels every rendered object carries.
pub fn common_labels(checked: &Checked) -> BTreeMap<String, String> {
    BTreeMap::from([
        (
            "app.kubernetes.io/part-of".into(),
            checked.site.name.clone(),
        ),
        ("app.kubernetes.io/managed-by".into(), "mesh-config".into()),
    ])
}

fn target_ref(target: &Target) -> Value {
    match target {
        Target::Mesh => json!({ "kind": "Mesh" }),
        Target::Dataplanes(labels) => json!({ "kind": "Dataplane", "labels": labels }),
    }
}

fn code<'a>(checked: &'a Checked) -> Code<'a> {
    match checked.site.filter.delivery {
        Delivery::Remote => Code::Remote {
            uri: envoy::artifact_uri(checked),
            sha256: &checked.artifact.sha256,
        },
        Delivery::Local => Code::Local {
            filename: format!("{}/{LOCAL_FILE}", checked.site.filter.local.mount_path),
        },
    }
}

/// The `MeshProxyPatch` for one core location of a mesh: the agent's cluster, and the filter
/// before the router on inbound and outbound listeners.
pub fn mesh_proxy_patch(
    checked: &Checked,
    mesh: &CheckedMesh,
    patch: &Patch,
) -> Result<Value, FieldError> {
    let mut labels = common_labels(checked);
    labels.insert("kuma.io/mesh".into(), mesh.name.clone());
    let cluster = yaml::document(&envoy::agent_cluster(checked))?;
    let filter = yaml::document(&envoy::wasm_filter(
        &patch.plugin_json,
        &code(checked),
        mesh.fail_open,
    ))?;
    let before_router = |origin: &str| {
        json!({
            "httpFilter": {
                "operation": "AddBefore",
                "match": { "name": ROUTER_FILTER, "origin": origin },
                "value": filter,
            }
        })
    };
    Ok(json!({
        "apiVersion": API_VERSION,
        "kind": "MeshProxyPatch",
        "metadata": {
            "name": patch.name,
            "namespace": checked.site.kuma.system_namespace,
            "labels": labels,
        },
        "spec": {
            "targetRef": target_ref(&patch.target),
            "default": {
                "appendModifications": [
                    { "cluster": { "operation": "Add", "value": cluster } },
                    before_router("inbound"),
                    before_router("outbound"),
                ]
            }
        }
    }))
}

/// The `ContainerPatch` that mounts the artifact's ConfigMap into the sidecar, for
/// `code.local` delivery. Pods opt in with `kuma.io/container-patches: threadline-filter` and a
/// volume of that name (the README shows both).
pub fn container_patch(checked: &Checked) -> Value {
    let mount = json!({
        "name": LOCAL_PATCH,
        "mountPath": checked.site.filter.local.mount_path,
        "readOnly": true,
    });
    json!({
        "apiVersion": API_VERSION,
        "kind": "ContainerPatch",
        "metadata": {
            "name": LOCAL_PATCH,
            "namespace": checked.site.kuma.system_namespace,
            "labels": common_labels(checked),
        },
        "spec": {
            "sidecarPatch": [{
                "op": "add",
                "path": "/volumeMounts/-",
                "value": mount.to_string(),
            }]
        }
    })
}

/// Warnings for the MeshTraces of a cluster (`kubectl get meshtraces -A -o yaml`, a `List`
/// or a stream of documents) that contradict the site's tracing mode: any MeshTrace in an
/// exclusive mesh, and in a partitioned mesh one that may select the filter's Dataplanes.
pub fn meshtrace_warnings(checked: &Checked, text: &str) -> Result<Vec<FieldError>, FieldError> {
    let mut objects = Vec::new();
    for document in serde_yaml::Deserializer::from_str(text) {
        let value: Value = serde::Deserialize::deserialize(document)
            .map_err(|e| FieldError::new("meshtraces", e.to_string()))?;
        match value.get("items").and_then(Value::as_array) {
            Some(items) => objects.extend(items.iter().cloned()),
            None if value.is_null() => {}
            None => objects.push(value),
        }
    }
    let mut warnings = Vec::new();
    for object in objects
        .iter()
        .filter(|o| o.get("kind") == Some(&json!("MeshTrace")))
    {
        let text = |pointer: &str| object.pointer(pointer).and_then(Value::as_str);
        let name = format!(
            "MeshTrace {}/{}",
            text("/metadata/namespace").unwrap_or(""),
            text("/metadata/name").unwrap_or("")
        );
        // Kuma puts a policy without the label in the default mesh.
        let mesh_name = text("/metadata/labels/kuma.io~1mesh").unwrap_or("default");
        let Some((i, mesh)) = checked
            .meshes
            .iter()
            .enumerate()
            .find(|(_, m)| m.name == mesh_name)
        else {
            continue;
        };
        let field = format!("kuma.meshes[{i}].tracing");
        let null = Value::Null;
        let target = object.pointer("/spec/targetRef").unwrap_or(&null);
        match mesh.tracing {
            TracingMode::Exclusive => warnings.push(FieldError::new(
                field,
                format!("{name} traces mesh {mesh_name}, which is exclusive: Envoy's tracer would overwrite the filter's traceparent; delete it or use tracing = \"partitioned\""),
            )),
            TracingMode::Partitioned => {
                let filter_labels = checked
                    .site
                    .kuma
                    .meshes
                    .get(i)
                    .map(|m| m.filter_dataplanes.clone())
                    .unwrap_or_default();
                let kind = target.get("kind").and_then(Value::as_str).unwrap_or("Mesh");
                let labels: Option<BTreeMap<String, String>> = match kind {
                    "Dataplane" => Some(
                        target
                            .get("labels")
                            .and_then(Value::as_object)
                            .map(|m| {
                                m.iter()
                                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_owned()))
                                    .collect()
                            })
                            .unwrap_or_default(),
                    ),
                    _ => None,
                };
                if !labels.is_some_and(|l| disjoint(&filter_labels, &l)) {
                    warnings.push(FieldError::new(
                        field,
                        format!("{name} (targetRef {kind}) may select Dataplanes that carry the filter in mesh {mesh_name}: target Dataplanes whose labels exclude the filter's"),
                    ));
                }
            }
        }
    }
    Ok(warnings)
}
