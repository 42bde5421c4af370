//! Every file of a render, by path, and writing them into a directory.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::json;

use crate::FieldError;
use crate::checked::Checked;
use crate::site::Delivery;
use crate::{envoy, kubernetes, kuma, yaml};

/// The file that marks a directory as a render, so that a re-render may replace it.
pub const MARKER: &str = ".mesh-config-render";
/// The top-level directories a render owns.
const OWNED: &[&str] = &["kuma", "envoy", "kubernetes"];

/// The rendered files, by path relative to the output directory, in a stable order.
pub type Render = BTreeMap<String, String>;

/// Renders every artifact of a checked site.
pub fn render(checked: &Checked) -> Result<Render, FieldError> {
    let mut files = Render::new();
    let mut kuma_resources = Vec::new();
    for mesh in &checked.meshes {
        for patch in &mesh.patches {
            let file = format!("meshproxypatch-{}.yaml", patch.name);
            files.insert(
                format!("kuma/{file}"),
                yaml::document(&kuma::mesh_proxy_patch(checked, mesh, patch)?)?,
            );
            kuma_resources.push(file);
        }
    }
    if checked.site.filter.delivery == Delivery::Local {
        files.insert(
            "kuma/containerpatch.yaml".into(),
            yaml::document(&kuma::container_patch(checked))?,
        );
        kuma_resources.push("containerpatch.yaml".into());
    }
    files.insert(
        "kuma/kustomization.yaml".into(),
        yaml::document(&json!({
            "apiVersion": "kustomize.config.k8s.io/v1beta1",
            "kind": "Kustomization",
            "resources": kuma_resources,
        }))?,
    );
    if let (Some(standalone), Some(derived)) = (&checked.site.standalone, &checked.standalone) {
        files.insert(
            "envoy/bootstrap.yaml".into(),
            yaml::document(&envoy::bootstrap(
                standalone,
                &derived.plugin_json,
                derived.fail_open,
            )?)?,
        );
    }
    for (path, text) in kubernetes::render(checked)? {
        files.insert(format!("kubernetes/{path}"), text);
    }
    files.insert(
        MARKER.into(),
        format!(
            "Rendered by mesh-config from site {:?}; filter sha256 {}.\n",
            checked.site.name, checked.artifact.sha256
        ),
    );
    Ok(files)
}

fn io(path: &Path, e: std::io::Error) -> FieldError {
    FieldError::new("output", format!("{}: {e}", path.display()))
}

/// Writes `files` into `dir`. A directory that holds anything but an earlier render is
/// refused; an earlier render's own directories are replaced, so no stale file survives.
pub fn write(dir: &Path, files: &Render) -> Result<(), FieldError> {
    if dir.exists() {
        let mut entries = std::fs::read_dir(dir).map_err(|e| io(dir, e))?;
        let empty = entries.next().is_none();
        if !empty && !dir.join(MARKER).exists() {
            return Err(FieldError::new(
                "output",
                format!(
                    "{} is not empty and holds no earlier render ({MARKER}): refusing to write into it",
                    dir.display()
                ),
            ));
        }
        for owned in OWNED {
            let path = dir.join(owned);
            if path.exists() {
                std::fs::remove_dir_all(&path).map_err(|e| io(&path, e))?;
            }
        }
    }
    for (relative, text) in files {
        let path = dir.join(relative);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| io(parent, e))?;
        }
        std::fs::write(&path, text).map_err(|e| io(&path, e))?;
    }
    Ok(())
}
