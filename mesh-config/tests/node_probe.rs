//! The node-probe TOML of every overlay, checked by the agent's own configuration code
//! (`node_probe::config`): parsed with unknown fields refused and validated as the agent does
//! at start.

mod support;

use support::{example, example_local, fixture_artifact, render};

/// Parses and validates `toml` as the agent would. The agent opens `[artifact].file` at start;
/// that file is in its image, so here it is the fixture artifact.
fn check(toml: &str) -> Result<node_probe::config::Settings, node_probe::config::ConfigError> {
    let fixture = fixture_artifact();
    let toml = toml.replace(
        "file = \"/var/lib/threadline/filter.wasm\"",
        &format!("file = {:?}", fixture.to_str().unwrap()),
    );
    node_probe::config::Config::from_toml(&toml)?.validate()
}

#[test]
fn every_rendered_agent_config_passes_the_agents_own_check() {
    for (site, artifact) in [(example(), true), (example_local(), false)] {
        let render = render(&site);
        let configs: Vec<_> = render
            .iter()
            .filter(|(path, _)| path.ends_with("/node-probe.toml"))
            .collect();
        assert!(!configs.is_empty());
        for (path, toml) in configs {
            assert_eq!(toml.contains("[artifact]"), artifact, "{path}");
            check(toml).unwrap_or_else(|e| panic!("{path}: {e}\n{toml}"));
        }
    }
}

#[test]
fn the_agent_refuses_a_broken_one() {
    let render = render(&example());
    let toml = &render["kubernetes/overlays/core-fra1/node-probe.toml"];
    let e = check(&toml.replace("[location]", "[locations]")).unwrap_err();
    assert_eq!(e.field, "locations", "{e}");
    let e = check(&toml.replace("http = \"0.0.0.0:4318\"", "http = \"0.0.0.0\"")).unwrap_err();
    assert_eq!(e.field, "receiver.http", "{e}");
}
