//! The edge-proxy TOML of every overlay, checked by edge-proxy itself: the built binary's
//! `--check-config` parses and validates it with its own configuration code (edge-proxy is a
//! bin crate, so a library dependency is not possible). Build it first:
//! `cargo build -p edge-proxy` (or set `EDGE_PROXY_BIN`).

mod support;

use std::path::PathBuf;
use std::process::Command;

use support::{example, render, run, target_dir};

fn edge_proxy() -> PathBuf {
    let bin = std::env::var_os("EDGE_PROXY_BIN")
        .map_or_else(|| target_dir().join("debug/edge-proxy"), PathBuf::from);
    assert!(
        bin.exists(),
        "no edge-proxy binary at {}: run `cargo build -p edge-proxy` first (or set EDGE_PROXY_BIN)",
        bin.display()
    );
    bin
}

fn check_config(toml: &str) -> (bool, String) {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), toml).unwrap();
    let mut command = Command::new(edge_proxy());
    command
        .arg("--config")
        .arg(file.path())
        .arg("--check-config");
    // Only the file is under test: the OTEL_* variables of whoever runs the tests stay out.
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("OTEL_") {
            command.env_remove(name);
        }
    }
    command.env_remove("EDGE_PROXY_CONFIG");
    run(&mut command)
}

#[test]
fn every_rendered_edge_config_passes_edge_proxys_own_check() {
    let render = render(&example());
    let configs: Vec<_> = render
        .iter()
        .filter(|(path, _)| path.ends_with("/edge-proxy.toml"))
        .collect();
    assert!(!configs.is_empty());
    for (path, toml) in configs {
        let (ok, report) = check_config(toml);
        assert!(ok, "{path}: {report}");
        assert!(report.contains("2 core location(s)"), "{path}: {report}");
        assert!(
            report.contains(
                "export to http://otel-collector.observability.svc.cluster.local:4318/v1/traces"
            ),
            "{path}: {report}"
        );
    }
}

#[test]
fn edge_proxy_refuses_a_broken_one() {
    let render = render(&example());
    let toml = &render["kubernetes/overlays/edge-fra1/edge-proxy.toml"];
    let (ok, report) = check_config(&toml.replace("[edge]", "[edges]"));
    assert!(!ok && report.contains("edges"), "{report}");
    let (ok, report) =
        check_config(&toml.replace("address = \"10.1.0.10:80\"", "address = \"fra1:80\""));
    assert!(
        !ok && report.contains("upstreams.locations[1].address"),
        "{report}"
    );
}
