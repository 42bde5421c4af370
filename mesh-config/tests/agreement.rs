//! One edit of the site file changes every rendered place that must agree with it, and
//! nothing else: the renders before and after differ in exactly the expected files, and in
//! those only in lines where the old value became the new one.

mod support;

use support::{example, render};

/// Applies `edit` (`from` → `to` in the site file), and checks that the render changes in
/// exactly `files`, each changed line being the old line with `old` replaced by `new`.
fn one_edit(from: &str, to: &str, old: &str, new: &str, files: &[&str]) {
    let site = example();
    assert_eq!(
        site.matches(from).count(),
        1,
        "{from:?} must appear once in the example"
    );
    let before = render(&site);
    let after = render(&site.replace(from, to));
    assert_eq!(
        before.keys().collect::<Vec<_>>(),
        after.keys().collect::<Vec<_>>(),
        "the edit changed which files are rendered"
    );
    let changed: Vec<&str> = before
        .iter()
        .filter(|(path, text)| after.get(*path) != Some(text))
        .map(|(path, _)| path.as_str())
        .collect();
    assert_eq!(changed, files, "files changed by {from:?} -> {to:?}");
    for path in changed {
        let (old_text, new_text) = (&before[path], &after[path]);
        let (old_lines, new_lines): (Vec<_>, Vec<_>) =
            (old_text.lines().collect(), new_text.lines().collect());
        assert_eq!(old_lines.len(), new_lines.len(), "{path}");
        let mut differing = 0;
        for (o, n) in old_lines.iter().zip(&new_lines) {
            if o != n {
                differing += 1;
                assert_eq!(
                    o.replace(old, new),
                    *n,
                    "{path}: a line changed beyond the value"
                );
            }
        }
        assert!(differing > 0, "{path}");
    }
}

const MESH_PATCHES: [&str; 3] = [
    "kuma/meshproxypatch-threadline-legacy.yaml",
    "kuma/meshproxypatch-threadline-payments-ams1.yaml",
    "kuma/meshproxypatch-threadline-payments-fra1.yaml",
];

fn with_patches(others: &[&'static str]) -> Vec<&'static str> {
    let mut files: Vec<&str> = others.iter().copied().chain(MESH_PATCHES).collect();
    files.sort_unstable();
    files
}

#[test]
fn the_sampling_seed_reaches_the_edge_the_mesh_the_sidecar_and_the_agents() {
    one_edit(
        "hash_seed = 22",
        "hash_seed = 23",
        "22",
        "23",
        &with_patches(&[
            "envoy/bootstrap.yaml",
            "kubernetes/overlays/core-fra1/node-probe.toml",
            "kubernetes/overlays/edge-fra1/edge-proxy.toml",
        ]),
    );
}

#[test]
fn the_sampling_percentage_reaches_every_tier() {
    one_edit(
        "percentage = 10.0",
        "percentage = 12.5",
        "10.0",
        "12.5",
        &with_patches(&[
            "envoy/bootstrap.yaml",
            "kubernetes/overlays/core-fra1/node-probe.toml",
            "kubernetes/overlays/edge-fra1/edge-proxy.toml",
        ]),
    );
}

#[test]
fn the_datacenter_tag_reaches_the_edge_the_mesh_the_sidecar_and_the_agents() {
    one_edit(
        "name = \"eu-central\"",
        "name = \"eu-north\"",
        "eu-central",
        "eu-north",
        &with_patches(&[
            "envoy/bootstrap.yaml",
            "kubernetes/overlays/core-fra1/node-probe.toml",
            "kubernetes/overlays/edge-fra1/edge-proxy.toml",
        ]),
    );
}

#[test]
fn the_edge_pop_tag_reaches_only_the_edge() {
    one_edit(
        "pop = \"fra1\"",
        "pop = \"fra9\"",
        "fra1",
        "fra9",
        &["kubernetes/overlays/edge-fra1/edge-proxy.toml"],
    );
}

#[test]
fn the_collector_endpoint_reaches_the_edge_and_the_agents_but_not_the_sidecars() {
    // Sidecars export to their node agent, which relays to the collector.
    one_edit(
        "endpoint = \"http://otel-collector.observability.svc.cluster.local:4318\"",
        "endpoint = \"https://collector.example.net:4318\"",
        "http://otel-collector.observability.svc.cluster.local:4318",
        "https://collector.example.net:4318",
        &[
            "kubernetes/overlays/core-fra1/node-probe.toml",
            "kubernetes/overlays/edge-fra1/edge-proxy.toml",
        ],
    );
}
