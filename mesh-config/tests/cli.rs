//! The `mesh-config` binary: exit code 2 with the field named on a bad site file or a plugin
//! configuration the filter refuses, warnings for MeshTraces that contradict the site, and a
//! render directory that is never a stranger's.

mod support;

use std::path::Path;
use std::process::Command;

use support::{crate_dir, example, fixture_artifact};

fn mesh_config(args: &[&std::ffi::OsStr]) -> (i32, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_mesh-config"))
        .args(args)
        .output()
        .unwrap();
    (
        output.status.code().unwrap(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// `check` of `site` with the fixture artifact, plus `extra` arguments.
fn check(site: &str, extra: &[&Path]) -> (i32, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("site.toml");
    std::fs::write(&path, site).unwrap();
    let fixture = fixture_artifact();
    let mut args = vec![
        "check".as_ref(),
        path.as_os_str(),
        "--filter".as_ref(),
        fixture.as_os_str(),
    ];
    args.extend(extra.iter().map(|e| e.as_os_str()));
    mesh_config(&args)
}

#[test]
fn the_example_checks() {
    let (code, out, err) = check(&example(), &[]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("site \"example\" ok"), "{out}");
    assert!(err.is_empty(), "{err}");
}

#[test]
fn a_bad_site_file_names_the_field() {
    for (from, to, field) in [
        (
            "percentage = 10.0",
            "percentage = 150.0",
            "sampling.percentage",
        ),
        ("hash_seed = 22", "hash_seed = -1", "sampling.hash_seed"),
        (
            "address = \"10.2.0.10:80\"",
            "address = \"core-ams1:80\"",
            "datacenters[0].core_locations[1].address",
        ),
        (
            "kuma_version = \"2.10.9\"",
            "kuma_version = \"2.9.13\"",
            "kuma.meshes[1].kuma_version",
        ),
        (
            "envoy_version = \"1.32.5\"",
            "envoy_version = \"1.32.x\"",
            "kuma.meshes[1].envoy_version",
        ),
        (
            "core_locations = [\"fra1\"]",
            "core_locations = [\"par1\"]",
            "kuma.meshes[1].core_locations[0]",
        ),
        (
            "edge_location = \"fra1-edge\"",
            "edge_location = \"fra2-edge\"",
            "environments[0].edge_location",
        ),
        (
            "tracing = \"exclusive\"",
            "tracing = \"both\"",
            "kuma.meshes[0].tracing",
        ),
        (
            "endpoint = \"http://otel",
            "endpoint = \"otel",
            "collector.endpoint",
        ),
        ("[trust]", "[trusts]", "trusts"),
    ] {
        let site = example();
        assert!(site.contains(from), "{from}");
        let (code, _, err) = check(&site.replacen(from, to, 1), &[]);
        assert_eq!(code, 2, "{from} -> {to}: {err}");
        assert!(err.contains(&format!("{field}:")), "{from} -> {to}: {err}");
    }
}

#[test]
fn a_plugin_configuration_the_filter_refuses_names_the_filters_field() {
    for (plugin, field, reason) in [
        (
            "batch = { max_spans = 0 }",
            "kuma.meshes[0].plugin.batch.max_spans",
            "must be between 1 and 10000",
        ),
        (
            "capture_headers = [\"ok\", \"bad header\"]",
            "kuma.meshes[0].plugin.capture_headers[1]",
            "must be a header name",
        ),
        (
            "colector = { path = \"/v1/traces\" }",
            "kuma.meshes[0].plugin.colector",
            "unknown field",
        ),
        (
            "tags = { node = \"n1\" }",
            "kuma.meshes[0].plugin.tags",
            "set by the site file",
        ),
    ] {
        let site = example().replace("capture_headers = [\"x-request-id\"]", plugin);
        let (code, _, err) = check(&site, &[]);
        assert_eq!(code, 2, "{plugin}: {err}");
        assert!(err.contains(&format!("{field}: ")), "{plugin}: {err}");
        assert!(err.contains(reason), "{plugin}: {err}");
    }
    let (_, _, err) = check(
        &example().replace(
            "capture_headers = [\"x-request-id\"]",
            "batch = { max_spans = 0 }",
        ),
        &[],
    );
    assert!(err.contains("the filter refuses it"), "{err}");
}

#[test]
fn meshtraces_that_contradict_the_site_are_warned_about() {
    let fixture = crate_dir().join("tests/fixtures/meshtraces.yaml");
    let (code, _, err) = check(&example(), &[Path::new("--meshtraces"), &fixture]);
    assert_eq!(code, 0, "{err}");
    let warnings: Vec<&str> = err.lines().filter(|l| l.contains("warning")).collect();
    assert_eq!(warnings.len(), 2, "{err}");
    assert!(
        warnings[0].contains("kuma.meshes[0].tracing")
            && warnings[0].contains("MeshTrace kuma-system/payments-otel"),
        "{err}"
    );
    assert!(
        warnings[1].contains("kuma.meshes[1].tracing") && warnings[1].contains("legacy-everything"),
        "{err}"
    );
    let overlapping = example().replace(
        "meshtrace_dataplanes = { \"threadline.io/tracing\" = \"envoy\" }",
        "meshtrace_dataplanes = { \"team\" = \"a\" }",
    );
    let (code, _, err) = check(&overlapping, &[]);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("warning: kuma.meshes[1].meshtrace_dataplanes: may select"),
        "{err}"
    );
}

#[test]
fn render_writes_every_artifact_and_refuses_a_strangers_directory() {
    let out = tempfile::tempdir().unwrap();
    let site = crate_dir().join("examples/site.toml");
    let fixture = fixture_artifact();
    let render = |dir: &Path| {
        mesh_config(&[
            "render".as_ref(),
            site.as_os_str(),
            "-o".as_ref(),
            dir.as_os_str(),
            "--filter".as_ref(),
            fixture.as_os_str(),
        ])
    };
    let (code, out_text, err) = render(out.path());
    assert_eq!(code, 0, "{err}");
    assert!(out_text.contains("wrote"), "{out_text}");
    assert!(
        out.path()
            .join("kuma/meshproxypatch-threadline-legacy.yaml")
            .exists()
    );
    let stale = out.path().join("kubernetes/overlays/gone");
    std::fs::create_dir_all(&stale).unwrap();
    assert_eq!(render(out.path()).0, 0, "a render replaces an earlier one");
    assert!(!stale.exists(), "a stale overlay survived the re-render");
    let stranger = tempfile::tempdir().unwrap();
    std::fs::write(stranger.path().join("notes.txt"), "mine").unwrap();
    let (code, _, err) = render(stranger.path());
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("refusing to write"), "{err}");
}

#[test]
fn help_lists_the_commands() {
    let (code, out, _) = mesh_config(&["--help".as_ref()]);
    assert_eq!(code, 0);
    assert!(out.contains("render") && out.contains("check"), "{out}");
    let (code, out, _) = mesh_config(&["render".as_ref(), "--help".as_ref()]);
    assert_eq!(code, 0);
    assert!(
        out.contains("--output") && out.contains("--filter"),
        "{out}"
    );
}
