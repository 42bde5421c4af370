//! Shared by the integration tests: rendering the documented example, the Python venv of
//! `tests/setup.sh`, Envoy's descriptor pool, and the workspace's paths.

#![allow(
    dead_code,
    reason = "each test binary uses a different part of this module"
)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use mesh_config::render::Render;
use mesh_config::site::Site;

/// The crate's directory.
pub fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The documented example site.
pub fn example() -> String {
    std::fs::read_to_string(crate_dir().join("examples/site.toml")).unwrap()
}

/// The example with `code.local` delivery into two workload namespaces.
pub fn example_local() -> String {
    let site = example().replace("delivery = \"remote\"", "delivery = \"local\"");
    assert!(site.contains("delivery = \"local\""));
    site.replace(
        "[images]",
        "[filter.local]\nmount_path = \"/var/lib/threadline\"\nnamespaces = [\"payments\", \"ledger\"]\n\n[images]",
    )
}

/// A tiny valid WebAssembly module standing in for the built filter, so renders do not
/// depend on the artifact of the day.
pub fn fixture_artifact() -> PathBuf {
    crate_dir().join("tests/fixtures/filter.wasm")
}

/// Parses, validates and renders `site` (relative paths from `examples/`) with the fixture
/// artifact.
pub fn render(site: &str) -> Render {
    let checked = Site::from_toml(site)
        .unwrap()
        .validate(&crate_dir().join("examples"), Some(&fixture_artifact()))
        .unwrap();
    mesh_config::render::render(&checked).unwrap()
}

/// Writes a render into a new temporary directory.
pub fn write(render: &Render) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    mesh_config::render::write(dir.path(), render).unwrap();
    dir
}

/// `cargo metadata` of the workspace, once.
fn metadata() -> &'static serde_json::Value {
    static METADATA: OnceLock<serde_json::Value> = OnceLock::new();
    METADATA.get_or_init(|| {
        let output = Command::new(env!("CARGO"))
            .args(["metadata", "--format-version", "1", "--manifest-path"])
            .arg(crate_dir().join("Cargo.toml"))
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_slice(&output.stdout).unwrap()
    })
}

/// The target directory cargo builds into.
pub fn target_dir() -> PathBuf {
    PathBuf::from(metadata()["target_directory"].as_str().unwrap())
}

/// The source directory of a dependency.
pub fn package_dir(name: &str) -> PathBuf {
    let manifest = metadata()["packages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == name)
        .unwrap_or_else(|| panic!("{name} is not in the dependency graph"))["manifest_path"]
        .as_str()
        .unwrap();
    Path::new(manifest).parent().unwrap().to_owned()
}

/// The venv of `tests/setup.sh`: `MESH_CONFIG_VENV`, or `target/mesh-config-venv` in the
/// workspace.
pub fn venv() -> PathBuf {
    let venv = std::env::var_os("MESH_CONFIG_VENV").map_or_else(
        || crate_dir().join("../target/mesh-config-venv"),
        PathBuf::from,
    );
    assert!(
        venv.join("bin/python").exists(),
        "no Python venv at {}: run mesh-config/tests/setup.sh first (it installs tests/requirements.txt)",
        venv.display()
    );
    venv
}

/// Runs a command; returns whether it succeeded and what it printed.
pub fn run(command: &mut Command) -> (bool, String) {
    let output = command.output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

/// Envoy's v3 API, compiled from the `.proto` files the `envoy-types` crate ships.
pub fn envoy_pool() -> &'static prost_reflect::DescriptorPool {
    static POOL: OnceLock<prost_reflect::DescriptorPool> = OnceLock::new();
    POOL.get_or_init(|| {
        let proto = package_dir("envoy-types").join("proto");
        let includes = [
            "data-plane-api",
            "xds",
            "protoc-gen-validate",
            "googleapis",
            "cel-spec",
            "opentelemetry-proto",
            "client_model",
        ]
        .map(|dir| proto.join(dir));
        protox::Compiler::new(includes)
            .unwrap()
            .include_imports(true)
            .open_files([
                "envoy/config/bootstrap/v3/bootstrap.proto",
                "envoy/config/cluster/v3/cluster.proto",
                "envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.proto",
                "envoy/extensions/filters/http/router/v3/router.proto",
                "envoy/extensions/filters/http/wasm/v3/wasm.proto",
            ])
            .unwrap()
            .descriptor_pool()
    })
}

/// Parses `value` as the Envoy message `type_name`, refusing unknown fields (and unknown
/// types in `Any`), as Envoy's own JSON/YAML reader does.
pub fn parse_envoy(
    type_name: &str,
    value: &serde_json::Value,
) -> Result<prost_reflect::DynamicMessage, String> {
    let descriptor = envoy_pool()
        .get_message_by_name(type_name)
        .unwrap_or_else(|| panic!("{type_name} is not in Envoy's API"));
    let options = prost_reflect::DeserializeOptions::new().deny_unknown_fields(true);
    prost_reflect::DynamicMessage::deserialize_with_options(descriptor, value.clone(), &options)
        .map_err(|e| e.to_string())
}

/// One YAML document as JSON.
pub fn yaml(text: &str) -> serde_json::Value {
    serde_yaml::from_str(text).unwrap()
}
