use super::*;
use crate::otel_env;

#[derive(Debug)]
struct Edge;

impl ExportDefaults for Edge {
    const SERVICE_NAME: &'static str = "edge";
    const TIMEOUT_MS: u64 = 2000;
    const QUEUE_SIZE: usize = 8192;
    const MAX_RETRIES: u32 = 2;
    const SHUTDOWN_TIMEOUT_MS: u64 = 5000;
}

type Settings = ExportSettings<Edge>;

fn lookup(env: &[(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
    move |k| {
        env.iter()
            .find(|(n, _)| *n == k)
            .map(|(_, v)| v.to_string())
    }
}

fn from_json(json: &str) -> Settings {
    serde_json::from_str(json).unwrap()
}

/// `settings` with `env` over it, and what was applied.
fn with_env(mut settings: Settings, env: &[(&'static str, &'static str)]) -> (Settings, Applied) {
    let mut read = otel_env::read(lookup(env)).unwrap();
    let mut applied = Applied::new(std::mem::take(&mut read.warnings));
    settings.apply_env(&mut read, &mut applied);
    (settings, applied)
}

/// The first error of `settings` with `env` over it, as a binary reports it.
fn error(settings: Settings, env: &[(&'static str, &'static str)]) -> FieldError {
    let mut read = match otel_env::read(lookup(env)) {
        Ok(read) => read,
        Err(e) => return e,
    };
    let mut applied = Applied::new(Vec::new());
    let mut settings = settings;
    settings.apply_env(&mut read, &mut applied);
    applied.explain(settings.check().expect_err("accepted"))
}

#[test]
fn missing_fields_take_the_binarys_defaults() {
    let settings = from_json(r#"{"batch_size": 100}"#);
    assert_eq!(settings.batch_size, 100);
    assert_eq!(settings.timeout_ms, 2000);
    assert_eq!(settings.queue_size, 8192);
    assert_eq!(settings.service_name, "edge");
    assert!(settings.enabled);
    assert!(settings.check().is_ok());
    let unknown = serde_json::from_str::<Settings>(r#"{"endpoints": "x"}"#).unwrap_err();
    assert!(unknown.to_string().contains("unknown field"), "{unknown}");
}

#[test]
fn the_traces_url_follows_the_specification() {
    assert_eq!(Settings::default().traces_url(), None);
    let base = from_json(r#"{"endpoint": "http://c:4318"}"#);
    assert_eq!(
        base.traces_url().as_deref(),
        Some("http://c:4318/v1/traces")
    );
    let both = from_json(r#"{"endpoint": "http://c:4318", "traces_endpoint": "http://t:4318/x"}"#);
    assert_eq!(both.traces_url().as_deref(), Some("http://t:4318/x"));
    assert_eq!(both.endpoint_field(), "export.traces_endpoint");
    let grpc = from_json(r#"{"endpoint": "http://c:4317", "protocol": "grpc"}"#);
    assert_eq!(grpc.traces_url().as_deref(), Some("http://c:4317"));
}

#[test]
fn otel_variables_win_over_the_file() {
    let file = from_json(
        r#"{"endpoint": "http://file:4318", "headers": {"team": "edge", "authorization": "old"}}"#,
    );
    let (settings, applied) = with_env(
        file,
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
            ("OTEL_EXPORTER_OTLP_HEADERS", "authorization=Bearer%20x"),
            ("OTEL_SERVICE_NAME", "edge-fra1"),
            ("OTEL_RESOURCE_ATTRIBUTES", "region=eu"),
            ("OTEL_BSP_SCHEDULE_DELAY", "250"),
            ("OTEL_BSP_MAX_QUEUE_SIZE", "4096"),
            ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "128"),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "0"),
            ("OTEL_BSP_EXPORT_TIMEOUT", "30000"),
        ],
    );
    assert_eq!(
        settings.traces_url().as_deref(),
        Some("http://collector:4317")
    );
    assert_eq!(settings.protocol, Protocol::Grpc);
    assert_eq!(settings.headers["team"], "edge", "the file's headers stay");
    assert_eq!(settings.headers["authorization"], "Bearer x");
    assert_eq!(settings.service_name, "edge-fra1");
    assert_eq!(settings.resource_attributes["region"], "eu");
    assert_eq!(settings.flush_interval_ms, 250);
    assert_eq!(settings.queue_size, 4096);
    assert_eq!(settings.batch_size, 128);
    assert_eq!(settings.timeout_ms, MAX_TIMEOUT_MS, "0 is no limit");
    assert!(settings.check().is_ok());
    let warned: Vec<&str> = applied.warnings.iter().map(|w| w.field.as_str()).collect();
    assert_eq!(warned, ["OTEL_BSP_EXPORT_TIMEOUT"]);
}

#[test]
fn a_generic_endpoint_replaces_the_files_traces_endpoint() {
    let file = || from_json(r#"{"traces_endpoint": "http://file:4318/x"}"#);
    let (settings, _) = with_env(
        file(),
        &[
            (
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                "http://env:4318/custom",
            ),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://ignored:4318"),
        ],
    );
    assert_eq!(
        settings.traces_url().as_deref(),
        Some("http://env:4318/custom")
    );
    let (settings, _) = with_env(
        file(),
        &[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://env:4318")],
    );
    assert_eq!(
        settings.traces_url().as_deref(),
        Some("http://env:4318/v1/traces")
    );
}

#[test]
fn errors_name_the_field_or_the_variable_that_set_it() {
    let file = |json: &str| from_json(json);
    for (json, field) in [
        (r#"{"batch_size": 0}"#, "export.batch_size"),
        (
            r#"{"batch_size": 100, "queue_size": 50}"#,
            "export.batch_size",
        ),
        (r#"{"endpoint": "localhost:4318"}"#, "export.endpoint"),
        (
            r#"{"traces_endpoint": "localhost:4318"}"#,
            "export.traces_endpoint",
        ),
        (
            r#"{"headers": {"bad name": "x"}}"#,
            "export.headers.bad name",
        ),
        (r#"{"headers": {"x": "a\nb"}}"#, "export.headers.x"),
        (r#"{"service_name": " "}"#, "export.service_name"),
        (r#"{"timeout_ms": 60001}"#, "export.timeout_ms"),
        (
            r#"{"shutdown_timeout_ms": 300001}"#,
            "export.shutdown_timeout_ms",
        ),
    ] {
        assert_eq!(error(file(json), &[]).field, field, "{json}");
    }
    for (variable, value) in [
        ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "udp"),
        ("OTEL_BSP_SCHEDULE_DELAY", "1s"),
        ("OTEL_BSP_SCHEDULE_DELAY", "5"),
        ("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "120000"),
        ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "10000"),
        ("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "bad name=x"),
    ] {
        let e = error(Settings::default(), &[(variable, value)]);
        assert_eq!(e.field, variable, "{e}");
    }
    let e = error(Settings::default(), &[("OTEL_BSP_SCHEDULE_DELAY", "5")]);
    assert!(e.reason.contains("export.flush_interval_ms"), "{e}");
    // The file's own mistakes keep the file's names.
    let e = error(
        file(r#"{"batch_size": 0}"#),
        &[("OTEL_BSP_MAX_QUEUE_SIZE", "100")],
    );
    assert_eq!(e.field, "export.batch_size");
}

#[test]
fn debug_output_leaves_header_values_out() {
    let settings = from_json(r#"{"headers": {"authorization": "Bearer secret"}}"#);
    let printed = format!("{settings:?}");
    assert!(
        printed.contains("authorization") && !printed.contains("secret"),
        "{printed}"
    );
}
