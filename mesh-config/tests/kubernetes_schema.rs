//! The Kubernetes objects of every overlay, built by `kubectl kustomize` and validated by
//! `kubernetes-validate --strict` (Kubernetes' own OpenAPI schemas, unknown fields refused)
//! for the oldest and the newest Kubernetes it bundles.

mod support;

use std::path::Path;
use std::process::Command;

use support::{example, example_local, render, run, venv, write, yaml};

/// Kubernetes versions checked: `internalTrafficPolicy` is GA from 1.26.
const VERSIONS: &[&str] = &["1.28.0", "1.37.0"];

fn kustomize(dir: &Path) -> String {
    let (ok, text) = run(Command::new("kubectl").arg("kustomize").arg(dir));
    assert!(ok, "kubectl kustomize {}: {text}", dir.display());
    text
}

fn validate(file: &Path) -> Vec<(bool, String)> {
    VERSIONS
        .iter()
        .map(|version| {
            run(Command::new(venv().join("bin/kubernetes-validate"))
                .args(["--strict", "--quiet", "-k", version])
                .arg(file))
        })
        .collect()
}

fn builds(site: &str) -> Vec<(String, String)> {
    let render = render(site);
    let out = write(&render);
    let mut dirs: Vec<String> = render
        .keys()
        .filter_map(|path| path.strip_suffix("/kustomization.yaml"))
        .filter(|dir| dir.starts_with("kubernetes/overlays/") || *dir == "kubernetes/filter-local")
        .map(str::to_owned)
        .collect();
    dirs.sort();
    dirs.into_iter()
        .map(|dir| {
            let text = kustomize(&out.path().join(&dir));
            (dir, text)
        })
        .collect()
}

#[test]
fn every_overlay_builds_and_is_valid_in_strict_mode() {
    for site in [example(), example_local()] {
        let builds = builds(&site);
        assert!(builds.len() >= 2);
        for (dir, text) in builds {
            let file = tempfile::NamedTempFile::new().unwrap();
            std::fs::write(file.path(), &text).unwrap();
            for (ok, report) in validate(file.path()) {
                assert!(ok, "{dir}: {report}\n{text}");
            }
        }
    }
}

#[test]
fn the_overlays_hold_what_each_environment_runs() {
    let builds = builds(&example_local());
    let kinds = |dir: &str| -> Vec<String> {
        let text = &builds.iter().find(|(d, _)| d.ends_with(dir)).unwrap().1;
        text.split("\n---\n")
            .map(|doc| {
                let v = yaml(doc);
                format!(
                    "{}/{}",
                    v["kind"].as_str().unwrap(),
                    v["metadata"]["name"].as_str().unwrap()
                )
            })
            .collect()
    };
    let edge = kinds("overlays/edge-fra1");
    assert!(
        edge.iter().any(|k| k == "Deployment/edge-proxy"),
        "{edge:?}"
    );
    assert!(
        edge.iter().any(|k| k.starts_with("ConfigMap/edge-proxy-")),
        "{edge:?}"
    );
    assert!(
        !edge.iter().any(|k| k.starts_with("DaemonSet/")),
        "{edge:?}"
    );
    let core = kinds("overlays/core-fra1");
    assert!(core.iter().any(|k| k == "DaemonSet/node-probe"), "{core:?}");
    assert!(
        core.iter().any(|k| k == "Service/threadline-agent"),
        "{core:?}"
    );
    assert!(
        !core.iter().any(|k| k.starts_with("Deployment/")),
        "{core:?}"
    );
    assert_eq!(
        kinds("filter-local"),
        ["ConfigMap/threadline-filter", "ConfigMap/threadline-filter"]
    );
}

#[test]
fn an_unknown_field_is_refused() {
    let (dir, text) = builds(&example()).remove(0);
    let broken = text
        .replacen(
            "dnsPolicy: ClusterFirstWithHostNet",
            "dnsPolicy: ClusterFirstWithHostNet\n      hostNetworking: true",
            1,
        )
        .replacen(
            "readOnlyRootFilesystem: true",
            "readOnlyRootFilesystem: true\n          readOnlyRoot: true",
            1,
        );
    assert_ne!(broken, text, "{dir}");
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), broken).unwrap();
    for (ok, report) in validate(file.path()) {
        assert!(!ok, "{dir}: {report}");
    }
}
