//! Every Envoy value mesh-config renders, parsed as its Envoy v3 type from Envoy's own
//! `.proto` files (shipped by `envoy-types`, compiled here with protox), unknown fields
//! refused. Kuma reads patch values with unknown fields allowed, so a misspelt field would
//! otherwise vanish silently in production.

mod support;

use serde_json::{Value, json};
use support::{example, example_local, parse_envoy, render, yaml};

const CLUSTER: &str = "envoy.config.cluster.v3.Cluster";
const HTTP_FILTER: &str = "envoy.extensions.filters.network.http_connection_manager.v3.HttpFilter";
const BOOTSTRAP: &str = "envoy.config.bootstrap.v3.Bootstrap";

/// Every `value` of every MeshProxyPatch in a render, with the Envoy type it must parse as.
fn patch_values(site: &str) -> Vec<(String, &'static str, Value)> {
    let mut values = Vec::new();
    for (path, text) in render(site) {
        if !path.starts_with("kuma/meshproxypatch-") {
            continue;
        }
        let patch = yaml(&text);
        for modification in patch["spec"]["default"]["appendModifications"]
            .as_array()
            .unwrap()
        {
            let (kind, type_name) = if modification.get("cluster").is_some() {
                ("cluster", CLUSTER)
            } else {
                ("httpFilter", HTTP_FILTER)
            };
            let value = modification[kind]["value"].as_str().unwrap();
            values.push((path.clone(), type_name, yaml(value)));
        }
    }
    values
}

fn plugin_config(filter: &Value) -> &Value {
    &filter["typed_config"]["config"]
}

#[test]
fn every_patch_value_is_its_envoy_type() {
    for site in [example(), example_local()] {
        let values = patch_values(&site);
        assert_eq!(values.len(), 9, "3 patches of 3 values each");
        for (path, type_name, value) in values {
            parse_envoy(type_name, &value).unwrap_or_else(|e| panic!("{path}: {e}\n{value:#}"));
        }
    }
}

#[test]
fn the_bootstrap_is_an_envoy_bootstrap() {
    let bootstrap = yaml(&render(&example())["envoy/bootstrap.yaml"]);
    parse_envoy(BOOTSTRAP, &bootstrap).unwrap();
}

#[test]
fn unknown_fields_and_types_are_refused() {
    let (_, _, cluster) = patch_values(&example()).remove(0);
    let mut typo = cluster.clone();
    typo["conect_timeout"] = json!("1s");
    assert!(
        parse_envoy(CLUSTER, &typo)
            .unwrap_err()
            .contains("conect_timeout")
    );
    let (_, _, filter) = patch_values(&example()).remove(1);
    let mut nested = filter.clone();
    nested["typed_config"]["config"]["vm_config"]["runtim"] = json!("v8");
    assert!(parse_envoy(HTTP_FILTER, &nested).is_err());
    let mut any = filter;
    any["typed_config"]["@type"] =
        json!("type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wsm");
    assert!(parse_envoy(HTTP_FILTER, &any).is_err());
}

#[test]
fn the_failure_policy_field_follows_the_envoy_version_and_is_never_doubled() {
    // payments runs Envoy 1.38, legacy 1.32: the mesh's own field, never both.
    for (path, type_name, value) in patch_values(&example()) {
        if type_name != HTTP_FILTER {
            continue;
        }
        let config = plugin_config(&value);
        let (policy, fail_open) = (config.get("failure_policy"), config.get("fail_open"));
        if path.contains("legacy") {
            assert_eq!((policy, fail_open), (None, Some(&json!(true))), "{path}");
        } else {
            assert_eq!(
                (policy, fail_open),
                (Some(&json!("FAIL_OPEN")), None),
                "{path}"
            );
        }
    }
    let boundary = example().replace("envoy_version = \"1.32.5\"", "envoy_version = \"1.33.0\"");
    for (path, type_name, value) in patch_values(&boundary) {
        if type_name == HTTP_FILTER {
            assert_eq!(
                plugin_config(&value)["failure_policy"],
                "FAIL_OPEN",
                "{path}"
            );
            assert!(plugin_config(&value).get("fail_open").is_none(), "{path}");
        }
    }
}

#[test]
fn the_plugin_configuration_is_a_string_value_the_filter_accepts() {
    for (path, type_name, value) in patch_values(&example()) {
        if type_name != HTTP_FILTER {
            continue;
        }
        let configuration = &plugin_config(&value)["configuration"];
        assert_eq!(
            configuration["@type"],
            "type.googleapis.com/google.protobuf.StringValue"
        );
        let json = configuration["value"].as_str().unwrap();
        let settings = wasm_filter::config::Settings::from_json(json.as_bytes())
            .unwrap_or_else(|e| panic!("{path}: {e}"));
        assert_eq!(settings.collector.cluster, "threadline_agent");
    }
}
